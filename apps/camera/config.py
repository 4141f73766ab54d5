"""The camera app's configuration: one typed, frozen tree with a section per stage of the pipeline.

    sources     the cameras and how they are opened
    detector    the person detector
    embedder    the re-id export (none: tracking by motion alone), its backend and precision
    tracker     :class:`~dgnet_edge.apps.camera.live.tracking.tracker.TrackerParams`
    identities  the match threshold and :class:`~dgnet_edge.apps.camera.live.tracking.identities.IdentityParams`
    gallery     where identities are kept, and how much a synthetic template counts
    synthesis   new identities rendered in structures the cameras saw
    outputs     annotated videos, MOT tracks, events, the window, a frame limit

Every default is a field default here or in the section's own parameters class. A YAML file
(``demo --config camera.yaml``) gives any subset of keys and may name a base (``_base_: site.yaml``);
``demo``'s options and then ``--set tracker.max_lost_s=5`` go over it. Unknown keys, wrong types and
out-of-range values are :class:`~dgnet_edge.errors.ConfigError` naming the key. The resolved config
is written beside a run's outputs (``camera.yaml`` in each output folder), so a run can be repeated.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from dgnet_edge.apps.camera.defaults import (
    BANK_PER_CAMERA,
    BANK_TRACK_INTERVAL_S,
    DETECTOR_HELP,
    DETECTOR_KINDS,
    OPEN_TIMEOUT_S,
    READ_TIMEOUT_S,
    SYNTHETIC_VIEWS,
    SYNTHETIC_WEIGHT,
)
from dgnet_edge.apps.camera.live.record import DEVICE_NAME, DEVICE_RULE
from dgnet_edge.apps.camera.live.tracking.identities import IdentityParams
from dgnet_edge.apps.camera.live.tracking.tracker import TrackerParams
from dgnet_edge.errors import ConfigError

CONFIG_FILE = "camera.yaml"


def _at_least(section: object, minimum: float, *names: str) -> None:
    for name in names:
        value = getattr(section, name)
        if value is not None and value < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value}")


@dataclass(frozen=True)
class SourcesConfig:
    """``cameras``: one spec per camera (webcam index, file, folder, URL, pipeline; ``NAME=SPEC``
    names it); ``loop`` replays file sources (and their public detections) without end."""

    cameras: List[str] = field(default_factory=list)
    open_timeout_s: float = OPEN_TIMEOUT_S
    read_timeout_s: float = READ_TIMEOUT_S
    loop: bool = False

    def __post_init__(self) -> None:
        _at_least(self, 0.1, "open_timeout_s", "read_timeout_s")


@dataclass(frozen=True)
class DetectorConfig:
    """``kind`` is one of :data:`DETECTOR_KINDS`; ``model`` its file or folder where it takes one."""

    kind: str = "auto"
    model: Optional[str] = None

    def __post_init__(self) -> None:
        if self.kind not in DETECTOR_KINDS:
            raise ValueError(f"kind {self.kind!r}: {DETECTOR_HELP}")
        if self.kind == "yolo" and not self.model:
            raise ValueError("kind yolo needs the model file (FILE.onnx or FILE.engine)")
        if self.kind in ("auto", "hog", "motion") and self.model:
            raise ValueError(f"kind {self.kind} takes no model, got {self.model!r}")


@dataclass(frozen=True)
class EmbedderConfig:
    """``export``: the re-id export folder; None tracks by motion alone, per camera."""

    export: Optional[str] = None
    backend: str = "auto"
    precision: str = "auto"


@dataclass(frozen=True)
class IdentitiesConfig(IdentityParams):
    """``threshold``: the cosine score from which a track is a known identity (None: the export's
    calibrated ``reid_threshold.json``)."""

    threshold: Optional[float] = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.threshold is not None and not -1.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [-1, 1], got {self.threshold}")


@dataclass(frozen=True)
class GalleryConfig:
    """``location``: the gallery shared by the cameras and kept across runs (None with an export:
    appearance per camera, no identities). ``spool``: the folder where the writes to a PostgreSQL
    gallery wait through an outage, kept across restarts (None: ``<cache>/spool``)."""

    location: Optional[str] = "gallery.db"
    synthetic_weight: float = SYNTHETIC_WEIGHT
    spool: Optional[str] = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.synthetic_weight <= 1.0:
            raise ValueError(f"synthetic_weight must be in [0, 1], got {self.synthetic_weight}")


@dataclass(frozen=True)
class SynthesisConfig:
    """``enabled`` None: when the export has generator parts. ``views`` per new identity; the
    structure bank keeps ``per_camera`` codes a camera, one a track per ``track_interval_s``."""

    enabled: Optional[bool] = None
    views: int = SYNTHETIC_VIEWS
    per_camera: int = BANK_PER_CAMERA
    track_interval_s: float = BANK_TRACK_INTERVAL_S
    queue: int = 8

    def __post_init__(self) -> None:
        _at_least(self, 1, "views", "per_camera", "queue")
        _at_least(self, 0.0, "track_interval_s")


@dataclass(frozen=True)
class OutputsConfig:
    """Folders for annotated videos (``save``) and MOT tracks (``save_txt``), where events go (a
    JSON-lines file or an ``mqtt://`` URL) and this device's name in them (None: the host name);
    ``show`` None: a window when a display is available."""

    save: Optional[str] = None
    save_txt: Optional[str] = None
    events: Optional[str] = None
    device: Optional[str] = None
    show: Optional[bool] = None
    max_frames: Optional[int] = None

    def __post_init__(self) -> None:
        _at_least(self, 1, "max_frames")
        if self.device is not None and not DEVICE_NAME.match(self.device):
            raise ValueError(f"device {self.device!r}: {DEVICE_RULE}")


@dataclass(frozen=True)
class CameraConfig:
    """The whole app, section by section (see the module docstring)."""

    sources: SourcesConfig = field(default_factory=SourcesConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    embedder: EmbedderConfig = field(default_factory=EmbedderConfig)
    tracker: TrackerParams = field(default_factory=TrackerParams)
    identities: IdentitiesConfig = field(default_factory=IdentitiesConfig)
    gallery: GalleryConfig = field(default_factory=GalleryConfig)
    synthesis: SynthesisConfig = field(default_factory=SynthesisConfig)
    outputs: OutputsConfig = field(default_factory=OutputsConfig)

    def replace(self, **sections: Dict[str, Any]) -> CameraConfig:
        """A copy with some keys of some sections changed: ``config.replace(outputs={"max_frames": 10})``."""
        return dataclasses.replace(self, **{name: dataclasses.replace(getattr(self, name), **keys)
                                            for name, keys in sections.items()})

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, folders: Sequence[Optional[str]]) -> List[Path]:
        """Write the resolved config as ``camera.yaml`` into each of ``folders`` that is set."""
        written = []
        for folder in dict.fromkeys(f for f in folders if f is not None):
            path = Path(folder).expanduser() / CONFIG_FILE
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(self.to_yaml())
            written.append(path)
        return written


# -- from a tree of plain values ---------------------------------------------------------------------
def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _value(tp: Any, value: Any, key: str) -> Any:
    """``value`` checked against the field type ``tp`` (ints are accepted for floats)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _section(tp, value, key)
    if origin is typing.Union:  # Optional[X]
        if value is None:
            return None
        (tp,) = [a for a in args if a is not type(None)]
        return _value(tp, value, key)
    if origin in (list, List):
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_value(args[0], item, key) for item in value]
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if isinstance(value, tp) and tp is not float and not (tp is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"{key}: expected {'a finite float' if tp is float else _type_name(tp)}, got {value!r}")


def _section(cls: Any, tree: Any, key: str) -> Any:
    if not isinstance(tree, dict):
        raise ConfigError(f"{key or 'the config'}: expected a section (a mapping of keys), got {tree!r}")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [name for name in tree if name not in names]
    if unknown:
        raise ConfigError(f"{key + '.' if key else ''}{unknown[0]}: unknown key ({key or 'sections'}: {', '.join(names)})")
    hints = typing.get_type_hints(cls)
    values = {name: _value(hints[name], tree[name], f"{key + '.' if key else ''}{name}") for name in names if name in tree}
    try:
        return cls(**values)
    except ValueError as e:
        raise ConfigError(f"{key}: {e}") from None


def config_from_tree(tree: Dict[str, Any], source: str = "the camera config") -> CameraConfig:
    """The validated config a tree of plain values (a YAML file's) describes."""
    try:
        return _section(CameraConfig, tree, "")
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def load_camera_config(path: Optional[Path] = None, values: Sequence[Tuple[str, Any]] = (),
                       overrides: Sequence[str] = ()) -> CameraConfig:
    """The defaults, then the YAML file at ``path`` (with its ``_base_`` chain), then ``values``
    (dotted key, value: the command's options that were given), then ``overrides`` (``KEY=VALUE``)."""
    from dgnet_edge.yaml_tree import apply_override, load_tree, set_key

    tree = load_tree(path) if path is not None else {}
    for key, value in values:
        set_key(tree, key, value)
    for override in overrides:
        apply_override(tree, override, example="tracker.max_lost_s=5")
    return config_from_tree(tree, str(path) if path is not None else "the camera config")

