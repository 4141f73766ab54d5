"""Synthesis at enrolment: a new person rendered in the structures the cameras saw, as extra templates.

When someone is enrolled, DG-Net's decoder renders their appearance code in K structure codes of
the bank (:mod:`~dgnet_edge.apps.camera.storage.structure_bank`), chosen across cameras; the
embedder embeds the rendered views, each keeps what it carries (:func:`carried_features`) and they
join the gallery as ``synthetic`` templates (source ``synthetic:<camera>:<structure id>``), so that
the person is recognised in poses and cameras not seen at enrolment. In matching the views never
score on their own: they pull the person's prototype (:func:`~.gallery_base.scoring_rows`).

In the camera app this runs off the frame loop: :class:`EnrolmentSynthesis` feeds the bank from the
loop (a few crops per camera per second, one structure-encoder call) and hands each new identity to
a :class:`SynthesisWorker` thread with its own gallery connection (SQLite connections belong to one
thread; WAL lets both use the file; a PostgreSQL gallery gets a second connection), so the video
does not stall while the views render; the loop's gallery picks the new templates up at its next
match (it reloads when another connection commits). ``dgnet-edge gallery enrol --synthesise`` calls
:meth:`Synthesiser.enrol` directly.
"""

from __future__ import annotations

import logging
import threading
import time as clock
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dgnet_edge.apps.camera.defaults import BANK_PER_CAMERA, BANK_TRACK_INTERVAL_S, SYNTHETIC_VIEWS
from dgnet_edge.apps.camera.live.outputs import Sink
from dgnet_edge.apps.camera.live.record import FrameResult, NewIdentity
from dgnet_edge.apps.camera.live.tracking.tracker import CONFIRMED, Track
from dgnet_edge.apps.camera.storage.gallery_base import GalleryBase
from dgnet_edge.apps.camera.storage.open_gallery import GallerySpec, open_gallery
from dgnet_edge.apps.camera.storage.structure_bank import StructureBank
from dgnet_edge.boxes import crop
from dgnet_edge.errors import DgnetEdgeError
from dgnet_edge.manifest import Manifest, load_manifest
from dgnet_edge.runtime.embedder import Embedder, Generator

if TYPE_CHECKING:
    from dgnet_edge.apps.camera.config import SynthesisConfig

log = logging.getLogger(__name__)

MIN_STRUCTURE_CROP = 24  # pixels of height: smaller crops give no usable pose


class SynthesisError(DgnetEdgeError):
    """Synthesis asked of an export without generator parts, or of an empty structure bank."""


class EmptyBankError(SynthesisError):
    """No structure of the generator's shape is banked yet."""


def carried_features(views: np.ndarray, real: np.ndarray, manifest: Manifest) -> np.ndarray:
    """The features synthetic views are stored with: each view's primary half, and the rest (the
    fine-grained half, and any site-colour dimensions) from the enrolment crop's feature ``real``.

    A view G(a, s) is trained to carry a's identity in E_a's primary head only; DG-Net's
    fine-grained head is trained on swaps with the structure provider's label, so a view's
    fine-grained half points at the banked stranger, not at the person enrolled. One-head exports
    keep the view's whole feature.
    """
    if manifest.heads < 2:
        return views
    primary = manifest.feature_dim // manifest.heads
    out = np.repeat(np.asarray(real, np.float32).reshape(1, -1), len(views), axis=0)
    out[:, :primary] = views[:, :primary]
    return out


def has_generator(export_dir: str | Path) -> bool:
    """Whether the export holds DG-Net's structure encoder and decoder (a plain E_a export does not)."""
    roles = {m.role for m in load_manifest(export_dir).models}
    return {"structure", "decoder"} <= roles


def require_generator(export_dir: str | Path) -> None:
    """:class:`SynthesisError` unless the export has generator parts."""
    if not has_generator(export_dir):
        raise SynthesisError(f"synthesis needs a DG-Net export with generator parts; {export_dir} has only the "
                             "embedder: export a DG-Net checkpoint, or run without --synthesise")


def open_generator(export_dir: str | Path, backend: str = "auto", precision: str = "auto") -> Generator:
    """The export's generator; :class:`SynthesisError` when it has none."""
    require_generator(export_dir)
    return Generator.open(export_dir, backend, precision)


def structure_shape(generator: Generator) -> tuple[int, ...]:
    """(C, H, W) of the structure codes the generator's decoder takes."""
    decoder = next(m for m in generator.manifest.models if m.role == "decoder")
    spec = next(s for s in decoder.inputs if s.name == "structure")
    return tuple(int(d) for d in spec.shape[1:])


@dataclass(frozen=True)
class SynthesisResult:
    """One enrolment's synthetic views: the templates kept, the structures used, their cosine to the
    identity before they were added, and the time it took."""

    identity: int
    templates: list[int]
    structures: list[int]
    scores: list[float]
    seconds: float


class Synthesiser:
    """Renders an enrolled person in K banked structures and stores the views as synthetic templates.

    Args:
        generator: the export's generator (its decoder is used here; the bank holds the codes).
        embedder: the same export's embedder (appearance code of the crop, features of the views).
        bank: the structure bank of the gallery that receives the templates (same thread).
        k: views per enrolment.
        embed_lock: held around embedder calls when the embedder is shared with another thread.
    """

    def __init__(self, generator: Generator, embedder: Embedder, bank: StructureBank, k: int = SYNTHETIC_VIEWS,
                 embed_lock: threading.Lock | None = None):
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.generator = generator
        self.embedder = embedder
        self.bank = bank
        self.k = k
        self.shape = structure_shape(generator)
        self._lock = embed_lock or threading.Lock()

    def enrol(self, identity: int, crop_rgb: np.ndarray, camera: str | None = None,
              time: float | None = None) -> SynthesisResult:
        """Add K synthetic views of ``crop_rgb`` (the enrolment crop) to ``identity``.

        Raises:
            EmptyBankError: no structure is banked yet (the identity keeps its real template alone).
        """
        started = clock.perf_counter()
        structures = self.bank.choose(self.k, exclude_camera=camera, shape=self.shape)
        gallery = self.bank.gallery
        if not structures:
            raise EmptyBankError(f"no structures banked yet in {gallery.location} (they come from `dgnet-edge demo` "
                                 "with --synthesise on the cameras): enrolled the real template only")
        with self._lock:
            real, appearance = self.generator.codes([crop_rgb], self.embedder)
        codes = np.stack([s.code for s in structures])
        views = self.generator.decode(codes, np.repeat(appearance, len(codes), axis=0))
        with self._lock:
            features = carried_features(self.embedder.embed(views), real[0], self.embedder.manifest)
        when = clock.time() if time is None else time
        with gallery.transaction():  # one commit for the K views
            ids, scores = gallery.identity_scores(features)  # also brings this connection's cache up to date
            column = {int(i): c for c, i in enumerate(ids)}
            before = scores[:, column[identity]] if identity in column else np.full(len(features), np.nan)
            kept = [gallery.add_template(identity, feature, view[..., ::-1], camera=s.camera, time=when,
                                         kind="synthetic", source=f"synthetic:{s.camera}:{s.id}")
                    for feature, view, s in zip(features, views, structures)]
        return SynthesisResult(identity, [t for t in kept if t is not None], [s.id for s in structures],
                               [round(float(v), 4) for v in before], clock.perf_counter() - started)


@dataclass
class _Job:
    identity: int
    crop: np.ndarray
    camera: str | None
    time: float | None


@dataclass
class WorkerStats:
    submitted: int = 0
    done: int = 0
    dropped: int = 0  # the queue was full: the oldest waiting enrolment was left out
    no_structures: int = 0
    failed: int = 0
    seconds: list[float] = field(default_factory=list)  # per enrolment done

    def as_dict(self) -> dict[str, Any]:
        times = sorted(self.seconds)
        return {"submitted": self.submitted, "done": self.done, "dropped": self.dropped,
                "no_structures": self.no_structures, "failed": self.failed,
                "median_s": round(times[len(times) // 2], 4) if times else None,
                "max_s": round(times[-1], 4) if times else None}


class SynthesisWorker:
    """A thread that runs :meth:`Synthesiser.enrol` for queued enrolments, on its own connection to
    the gallery file; :meth:`submit` never waits.

    Args:
        gallery_path: the gallery file or PostgreSQL URL (it exists: the frame loop's gallery made it).
        generator, embedder, k, embed_lock: as for :class:`Synthesiser`.
        queue_size: enrolments waiting at most; when one more comes, the oldest waiting one is dropped
            (a log line says so), since a burst of new people should not delay the latest ones.
        spool: a PostgreSQL gallery's write spool for this connection (see ``PostgresGallery``).
    """

    def __init__(self, gallery_path: GallerySpec, generator: Generator, embedder: Embedder, *, k: int = SYNTHETIC_VIEWS,
                 queue_size: int = 8, embed_lock: threading.Lock | None = None, spool: Path | None = None):
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.gallery_path = gallery_path
        self.spool = spool
        self.queue_size = queue_size
        self.stats = WorkerStats()
        self.results: list[SynthesisResult] = []
        self._make = lambda bank: Synthesiser(generator, embedder, bank, k, embed_lock)
        self._jobs: deque[_Job] = deque()
        self._wake = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="synthesis", daemon=True)
        self._thread.start()

    def submit(self, identity: int, crop_rgb: np.ndarray, camera: str | None = None, time: float | None = None) -> bool:
        """Queue an enrolment (``crop_rgb`` is copied); False when the worker is closed."""
        with self._wake:
            if self._closing:
                return False
            if len(self._jobs) >= self.queue_size:
                gone = self._jobs.popleft()
                self.stats.dropped += 1
                log.warning("synthesis queue full (%d): identity %d gets no synthetic views", self.queue_size,
                            gone.identity)
            self._jobs.append(_Job(identity, np.array(crop_rgb, np.uint8, copy=True), camera, time))
            self.stats.submitted += 1
            self._wake.notify()
        return True

    def close(self, timeout: float | None = None) -> None:
        """Finish the queued enrolments, then stop the thread (idempotent)."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        self._thread.join(timeout)

    def _next(self) -> _Job | None:
        with self._wake:
            while not self._jobs and not self._closing:
                self._wake.wait()
            return self._jobs.popleft() if self._jobs else None

    def _run(self) -> None:
        try:
            gallery = open_gallery(self.gallery_path, queue_writes=True, spool=self.spool)
        except DgnetEdgeError as e:
            log.error("synthesis is off: %s", e)
            with self._wake:
                self._closing = True
                self.stats.failed += len(self._jobs)
                self._jobs.clear()
            return
        with gallery:
            synthesiser = self._make(StructureBank(gallery))
            while (job := self._next()) is not None:
                try:
                    result = synthesiser.enrol(job.identity, job.crop, job.camera, job.time)
                except EmptyBankError:
                    self.stats.no_structures += 1
                    log.info("identity %d: no structures banked yet, real template only", job.identity)
                    continue
                except Exception as e:  # one bad enrolment (say, deleted meanwhile) must not end the thread
                    self.stats.failed += 1
                    log.warning("synthesis for identity %d failed: %s", job.identity, e)
                    continue
                self.results.append(result)
                self.stats.done += 1
                self.stats.seconds.append(result.seconds)
                log.debug("identity %d: %d synthetic views in %.3f s", job.identity, len(result.templates),
                          result.seconds)


class BankFeeder:
    """Feeds the frame loop's structure bank at a low rate: per camera at most one structure-encoder
    call every ``camera_interval_s`` (camera clock), on at most ``batch`` tracks that are due. The
    codes are written in one commit every ``flush_s`` of wall time (the first at once): the commit's
    fsync, not the encoder, is what a write costs here.

    ``seconds`` is the loop time it took (the encoder, the thumbnails, the commits).
    """

    def __init__(self, generator: Generator, bank: StructureBank, *, batch: int = 4, camera_interval_s: float = 1.0,
                 flush_s: float = 10.0):
        self.generator = generator
        self.bank = bank
        self.batch = batch
        self.camera_interval_s = camera_interval_s
        self.flush_s = flush_s
        self.seconds = 0.0
        self.banked = 0
        self._last: dict[str, float] = {}
        self._pending: list[tuple[str, np.ndarray, list[np.ndarray], list[int], float]] = []
        self._flushed: float | None = None

    def feed(self, camera: str, time: float, image: np.ndarray, tracks: Sequence[Track]) -> None:
        """Encode this frame's due tracks (``image``: the BGR frame) when ``camera`` is due; write when
        the last commit is ``flush_s`` old."""
        last = self._last.get(camera)
        if last is not None and 0 <= time - last < self.camera_interval_s:
            return
        started = clock.perf_counter()
        crops, ids = [], []
        for track in tracks:
            if len(crops) == self.batch:
                break
            if track.state != CONFIRMED or track.det_index < 0 or not self.bank.due(camera, track.track_id, time):
                continue
            piece = crop(image, track.box)
            if piece is not None and piece.shape[0] >= MIN_STRUCTURE_CROP:
                crops.append(piece)
                ids.append(track.track_id)
        self.bank.retain(camera, {t.track_id for t in tracks})
        if crops:
            self._last[camera] = time
            for track_id in ids:
                self.bank.admit(camera, track_id, time)
            self._pending.append((camera, self.generator.structure([c[..., ::-1] for c in crops]), crops, ids, time))
        if self._pending and (self._flushed is None or started - self._flushed >= self.flush_s):
            self.flush()
        self.seconds += clock.perf_counter() - started

    def flush(self) -> None:
        """Write the codes encoded since the last commit, in one commit."""
        if not self._pending:
            return
        with self.bank.gallery.transaction():
            for camera, codes, crops, ids, time in self._pending:
                self.banked += len(self.bank.add(camera, codes, crops, ids, time))
        self._pending.clear()
        self._flushed = clock.perf_counter()


class EnrolmentSynthesis(Sink):
    """The camera app's synthesis, a sink of the loop: it feeds the bank and queues each new
    identity's crop (:class:`~dgnet_edge.apps.camera.live.record.NewIdentity`) for the worker;
    :attr:`embed` is the embedder for the loop, shared with the worker under one lock (a TensorRT
    context serves one thread at a time)."""

    def __init__(self, generator: Generator, embedder: Embedder, gallery: GalleryBase, *, k: int = SYNTHETIC_VIEWS,
                 queue_size: int = 8, per_camera: int = BANK_PER_CAMERA, track_interval_s: float = BANK_TRACK_INTERVAL_S,
                 spool: Path | None = None):
        self.generator = generator
        self._lock = threading.Lock()
        self._embedder = embedder
        self.bank = StructureBank(gallery, per_camera=per_camera, track_interval_s=track_interval_s)
        self.feeder = BankFeeder(generator, self.bank)
        fmt = generator.manifest.input
        generator.structure(np.zeros((1, fmt.height, fmt.width, 3), np.uint8))  # first run's set-up, not in the loop
        self.worker = SynthesisWorker(gallery.spec, generator, embedder, k=k, queue_size=queue_size,
                                      embed_lock=self._lock, spool=spool)
        self._closed = False

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        with self._lock:
            return self._embedder.embed(crops)

    def write(self, result: FrameResult) -> None:
        for event in result.events:
            if isinstance(event, NewIdentity) and event.crop is not None:
                self.worker.submit(event.identity, event.crop[..., ::-1], event.camera, event.time)
        if result.frame is not None:
            self.feeder.feed(result.camera, result.frame.time, result.frame.image, result.tracks)

    def close(self) -> list:
        """Finish the queued enrolments; the generator is closed (idempotent)."""
        if self._closed:
            return []
        self._closed = True
        try:
            self.feeder.flush()
            self.worker.close()
        finally:
            self.generator.close()
        return []

    def summary(self) -> dict[str, Any]:
        return {**self.worker.stats.as_dict(), "structures": self.bank.counts(),
                "bank_feeding_s": round(self.feeder.seconds, 4)}


def start_synthesis(export_dir: str | Path, embedder: Embedder, gallery: GalleryBase, params: SynthesisConfig, *,
                    backend: str = "auto", precision: str = "auto", spool: Path | None = None) -> EnrolmentSynthesis | None:
    """The demo's synthesis, or None (with a log line) when the export has no generator and synthesis
    was not asked for explicitly (``params.enabled`` True: :class:`SynthesisError` instead)."""
    if params.enabled is not True and not has_generator(export_dir):
        log.info("synthesis off: %s has no generator parts (a plain embedder export)", export_dir)
        return None
    return EnrolmentSynthesis(open_generator(export_dir, backend, precision), embedder, gallery, k=params.views,
                              queue_size=params.queue, per_camera=params.per_camera, track_interval_s=params.track_interval_s,
                              spool=spool)
