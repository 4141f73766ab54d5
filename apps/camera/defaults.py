"""The camera app's defaults that more than one module (or a command's options) uses, in one place."""

SYNTHETIC_VIEWS = 8  # K: synthetic views rendered per new identity
# Score multiplier of synthetic templates (real ones weigh 1): the highest weight at which K = 8
# synthetic views did not lower one-shot cross-camera rank-1 on the synthetic world (README,
# `dgnet-edge bench synthesis`); above it, blurred views of the wrong person start to win.
SYNTHETIC_WEIGHT = 0.8
REID_EVERY = 10  # frames between feature refreshes of a confirmed track
BANK_PER_CAMERA = 32  # structure codes kept per camera
BANK_TRACK_INTERVAL_S = 10.0  # least time between two structure codes of one track

# Matching a feature against the gallery (`dgnet-edge bench gallery`, README "Large galleries": 512-d
# templates, one query at a time, on the shared 2-core x86_64 CPU). The exact in-memory product costs
# about 0.4-0.7 µs per template (7 ms median at 10^4 templates, 44 ms at 10^5, 704 ms at 10^6) and
# 2 KB of RAM per template (1.9 GB at 10^6). Up to this many templates a device holds them all and
# matches exactly (about 10 ms, 40 MB); above it a PostgreSQL gallery searches pgvector's HNSW index in
# the shared database (3 ms at 10^4, 28 ms at 10^5 on that loaded machine, identity agreement with
# exact search 1.000 and 0.955), so that no device holds a large gallery in memory.
EXACT_MATCH_MAX_TEMPLATES = 20_000
# pgvector HNSW index of a large gallery (the bench's figures): links per node, build candidate list,
# and the search candidate list (SET hnsw.ef_search; pgvector's own default is 40).
GALLERY_HNSW_M = 16
GALLERY_HNSW_EF_CONSTRUCTION = 64
GALLERY_HNSW_EF_SEARCH = 64
