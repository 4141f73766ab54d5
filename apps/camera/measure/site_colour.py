"""`dgnet-edge gallery colour`: weigh colour for a site from its own unlabelled video.

Reads the video and the tracks a tracker found in it (a MOT text file, e.g. from ``dgnet-edge demo
--no-appearance --save-txt DIR``), cuts a crop of each track every ``every`` frames, embeds them
with the export's learned features alone, and hands features, colours, tracks and frames to
:func:`dgnet_edge.runtime.colour.choose_site_colour`. No labels are read.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

import cv2
import numpy as np

from dgnet_edge.apps.camera.measure.threshold import read_threshold
from dgnet_edge.errors import DatasetError, ExportError
from dgnet_edge.runtime.colour import STRIPES, SiteColour, choose_site_colour, colour_features
from dgnet_edge.runtime.embedder import Embedder

MIN_HEIGHT = 50  # pixels: smaller people are too small to weigh anything by


def read_mot_tracks(path: Path) -> np.ndarray:
    """(N, 6) rows of 0-based frame, track, x1, y1, x2, y2 from a MOT text file (1-based frames, x, y, w, h)."""
    try:
        rows = np.loadtxt(path, delimiter=",", ndmin=2, usecols=range(6))
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path}: not a MOT text file ({e})") from None
    if len(rows) == 0:
        raise DatasetError(f"{path}: no tracks in it")
    frames, tracks, x, y, w, h = rows.T
    return np.stack([frames - 1, tracks, x, y, x + w, y + h], axis=1)


def tracklet_crops(video: Path, rows: np.ndarray, every: int = 5, max_frame: Optional[int] = None,
                   min_height: int = MIN_HEIGHT) -> Tuple[List[np.ndarray], np.ndarray, np.ndarray]:
    """RGB crops of the track rows on every ``every``-th frame (up to ``max_frame``), with their tracks and frames."""
    rows = rows[(rows[:, 0] % every == 0) & (rows[:, 5] - rows[:, 3] >= min_height)]
    if max_frame is not None:
        rows = rows[rows[:, 0] <= max_frame]
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise DatasetError(f"{video}: cannot open the video")
    crops, tracks, frames = [], [], []
    try:
        index, last = 0, int(rows[:, 0].max()) if len(rows) else -1
        while index <= last:
            ok, image = capture.read()
            if not ok:
                break
            h, w = image.shape[:2]
            for _, track, x1, y1, x2, y2 in rows[rows[:, 0] == index]:
                x1, y1 = int(max(0, x1)), int(max(0, y1))
                x2, y2 = int(min(w, round(x2))), int(min(h, round(y2)))
                if x2 - x1 >= 8 and y2 - y1 >= min_height:
                    crops.append(np.ascontiguousarray(image[y1:y2, x1:x2, ::-1]))
                    tracks.append(int(track))
                    frames.append(index)
            index += 1
    finally:
        capture.release()
    return crops, np.array(tracks, np.int64), np.array(frames, np.int64)


def weigh_site_colour(export_dir: Path, video: Path, tracks_file: Path, *, every: int = 5, max_frame: Optional[int] = None,
                      backend: str = "auto", precision: str = "auto", stripes: int = STRIPES) -> Tuple[SiteColour, dict]:
    """The site colour of ``video`` for the export, and what it was measured on."""
    model_threshold = read_threshold(export_dir)
    if model_threshold is None:
        raise ExportError(f"export {export_dir} has no reid_threshold.json: run `dgnet-edge gallery calibrate "
                          f"{export_dir} --data DIR` first (the site's threshold is set from it)")
    crops, tracks, frames = tracklet_crops(video, read_mot_tracks(tracks_file), every, max_frame)
    with Embedder.open(export_dir, backend=backend, precision=precision, site_colour=False) as embedder:
        features = embedder.embed(crops)
        runner = embedder.runner.name
    site = choose_site_colour(features, colour_features(crops, stripes), tracks, frames, model_threshold, stripes)
    used = {"video": str(video), "tracks": str(tracks_file), "every": every, "max_frame": max_frame,
            "crops": len(crops), "tracks_used": int(len(set(tracks.tolist()))), "model": runner}
    return site, used
