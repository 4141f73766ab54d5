"""The live camera re-id app: sources, detectors, tracker, persistent gallery, demo loop."""
