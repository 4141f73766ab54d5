"""The multi-camera re-id app, in folders that follow the pipeline.

- :mod:`.live`: what runs per frame: sources, detectors, ``tracking/`` (tracker, Kalman filter,
  matching, identities across cameras), outputs, display, the frame loop (``app``) and its builder
  (``run``).
- :mod:`.storage`: what persists: the gallery, the structure bank, synthesis at enrolment, gallery
  export, enrolment photo checks.
- :mod:`.measure`: what measures the app: the camera bench, the tracker-only bench, the one-shot
  synthesis bench, the re-id threshold calibration.
"""
