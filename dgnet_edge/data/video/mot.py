"""MOTChallenge text files: ground truth, public detections and tracker results, read and written.

Every line is ``frame, id, x, y, w, h, c7, c8, c9[, c10]`` with a 1-based frame number and a box
whose top-left corner is (x, y), in pixels. What the last columns mean depends on the file:

- ground truth (``gt/gt.txt``): c7 is the "consider" flag (1), c8 the class (1, pedestrian), c9 the
  visibility in 0..1;
- detections (``det/det.txt``): id is -1, c7 the detector's score, the rest -1;
- tracker results: c7 the confidence, the rest -1 (unused 3-D world coordinates).

:class:`MotRows` holds any of them: ``scores`` is column 7 and ``visibility`` column 9 where it is
in 0..1 (1 otherwise). Rows are kept sorted by frame, so :meth:`MotRows.at` is a binary search.
Deployment code reads these files, so this module needs only numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np

from dgnet_edge.atomic import write_atomic
from dgnet_edge.errors import DatasetError

KINDS = ("results", "gt", "det")


@dataclass(frozen=True)
class MotRows:
    """Rows of a MOTChallenge file, sorted by frame: frame (N,) int32, ids (N,) int64, boxes (N, 4) x, y, w, h."""

    frame: np.ndarray
    ids: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    visibility: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.frame)
        if not (len(self.ids) == len(self.boxes) == len(self.scores) == len(self.visibility) == n):
            raise ValueError("MotRows fields must have the same length")
        if n > 1 and np.any(np.diff(self.frame) < 0):
            raise ValueError("MotRows must be sorted by frame; build them with MotRows.of")

    @classmethod
    def of(
        cls,
        frame: np.ndarray,
        ids: np.ndarray,
        boxes: np.ndarray,
        scores: np.ndarray | None = None,
        visibility: np.ndarray | None = None,
    ) -> MotRows:
        """Rows from arrays in any order (sorted stably by frame); scores and visibility default to 1."""
        frame = np.asarray(frame, np.int32).reshape(-1)
        n = len(frame)
        order = np.argsort(frame, kind="stable")
        scores = np.ones(n, np.float32) if scores is None else np.asarray(scores, np.float32).reshape(-1)
        visibility = np.ones(n, np.float32) if visibility is None else np.asarray(visibility, np.float32).reshape(-1)
        return cls(
            frame[order],
            np.asarray(ids, np.int64).reshape(-1)[order],
            np.asarray(boxes, np.float32).reshape(-1, 4)[order],
            scores[order],
            visibility[order],
        )

    @classmethod
    def empty(cls) -> MotRows:
        return cls.of(np.zeros(0), np.zeros(0), np.zeros((0, 4)))

    def __len__(self) -> int:
        return len(self.frame)

    def select(self, mask: np.ndarray) -> MotRows:
        """The rows where ``mask`` is true (or the rows at the given indices), still sorted."""
        return MotRows(self.frame[mask], self.ids[mask], self.boxes[mask], self.scores[mask], self.visibility[mask])

    def at(self, frame: int) -> MotRows:
        """The rows of one frame."""
        lo, hi = np.searchsorted(self.frame, [frame, frame + 1])
        return self.select(slice(int(lo), int(hi)))


FRAME_MAX = 2**31 - 1  # frames are stored as int32
ID_MIN, ID_MAX = -(2**63), 2**63 - 1  # ids as int64


def _whole_number(text: str) -> int | None:
    """The integer ``text`` spells exactly ("12", "12.0", "1.2e3"), or None; float parsing would round
    ids past 2**53 into one another."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    if not value.is_finite() or value != value.to_integral_value():
        return None
    if value.adjusted() > 20:  # far outside int64: no need to build a huge int to say so
        return ID_MAX + 1 if value > 0 else ID_MIN - 1
    return int(value)


def _parse_line(path: Path, number: int, line: str) -> tuple[int, int, tuple[float, ...]]:
    """(frame, id, the float columns from x on) of one line; frame and id are read exactly."""
    parts = [p.strip() for p in line.split(",")]
    if len(parts) < 6:
        raise DatasetError(f"{path}:{number}: expected at least 6 comma-separated values (frame,id,x,y,w,h,...), got {len(parts)}")
    frame = _whole_number(parts[0])
    if frame is None or not 1 <= frame <= FRAME_MAX:
        raise DatasetError(f"{path}:{number}: frame must be a whole number in 1..{FRAME_MAX}, got {parts[0]}")
    gid = _whole_number(parts[1])
    if gid is None or not ID_MIN <= gid <= ID_MAX:
        raise DatasetError(f"{path}:{number}: id must be a whole number in {ID_MIN}..{ID_MAX} (int64), got {parts[1]}")
    try:
        values = [float(p) for p in parts[2:10]]
    except ValueError:
        raise DatasetError(f"{path}:{number}: not a number in {line.strip()!r}") from None
    if not all(np.isfinite(values)):
        raise DatasetError(f"{path}:{number}: non-finite value in {line.strip()!r}")
    if values[2] < 0 or values[3] < 0:
        raise DatasetError(f"{path}:{number}: negative box size (w={parts[4]}, h={parts[5]})")
    return frame, gid, tuple(values)


def read_mot(path: str | Path) -> MotRows:
    """Read a MOTChallenge file; a malformed line raises a one-line DatasetError naming ``path:line``."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DatasetError(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path} cannot be read: {e}") from None
    rows = [_parse_line(path, i, line) for i, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not rows:
        return MotRows.empty()
    frames = np.array([r[0] for r in rows], np.int64)
    ids = np.array([r[1] for r in rows], np.int64)
    table = np.full((len(rows), 7), -1.0)  # x, y, w, h, c7, c8, c9
    for i, r in enumerate(rows):
        table[i, : min(len(r[2]), 7)] = r[2][:7]
    scores = np.where(np.array([len(r[2]) for r in rows]) >= 5, table[:, 4], 1.0)
    vis = table[:, 6]
    visibility = np.where((vis >= 0) & (vis <= 1), vis, 1.0)
    return MotRows.of(frames, ids, table[:, :4], scores, visibility)


def format_mot(rows: MotRows, kind: str = "results") -> str:
    """The text of a MOTChallenge file of ``kind``: "results" (trackers), "gt" or "det"."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    lines = []
    for f, i, (x, y, w, h), s, v in zip(
        rows.frame.tolist(), rows.ids.tolist(), rows.boxes.tolist(), rows.scores.tolist(), rows.visibility.tolist()
    ):
        box = f"{x:.2f},{y:.2f},{w:.2f},{h:.2f}"
        if kind == "gt":
            lines.append(f"{f},{i},{box},1,1,{v:.3f}")
        elif kind == "det":
            lines.append(f"{f},-1,{box},{s:.3f},-1,-1,-1")
        else:
            lines.append(f"{f},{i},{box},{s:.3f},-1,-1,-1")
    return "".join(line + "\n" for line in lines)


def write_mot(path: str | Path, rows: MotRows, kind: str = "results") -> None:
    """Write ``rows`` as a MOTChallenge file of ``kind`` (see :func:`format_mot`), atomically."""
    write_atomic(path, format_mot(rows, kind).encode())
