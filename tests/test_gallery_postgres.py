"""The gallery on PostgreSQL: one interface with the SQLite file, many writers, changes pushed by
NOTIFY, pgvector search, migration both ways, outages replayed once, kill -9, one-line errors.

Against a real server: PostgreSQL 16 with pgvector from PyPI's pgserver, on 127.0.0.1 (tests/pg_server.py).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

# The core interface tests of the SQLite gallery, run here again on PostgreSQL (through the
# ``gallery`` fixture below): together with tests/test_gallery.py they run on both backends.
from test_gallery import (  # noqa: F401
    test_a_failed_write_leaves_file_and_cache_as_they_were, test_a_person_gets_a_new_identity_then_keeps_it_on_another_camera,
    test_a_static_box_never_becomes_an_identity_and_a_walking_person_does,
    test_a_still_person_is_recognised_before_the_static_rule_applies,
    test_a_transaction_groups_writes_and_a_failed_write_inside_is_undone_alone, test_enrol_track_names_the_person,
    test_export_writes_json_and_crops_and_replaces_only_an_export,
    test_one_identity_is_never_two_live_tracks_of_one_camera_and_assignment_is_optimal,
    test_templates_are_rate_limited_and_diverse, test_tracks_wait_for_a_confident_feature_and_tentative_ones_are_not_named,
)
from test_gallery import D, crop_image, near, unit

from dgnet_edge.apps.camera.storage.gallery import Gallery
from dgnet_edge.apps.camera.storage.gallery_base import GalleryError, scoring_rows
from dgnet_edge.apps.camera.storage.gallery_migrate import COLUMNS, read_rows
from dgnet_edge.apps.camera.storage.gallery_postgres import PostgresGallery
from dgnet_edge.apps.camera.storage.open_gallery import open_gallery
from dgnet_edge.apps.camera.storage.structure_bank import StructureBank
from dgnet_edge.cli.main import app
from dgnet_edge.errors import DgnetEdgeError


@pytest.fixture(scope="session")
def pg():
    """One loopback PostgreSQL for the session; fails in CI when it cannot start. Its data is not
    under pytest's temporary folder, which only root may enter (the server runs as another user)."""
    folder = tempfile.mkdtemp(prefix="dgnet-edge-pg-")
    try:
        from pg_server import LoopbackPostgres

        server = LoopbackPostgres(Path(folder) / "data")
    except Exception as e:  # the package missing, or the server refusing to start
        shutil.rmtree(folder, ignore_errors=True)
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL (pgserver) could not start: {e}")
        pytest.skip(f"PostgreSQL (pgserver) could not start: {e}")
    yield server
    server.close()
    shutil.rmtree(folder, ignore_errors=True)


_databases = iter(range(1 << 30))


@pytest.fixture
def url(pg):
    """A fresh, empty database on the server."""
    pg.ensure_running()
    return pg.create_database(f"g{next(_databases)}")


@pytest.fixture
def gallery(url):
    with PostgresGallery(url, D) as g:
        yield g


@pytest.fixture(params=["sqlite", "postgres"])
def spec(request, tmp_path):
    """Where a gallery lives, on each backend."""
    if request.param == "sqlite":
        return tmp_path / "g.db"
    return request.getfixturevalue("url")


def wait_for(condition, timeout=1.0):
    """Seconds until ``condition()`` held; fails after ``timeout``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail(f"not within {timeout} s")
        time.sleep(0.01)
    return time.monotonic() - start


# -- one interface -----------------------------------------------------------------------------------
def test_both_backends_keep_and_match_the_same(spec):
    rng = np.random.default_rng(0)
    with open_gallery(spec, D, max_templates=3, synthetic_weight=0.5) as g:
        a = g.enrol(unit(rng), crop_image(1), name="alice", camera="cam1", time=3.0)
        people = unit(rng, 6)
        ids = [g.enrol(p, camera="cam2") for p in people]
        for _ in range(5):
            g.add_template(a, unit(rng), kind="synthetic", source="synthetic:cam2:1")
        s = g.open_sighting(a, "cam1", 7, 10.0)
        g.extend_sightings({s: 12.5})
        bank = StructureBank(g, per_camera=2)
        codes = rng.normal(size=(3, 4, 2, 2)).astype(np.float32)
        kept = bank.add("cam1", codes, [crop_image(2), None, None], [1, 2, 3], time=5.0)
        g.merge(ids[0], ids[1])
    with open_gallery(spec, synthetic_weight=0.5) as g:
        assert g.feature_dim == D and len(g) == 6
        info = g.identity(a)
        assert (info.name, info.templates, info.synthetic, info.cameras, info.last_seen) == ("alice", 1, 3, ("cam1",), 12.5)
        first = g.templates(a)[0]
        assert first.enrolment and first.camera == "cam1" and first.time == 3.0 and g.thumbnail(first.id)[:2] == b"\xff\xd8"
        assert g.identity(ids[0]).templates == 2 and g.sightings(a)[0].track == 7
        assert [r[0] for r in g.match(near(people, rng), 0.8)] == [ids[0], ids[0], *ids[2:]]
        got, scores = g.identity_scores(people)
        for col, identity in enumerate(got):  # the max cosine over each identity's scoring rows
            rows = scoring_rows([t.kind for t in g.templates(int(identity))], g.template_features(int(identity)), 0.5)
            np.testing.assert_allclose(scores[:, col], (people @ rows.T).max(1), atol=1e-5)
        bank = StructureBank(g, per_camera=2)
        assert len(kept) == 2 and bank.counts() == {"cam1": 2} and bank.thumbnail(kept[0]) is None
        chosen = {c.id: c.code for c in bank.choose(2)}
        assert sorted(chosen) == kept  # the newest two of the camera
        for structure, code in zip(kept, codes[1:]):
            np.testing.assert_allclose(chosen[structure], code, atol=1e-2)
        g.delete(a)
        with pytest.raises(GalleryError, match=f"no identity {a}"):
            g.rename(a, "x")


def test_pgvector_search_in_the_database_agrees_with_the_matrix(url):
    rng = np.random.default_rng(1)
    people = unit(rng, 60)  # 120 templates: more than the index returns per query
    with PostgresGallery(url, D) as g:
        assert g.vector  # pgserver's PostgreSQL has pgvector: templates get an HNSW-indexed column
        ids = [g.enrol(p) for p in people]
        for i, p in zip(ids, people):
            g.add_template(i, near(p, rng, 0.3), kind="synthetic", source="s")
        queries = near(people, rng)
        in_memory = g.match(queries, 0.7)
    with PostgresGallery(url, search_in_db_above=0) as g:
        assert g._search_in_db and not g._templates  # names only in memory
        assert [r[0] for r in g.match(queries, 0.7)] == [r[0] for r in in_memory] == ids
        np.testing.assert_allclose([r[1] for r in g.match(queries, 0.7)], [r[1] for r in in_memory], atol=1e-4)
        got, scores = g.identity_scores(queries[:1], include=[ids[-1]])  # asked for: scored even when far
        assert ids[-1] in got.tolist()
        col = got.tolist().index(ids[-1])
        rows = scoring_rows([t.kind for t in g.templates(ids[-1])], g.template_features(ids[-1]), g.synthetic_weight)
        expected = (rows @ queries[0]).max()
        assert scores[0, col] == pytest.approx(float(expected), abs=1e-4)


# -- many writers ----------------------------------------------------------------------------------
def test_a_large_gallery_is_searched_with_the_longer_hnsw_list(url, monkeypatch):
    from dgnet_edge.apps.camera.storage import gallery_postgres

    rng = np.random.default_rng(12)
    with PostgresGallery(url, D) as g:
        g.enrol(unit(rng))
        g.enrol(unit(rng))
        assert g.connection.execute("SHOW hnsw.ef_search").fetchone()[0] == "128"
    monkeypatch.setattr(gallery_postgres, "GALLERY_LARGE_TEMPLATES", 1)  # 2 templates: a large gallery now
    with PostgresGallery(url, D) as g:
        assert g.ef_search == 1000 and g.connection.execute("SHOW hnsw.ef_search").fetchone()[0] == "1000"


def test_an_enrolment_joins_the_identity_another_connection_just_made_for_the_person(spec):
    rng = np.random.default_rng(10)
    person, stranger = unit(rng), unit(rng)
    with open_gallery(spec, D) as first, open_gallery(spec) as second:
        assert len(second) == 0  # the second has looked, and knows nobody
        made = first.enrol(person, camera="cam1")
        joined = second.enrol(near(person, rng), camera="cam2", unless_matches=0.8)
        assert joined == made and {t.camera for t in second.templates(made)} == {"cam1", "cam2"}
        assert second.enrol(stranger, unless_matches=0.8) != made and len(second) == 2


def test_devices_opening_an_empty_database_at_once_make_one_schema(url):
    """Four devices start together on a new database: one creates the schema, all open it."""
    barrier = threading.Barrier(4)
    opened, failed = [], []

    def device(k):
        barrier.wait()
        try:
            with PostgresGallery(url, D) as g:
                opened.append(g.enrol(unit(np.random.default_rng(k)), camera=f"cam{k}"))
        except Exception as e:  # noqa: BLE001 - the test reports what any device raised
            failed.append(repr(e))

    threads = [threading.Thread(target=device, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failed, failed
    with PostgresGallery(url) as g:
        assert sorted(i.id for i in g.identities()) == sorted(opened) and len(opened) == 4


def test_two_devices_enrolling_one_person_at_once_make_one_identity_and_lose_no_template(url):
    rng = np.random.default_rng(2)
    people = unit(rng, 8)
    devices = [PostgresGallery(url, D, queue_writes=True) for _ in range(2)]
    barrier = threading.Barrier(2)
    made: list[list[int]] = [[], []]

    def device(k):
        noise = np.random.default_rng(10 + k)
        g = devices[k]
        for person in people:
            barrier.wait()  # both look for this person at the same moment, as the app does in a frame:
            with g.transaction():
                feature = near(person, noise)
                found = g.match(feature, 0.8)[0][0]
                made[k].append(found if found is not None else
                               g.enrol(feature, camera=f"cam{k}", unless_matches=0.8))

    threads = [threading.Thread(target=device, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert made[0] == made[1], "one identity per person on both devices"
        g = devices[0]
        assert len(g) == len(people)
        for identity in made[0]:
            assert {t.camera for t in g.templates(identity)} == {"cam0", "cam1"}  # both features kept
    finally:
        for d in devices:
            d.close()


def test_an_identity_enrolled_during_an_outage_is_merged_into_its_twin_with_a_record(pg, url):
    rng = np.random.default_rng(3)
    person = unit(rng)
    with PostgresGallery(url, D, queue_writes=True) as offline:
        pg.stop("immediate")
        mine = offline.enrol(near(person, rng), camera="cam1", unless_matches=0.8)  # queued
        assert not offline.online and offline.pending_writes() == 1
        pg.start()
        with PostgresGallery(url, D) as fresh:
            theirs = fresh.enrol(near(person, rng), camera="cam2")  # the other device, while this one was away
        wait_for(lambda: offline.match(person, 0.8)[0][0] == theirs and offline.pending_writes() == 0, timeout=15)
        with PostgresGallery(url) as check:
            assert len(check) == 1 and {t.camera for t in check.templates(theirs)} == {"cam1", "cam2"}
            assert check.merges()[0][:2] == (theirs, mine)


# -- changes reach the other devices --------------------------------------------------------------
def test_changes_on_one_device_reach_another_within_a_second_without_a_full_reload(url):
    rng = np.random.default_rng(4)
    with PostgresGallery(url, D, queue_writes=True) as device, PostgresGallery(url, D) as cli:
        reloads = []
        full = device._load_cache
        device._load_cache = lambda: (reloads.append(1), full())[1]
        a = device.enrol(unit(rng))
        f = unit(rng)
        b = cli.enrol(f)
        assert wait_for(lambda: device.match(f, 0.9)[0][0] == b) < 1.0
        cli.rename(b, "bo")
        assert wait_for(lambda: device.label(b) == "bo") < 1.0
        cli.merge(a, b)
        assert wait_for(lambda: device.match(f, 0.9)[0][0] == a and device.label(a) == "bo") < 1.0
        cli.add_template(a, unit(rng), source="t")
        assert wait_for(lambda: device.label(a) and len(device._templates[a]) == 3) < 1.0  # label: the app's per-frame read
        cli.delete(a)
        assert wait_for(lambda: device.match(f, 0.9)[0][0] is None and a not in device._names) < 1.0
        assert reloads == []  # only the rows that changed were read again


# -- migrate ---------------------------------------------------------------------------------------
def _all_rows(spec):
    with open_gallery(spec, read_only=True) as g:
        return {table: read_rows(g, table) for table in COLUMNS}


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_line_error(result, pattern):
    """The command failed with exit 1 on one of the project's errors, on one line matching ``pattern``."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, DgnetEdgeError) and "\n" not in str(result.exception), result.exception
    assert re.search(pattern, str(result.exception)), str(result.exception)


def test_migrate_round_trips_exactly_both_ways_and_refuses_a_non_empty_destination(url, pg, tmp_path):
    rng = np.random.default_rng(5)
    src = tmp_path / "site.db"
    with Gallery(src, D) as g:
        a = g.enrol(unit(rng), crop_image(1), name="ann", camera="cam1", time=1.5)
        b = g.enrol(unit(rng), name="bob")
        g.add_template(a, unit(rng), crop_image(2), kind="synthetic", source="synthetic:cam1:1")
        g.open_sighting(a, "cam1", 3, 1.0)
        g.merge(a, g.enrol(unit(rng)))
        g.delete(b)
        StructureBank(g).add("cam1", rng.normal(size=(2, 4, 2, 2)), [crop_image(3), None], [1, None], time=2.0)
    original = _all_rows(src)
    assert all(original[t] for t in ("identities", "templates", "sightings", "structures"))
    result = cli("gallery", "migrate", src, url)
    assert result.exit_code == 0, result.output
    in_db = _all_rows(url)
    assert in_db == {**original, "merges": []}
    with PostgresGallery(url, D) as g:  # the database goes on from there: new ids do not collide
        c = g.enrol(unit(rng))
        g.merge(c, a)
        assert c > a and g.merges()[0][:2] == (c, a)
    in_db = _all_rows(url)
    back = tmp_path / "back.db"
    result = cli("gallery", "migrate", url, back)
    assert result.exit_code == 0, result.output
    assert _all_rows(back) == in_db  # the merge record too
    again = pg.create_database("again")
    assert cli("gallery", "migrate", back, again).exit_code == 0 and _all_rows(again) == in_db
    for destination in (url, back):
        one_line_error(cli("gallery", "migrate", src, destination), "is not empty")
    assert _all_rows(back) == in_db
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging file left


# -- outage ----------------------------------------------------------------------------------------
def test_a_server_restart_mid_run_queues_writes_and_replays_them_exactly_once(pg, url):
    rng = np.random.default_rng(6)
    with PostgresGallery(url, D, queue_writes=True) as g:
        a = g.enrol(unit(rng), name="ann")
        pg.stop("immediate")  # as a crash leaves it
        newcomer = unit(rng)
        with g.transaction():  # one frame's writes
            b = g.enrol(newcomer, crop_image(1), camera="cam1")
            s = g.open_sighting(b, "cam1", 4, 20.0)
        g.add_template(a, unit(rng), source="t")
        g.rename(a, "anna")
        g.extend_sightings({s: 25.0})
        assert not g.online and g.pending_writes() == 4
        assert g.match(newcomer, 0.9)[0][0] == b and g.label(a) == "anna"  # tracking goes on from memory
        assert g.last_sighting(a) is None and len(g) == 2
        pg.start()
        wait_for(lambda: (g.match(newcomer, 0.9), g.pending_writes())[1] == 0, timeout=15)
        assert g.online and g.replayed == 4
        batch = ("00000000-0000-4000-8000-000000000001", [("rename", a, "twice", time.time())])
        g._outbox.append(*batch)
        g._replay()  # a batch written once...
        g._outbox.append(*batch)
        g._replay()  # ...and again, as after a commit whose answer was lost: skipped
        with PostgresGallery(url) as check:
            assert len(check) == 2 and check.identity(a).name == "twice"
            assert [t.camera for t in check.templates(b)] == ["cam1"] and check.identity(a).templates == 2
            (sighting,) = check.sightings(b)
            assert (sighting.first, sighting.last) == (20.0, 25.0)
            # one write batch committed before the outage, four replayed, the hand-made one once
            assert check.connection.execute("SELECT count(*) FROM writes").fetchone()[0] == 1 + 4 + 1


def test_the_app_keeps_tracking_through_a_restart_and_its_identities_are_written_once(pg, url):
    from test_gallery import track

    from dgnet_edge.apps.camera.live.tracking.identities import IdentityParams, IdentityResolver

    rng = np.random.default_rng(9)
    ann, bob = unit(rng), unit(rng)
    image = np.zeros((48, 64, 3), np.uint8)
    with PostgresGallery(url, D, queue_writes=True) as g:
        resolver = IdentityResolver(g, 0.7, IdentityParams(decide_after=3, template_interval_s=1.0, sighting_flush_s=1.0,
                                                          enrol_min_motion=0))
        for t in range(3):
            resolver.update("cam1", 0.1 * t, [track(1, near(ann, rng))], image)
        a = resolver.identity_of("cam1", 1)
        assert a is not None
        pg.stop("immediate")
        kinds = []
        for step in range(30):  # 3 s of frames while the database is away: Ann stays, Bob arrives
            t = 1.0 + 0.1 * step
            kinds += [e.kind for e in resolver.update("cam1", t, [track(1, near(ann, rng)),
                                                                  track(2, near(bob, rng), box=(40, 2, 50, 30))], image).events]
        b = resolver.identity_of("cam1", 2)
        assert kinds == ["new_identity", "enter"] and b not in (None, a) and resolver.identity_of("cam1", 1) == a
        assert not g.online and g.pending_writes() > 0
        pg.start()
        step = 0
        while g.pending_writes() and step < 150:  # the frames go on; the queue is written when the database is back
            step += 1
            resolver.update("cam1", 4.0 + 0.1 * step, [track(1, near(ann, rng)), track(2, near(bob, rng), box=(40, 2, 50, 30))],
                            image)
            time.sleep(0.1)
        assert g.pending_writes() == 0 and g.online
        resolver.close()
    with PostgresGallery(url) as check:
        assert [i.id for i in check.identities()] == [a, b]
        assert check.templates(b)[0].enrolment and check.templates(b)[0].source == "track:cam1:2"
        (sighting,) = check.sightings(b)  # one sighting, written once, its end moved by the replayed writes
        assert sighting.first == pytest.approx(1.2) and sighting.last > 4.0


SPOOLING_CHILD = """
import sys, time
from pathlib import Path
import numpy as np
from dgnet_edge.apps.camera.storage.gallery_postgres import PostgresGallery
rng = np.random.default_rng(0)
g = PostgresGallery(sys.argv[1], 16, queue_writes=True, spool=Path(sys.argv[2]))
print(g.enrol(rng.normal(size=16), name="online"), flush=True)
sys.stdin.readline()  # the server is down now
ids = []
for k in range(3):
    with g.transaction():
        identity = g.enrol(rng.normal(size=16), rng.integers(0, 255, (32, 16, 3), dtype=np.uint8), name=f"offline{k}")
        g.add_template(identity, rng.normal(size=16), source="t")
    ids.append(identity)
print(*ids, g.pending_writes(), g.online, flush=True)
time.sleep(600)
"""


def test_a_device_killed_during_an_outage_writes_its_spool_when_it_next_opens(pg, url, tmp_path):
    from dgnet_edge.apps.camera.storage.spool import WriteSpool

    spool = tmp_path / "spool" / "frames.sqlite3"
    child = subprocess.Popen([sys.executable, "-c", SPOOLING_CHILD, url, str(spool)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        online = int(child.stdout.readline() or pytest.fail(child.stderr.read()))
        pg.stop("immediate")
        child.stdin.write("\n")
        child.stdin.flush()
        *offline, pending, is_online = child.stdout.readline().split()
        assert (pending, is_online) == ("3", "False")
        with pytest.raises(GalleryError, match="in use by another process"):
            WriteSpool(spool)  # one spool, one process
    finally:
        child.kill()  # as kill -9: no goodbye, the queue is only in the spool
        child.wait()
        pg.start()
    with PostgresGallery(url) as check:
        assert [i.id for i in check.identities()] == [online]
    with PostgresGallery(url, 16, queue_writes=True, spool=spool) as g:
        assert g.replayed == 3 and g.pending_writes() == 0
        assert [i.name for i in g.identities()] == ["online", "offline0", "offline1", "offline2"]
    with PostgresGallery(url, 16, queue_writes=True, spool=spool) as g:
        assert g.replayed == 0  # written once, then forgotten
    with PostgresGallery(url) as check:
        assert [i.id for i in check.identities()] == [online, *map(int, offline)]
        assert all(check.identity(int(i)).templates == 2 for i in offline)
        assert check.connection.execute("SELECT count(*) FROM writes").fetchone()[0] == 1 + 3


def test_more_new_people_in_an_outage_than_ids_in_hand_wait_and_are_enrolled_when_it_ends(pg, url, monkeypatch):
    from test_gallery import track

    from dgnet_edge.apps.camera.live.tracking.identities import IdentityParams, IdentityResolver
    from dgnet_edge.apps.camera.storage import gallery_postgres

    monkeypatch.setitem(gallery_postgres.RESERVE, "identities", 2)
    rng = np.random.default_rng(10)
    people = [unit(rng) for _ in range(4)]
    image = np.zeros((48, 64, 3), np.uint8)

    def frame(t):
        tracks = [track(k + 1, near(p, rng), box=(2 + 12 * k, 2, 12 + 12 * k, 30)) for k, p in enumerate(people)]
        return [e.kind for e in resolver.update("cam1", t, tracks, image).events]

    with PostgresGallery(url, D, queue_writes=True) as g:
        resolver = IdentityResolver(g, 0.7, IdentityParams(decide_after=3, enrol_min_motion=0))
        pg.stop("immediate")
        kinds = sum((frame(0.1 * step) for step in range(10)), [])
        assert kinds.count("new_identity") == 2 and not g.online  # two ids in hand: two people wait, no error
        assert [resolver.identity_of("cam1", k + 1) is None for k in range(4)] == [False, False, True, True]
        pg.start()
        step = 0
        while (g.pending_writes() or resolver.identity_of("cam1", 4) is None) and step < 150:
            step += 1
            kinds += frame(1.0 + 0.1 * step)
            time.sleep(0.1)
        assert kinds.count("new_identity") == 4 and g.online and g.pending_writes() == 0
        resolver.close()
    with PostgresGallery(url) as check:
        assert len(check) == 4


def test_during_an_outage_a_device_still_knows_where_it_last_saw_a_person(pg, url):
    with PostgresGallery(url, D, queue_writes=True) as g:
        a = g.enrol(unit(np.random.default_rng(11)))
        s = g.open_sighting(a, "cam2", 3, 5.0)
        g.extend_sightings({s: 7.5})
        pg.stop("immediate")
        try:
            g.extend_sightings({s: 9.0})  # queued
            seen = g.last_sighting(a)
            assert not g.online and (seen.camera, seen.track, seen.first, seen.last) == ("cam2", 3, 5.0, 9.0)
        finally:
            pg.start()


def test_without_queueing_a_lost_connection_is_an_error(pg, url):
    with PostgresGallery(url, D) as g:
        pg.stop("immediate")
        try:
            with pytest.raises(GalleryError, match="lost the gallery database"):
                g.enrol(unit(np.random.default_rng(7)))
        finally:
            pg.start()


# -- kill -9 ---------------------------------------------------------------------------------------
CHILD = """
import sys
import numpy as np
from dgnet_edge.apps.camera.storage.gallery_postgres import PostgresGallery
rng = np.random.default_rng(0)
with PostgresGallery(sys.argv[1], 16) as g:
    while True:
        identity = g.enrol(rng.normal(size=16), rng.integers(0, 255, (32, 16, 3), dtype=np.uint8), name="p")
        template = g.add_template(identity, rng.normal(size=16), source="t")
        print(identity, template, flush=True)
"""


def test_kill_9_keeps_every_committed_enrolment(url):
    child = subprocess.Popen([sys.executable, "-c", CHILD, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    written = [child.stdout.readline() for _ in range(3)]  # killed mid-stream, after at least 3 commits
    assert all(line.strip() for line in written), child.stderr.read()
    child.send_signal(signal.SIGKILL)
    child.wait()
    said = [tuple(int(v) for v in line.split()) for line in [*written, *child.stdout.read().splitlines()]]
    with PostgresGallery(url) as g:
        for identity, template in said:
            assert template in {t.id for t in g.templates(identity)}
        for info in g.identities():  # never half an enrolment
            assert any(t.enrolment for t in g.templates(info.id))
    assert len(said) >= 3


# -- errors ----------------------------------------------------------------------------------------
def test_bad_urls_and_unreachable_servers_are_one_line_errors(pg, url):
    from pg_server import free_port

    cases = [
        (f"postgresql://postgres@127.0.0.1:{free_port()}/g", "cannot reach the gallery database"),
        ("postgresql://postgres@127.0.0.1:notaport/g", "not a valid PostgreSQL URL|cannot reach"),
        (pg.url("no_such_database"), "cannot reach the gallery database"),
        (url, "holds no gallery yet"),
    ]
    for bad, message in cases:
        for args in (["gallery", "list", "--gallery", bad], ["gallery", "rename", "1", "x", "--gallery", bad],
                     ["gallery", "migrate", bad, "x.db"]):
            one_line_error(cli(*args), message)
    run = subprocess.run([sys.executable, "-c", "from dgnet_edge.cli.main import main; main()", "gallery", "list",
                          "--gallery", cases[0][0]], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and run.stderr.strip().startswith("error: cannot reach the gallery database"), run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    result = cli("gallery", "list", "--gallery", "postgresql://ann:secret@127.0.0.1:1/g")
    assert result.exit_code == 1 and "secret" not in result.output
    with PostgresGallery(url, D) as g:
        g.enrol(unit(np.random.default_rng(8)))
    with pytest.raises(GalleryError, match="holds 16-d features but the embedder gives 8-d"):
        PostgresGallery(url, 8)


# -- the camera app on a shared gallery -------------------------------------------------------------
def test_demo_runs_on_a_postgres_gallery_and_a_second_run_knows_the_people(tiny_bench, tiny_dgnet_export, tiny_world,
                                                                            url, capsys):
    import json

    from dgnet_edge.cli.main import main
    from dgnet_edge.data.video.world import load_site

    site = load_site(tiny_bench)
    args = ["demo", *sum((["--source", str(site.camera_dir(n))] for n in site.camera_names), []),
            "--export", str(tiny_dgnet_export), "--threshold", "0.9", "--gallery", url, "--json", "--no-progress",
            "--no-show"]
    summaries = []
    for synthesis in (["--synthesise", "-k", "4"], ["--no-synthesise"]):
        with pytest.raises(SystemExit) as e:
            main(args + synthesis)
        captured = capsys.readouterr()
        assert e.value.code in (None, 0), captured.err
        summaries.append(json.loads(captured.out))
    assert summaries[0]["identities"] >= 1 and summaries[0]["events"].get("new_identity", 0) >= 1
    synthesis = summaries[0]["synthesis"]  # the worker thread writes through its own connection
    assert set(synthesis["structures"]) == {"cam1", "cam2"} and synthesis["failed"] == 0 and synthesis["done"] >= 1
    assert summaries[1]["events"].get("reidentified", 0) > 0
    with PostgresGallery(url) as g:
        assert len(g) == summaries[1]["identities"]
        assert all(any(t.enrolment for t in g.templates(i.id)) for i in g.identities())
        assert any(t.kind == "synthetic" for i in g.identities() for t in g.templates(i.id))
        assert set(StructureBank(g).counts()) == {"cam1", "cam2"}
    photo = sorted((tiny_world / "query").glob("*.jpg"))[0]  # and `gallery enrol` renders from the shared bank
    with pytest.raises(SystemExit) as e:
        main(["gallery", "enrol", str(photo), "--name", "Ann", "--export", str(tiny_dgnet_export), "--gallery", url,
              "--synthesise", "-k", "3", "--json"])
    captured = capsys.readouterr()
    assert e.value.code in (None, 0), captured.err
    enrolled = json.loads(captured.out)
    assert enrolled["synthetic"] == 3 and "@" in enrolled["gallery"]
    with PostgresGallery(url) as g:
        assert g.identity(enrolled["id"]).name == "Ann" and g.identity(enrolled["id"]).synthetic == 3
