"""Synthesis at enrolment: the structure bank, the synthesiser and its worker, the demo and CLI wiring,
and the one-shot cross-camera harness."""

from __future__ import annotations

import json
import shutil
import sqlite3
import time

import numpy as np
import pytest
from dgnet_edge.apps.camera.measure.oneshot import augment, one_shot_cross_camera, views_example, views_picture
from dgnet_edge.apps.camera.storage import gallery as gallery_module
from dgnet_edge.apps.camera.storage.gallery import Gallery, GalleryError
from dgnet_edge.apps.camera.storage.gallery_base import scoring_rows
from dgnet_edge.apps.camera.storage.structure_bank import StructureBank, spread_across_cameras
from dgnet_edge.apps.camera.storage.synthesis import (
    EmptyBankError,
    SynthesisError,
    Synthesiser,
    SynthesisWorker,
    carried_features,
    has_generator,
    open_generator,
    structure_shape,
)
from dgnet_edge.cli.main import main
from dgnet_edge.data.video.world import load_site
from dgnet_edge.errors import DatasetError
from dgnet_edge.manifest import load_manifest
from dgnet_edge.runtime.embedder import Embedder

D = 4
SHAPE = (2, 3, 2)


def codes(n, seed=0):
    return np.random.default_rng(seed).normal(size=(n, *SHAPE)).astype(np.float32)


def bgr(n, seed=0, h=32, w=16):
    return list(np.random.default_rng(seed).integers(0, 255, (n, h, w, 3), dtype=np.uint8))


@pytest.fixture
def gallery(tmp_path):
    with Gallery(tmp_path / "g.db", D) as g:
        yield g


# -- the bank ---------------------------------------------------------------------------------------
def test_bank_keeps_the_newest_per_camera_as_float16_with_thumbnails(gallery):
    bank = StructureBank(gallery, per_camera=3)
    first = bank.add("cam1", codes(2), bgr(2), [1, 2], time=1.0)
    second = bank.add("cam1", codes(2, 1), bgr(2), [3, 4], time=2.0)
    bank.add("cam2", codes(1, 2), [None], [None], time=0.5)
    assert bank.counts() == {"cam1": 3, "cam2": 1} and len(bank) == 4
    kept = {s.id for s in bank.choose(10)}
    assert set(second) <= kept and len(set(first) & kept) == 1  # the oldest of cam1 went
    latest = bank.add("cam1", codes(5, 3), bgr(5), [5, 6, 7, 8, 9], time=3.0)
    assert len(latest) == 3 and bank.counts()["cam1"] == 3  # a batch larger than the cap keeps only its newest
    (structure,) = [s for s in bank.choose(10) if s.camera == "cam2"]
    np.testing.assert_allclose(structure.code, codes(1, 2)[0], atol=2e-3)  # float16 storage
    blob = gallery.connection.execute("SELECT code FROM structures WHERE id = ?", (structure.id,)).fetchone()[0]
    assert len(blob) == 2 * int(np.prod(SHAPE))
    assert bank.thumbnail(structure.id) is None and bank.thumbnail(latest[0])[:2] == b"\xff\xd8"  # JPEG
    assert [s.id for s in bank.choose(10, shape=(9, 9, 9))] == []


def test_a_track_gives_a_code_at_most_every_interval(gallery):
    bank = StructureBank(gallery, track_interval_s=5.0)
    assert bank.due("cam1", 7, 0.0)
    bank.add("cam1", codes(1), [None], [7], time=0.0)
    bank.admit("cam1", 7, 0.0)
    assert not bank.due("cam1", 7, 4.9) and bank.due("cam1", 7, 5.0)
    assert bank.due("cam2", 7, 1.0) and bank.due("cam1", 8, 1.0)  # per camera and track
    bank.retain("cam1", {8})
    assert bank.due("cam1", 7, 1.0)  # a track gone is forgotten


def test_structures_are_spread_across_cameras_own_camera_last():
    entries = [(1, "a", 1.0), (2, "a", 2.0), (3, "a", 3.0), (4, "b", 1.0), (5, "b", 5.0), (6, "c", 9.0)]
    assert spread_across_cameras(entries, 4) == [3, 5, 6, 2]  # round-robin by camera name, newest first
    assert spread_across_cameras(entries, 4, exclude_camera="a") == [5, 6, 4, 3]
    assert spread_across_cameras(entries, 2, exclude_camera="b") == [3, 6]
    assert spread_across_cameras(entries, 10, exclude_camera="c") == [3, 5, 2, 4, 1, 6]
    assert spread_across_cameras([(1, "a", 1.0)], 3, exclude_camera="a") == [1]  # only its own camera: used
    assert spread_across_cameras([], 3) == []


# -- schema migration -------------------------------------------------------------------------------
def _version_one_file(path):
    db = sqlite3.connect(path, isolation_level=None)
    for statement in gallery_module.SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
    db.executemany("INSERT INTO meta VALUES (?, ?)",
                   [("format", gallery_module.FORMAT), ("version", "1"), ("feature_dim", str(D))])
    db.execute("INSERT INTO identities (name, created, updated) VALUES ('ann', 1, 1)")
    db.execute("INSERT INTO templates (identity, feature, time, kind, source, enrolment) VALUES (1, ?, 0, 'real', 'x', 1)",
               (np.ones(D, np.float32).tobytes(),))
    db.execute("PRAGMA journal_mode=WAL")
    db.close()


def _tables(path):
    db = sqlite3.connect(path)
    try:
        return ({r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")},
                db.execute("SELECT value FROM meta WHERE key='version'").fetchone()[0])
    finally:
        db.close()


def test_a_version_one_gallery_is_migrated_in_place(tmp_path):
    path = tmp_path / "v1.db"
    _version_one_file(path)
    assert "structures" not in _tables(path)[0]
    with Gallery(path) as g:
        assert g.identities()[0].name == "ann" and g.identity(1).templates == 1
        StructureBank(g).add("cam1", codes(1), [None], [None], time=0.0)
        assert g.integrity_check() == "ok"
    tables, version = _tables(path)
    assert "structures" in tables and version == str(gallery_module.VERSION) == "2"
    with Gallery(path) as g:  # opening a version-2 file changes nothing
        assert len(StructureBank(g)) == 1


def test_a_failed_migration_leaves_the_version_one_file(tmp_path, monkeypatch):
    path = tmp_path / "v1.db"
    _version_one_file(path)
    monkeypatch.setitem(gallery_module.MIGRATIONS, 1, gallery_module.STRUCTURES_SCHEMA + "; CREATE TABLE structures (x)")
    with pytest.raises(GalleryError, match="not a readable gallery"):
        Gallery(path)
    tables, version = _tables(path)
    assert "structures" not in tables and version == "1"  # one transaction: all or nothing


# -- the synthesiser on the tiny DG-Net -------------------------------------------------------------
@pytest.fixture(scope="module")
def parts(tiny_dgnet_export):
    with Embedder.open(tiny_dgnet_export) as embedder, open_generator(tiny_dgnet_export) as generator:
        yield embedder, generator


def _crops(n, seed):
    return list(np.random.default_rng(seed).integers(0, 255, (n, 64, 32, 3), dtype=np.uint8))


def _filled_bank(g, generator, per_camera=4):
    bank = StructureBank(g)
    for c, camera in enumerate(("cam1", "cam2", "cam3")):
        crops = _crops(per_camera, c)
        bank.add(camera, generator.structure(crops), [x[..., ::-1] for x in crops], list(range(per_camera)), time=float(c))
    return bank


def test_synthetic_views_are_stored_with_kind_and_source_and_fused(parts, tmp_path):
    embedder, generator = parts
    assert structure_shape(generator) == (128, 16, 8)
    with Gallery(tmp_path / "g.db", embedder.feature_dim, synthetic_weight=0.5) as g:
        bank = _filled_bank(g, generator)
        person = _crops(1, 9)[0]
        identity = g.enrol(embedder.embed([person])[0], camera="cam1")
        result = Synthesiser(generator, embedder, bank, k=5).enrol(identity, person, camera="cam1", time=42.0)
        assert len(result.templates) == 5 and len(result.scores) == 5 and result.seconds > 0
        templates = [t for t in g.templates(identity) if t.kind == "synthetic"]
        cameras = [t.camera for t in templates]
        assert cameras[:4] == ["cam2", "cam3", "cam2", "cam3"] and cameras.count("cam1") <= 1  # own camera last
        assert all(t.source == f"synthetic:{t.camera}:{s}" for t, s in zip(templates, result.structures))
        assert all(t.time == 42.0 and t.has_thumbnail and not t.enrolment for t in templates)
        assert g.identity(identity).synthetic == 5
        # matching: per identity, the max over the real templates and the prototype (real + 0.5 x views' mean)
        feats = g.template_features(identity)
        prototype = feats[0] + 0.5 * feats[1:].mean(0)
        prototype /= np.linalg.norm(prototype)
        query = feats[1:2]  # a synthetic view's own feature
        ids, scores = g.identity_scores(query)
        expected = max(float(feats[0] @ query[0]), float(prototype @ query[0]))
        assert scores[0, list(ids).index(identity)] == pytest.approx(expected, abs=1e-5)
        assert scores[0, list(ids).index(identity)] < 0.99  # the view never scores alone (its own cosine: 1)


def test_an_empty_bank_and_an_export_without_generator_are_clear_errors(parts, tiny_dgnet_export, tmp_path):
    embedder, generator = parts
    with Gallery(tmp_path / "g.db", embedder.feature_dim) as g:
        identity = g.enrol(embedder.embed(_crops(1, 1))[0])
        with pytest.raises(EmptyBankError, match="no structures banked yet"):
            Synthesiser(generator, embedder, StructureBank(g)).enrol(identity, _crops(1, 1)[0])
        assert g.identity(identity).synthetic == 0
    plain = _embedder_only(tiny_dgnet_export, tmp_path / "plain")
    assert has_generator(tiny_dgnet_export) and not has_generator(plain)
    with pytest.raises(SynthesisError, match="has only the embedder"):
        open_generator(plain)


def _embedder_only(export, out):
    """A copy of ``export`` whose manifest lists the embedder alone (as a plain E_a export's does)."""
    shutil.copytree(export, out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["models"] = [m for m in manifest["models"] if m["role"] == "embedder"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    load_manifest(out)
    return out


class _SlowGenerator:
    """The tiny generator with a decoder that takes ``delay`` seconds."""

    def __init__(self, generator, delay):
        self.manifest = generator.manifest
        self._generator = generator
        self.delay = delay

    def decode(self, structure, appearance):
        time.sleep(self.delay)
        return self._generator.decode(structure, appearance)

    def codes(self, crops, embedder):
        return self._generator.codes(crops, embedder)


def test_the_worker_never_blocks_the_caller_and_the_loop_gallery_sees_its_templates(parts, tmp_path):
    embedder, generator = parts
    path = tmp_path / "g.db"
    with Gallery(path, embedder.feature_dim, synthetic_weight=1.0) as loop_gallery:
        _filled_bank(loop_gallery, generator)
        people = _crops(3, 5)
        ids = [loop_gallery.enrol(f) for f in embedder.embed(people)]
        loop_gallery.identity_scores(embedder.embed(people))  # the loop's cache, before the worker writes
        worker = SynthesisWorker(path, _SlowGenerator(generator, 0.3), embedder, k=3, queue_size=1)
        started = time.perf_counter()
        for identity, person in zip(ids, people):
            assert worker.submit(identity, person, camera="cam1", time=1.0)
        assert time.perf_counter() - started < 0.1  # three enrolments of >= 0.3 s each were only queued
        worker.close()
        assert not worker.submit(ids[0], people[0])
        stats = worker.stats
        assert stats.submitted == 3 and stats.done + stats.dropped == 3 and stats.dropped >= 1  # queue of one
        assert stats.failed == 0 and all(s >= 0.3 for s in stats.seconds)
        done = [r.identity for r in worker.results]
        assert ids[-1] in done  # the newest is never the one dropped
        feats = loop_gallery.template_features(done[0])
        kinds = [t.kind for t in loop_gallery.templates(done[0])]
        view = feats[1:2]
        ids_seen, scores = loop_gallery.identity_scores(view)  # reloaded: another connection committed
        fused = float((scoring_rows(kinds, feats, 1.0) @ view[0]).max())
        assert scores[0, list(ids_seen).index(done[0])] == pytest.approx(fused, abs=1e-5)
        assert fused > float(feats[0] @ view[0]) + 1e-3  # the prototype, not the real template alone


# -- the demo, `gallery enrol --synthesise` and the one-shot harness --------------------------------


@pytest.fixture(scope="module")
def bench(tiny_bench):
    return tiny_bench


def _cli(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return (0 if e.value.code is None else e.value.code), captured.out, captured.err


def test_demo_banks_structures_and_stores_synthetic_views_then_gallery_enrol_uses_them(
        bench, tiny_dgnet_export, tiny_world, tmp_path, capsys):
    site = load_site(bench)
    sources = sum((["--source", str(site.camera_dir(n))] for n in site.camera_names), [])
    gallery = tmp_path / "gallery.db"
    code, out, err = _cli(capsys, "demo", *sources, "--export", tiny_dgnet_export, "--threshold", "0.9",
                          "--gallery", gallery, "--synthesise", "-k", "4", "--no-show", "--no-progress", "--json")
    assert code == 0, err
    synthesis = json.loads(out)["synthesis"]
    assert set(synthesis["structures"]) == {"cam1", "cam2"} and synthesis["failed"] == 0
    assert synthesis["done"] >= 1 and synthesis["done"] + synthesis["no_structures"] + synthesis["dropped"] == synthesis["submitted"]
    with Gallery(gallery) as g:
        sources_of = [t.source for i in g.identities() for t in g.templates(i.id) if t.kind == "synthetic"]
    assert sources_of and all(s.startswith(("synthetic:cam1:", "synthetic:cam2:")) for s in sources_of)

    photo = sorted((tiny_world / "query").glob("*.jpg"))[0]
    code, out, err = _cli(capsys, "gallery", "enrol", photo, "--name", "Ann", "--export", tiny_dgnet_export,
                          "--gallery", gallery, "--synthesise", "-k", "3", "--json")
    assert code == 0, err
    assert json.loads(out)["synthetic"] == 3

    code, out, err = _cli(capsys, "demo", *sources, "--export", tiny_dgnet_export, "--no-synthesise",
                          "--threshold", "0.9", "--gallery", gallery, "--max-frames", "3", "--no-show", "--no-progress", "--json")
    assert code == 0, err
    assert "synthesis" not in json.loads(out)


def test_gallery_enrol_says_when_synthesis_cannot_be_done(tiny_dgnet_export, tiny_world, tmp_path, capsys):
    photo = sorted((tiny_world / "query").glob("*.jpg"))[0]
    gallery = tmp_path / "g.db"
    code, out, err = _cli(capsys, "gallery", "enrol", photo, "--name", "Ann", "--export", tiny_dgnet_export,
                          "--gallery", gallery, "--synthesise")
    assert code == 0, err
    assert "enrolled Ann" in out and "no structures banked yet" in err
    with Gallery(gallery) as g:
        assert [(i.templates, i.synthetic) for i in g.identities()] == [(1, 0)]
    plain = _embedder_only(tiny_dgnet_export, tmp_path / "plain")
    code, out, err = _cli(capsys, "gallery", "enrol", photo, "--name", "Bob", "--export", plain,
                          "--gallery", gallery, "--synthesise")
    assert code == 1 and "has only the embedder" in err and len(err.strip().splitlines()) == 1
    code, out, err = _cli(capsys, "demo", "--source", tmp_path, "--export", plain, "--synthesise", "--no-show")
    assert code == 1 and "has only the embedder" in err


def test_augmentations_keep_the_size_and_differ():
    image = np.random.default_rng(0).integers(0, 255, (64, 32, 3), dtype=np.uint8)
    views = augment(image, 4, np.random.default_rng(1))
    assert len(views) == 4 and all(v.shape == image.shape and v.dtype == np.uint8 for v in views)
    assert all(not np.array_equal(v, image) for v in views)


def test_one_shot_harness_gives_the_three_rows(tiny_world, tiny_dgnet_export, capsys):
    report = one_shot_cross_camera(tiny_world, tiny_dgnet_export, k=3, per_camera=4)
    assert [r.templates for r in report.rows] == ["real", "real + 3 synthetic", "real + 3 augmented"]
    assert report.identities == 6 and report.queries > report.identities and report.structures == 12
    assert all(0.0 <= r.rank1 <= 1.0 and 0.0 < r.mAP <= 1.0 for r in report.rows)
    code, out, err = _cli(capsys, "bench", "synthesis", tiny_world, "--export", tiny_dgnet_export, "-k", "2",
                          "--per-camera", "2", "--no-progress", "--json")
    assert code == 0, err
    assert [r["templates"] for r in json.loads(out)["rows"]] == ["real", "real + 2 synthetic", "real + 2 augmented"]


def test_one_identity_s_views_and_their_picture(tiny_world, tiny_dgnet_export, tmp_path, capsys):
    example = views_example(tiny_world, tiny_dgnet_export, identity=1, k=3, per_camera=4)
    h, w = example.enrolment.shape[:2]
    assert len(example.views) == len(example.structures) == len(example.structure_cameras) == 3
    assert example.camera not in example.structure_cameras  # spread over the other cameras first
    assert 0 < len(example.others) <= 3
    assert all(v.shape == (h, w, 3) and v.dtype == np.uint8 for v in example.views + example.structures + example.others)
    # The views are the decoder's renderings of the enrolment's appearance, not copies of the sources.
    assert all(not np.array_equal(v, s) for v, s in zip(example.views, example.structures))
    picture = views_picture(example, gap=2)
    assert picture.shape[0] == 3 * h + 2 * 2 and picture.dtype == np.uint8
    import cv2

    label_w = picture.shape[1] - 4 * (w + 2)  # four columns: the enrolment and three views
    assert label_w > cv2.getTextSize("enrolment, structures", cv2.FONT_HERSHEY_SIMPLEX, 0.42, 1)[0][0]
    with pytest.raises(DatasetError, match="identity index 99"):
        views_example(tiny_world, tiny_dgnet_export, identity=99, k=3, per_camera=4)
    path = tmp_path / "pictures" / "views.png"
    code, out, err = _cli(capsys, "bench", "synthesis", tiny_world, "--export", tiny_dgnet_export, "-k", "2",
                          "--per-camera", "2", "--no-progress", "--picture", path, "--picture-identity", "2")
    assert code == 0, err
    written = cv2.imread(str(path))
    assert written is not None and written.shape[0] == 3 * h + 2 * 4


def test_the_synthetic_weight_has_one_default_everywhere(tmp_path):
    import inspect

    from dgnet_edge.apps.camera.config import CameraConfig
    from dgnet_edge.cli.bench_synthesis import synthesis
    from dgnet_edge.cli.demo import demo

    with Gallery(tmp_path / "g.db", D) as g:
        assert g.synthetic_weight == gallery_module.SYNTHETIC_WEIGHT
    assert CameraConfig().gallery.synthetic_weight == gallery_module.SYNTHETIC_WEIGHT
    assert inspect.signature(one_shot_cross_camera).parameters["weight"].default == gallery_module.SYNTHETIC_WEIGHT
    assert inspect.signature(synthesis).parameters["weight"].default == gallery_module.SYNTHETIC_WEIGHT
    demo_option = inspect.signature(demo).parameters["synthetic_weight"].annotation.__metadata__[0]
    assert demo_option.show_default == str(gallery_module.SYNTHETIC_WEIGHT)  # the config's default, shown in --help


def test_synthesis_modules_never_import_torch():
    import subprocess
    import sys

    code = ("import sys\nimport dgnet_edge.apps.camera.storage.synthesis, dgnet_edge.apps.camera.measure.oneshot, "
            "dgnet_edge.cli.bench_synthesis\nassert 'torch' not in sys.modules, 'torch was imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


class _FakeTrack:
    def __init__(self, track_id, box, state="confirmed", det_index=0):
        self.track_id, self.box, self.state, self.det_index = track_id, np.asarray(box, np.float32), state, det_index


class _FakeEncoder:
    calls = 0

    def structure(self, crops):
        self.calls += 1
        return codes(len(crops), self.calls)


def test_the_loop_feeds_the_bank_rate_limited_and_commits_in_batches(gallery, monkeypatch):
    from dgnet_edge.apps.camera.live.tracking.tracker import CONFIRMED
    from dgnet_edge.apps.camera.storage import synthesis

    encoder, bank = _FakeEncoder(), StructureBank(gallery, track_interval_s=5.0)
    feeder = synthesis.BankFeeder(encoder, bank, batch=2, camera_interval_s=1.0, flush_s=10.0)
    wall = [100.0]
    monkeypatch.setattr(synthesis.clock, "perf_counter", lambda: wall[0])
    image = np.zeros((240, 320, 3), np.uint8)
    tracks = [_FakeTrack(i, (10 * i, 0, 10 * i + 40, 100), CONFIRMED) for i in range(3)]
    tracks.append(_FakeTrack(9, (200, 0, 240, 100), "tentative"))
    feeder.feed("cam1", 0.0, image, tracks)
    assert encoder.calls == 1 and bank.counts() == {"cam1": 2}  # batch of 2; the first write at once
    feeder.feed("cam1", 0.5, image, tracks)
    assert encoder.calls == 1  # the camera is not due yet
    feeder.feed("cam1", 1.0, image, tracks)
    assert encoder.calls == 2 and bank.counts() == {"cam1": 2}  # track 2 encoded, held for the next commit
    feeder.feed("cam1", 2.0, image, tracks)
    assert encoder.calls == 2  # every confirmed track gave a code less than 5 s ago; the tentative one never
    wall[0] += 10.0
    feeder.feed("cam1", 5.0, image, tracks)
    assert encoder.calls == 3 and bank.counts() == {"cam1": 5} and feeder.banked == 5


def test_views_keep_their_primary_half_and_take_the_rest_from_the_enrolment():
    from types import SimpleNamespace

    rng = np.random.default_rng(0)
    views, real = rng.normal(size=(3, 10)).astype(np.float32), rng.normal(size=10).astype(np.float32)
    two_heads = SimpleNamespace(heads=2, feature_dim=8)  # 8 from the network, 2 site-colour dimensions after them
    out = carried_features(views, real, two_heads)
    np.testing.assert_array_equal(out[:, :4], views[:, :4])
    np.testing.assert_array_equal(out[:, 4:], np.repeat(real[None, 4:], 3, axis=0))
    np.testing.assert_array_equal(carried_features(views, real, SimpleNamespace(heads=1, feature_dim=10)), views)
