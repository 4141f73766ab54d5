"""The record that flows through the live path, one per frame of one camera, and the events it carries.

Each stage extends the record: the source gives the frame, the detector its detections, the tracker
its tracks (and those that ended), the identity resolver the tracks' gallery identities and the
events; the sinks (:mod:`.outputs`, the display, synthesis at enrolment) read it. Events are
dataclasses; :class:`EventMessages` turns them into the one message schema that every event sink
writes (the JSON-lines file and MQTT), documented in docs/events.md.
"""

from __future__ import annotations

import dataclasses
import re
import socket
import time as clock
from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, List, Optional

import numpy as np

from dgnet_edge.apps.camera.live.detections import Detections
from dgnet_edge.apps.camera.live.outputs import Label
from dgnet_edge.apps.camera.live.sources import Frame
from dgnet_edge.apps.camera.live.tracking.tracker import Track

SCHEMA_VERSION = 1  # of the event messages (docs/events.md): raised when a field changes meaning or goes away
DEVICE_RULE = "a device name is 1 to 64 ASCII letters, digits, '_', '-' and '.', starting with a letter or digit"
DEVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Event:
    """Something that happened to a track's identity on a camera at ``time`` (the camera's clock)."""

    kind: ClassVar[str] = "event"
    time: float
    camera: str
    track: int
    identity: Optional[int]
    name: Optional[str]

    def as_dict(self) -> Dict[str, Any]:
        """``{"event": kind, "time": ..., ...}``: the event's own fields (a crop is not written)."""
        return {"event": self.kind, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "crop"}}


@dataclass(frozen=True)
class Enter(Event):
    """A track took an identity: its sighting starts."""

    kind: ClassVar[str] = "enter"


@dataclass(frozen=True)
class Leave(Event):
    """A track with an identity ended: its sighting, begun at ``first``, ends at ``time``."""

    kind: ClassVar[str] = "leave"
    first: float


@dataclass(frozen=True)
class Reidentified(Event):
    """A track was found in the gallery with ``score``; where and when the identity was last seen."""

    kind: ClassVar[str] = "reidentified"
    score: float
    previous_camera: Optional[str]
    previous_time: Optional[float]


@dataclass(frozen=True)
class NewIdentity(Event):
    """A track made a new identity; ``crop`` is its BGR crop (the gallery's thumbnail, synthesis's input)."""

    kind: ClassVar[str] = "new_identity"
    crop: Optional[np.ndarray] = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Merged(Event):
    """The gallery merged identity ``other`` into ``keep`` (``dgnet-edge gallery merge``, here or on
    another device sharing the gallery) while this track held ``other``: the track holds ``keep`` from
    now on, so ``identity`` is ``keep``."""

    kind: ClassVar[str] = "merged"
    keep: int
    other: int


def default_device() -> str:
    """The device name when none is given: the host name (its first label), or ``device`` when that
    breaks :data:`DEVICE_RULE`."""
    name = socket.gethostname().split(".")[0]
    return name if DEVICE_NAME.match(name) else "device"


class EventMessages:
    """Events as messages of the one schema (docs/events.md) that every event sink writes.

    Each message adds to the event's own fields the schema version, the ``device``, ``seq`` (1, 2,
    ... in the order the events happened in this run, so that a consumer sees a gap or a repeat)
    and ``wall`` (the device's clock, Unix seconds, when the event was written).
    """

    def __init__(self, device: str):
        self.device = device
        self.seq = 0

    def message(self, event: Event) -> Dict[str, Any]:
        self.seq += 1
        fields = event.as_dict()
        return {"schema": SCHEMA_VERSION, "event": fields.pop("event"), "device": self.device, "seq": self.seq,
                "wall": round(clock.time(), 3), **fields}


@dataclass
class FrameResult:
    """One frame of one camera as it goes through the live path.

    ``identities`` maps track ids to gallery identities (None when the app runs without a gallery);
    ``ended`` holds the tracks the tracker ended this frame; ``labels`` and ``header`` are filled
    when a sink draws. A result with ``frame`` None carries events that happened between frames
    (an enrolment from the display, the tracks still open at the end of a run).
    """

    camera: str
    frame: Optional[Frame]
    detections: Detections = field(default_factory=Detections.empty)
    tracks: List[Track] = field(default_factory=list)
    ended: List[Track] = field(default_factory=list)
    identities: Optional[Dict[int, int]] = None
    events: List[Event] = field(default_factory=list)
    labels: List[Label] = field(default_factory=list)
    header: str = ""
