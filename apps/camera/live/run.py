"""Putting the camera app together from its options: sources, detector, embedder, gallery, sinks.

:func:`build_app` is the one builder: ``dgnet-edge demo`` (:func:`run_demo`), the camera bench's
rows, its soak and its app-only rows all run what it builds. Everything it opens is closed again
whatever ends the run (end of the files, ``--max-frames``, the quit key, Ctrl-C, an error), and
the outputs written so far are kept.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dgnet_edge.apps.camera.config import CameraConfig
from dgnet_edge.apps.camera.live.app import CameraApp, crop_features
from dgnet_edge.apps.camera.live.detections import Detections
from dgnet_edge.apps.camera.live.detectors import Detector, open_detector
from dgnet_edge.apps.camera.live.mqtt_events import is_url
from dgnet_edge.apps.camera.live.outputs import MotSink, Sink, VideoSink, open_event_sink
from dgnet_edge.apps.camera.live.record import default_device
from dgnet_edge.apps.camera.live.sources import Frame, Source, open_source
from dgnet_edge.errors import SourceError, UsageError

log = logging.getLogger(__name__)


def bench_camera_dirs(sources: list[Source]) -> dict[str, Path]:
    """Camera name -> folder holding ``det/det.txt``, for the sources that are video bench camera folders."""
    folders = {}
    for s in sources:
        folder = Path(s.spec).expanduser()
        if not s.live and (folder / "det" / "det.txt").is_file():
            folders[s.name] = folder
    return folders


class PerCameraDetector(Detector):
    """One detector per camera, picked by ``frame.camera`` (each bench camera's own det.txt)."""

    name = "per-camera"

    def __init__(self, detectors: dict[str, Detector]):
        self.detectors = detectors

    def detect(self, frame: Frame) -> Detections:
        return self.detectors[frame.camera].detect(frame)

    def close(self) -> None:
        for detector in {id(d): d for d in self.detectors.values()}.values():  # a shared one once
            detector.close()


def default_detector() -> Detector:
    """The detector ``auto`` gives a camera without public detections: ssdlite when the cache holds
    it (``dgnet-edge detector fetch ssdlite``), else HOG (no download)."""
    from dgnet_edge.apps.camera.live.ssdlite import cached_model, fetch_hint

    if cached_model() is not None:
        return open_detector("ssdlite")
    log.info("detector auto: hog (the ssdlite detector is better; `%s` fetches it once)", fetch_hint())
    return open_detector("hog")


def open_detector_for(kind: str, arg: str | None, sources: list[Source]) -> Detector:
    """The detector ``--detector`` names. ``auto`` picks per camera: a video bench camera folder's
    own public detections, else ssdlite when it is cached, else HOG; ``public`` without a folder
    needs every source to be a bench camera folder."""
    if kind not in ("auto", "public") or arg is not None:
        return open_detector(kind, arg)
    folders = bench_camera_dirs(sources)
    others = [s.name for s in sources if s.name not in folders]
    if kind == "public" and others:
        raise UsageError(f"--detector public: {', '.join(others)} not video bench camera folder(s) with det/det.txt; "
                         f"give the folder: --detector public:DIR")
    if not folders:
        return default_detector()
    detectors = {name: open_detector("public", str(folder)) for name, folder in folders.items()}
    if others:
        fallback = default_detector()
        detectors.update({name: fallback for name in others})
        log.info("detector auto: public detections for %s, %s for %s", ", ".join(folders), fallback.name, ", ".join(others))
    return PerCameraDetector(detectors)


CAMERA_NAME_RULE = "a camera name (NAME=SPEC) is ASCII letters, digits, '_' and '-', starting with a letter"
NAMED_SPEC = re.compile(r"^([A-Za-z][A-Za-z0-9_-]*)=(.+)$")
NAME_LIKE = re.compile(r"^([^=/\\:!.\s]+)=.")  # what reads as NAME=SPEC: no path, URL or pipeline before the '='


def split_name(spec: str) -> tuple[str | None, str]:
    """``"door=rtsp://..."`` -> ("door", "rtsp://..."); a spec without a name prefix -> (None, spec).

    UsageError for a name prefix that breaks :data:`CAMERA_NAME_RULE` (``café=cam.mp4``), unless
    the whole spec is an existing path.
    """
    match = NAMED_SPEC.match(spec)
    if match:
        return match.group(1), match.group(2)
    bad = NAME_LIKE.match(spec)
    if bad and not Path(spec).expanduser().exists():
        raise UsageError(f"--source {spec}: camera name {bad.group(1)!r} is not allowed: {CAMERA_NAME_RULE}")
    return None, spec


def _input_files(config: CameraConfig, sources: list[Source]) -> dict[Path, str]:
    """The files the run reads (resolved path -> what it is), for refusing outputs that would overwrite them."""
    files: dict[Path, str] = {}

    def add(path: Path, what: str) -> None:
        if path.is_file():
            files.setdefault(path.resolve(), what)

    for s in sources:
        path = Path(s.spec).expanduser()
        add(path, f"the source of camera {s.name}")
        if path.is_dir():
            for part in ("seqinfo.ini", "det/det.txt", "gt/gt.txt", f"../{path.name}.mp4"):
                add(path / part, f"the source of camera {s.name}")
    if config.detector.model is not None:
        root = Path(config.detector.model).expanduser()
        for path in [root, root / "det" / "det.txt", *root.glob("*/det/det.txt")] if root.is_dir() else [root]:
            add(path, "the detector's input")
    if config.embedder.export is not None:
        for path in Path(config.embedder.export).rglob("*"):
            add(path, "a file of the export")
    return files


def check_outputs(config: CameraConfig, sources: list[Source]) -> None:
    """UsageError when an output file (events, a camera's video or tracks, the gallery) is a file
    the run reads: the gallery, a source, the detector's or the export's files."""
    inputs = _input_files(config, sources)
    from dgnet_edge.apps.camera.storage.open_gallery import is_database_url

    out = config.outputs
    location = config.gallery.location
    gallery = None if location is None or is_database_url(location) else Path(location).expanduser().resolve()
    if config.embedder.export is not None and gallery in inputs:
        raise UsageError(f"--gallery {location} is {inputs[gallery]}: writing it would destroy an input; "
                         f"give the gallery another file")
    if gallery is not None and (config.embedder.export is not None or gallery.is_file()):  # the gallery in use, or an existing one
        inputs[gallery] = "the gallery"
    outputs: list[tuple[str, Path]] = []
    if out.events is not None and not is_url(out.events):
        outputs.append(("--events", Path(out.events)))
    for s in sources:
        if out.save is not None:
            outputs.append(("--save", Path(out.save) / f"{s.name}.mp4"))
        if out.save_txt is not None:
            outputs.append(("--save-txt", Path(out.save_txt) / f"{s.name}.txt"))
    for option, path in outputs:
        what = inputs.get(path.expanduser().resolve())
        if what is not None:
            raise UsageError(f"{option}: {path} is {what}: writing it would destroy an input; write the output elsewhere")


@contextlib.contextmanager
def _opened_sources(config: CameraConfig) -> Iterator[list[Source]]:
    """The sources, opened in order; a camera name already taken gets a ``-2``, ``-3``... suffix."""
    sources: list[Source] = []
    try:
        for text in config.sources.cameras:
            name, spec = split_name(text)
            options = dataclasses.asdict(config.sources)
            del options["cameras"]
            source = open_source(spec, name, **options)
            taken = {s.name for s in sources}
            if source.name in taken:
                if name is not None:
                    source.close()
                    raise UsageError(f"--source {text}: camera name {name!r} is used twice")
                unique = next(f"{source.name}-{k}" for k in range(2, len(sources) + 3) if f"{source.name}-{k}" not in taken)
                source.close()
                source = open_source(spec, unique, **options)
            sources.append(source)
        yield sources
    finally:
        for s in sources:
            s.close()


@dataclass
class BuiltApp:
    """A :class:`CameraApp` as :func:`build_app` assembled it, with the parts a summary reports on."""

    app: CameraApp
    empty: set[str]  # cameras whose files hold no frame
    resolver: Any = None
    synthesis: Any = None


def build_app(config: CameraConfig, stack: contextlib.ExitStack) -> BuiltApp:
    """The camera app ``config`` describes, its parts opened on ``stack`` (closed with it): what
    ``dgnet-edge demo``, the camera bench, the soak and the app-only rows all run."""
    sources = stack.enter_context(_opened_sources(config))
    check_outputs(config, sources)
    empty = _empty_sources(sources, config.sources.open_timeout_s)
    detector = open_detector_for(config.detector.kind, config.detector.model, sources)
    stack.callback(detector.close)
    if config.sources.loop:
        detector = Replayed(detector, {s.name: s.length for s in sources})
    embed, resolver, synthesis = None, None, None
    sinks: list[Sink] = []
    out = config.outputs
    if config.embedder.export is not None:
        from dgnet_edge.apps.camera.live.tracking.identities import IdentityResolver
        from dgnet_edge.apps.camera.measure.threshold import resolve_threshold
        from dgnet_edge.apps.camera.storage.open_gallery import is_database_url, open_gallery, parse_gallery_spec
        from dgnet_edge.runtime.embedder import Embedder

        export, backend, precision = Path(config.embedder.export), config.embedder.backend, config.embedder.precision
        threshold = resolve_threshold(export, config.identities.threshold)
        embedder = stack.enter_context(Embedder.open(export, backend, precision))
        embed = crop_features(embedder.embed)
        if config.gallery.location is not None:
            spec = parse_gallery_spec(config.gallery.location)
            spools = None
            if is_database_url(spec):
                from dgnet_edge.apps.camera.storage.spool import spool_folder

                spools = spool_folder(config.gallery.spool, spec, out.device or default_device(), [s.name for s in sources])
            gallery = stack.enter_context(open_gallery(spec, embedder.feature_dim, queue_writes=True, spool=spools and spools / "frames.sqlite3",
                                                       synthetic_weight=config.gallery.synthetic_weight))
            resolver = IdentityResolver(gallery, threshold, config.identities)
            if config.synthesis.enabled is not False:
                from dgnet_edge.apps.camera.storage.synthesis import start_synthesis

                synthesis = start_synthesis(export, embedder, gallery, config.synthesis, backend=backend, precision=precision,
                                            spool=spools and spools / "synthesis.sqlite3")
                if synthesis is not None:
                    stack.callback(synthesis.close)
                    embed = crop_features(synthesis.embed)  # one embedder, shared with the synthesis thread
                    sinks.append(synthesis)
    fps = next((s.fps for s in sources if s.fps), 15.0)
    if out.save_txt is not None:
        sinks.append(MotSink(Path(out.save_txt)))
    if out.events is not None:
        sinks.append(open_event_sink(out.events, out.device or default_device()))
    if out.save is not None:
        sinks.append(VideoSink(Path(out.save), fps))
    config.save([out.save, out.save_txt])
    app = CameraApp(sources, detector, embed, resolver, config.tracker, sinks)
    if out.show:
        from dgnet_edge.apps.camera.live.display import Display

        display = Display(app.enrol, app.stop)
        stack.callback(display.close)
        app.sinks.append(display)
    return BuiltApp(app, empty, resolver, synthesis)


def run_demo(config: CameraConfig, on_progress: Callable[..., None] | None = None) -> dict[str, Any]:
    """Run the camera app with ``config``; returns a summary (frames, rate, events, files written)."""
    with contextlib.ExitStack() as stack:
        built = build_app(config, stack)
        app = built.app
        total = None if config.sources.loop else _known_frames(list(c.source for c in app.cameras.values()))

        def progress(frames: int) -> None:
            if on_progress is not None:
                on_progress(frames, total, app.stats.frames / max(1e-9, app.elapsed()))

        try:
            stats = app.run(config.outputs.max_frames, on_progress=progress)
        except KeyboardInterrupt:
            log.warning("interrupted: outputs written up to the last frame")
            stats = app.stats
        summary = stats.as_dict()
        for name, cam in summary["cameras"].items():
            source = app.cameras[name].source
            cam.update(state=source.state, reconnects=source.reconnects)
            if cam["frames"] == 0 and name not in built.empty:
                log.warning("camera %s (%s) gave no frame during the run (%s)", name, source.spec, source.state)
        if built.synthesis is not None:
            built.synthesis.close()  # the queued enrolments are rendered before the summary counts them
            summary["synthesis"] = built.synthesis.summary()
        if built.resolver is not None:
            summary["identities"] = len(built.resolver.gallery)
        summary["written"] = {what: [str(p) for p in paths] for what, paths in app.written.items() if paths}
        return summary


class Replayed(Detector):
    """The detections of looped sources: frame ``k * N + i`` of a camera of ``N`` frames is frame ``i``."""

    def __init__(self, detector: Detector, periods: dict[str, int]):
        self.detector = detector
        self.name = detector.name
        self.periods = periods

    def detect(self, frame: Frame) -> Detections:
        period = self.periods.get(frame.camera) or frame.index
        return self.detector.detect(dataclasses.replace(frame, index=(frame.index - 1) % period + 1))


def _empty_sources(sources: list[Source], timeout_s: float) -> set[str]:
    """Names of the files and folders that end without a single frame (an empty video): an error
    when no other camera is left to run, else a warning naming each."""
    empty = [s for s in sources if not s.live and s.ended_empty(timeout_s)]
    if empty and len(empty) == len(sources):
        listed = ", ".join(s.spec for s in empty)
        raise SourceError(f"{listed}: no frame to read (an empty or truncated video): nothing to run")
    for s in empty:
        log.warning("camera %s (%s): no frame to read (an empty or truncated video); the other cameras run without it",
                    s.name, s.spec)
    return {s.name for s in empty}


def _known_frames(sources: list[Source]) -> int | None:
    """Frames to come from all sources when every one is a video bench camera folder, else None."""
    counts = [s.length for s in sources]
    return None if any(n is None for n in counts) else sum(counts)
