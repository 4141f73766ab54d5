"""Training loops: ID training of the teacher and E_a, DG-Net."""
