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
from dgnet_edge.boxes import MIN_CROP, crop, tlwh_to_xyxy
from dgnet_edge.data.video.mot import read_mot
from dgnet_edge.errors import DatasetError, ExportError
from dgnet_edge.runtime.colour import STRIPES, SiteColour, choose_site_colour, colour_features
from dgnet_edge.runtime.embedder import Embedder

MIN_HEIGHT = 50  # pixels: smaller people are too small to weigh anything by


def tracklet_crops(video: Path, tracks_file: Path, every: int = 5, max_frame: Optional[int] = None,
                   min_height: int = MIN_HEIGHT) -> Tuple[List[np.ndarray], np.ndarray, np.ndarray]:
    """RGB crops of the tracks in a MOT file on every ``every``-th frame (0-based, up to
    ``max_frame``), with their track ids and frames."""
    rows = read_mot(tracks_file)
    if len(rows) == 0:
        raise DatasetError(f"{tracks_file}: no tracks in it")
    frame = rows.frame - 1  # MOT frames count from 1
    keep = (frame % every == 0) & (rows.boxes[:, 3] >= min_height)
    if max_frame is not None:
        keep &= frame <= max_frame
    rows, frame = rows.select(keep), frame[keep]
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise DatasetError(f"{video}: cannot open the video")
    crops, tracks, frames = [], [], []
    try:
        for index in range(int(frame.max()) + 1 if len(frame) else 0):
            ok, image = capture.read()
            if not ok:
                break
            for track, box in zip(rows.ids[frame == index], tlwh_to_xyxy(rows.boxes[frame == index])):
                part = crop(image, box)
                if part is not None and part.shape[0] >= min_height and part.shape[1] >= MIN_CROP:
                    crops.append(np.ascontiguousarray(part[:, :, ::-1]))
                    tracks.append(int(track))
                    frames.append(index)
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
    crops, tracks, frames = tracklet_crops(video, tracks_file, every, max_frame)
    with Embedder.open(export_dir, backend=backend, precision=precision, site_colour=False) as embedder:
        features = embedder.embed(crops)
        runner = embedder.runner.name
    site = choose_site_colour(features, colour_features(crops, stripes), tracks, frames, model_threshold, stripes)
    used = {"video": str(video), "tracks": str(tracks_file), "every": every, "max_frame": max_frame,
            "crops": len(crops), "tracks_used": int(len(set(tracks.tolist()))), "model": runner}
    return site, used
