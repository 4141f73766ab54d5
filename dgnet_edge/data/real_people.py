"""A small hand-labelled set of real people, cut from ``vtest.avi`` when it is needed.

``vtest_people.csv`` (beside this module) lists person boxes in frames 0-399 of vtest.avi, one
row per crop: ``frame, x1, y1, x2, y2, person``. The boxes are the ssdlite detector's on every
20th frame (score >= 0.5, at least 55 px tall); each was named by eye from the frame, its
neighbours and an identity contact sheet. Boxes holding two people, a sign, or a person cut by the
frame edge were left out, so every crop shows one person. People who leave and come back keep
their number. Frames 400-794 are held out: nothing may be chosen on them, and :func:`load_labels`
refuses a labels file that reaches into them.

The crops themselves are never stored (no binary fixtures): :func:`cut_crops` reads them out of the
video, which ``dgnet-edge data vtest`` obtains from Debian.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import cv2
import numpy as np

from dgnet_edge.errors import DatasetError

LABELS = Path(__file__).with_name("vtest_people.csv")
FIRST_HELD_OUT_FRAME = 400
COLUMNS = ("frame", "x1", "y1", "x2", "y2", "person")


@dataclass(frozen=True)
class RealSet:
    frames: np.ndarray  # (N,) int, the video frame of each crop
    boxes: np.ndarray  # (N, 4) int x1, y1, x2, y2 in pixels
    people: np.ndarray  # (N,) int, who each crop shows

    def __len__(self) -> int:
        return len(self.frames)


def load_labels(path: Optional[Path] = None) -> RealSet:
    """The labels in ``path`` (default: the shipped set), checked: one person per row, frames 0-399."""
    path = Path(path) if path is not None else LABELS
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if tuple(reader.fieldnames or ()) != COLUMNS:
                raise DatasetError(f"{path}: expected the columns {', '.join(COLUMNS)}, got {reader.fieldnames}")
            rows = [[int(row[c]) for c in COLUMNS] for row in reader]
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path}: unreadable labels ({e})") from None
    table = np.array(rows, dtype=np.int64).reshape(-1, len(COLUMNS))
    frames, boxes, people = table[:, 0], table[:, 1:5], table[:, 5]
    if len(table) == 0:
        raise DatasetError(f"{path}: no labelled crops")
    if frames.min() < 0 or frames.max() >= FIRST_HELD_OUT_FRAME:
        raise DatasetError(f"{path}: frames must be in 0..{FIRST_HELD_OUT_FRAME - 1}; "
                           f"frames {FIRST_HELD_OUT_FRAME} on are held out")
    if (boxes[:, 2] <= boxes[:, 0]).any() or (boxes[:, 3] <= boxes[:, 1]).any() or (boxes < 0).any():
        raise DatasetError(f"{path}: every box needs 0 <= x1 < x2 and 0 <= y1 < y2")
    return RealSet(frames, boxes, people)


def cut_crops(video: Path, labels: RealSet) -> List[np.ndarray]:
    """RGB uint8 crops of the labelled boxes, read from ``video`` in one pass."""
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise DatasetError(f"{video}: cannot open the video")
    wanted = {int(f) for f in labels.frames}
    images = {}
    try:
        for index in range(max(wanted) + 1):
            ok, image = capture.read()
            if not ok:
                raise DatasetError(f"{video}: the video ends at frame {index}, before the labelled frame {max(wanted)}")
            if index in wanted:
                images[index] = image
    finally:
        capture.release()
    crops = []
    for frame, (x1, y1, x2, y2) in zip(labels.frames, labels.boxes):
        image = images[int(frame)]
        if x2 > image.shape[1] or y2 > image.shape[0]:
            raise DatasetError(f"{video}: box {x1, y1, x2, y2} of frame {frame} is outside the {image.shape[1]}x{image.shape[0]} image")
        crops.append(np.ascontiguousarray(image[y1:y2, x1:x2, ::-1]))
    return crops
