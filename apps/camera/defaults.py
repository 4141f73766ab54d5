"""The camera app's defaults that more than one module (or a command's options) uses, in one place."""

SYNTHETIC_VIEWS = 8  # K: synthetic views rendered per new identity
# Score multiplier of synthetic templates (real ones weigh 1): the highest weight at which K = 8
# synthetic views did not lower one-shot cross-camera rank-1 on the synthetic world (README,
# `dgnet-edge bench synthesis`); above it, blurred views of the wrong person start to win.
SYNTHETIC_WEIGHT = 0.8
REID_EVERY = 10  # frames between feature refreshes of a confirmed track
BANK_PER_CAMERA = 32  # structure codes kept per camera
BANK_TRACK_INTERVAL_S = 10.0  # least time between two structure codes of one track
OPEN_TIMEOUT_S = 10.0  # seconds to wait for a source to open
READ_TIMEOUT_S = 5.0  # seconds without a frame before a live source counts as dropped and is reopened
DETECTOR_KINDS = ("auto", "ssdlite", "hog", "motion", "public", "yolo")
DETECTOR_HELP = ("auto (per camera: a video bench folder's public detections, else ssdlite when fetched, else hog), "
                 "ssdlite[:FILE.onnx] (a person SSD, fetched once: dgnet-edge detector fetch ssdlite), hog, motion, "
                 "public[:DIR] (MOTChallenge det.txt; DIR: a bench folder, default each source's own) or "
                 "yolo:FILE.onnx|FILE.engine")
