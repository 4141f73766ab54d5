"""Measuring the camera app: camera bench, tracker-only bench, one-shot synthesis bench, threshold calibration."""
