"""The persistent gallery, identity resolution across cameras, the re-id threshold and `dgnet-edge gallery`."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from dgnet_edge.apps.camera.live.tracking.identities import IdentityParams, IdentityResolver
from dgnet_edge.apps.camera.live.tracking.tracker import CONFIRMED, LOST, TENTATIVE, Track
from dgnet_edge.apps.camera.measure.threshold import (
    THRESHOLD_FILE, calibrate_threshold, read_threshold, resolve_threshold, write_threshold,
)
from dgnet_edge.apps.camera.storage.gallery import Gallery, GalleryError
from dgnet_edge.apps.camera.storage.gallery_base import scoring_rows
from dgnet_edge.apps.camera.storage.gallery_export import export_gallery
from dgnet_edge.boxes import l2_normalise
from dgnet_edge.cli.main import app
from dgnet_edge.errors import DgnetEdgeError, ExportError, InputPathError, OutputPathError, UsageError

D = 16


def unit(rng, n=None, d=D):
    return l2_normalise(rng.normal(size=(d,) if n is None else (n, d)))


def near(feature, rng, noise=0.05):
    return l2_normalise(feature + noise * rng.normal(size=feature.shape))


def crop_image(seed=0):
    return np.random.default_rng(seed).integers(0, 255, (40, 20, 3), dtype=np.uint8)


@pytest.fixture
def gallery(tmp_path):
    with Gallery(tmp_path / "g.db", D) as g:
        yield g


# -- the file -------------------------------------------------------------------------------------
def test_reopen_keeps_everything_and_checks_the_file(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "g.db"
    with Gallery(path, D) as g:
        a = g.enrol(unit(rng), crop_image(), name="alice", camera="cam1", time=3.0)
        assert g.journal_mode() == "wal"
    with Gallery(path) as g:
        assert g.feature_dim == D
        (identity,) = g.identities()
        assert (identity.id, identity.name, identity.templates) == (a, "alice", 1)
        (template,) = g.templates(a)
        assert template.enrolment and template.camera == "cam1" and template.time == 3.0 and template.kind == "real"
        assert cv2.imdecode(np.frombuffer(g.thumbnail(template.id), np.uint8), cv2.IMREAD_COLOR).shape == (40, 20, 3)
        assert g.integrity_check() == "ok"
    with pytest.raises(GalleryError, match="holds 16-d features but the embedder gives 8-d"):
        Gallery(path, 8)
    with pytest.raises(InputPathError, match="does not exist"):
        Gallery(tmp_path / "missing.db")
    (tmp_path / "text.db").write_text("not a database at all")
    with pytest.raises(GalleryError, match="not an SQLite file"):
        Gallery(tmp_path / "text.db")
    other = sqlite3.connect(tmp_path / "other.db")
    other.execute("CREATE TABLE t (x)")
    other.commit()
    other.close()
    with pytest.raises(GalleryError, match="SQLite database but not a gallery"):
        Gallery(tmp_path / "other.db", D)
    other = sqlite3.connect(tmp_path / "other.db")
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # left as it was
    other.close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = '99' WHERE key = 'version'")
    db.commit()
    db.close()
    with pytest.raises(GalleryError, match="version 99"):
        Gallery(path)


def test_a_corrupt_file_is_a_one_line_error(tmp_path):
    path = tmp_path / "g.db"
    with Gallery(path, D) as g:
        g.enrol(unit(np.random.default_rng(0)))
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # the first page: schema and meta are gone
    path.write_bytes(bytes(data))
    with pytest.raises(GalleryError, match="not a readable gallery"):
        Gallery(path)


def test_a_failed_write_leaves_file_and_cache_as_they_were(gallery, monkeypatch):
    rng = np.random.default_rng(1)
    a = gallery.enrol(unit(rng))
    query = unit(rng, 3)
    before = gallery.identity_scores(query)[1].copy()

    def broken(*args):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(gallery, "_prune", broken)
    with pytest.raises(RuntimeError):
        gallery.add_template(a, unit(rng), source="test")  # the insert ran, then the transaction failed
    assert len(gallery.templates(a)) == 1
    np.testing.assert_array_equal(gallery.identity_scores(query)[1], before)
    with pytest.raises(RuntimeError):
        gallery.merge(a, gallery.enrol(unit(rng)))
    assert len(gallery) == 2


def test_a_transaction_groups_writes_and_a_failed_write_inside_is_undone_alone(gallery):
    rng = np.random.default_rng(16)
    with gallery.transaction():
        a = gallery.enrol(unit(rng))
        with pytest.raises(GalleryError):
            gallery.add_template(a + 1, unit(rng), source="t")  # unknown identity: that write only
        gallery.add_template(a, unit(rng), source="t")
    assert len(gallery) == 1 and gallery.identity(a).templates == 2
    with pytest.raises(RuntimeError):
        with gallery.transaction():
            gallery.enrol(unit(rng))
            gallery.rename(a, "x")
            raise RuntimeError("the app crashed mid-frame")
    assert len(gallery) == 1 and gallery.identity(a).name is None
    assert [i for i, _ in gallery.match(gallery.template_features(a), 0.99)] == [a, a]


# -- templates and matching -----------------------------------------------------------------------
def test_templates_are_bounded_keeping_the_enrolment_one_and_the_most_diverse(tmp_path):
    rng = np.random.default_rng(2)
    with Gallery(tmp_path / "g.db", D, max_templates=4) as g:
        first = unit(rng)
        a = g.enrol(first)
        distinct = [unit(rng) for _ in range(3)]
        kept = [g.add_template(a, f, source="t") for f in distinct]
        copy = g.add_template(a, near(distinct[0], rng, 0.01), source="t")  # a near-copy: it or its twin goes
        templates = g.templates(a)
        assert len(templates) == 4 and templates[0].enrolment
        ids = {t.id for t in templates}
        assert set(kept[1:]) <= ids and len(ids & {kept[0], copy}) == 1
        for _ in range(20):  # many more, all close to the enrolment feature: the enrolment one stays
            g.add_template(a, near(first, rng, 0.02), source="t")
        templates = g.templates(a)
        assert len(templates) == 4 and templates[0].enrolment and templates[0].id == g.templates(a)[0].id
        for _ in range(6):  # the bound is per kind: synthetic views do not push real ones out
            g.add_template(a, unit(rng), kind="synthetic", source="synthetic:1")
        assert g.identity(a).templates == 4 and g.identity(a).synthetic == 4


def test_match_takes_the_best_template_across_cameras_and_views_never_decide_alone(tmp_path):
    rng = np.random.default_rng(3)
    with Gallery(tmp_path / "g.db", D, synthetic_weight=1.0) as g:
        people = unit(rng, 20)
        views = unit(rng, 20)  # each person's second look, from another camera
        ids = [g.enrol(p, camera="cam1") for p in people]
        for i, v in zip(ids, views):
            g.add_template(i, v, camera="cam2", source="t")
        queries = np.concatenate([near(people, rng), near(views, rng)])
        result = g.match(queries, threshold=0.8)
        assert [r[0] for r in result] == ids + ids
        assert all(s > 0.9 for _, s in result)
        assert g.match(unit(rng, 3) * 0 + people[0] * -1, threshold=0.8)[0][0] is None
        # A synthetic view scores only inside the prototype: a query equal to the view does not match
        # its identity at 0.8, and another person's real template that looks like it wins.
        view = unit(rng)
        g.add_template(ids[0], view, kind="synthetic", source="synthetic:1")
        assert g.match(view, 0.8)[0][0] is None
        x = g.enrol(near(view, rng, 0.05))
        assert g.match(view, 0.8)[0][0] == x
        # vectorised: the same as scoring each query against each identity's rows one by one
        got_ids, scores = g.identity_scores(queries)
        for col, identity in enumerate(got_ids):
            templates = g.templates(int(identity))
            rows = scoring_rows([t.kind for t in templates], g.template_features(int(identity)), 1.0)
            np.testing.assert_allclose(scores[:, col], (queries @ rows.T).max(axis=1), atol=1e-5)


def test_scoring_rows_fuse_the_views_into_one_prototype(tmp_path):
    rng = np.random.default_rng(5)
    real, views = unit(rng, 2), unit(rng, 3)
    feats = np.concatenate([real, views])
    rows = scoring_rows(["real", "real", "synthetic", "synthetic", "synthetic"], feats, 0.25)
    assert rows.shape == (3, D)
    np.testing.assert_allclose(rows[:2], real)
    expected = real.mean(0) + 0.25 * views.mean(0)
    np.testing.assert_allclose(rows[2], expected / np.linalg.norm(expected), atol=1e-6)
    assert len(scoring_rows(["synthetic"] * 3, views, 0.25)) == 0  # views alone: nothing to score
    np.testing.assert_allclose(scoring_rows(["real", "synthetic"], feats[1:3], 0.0), real[1:])
    with pytest.raises(ValueError, match="synthetic_weight"):
        Gallery(tmp_path / "g.db", D, synthetic_weight=1.5)


def test_matching_follows_writes_from_another_process(tmp_path):
    rng = np.random.default_rng(4)
    path = tmp_path / "g.db"
    with Gallery(path, D) as app_side, Gallery(path) as cli_side:
        a = app_side.enrol(unit(rng))
        f = unit(rng)
        b = cli_side.enrol(f)
        assert app_side.match(f, 0.9)[0][0] == b
        assert app_side.label(b) == f"#{b}"
        cli_side.rename(b, "bo")
        assert app_side.label(b) == "bo"
        cli_side.merge(a, b)
        assert app_side.match(f, 0.9)[0][0] == a and app_side.label(a) == "bo"
        cli_side.delete(a)
        assert app_side.match(f, 0.9)[0][0] is None and len(app_side) == 0


def test_merge_rename_delete_sightings(gallery):
    rng = np.random.default_rng(5)
    a = gallery.enrol(unit(rng), name=None, camera="cam1")
    b = gallery.enrol(unit(rng), name="bob", camera="cam2")
    s = gallery.open_sighting(b, "cam2", 7, 10.0)
    gallery.extend_sightings({s: 12.5})
    gallery.merge(a, b)
    merged = gallery.identity(a)
    assert merged.name == "bob" and merged.templates == 2 and merged.cameras == ("cam2",)
    assert gallery.sightings(a)[0].last == 12.5 and gallery.last_sighting(a).camera == "cam2"
    with pytest.raises(GalleryError, match=f"no identity {b}"):
        gallery.identity(b)
    with pytest.raises(GalleryError, match="with itself"):
        gallery.merge(a, a)
    gallery.rename(a, "robert")
    assert gallery.identity(a).name == "robert" and gallery.label(a) == "robert"
    gallery.delete(a)
    assert len(gallery) == 0
    assert gallery._db.execute("SELECT count(*) FROM templates").fetchone()[0] == 0
    assert gallery._db.execute("SELECT count(*) FROM sightings").fetchone()[0] == 0
    with pytest.raises(GalleryError, match="no identity"):
        gallery.rename(a, "x")


def test_export_writes_json_and_crops_and_replaces_only_an_export(gallery, tmp_path):
    rng = np.random.default_rng(6)
    a = gallery.enrol(unit(rng), crop_image(1), name="alice", camera="cam1")
    gallery.add_template(a, unit(rng), source="t")  # no crop
    gallery.open_sighting(a, "cam1", 3, 1.0)
    out = tmp_path / "exp"
    assert export_gallery(gallery, out) == {"identities": 1, "templates": 2, "crops": 1}
    body = json.loads((out / "gallery.json").read_text())
    (person,) = body["identities"]
    assert person["name"] == "alice" and len(person["templates"]) == 2 and person["sightings"][0]["track"] == 3
    first = person["templates"][0]
    assert (out / first["crop"]).is_file() and person["templates"][1]["crop"] is None
    np.testing.assert_allclose(first["feature"], gallery.template_features(a)[0], atol=1e-6)
    gallery.delete(a)
    assert export_gallery(gallery, out)["identities"] == 0  # an earlier export is replaced
    assert not (out / "crops").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".exp")]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(OutputPathError, match="not a gallery export"):
        export_gallery(gallery, tmp_path / "mine")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputPathError, match="is a file"):
        export_gallery(gallery, tmp_path / "file" / "exp")


# -- kill -9 ---------------------------------------------------------------------------------------
CHILD = """
import sys
import numpy as np
from dgnet_edge.apps.camera.storage.gallery import Gallery
rng = np.random.default_rng(int(sys.argv[2]))
with Gallery(sys.argv[1], 64, max_templates=3) as g:
    while True:
        crop = rng.integers(0, 255, (64, 32, 3), dtype=np.uint8)
        identity = g.enrol(rng.normal(size=64), crop, name=f"p{rng.integers(1 << 30)}", camera="cam1")
        print("E", identity, flush=True)
        template = g.add_template(identity, rng.normal(size=(64,)), crop, camera="cam2", source="t")
        print("T", identity, template, flush=True)
        if identity % 5 == 0:
            print("m", identity - 1, identity, flush=True)  # about to merge: done or not, both are right
            g.merge(identity - 1, identity)
            print("M", identity - 1, identity, flush=True)
"""


def test_kill_9_mid_write_loses_nothing_committed_and_never_corrupts(tmp_path):
    path = tmp_path / "g.db"
    rng = random.Random(7)
    committed: dict[int, set[int]] = {}  # identity -> templates the child said it committed
    merged: set[int] = set()
    maybe_merged: set[int] = set()  # merges started but not reported done when the child was killed
    for round_ in range(6):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(round_)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        first = child.stdout.readline()  # the child is in its loop
        assert first.startswith("E"), child.stderr.read()
        time.sleep(rng.uniform(0.0, 0.4))
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert child.returncode == -signal.SIGKILL
        for line in [first, *child.stdout.read().splitlines()]:
            kind, *ids = line.split()
            if kind == "E":
                committed[int(ids[0])] = set()
            elif kind == "T" and ids[1] != "None":
                committed[int(ids[0])].add(int(ids[1]))
            elif kind == "m":
                maybe_merged.add(int(ids[1]))
                committed[int(ids[0])], committed[int(ids[1])] = set(), set()  # a merge may drop templates
            elif kind == "M":
                committed.pop(int(ids[1]))
                maybe_merged.discard(int(ids[1]))
                merged.add(int(ids[1]))
        with Gallery(path) as g:
            assert g.integrity_check() == "ok"
            present = {i.id for i in g.identities()}
            lost = set(committed) - present - maybe_merged
            assert not lost, f"round {round_}: lost identities {sorted(lost)}"
            for gone in maybe_merged - present:  # that merge committed before the kill
                committed.pop(gone)
                merged.add(gone)
            maybe_merged.clear()
            assert not merged & present
            for identity in present:  # an identity is never without its enrolment template
                assert any(t.enrolment for t in g.templates(identity)), f"round {round_}: {identity} half-written"
            for identity, templates in committed.items():
                have = {t.id for t in g.templates(identity)}
                assert templates <= have, f"round {round_}: identity {identity} lost templates {templates - have}"
                assert len(have) <= 3
    assert len(committed) >= 6


# -- identities across cameras --------------------------------------------------------------------
def track(track_id, feature, state=CONFIRMED, box=(2, 2, 12, 30), since=0):
    return Track(track_id=track_id, box=np.asarray(box, np.float32), state=state, score=0.9, feature=feature,
                 time_since_update=since)


def test_a_person_gets_a_new_identity_then_keeps_it_on_another_camera(gallery):
    rng = np.random.default_rng(8)
    person = unit(rng)
    resolver = IdentityResolver(gallery, 0.7, IdentityParams(decide_after=3, template_interval_s=100, enrol_min_motion=0))
    image = np.zeros((48, 64, 3), np.uint8)
    t1 = track(1, person)
    assert resolver.update("cam1", 0.0, [t1], image).events == []  # waits for a confident feature
    assert resolver.update("cam1", 0.1, [t1], image).events == []
    events = resolver.update("cam1", 0.2, [t1], image).events
    assert [e.kind for e in events] == ["new_identity", "enter"]
    identity = events[0].identity
    assert resolver.identity_of("cam1", t1.track_id) == identity and gallery.templates(identity)[0].source == "track:cam1:1"
    assert gallery.templates(identity)[0].has_thumbnail
    events = resolver.update("cam1", 5.0, []).events  # gone from the tracker's list: left
    assert [e.kind for e in events] == ["leave"] and events[0].first == 0.2
    t9 = track(9, near(person, rng))
    events = resolver.update("cam2", 7.0, [t9]).events
    assert [e.kind for e in events] == ["reidentified", "enter"]  # confident: no wait
    assert events[0].identity == identity and events[0].previous_camera == "cam1"
    assert events[0].previous_time == 0.2 and resolver.identity_of("cam2", t9.track_id) == identity
    assert resolver.update("cam2", 7.1, [track(9, person)]).events == []
    assert [e.kind for e in resolver.close()] == ["leave"]
    assert [s.camera for s in gallery.sightings(identity)] == ["cam1", "cam2"]


def test_tracks_wait_for_a_confident_feature_and_tentative_ones_are_not_named(gallery):
    rng = np.random.default_rng(9)
    person = unit(rng)
    a = gallery.enrol(person)
    resolver = IdentityResolver(gallery, 0.5, IdentityParams(decide_after=4, confident_margin=0.3, enrol_min_motion=0))
    unsure = l2_normalise(person + 1.1 * unit(rng))  # over the threshold, under threshold + margin
    score = float(unsure @ person)
    assert 0.5 <= score < 0.8
    assert resolver.update("cam1", 0.0, [track(1, unsure, state=TENTATIVE)]).events == []
    for i in range(3):
        assert resolver.update("cam1", float(i), [track(1, unsure)]).events == []
    events = resolver.update("cam1", 4.0, [track(1, unsure)]).events
    assert events[0].kind == "reidentified" and events[0].identity == a
    # no fresh detection this frame: not counted as a look
    assert resolver.update("cam1", 5.0, [track(1, unsure), track(2, unit(rng), since=1)]).events == []


def test_one_identity_is_never_two_live_tracks_of_one_camera_and_assignment_is_optimal(gallery):
    e = np.eye(D, dtype=np.float32)
    a, b = gallery.enrol(e[0]), gallery.enrol(e[1])
    resolver = IdentityResolver(gallery, 0.5, IdentityParams(decide_after=1, enrol_min_motion=0))
    # greedy in track order would give track 1 identity a (0.72 > 0.69) and leave track 2 without one
    t1, t2 = track(1, l2_normalise(1.05 * e[0] + e[1])), track(2, l2_normalise(e[0] + 0.3 * e[1]))
    events = resolver.update("cam1", 0.0, [t1, t2]).events
    assert (resolver.identity_of("cam1", t1.track_id), resolver.identity_of("cam1", t2.track_id)) == (b, a)
    assert sorted(e.kind for e in events) == ["enter", "enter", "reidentified", "reidentified"]
    # a third track that looks like a, while a is on a live track here, becomes someone new ...
    t3 = track(3, l2_normalise(e[0] + 0.2 * e[2]))
    events = resolver.update("cam1", 1.0, [t1, t2, t3]).events
    assert resolver.identity_of("cam1", t3.track_id) not in (a, b) and events[0].kind == "new_identity"
    # ... but on another camera it is a
    t7 = track(7, e[0])
    resolver.update("cam2", 1.0, [t7])
    assert resolver.identity_of("cam2", t7.track_id) == a
    # a new track takes the identity of a lost track of its camera, which then leaves
    t2.state = LOST
    t4 = track(4, l2_normalise(e[0] + 0.3 * e[1]))
    events = resolver.update("cam1", 2.0, [t1, t2, t3, t4]).events
    assert resolver.identity_of("cam1", t4.track_id) == a and resolver.identity_of("cam1", t2.track_id) is None
    assert [(e.kind, e.track) for e in events] == [("leave", 2), ("reidentified", 4), ("enter", 4)]


def test_templates_are_rate_limited_and_diverse(gallery):
    rng = np.random.default_rng(10)
    person = unit(rng)
    a = gallery.enrol(person)
    resolver = IdentityResolver(gallery, 0.5, IdentityParams(decide_after=1, template_interval_s=1.0, novelty=0.05))
    t = track(1, person)
    resolver.update("cam1", 0.0, [t])
    assert resolver.identity_of("cam1", t.track_id) == a
    resolver.update("cam1", 2.0, [t])  # a copy of the enrolment template: not kept
    assert gallery.identity(a).templates == 1
    other_view = l2_normalise(person + 0.6 * unit(rng))
    t.feature = other_view
    resolver.update("cam1", 2.5, [t])  # too soon after the last look
    assert gallery.identity(a).templates == 1
    resolver.update("cam1", 3.1, [t], np.zeros((48, 64, 3), np.uint8))
    assert gallery.identity(a).templates == 2 and gallery.templates(a)[1].has_thumbnail
    t.feature = unit(rng)  # the track drifted to someone else: not a template of a
    resolver.update("cam1", 9.0, [t])
    assert gallery.identity(a).templates == 2


def test_an_identity_deleted_while_held_is_asked_for_again(tmp_path):
    rng = np.random.default_rng(11)
    path = tmp_path / "g.db"
    with Gallery(path, D) as g, Gallery(path) as cli_side:
        person = unit(rng)
        a = g.enrol(person)
        resolver = IdentityResolver(g, 0.5, IdentityParams(decide_after=1, template_interval_s=0.0, enrol_min_motion=0))
        t = track(1, person)
        resolver.update("cam1", 0.0, [t])
        assert resolver.identity_of("cam1", t.track_id) == a
        cli_side.delete(a)
        resolver.update("cam1", 1.0, [t])
        assert resolver.identity_of("cam1", t.track_id) is None
        events = resolver.update("cam1", 2.0, [t]).events
        assert events[0].kind == "new_identity" and resolver.identity_of("cam1", t.track_id) != a


def test_a_static_box_never_becomes_an_identity_and_a_walking_person_does(gallery):
    """A sign the detector takes for a person stays put: tracked, never enrolled nor matched."""
    rng = np.random.default_rng(13)
    sign, walker = unit(rng), unit(rng)
    resolver = IdentityResolver(gallery, 0.7, IdentityParams(decide_after=3, enrol_min_motion=0.25, static_after_s=5.0))
    still, moving = track(1, sign, box=(100, 50, 130, 130)), track(2, walker)
    events = []
    for i in range(300):  # 20 s at 15 frames/s; the sign's box jitters by a pixel
        jitter = rng.uniform(-1, 1, 4).astype(np.float32)
        still.box = np.asarray((100, 50, 130, 130), np.float32) + jitter
        moving.box = np.asarray((2 + 3 * i, 2, 32 + 3 * i, 82), np.float32)  # 80 px tall, 45 px a second
        events += resolver.update("cam1", i / 15, [still, moving]).events
    made = [e for e in events if e.kind == "new_identity"]
    assert [e.track for e in made] == [2] and len(gallery) == 1
    assert resolver.identity_of("cam1", still.track_id) is None and resolver.identity_of("cam1", moving.track_id) == made[0].identity
    assert made[0].time < 0.5  # enrolled as soon as it has walked a quarter of its height
    # a still track takes a gallery identity only on a confident score, never by waiting
    unsure = l2_normalise(walker + 0.9 * unit(rng))
    assert 0.7 <= float(unsure @ walker) < 0.8
    same = track(3, unsure, box=(100, 50, 130, 130))
    for i in range(150):
        resolver.update("cam2", 30 + i / 15, [same])
    assert resolver.identity_of("cam2", same.track_id) is None
    # ... and when it walks away, it is decided like any other track
    for i in range(20):
        same.box = np.asarray((100 + 4 * i, 50, 130 + 4 * i, 130), np.float32)
        resolver.update("cam2", 40 + i / 15, [same])
    assert resolver.identity_of("cam2", same.track_id) == made[0].identity
    # walking towards the camera (the box grows, its centre barely moves) counts as moving
    towards = track(4, unit(rng), box=(200, 100, 220, 140))
    for i in range(30):
        towards.box = np.asarray((200 - i / 2, 100 - i, 220 + i / 2, 140 + i), np.float32)
        resolver.update("cam3", 50 + i / 15, [towards])
    assert resolver.identity_of("cam3", towards.track_id) is not None and resolver.identity_of("cam3", towards.track_id) != made[0].identity


def test_a_still_person_is_recognised_before_the_static_rule_applies(gallery):
    """Standing still is not enough to lose a known identity: a confident match needs no motion."""
    rng = np.random.default_rng(14)
    person = unit(rng)
    a = gallery.enrol(person)
    resolver = IdentityResolver(gallery, 0.5, IdentityParams(decide_after=3))
    t = track(1, person)
    events = resolver.update("cam1", 0.0, [t]).events
    assert [e.kind for e in events] == ["reidentified", "enter"] and resolver.identity_of("cam1", t.track_id) == a


def test_static_rule_parameters_are_checked(gallery):
    with pytest.raises(ValueError, match="enrol_min_motion"):
        IdentityResolver(gallery, 0.5, IdentityParams(enrol_min_motion=-0.1))


def test_enrol_track_names_the_person(gallery):
    rng = np.random.default_rng(12)
    resolver = IdentityResolver(gallery, 0.5, IdentityParams(decide_after=5))
    t = track(1, unit(rng))
    resolver.update("cam1", 0.0, [t])
    events = resolver.enrol_track("cam1", 0.0, t, "carol")
    assert events[0].kind == "new_identity" and events[0].name == "carol"
    assert gallery.identity(resolver.identity_of("cam1", t.track_id)).name == "carol"
    resolver.enrol_track("cam1", 1.0, t, "caroline")
    assert gallery.identity(resolver.identity_of("cam1", t.track_id)).name == "caroline" and len(gallery) == 1


# -- threshold ------------------------------------------------------------------------------------
def test_calibrated_threshold_separates_same_from_different_people(tmp_path):
    rng = np.random.default_rng(13)
    people = unit(rng, 30, 64)
    q_pids = np.repeat(np.arange(1, 31), 2)
    g_pids = np.repeat(np.arange(1, 31), 3)
    qf = near(people[q_pids - 1], rng, 0.03)
    gf = near(people[g_pids - 1], rng, 0.03)
    q_cams, g_cams = np.zeros(len(qf), int), np.ones(len(gf), int)
    result = calibrate_threshold(qf, q_pids, q_cams, gf, g_pids, g_cams)
    same = (qf @ gf.T)[q_pids[:, None] == g_pids[None]]
    different = (qf @ gf.T)[q_pids[:, None] != g_pids[None]]
    assert different.max() < result.threshold <= same.min()
    assert (result.tpr, result.false_match_rate, result.pair_tpr, result.pair_fpr) == (1.0, 0.0, 1.0, 0.0)
    # same-camera images of one's own identity are junk: only cross-camera pairs count
    with pytest.raises(ValueError, match="cannot calibrate"):
        calibrate_threshold(qf, q_pids, q_cams, gf, g_pids, np.zeros(len(gf), int))
    # overlapping people: the threshold trades misses for false matches, and says so
    noisy = calibrate_threshold(near(people[q_pids - 1], rng, 0.5), q_pids, q_cams, gf, g_pids, g_cams)
    assert 0 < noisy.tpr < 1 and noisy.threshold < result.threshold
    # features that say nothing: the best is to call nobody known
    blind = calibrate_threshold(unit(rng, len(qf), 64), q_pids, q_cams, unit(rng, len(gf), 64), g_pids, g_cams)
    assert 0.0 <= blind.tpr - blind.false_match_rate <= noisy.tpr - noisy.false_match_rate
    write_threshold(tmp_path, result, {"data": "x"})
    assert read_threshold(tmp_path) == result.threshold
    assert resolve_threshold(tmp_path, None) == result.threshold and resolve_threshold(tmp_path, 0.3) == 0.3
    with pytest.raises(UsageError):
        resolve_threshold(tmp_path, 3.0)
    with pytest.raises(ExportError, match="has no reid_threshold.json"):
        resolve_threshold(tmp_path / "other", None)
    (tmp_path / THRESHOLD_FILE).write_text("{")
    with pytest.raises(ExportError, match="not a readable threshold file"):
        read_threshold(tmp_path)


# -- the CLI --------------------------------------------------------------------------------------
def cli(*args):
    return CliRunner().invoke(app, list(map(str, args)))


def test_cli_list_show_rename_merge_delete_export(tmp_path):
    rng = np.random.default_rng(14)
    path = tmp_path / "g.db"
    with Gallery(path, D) as g:
        a = g.enrol(unit(rng), crop_image(), name="alice", camera="cam1")
        b = g.enrol(unit(rng), camera="cam2")
        g.open_sighting(b, "cam2", 4, 2.0)
    result = cli("gallery", "list", "--gallery", path, "--json")
    assert result.exit_code == 0, result.output
    assert [(i["id"], i["name"]) for i in json.loads(result.stdout)] == [(a, "alice"), (b, None)]
    assert "alice" in cli("gallery", "list", "--gallery", path).output
    result = cli("gallery", "show", b, "--gallery", path, "--json")
    assert json.loads(result.stdout)["sightings"][0]["camera"] == "cam2"
    assert cli("gallery", "show", a, "--gallery", path).exit_code == 0
    assert cli("gallery", "rename", b, "bob", "--gallery", path).exit_code == 0
    assert cli("gallery", "merge", a, b, "--gallery", path).exit_code == 0
    assert cli("gallery", "export", tmp_path / "out", "--gallery", path).exit_code == 0
    body = json.loads((tmp_path / "out" / "gallery.json").read_text())
    assert len(body["identities"]) == 1 and len(body["identities"][0]["templates"]) == 2
    assert cli("gallery", "delete", a, "--gallery", path).exit_code == 0
    assert json.loads(cli("gallery", "list", "--gallery", path, "--json").stdout) == []


def one_line_error(result, code, pattern):
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, DgnetEdgeError) and "\n" not in str(result.exception)
    assert pattern in str(result.exception), str(result.exception)


def test_cli_errors_are_one_line(tmp_path):
    rng = np.random.default_rng(15)
    path = tmp_path / "g.db"
    with Gallery(path, D) as g:
        a = g.enrol(unit(rng))
    one_line_error(cli("gallery", "show", 99, "--gallery", path), 1, "no identity 99")
    one_line_error(cli("gallery", "merge", a, a, "--gallery", path), 1, "with itself")
    one_line_error(cli("gallery", "delete", 99, "--gallery", path), 1, "no identity 99")
    one_line_error(cli("gallery", "list", "--gallery", tmp_path / "none.db"), 1, "does not exist")
    (tmp_path / "junk.db").write_bytes(b"\x00" * 5000)
    one_line_error(cli("gallery", "list", "--gallery", tmp_path / "junk.db"), 1, "not a gallery")
    (tmp_path / "file").write_text("x")
    one_line_error(cli("gallery", "export", tmp_path / "file" / "out", "--gallery", path), 1, "is a file")
    one_line_error(cli("gallery", "enrol", tmp_path / "nobody.jpg", "--name", "x", "--export", tmp_path,
                       "--gallery", path), 1, "does not exist")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    one_line_error(cli("gallery", "enrol", tmp_path / "broken.jpg", "--name", "x", "--export", tmp_path,
                       "--gallery", path), 1, "not a readable image")
    one_line_error(cli("gallery", "enrol", tmp_path / "broken.jpg", "--name", "x", "--export", tmp_path,
                       "--gallery", tmp_path / "file" / "g.db"), 1, "not a folder")


def test_cli_enrol_and_calibrate_with_an_export(tiny_dgnet_export, tiny_world, tmp_path):
    import shutil

    export = tmp_path / "export"
    shutil.copytree(tiny_dgnet_export, export)
    photo = sorted((tiny_world / "query").iterdir())[0]
    path = tmp_path / "g.db"
    result = cli("gallery", "enrol", photo, "--name", "dana", "--export", export, "--gallery", path, "--json")
    assert result.exit_code == 0, result.output
    identity = json.loads(result.stdout)["id"]
    with Gallery(path) as g:
        assert g.identity(identity).name == "dana" and g.templates(identity)[0].has_thumbnail
        assert g.match(g.template_features(identity), 0.99)[0][0] == identity
    result = cli("gallery", "calibrate", export, "--data", tiny_world, "--json", "--no-progress")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["threshold"] == read_threshold(export) and body["queries"] > 0
    assert json.loads((export / THRESHOLD_FILE).read_text())["calibrated_on"]["backend"] == "onnxruntime"
