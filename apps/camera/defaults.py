"""The camera app's defaults that more than one module (or a command's options) uses, in one place."""

SYNTHETIC_VIEWS = 8  # K: synthetic views rendered per new identity
# The synthetic views' share in an identity's prototype (gallery_base.scoring_rows): of 0.1, 0.25,
# 0.5 and 1.0, the best one-shot cross-camera rank-1 with the quickstart's DG-Net export on the
# synthetic world (README, `dgnet-edge bench synthesis`).
SYNTHETIC_WEIGHT = 0.5
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

# Matching a feature against the gallery (`dgnet-edge bench gallery`, README "Large galleries": 512-d
# templates, one query at a time, on a 2-core x86_64 CPU under load). The exact in-memory product costs
# 0.3-0.7 µs and 2 KB of RAM per template: 7 ms median at 10^4 templates (20 MB), 44 ms at 10^5
# (195 MB), 704 ms at 10^6 (1.9 GB). Up to this many templates a device holds them all and matches
# exactly (12 ms, 39 MB at 20,000, where pgvector already answered in 7 ms and at 50,000 in 9 ms
# against exact's 16 ms); above it a PostgreSQL gallery searches pgvector's HNSW index in the
# shared database (10^5 templates: 26 ms median on that loaded machine, top-1 identity as exact search
# for 99.6 % of queries at ef_search 128), so that no device holds a large gallery in memory.
EXACT_MATCH_MAX_TEMPLATES = 20_000
# pgvector HNSW index of a large gallery: links per node and build candidate list (pgvector's
# defaults), and the search candidate list (SET hnsw.ef_search; pgvector's default 40). At 10^5
# templates ef_search 64 / 128 / 256 gave identity agreement 0.957 / 0.996 / 1.000 at 17 / 26 / 45 ms.
GALLERY_HNSW_M = 16
GALLERY_HNSW_EF_CONSTRUCTION = 64
GALLERY_HNSW_EF_SEARCH = 128
# At 10^6 templates ef_search 128 finds the exact search's identity for only 56 % of queries; 400
# for 87 % (57 ms), 1000 (pgvector's most) for 98.6 % (140 ms, against 704 ms and 1.9 GB on the
# device for the exact product). A gallery of more templates than this gets the larger list.
GALLERY_HNSW_EF_SEARCH_LARGE = 1000
GALLERY_LARGE_TEMPLATES = 100_000
