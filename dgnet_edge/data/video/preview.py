"""A picture of a video bench: up to four cameras at one frame in a 2x2 grid, with ground-truth boxes and ids.

A box is drawn thick when at least half of it is visible; a label gives the global identity and,
below full visibility, the visible fraction.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from dgnet_edge.atomic import write_atomic
from dgnet_edge.data.video.world import Site, load_site
from dgnet_edge.errors import DatasetError


def _read_frame(site: Site, name: str, frame: int) -> np.ndarray:
    camera = site.camera(name)
    jpeg = site.camera_dir(name) / "img1" / f"{frame:06d}.jpg"
    if jpeg.is_file():
        img = cv2.imread(str(jpeg))
        if img is None:
            raise DatasetError(f"{jpeg}: cannot decode the frame")
        return img
    if camera.video is None:
        raise DatasetError(f"{jpeg}: missing, and the bench has no video of {name}")
    capture = cv2.VideoCapture(str(site.root / camera.video))
    capture.set(cv2.CAP_PROP_POS_FRAMES, frame - 1)
    ok, img = capture.read()
    capture.release()
    if not ok:
        raise DatasetError(f"{site.root / camera.video}: cannot read frame {frame}")
    return img


def _colour(gid: int) -> tuple[int, int, int]:
    hue = (gid * 47) % 180
    bgr = cv2.cvtColor(np.uint8([[[hue, 220, 255]]]), cv2.COLOR_HSV2BGR)[0, 0]
    return int(bgr[0]), int(bgr[1]), int(bgr[2])


def busiest_frame(site: Site, names: tuple[str, ...]) -> int:
    """The first frame with the most ground-truth boxes over the cameras ``names``."""
    counts = np.zeros(site.frames + 1, np.int64)
    for name in names:
        np.add.at(counts, site.gt(name).frame, 1)
    return int(np.argmax(counts[1:])) + 1


def preview_grid(root: str | Path, frame: int | None = None, scale: float = 0.75) -> np.ndarray:
    """The grid image (BGR) of the bench at ``root`` at ``frame`` (default: the busiest frame)."""
    site = load_site(root)
    frame = busiest_frame(site, site.camera_names[:4]) if frame is None else frame
    if not 1 <= frame <= site.frames:
        raise DatasetError(f"{root}: frame {frame} is outside 1..{site.frames}")
    tiles = []
    for name in site.camera_names[:4]:
        img = _read_frame(site, name, frame)
        rows = site.gt(name).at(frame)
        for gid, (x, y, w, h), v in zip(rows.ids.tolist(), rows.boxes.tolist(), rows.visibility.tolist()):
            colour = _colour(gid)
            cv2.rectangle(img, (round(x), round(y)), (round(x + w) - 1, round(y + h) - 1), colour, 2 if v >= 0.5 else 1)
            label = f"{gid}" if v >= 0.995 else f"{gid} ({v:.0%})"
            (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
            lx, ly = round(x), max(th + 3, round(y) - 3)
            cv2.rectangle(img, (lx - 1, ly - th - 3), (lx + tw + 1, ly + 2), (24, 24, 24), -1)
            cv2.putText(img, label, (lx, ly), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
        cv2.putText(img, f"{name}  frame {frame}", (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.65, (255, 255, 255), 2, cv2.LINE_AA)
        tiles.append(img)
    while len(tiles) < 4:
        tiles.append(np.zeros_like(tiles[0]))
    grid = np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])])
    if scale != 1.0:
        grid = cv2.resize(grid, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return grid


def write_preview(root: str | Path, path: str | Path, frame: int | None = None, quality: int = 82) -> Path:
    """Write :func:`preview_grid` of the bench at ``root`` to ``path`` as JPEG."""
    ok, data = cv2.imencode(".jpg", preview_grid(root, frame), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    write_atomic(path, data.tobytes())
    return Path(path)
