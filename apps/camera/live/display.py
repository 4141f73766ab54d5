"""The ``--show`` window: one OpenCV window per camera, with keys to quit, pause and enrol.

Keys: ``q`` or Esc quits, ``p`` or space pauses and resumes, a mouse click on a box selects that
track, and ``e`` enrols the selected track (names its identity ``person-N``, or makes a new
identity from it; rename it later with ``dgnet-edge gallery rename``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from dgnet_edge.apps.camera.live.outputs import Label, Sink, annotate
from dgnet_edge.apps.camera.live.sources import Frame
from dgnet_edge.apps.camera.live.tracking.tracker import Track
from dgnet_edge.errors import UsageError

if TYPE_CHECKING:
    from dgnet_edge.apps.camera.live.record import FrameResult

log = logging.getLogger(__name__)


def gui_available() -> tuple[bool, str]:
    """Whether windows can be shown here, and why not."""
    import cv2

    gui = cv2.getBuildInformation().split("GUI:", 1)[-1].split("\n", 1)[0].strip()
    if gui.upper().startswith("NONE"):
        return False, "this OpenCV build has no GUI (pip's -headless wheels): install opencv-contrib-python, or JetPack's OpenCV"
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False, "no display (DISPLAY is not set)"
    return True, ""


def resolve_show(show: bool | None) -> bool:
    """``--show`` asked for (True), refused (False) or left to the machine (None: show when possible)."""
    ok, why = gui_available()
    if show and not ok:
        raise UsageError(f"--show: {why}; run without --show (headless) and use --save to keep annotated video")
    return ok if show is None else show


class Display(Sink):
    """A sink that shows each camera's annotated frames; ``enrol(camera, track)`` is called for the
    enrol key, ``stop()`` for the quit key."""

    draws = True

    def __init__(self, enrol: Callable[[str, Track], None], stop: Callable[[], None] = lambda: None):
        self._enrol = enrol
        self._stop = stop
        self._windows: set[str] = set()
        self._tracks: dict[str, list[tuple[Track, Label]]] = {}
        self.selected: tuple[str, int] | None = None
        self.paused = False

    def _on_mouse(self, camera: str) -> Callable[..., None]:
        import cv2

        def on_mouse(event: int, x: int, y: int, *_: object) -> None:
            if event != cv2.EVENT_LBUTTONDOWN:
                return
            for track, label in self._tracks.get(camera, []):
                x1, y1, x2, y2 = label.box
                if x1 <= x <= x2 and y1 <= y <= y2:
                    self.selected = (camera, track.track_id)
                    return
            self.selected = None

        return on_mouse

    def write(self, result: FrameResult) -> None:
        if result.frame is not None and not self.show(result.frame, result.tracks, result.labels, result.header):
            self._stop()

    def show(self, frame: Frame, tracks: list[Track], labels: list[Label], header: str = "") -> bool:
        """Draw ``frame``; False when the user quit."""
        import cv2

        by_id = {t.track_id: t for t in tracks}
        self._tracks[frame.camera] = [(by_id[lb.track_id], lb) for lb in labels if lb.track_id in by_id]
        labels = [dataclasses.replace(lb, selected=self.selected == (frame.camera, lb.track_id)) for lb in labels]
        if frame.camera not in self._windows:
            cv2.namedWindow(frame.camera, cv2.WINDOW_NORMAL)
            cv2.setMouseCallback(frame.camera, self._on_mouse(frame.camera))
            self._windows.add(frame.camera)
        cv2.imshow(frame.camera, annotate(frame.image, labels, header))
        while True:
            key = cv2.waitKey(0 if self.paused else 1) & 0xFF
            if key in (ord("q"), 27):
                return False
            if key in (ord("p"), ord(" ")):
                self.paused = not self.paused
            elif key == ord("e"):
                self._enrol_selected()
            if not self.paused:
                return True

    def _enrol_selected(self) -> None:
        if self.selected is None:
            log.info("enrol: click a box first")
            return
        camera, track_id = self.selected
        for track, _ in self._tracks.get(camera, []):
            if track.track_id == track_id:
                self._enrol(camera, track)
                return

    def close(self) -> list:
        import cv2

        if self._windows:
            cv2.destroyAllWindows()
        return []
