"""What the camera app keeps: the gallery, the structure bank, synthesis at enrolment, gallery export."""
