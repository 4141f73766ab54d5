"""Bad input to the gallery and the commands that write over their inputs: damaged, foreign,
read-only and locked gallery files, names and ids, the enrolment photo, the export's threshold,
and outputs that would destroy an input. Each case ends in a one-line error or works; none in a
traceback, a silent success or lost data.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_bad_input import one_line_error, reid_checkpoint, reid_export, reid_int8_export, run_cli  # noqa: F401

from dgnet_edge.apps.camera.measure.threshold import THRESHOLD_FILE, read_threshold
from dgnet_edge.apps.camera.storage import gallery as gallery_module
from dgnet_edge.apps.camera.storage.gallery import Gallery, GalleryError
from dgnet_edge.boxes import l2_normalise
from dgnet_edge.errors import ExportError, OutputPathError, UsageError

D = 16


def make_gallery(path: Path, names=("alice", None)) -> list[int]:
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 255, (40, 20, 3), dtype=np.uint8)
    with Gallery(path, D) as g:
        ids = [g.enrol(l2_normalise(rng.normal(size=D)), crop, name=name, camera="cam1") for name in names]
        g.open_sighting(ids[0], "cam1", 3, 1.0)
    return ids


def sql(path: Path, *statements: str) -> None:
    db = sqlite3.connect(path)
    for statement in statements:
        db.execute(statement)
    db.commit()
    db.close()


# -- outputs that hold an input ---------------------------------------------------------------------
def test_refuse_overwriting_inputs(tmp_path):
    from dgnet_edge.paths import refuse_overwriting_inputs

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "in.pt").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "out")
    for output, given in ((tmp_path / "out", tmp_path / "out" / "in.pt"), (tmp_path, tmp_path / "out" / "in.pt"),
                          (tmp_path / "out" / "in.pt", tmp_path / "out" / "in.pt"),
                          (tmp_path / "link", tmp_path / "out" / "in.pt")):
        with pytest.raises(OutputPathError, match="choose another path"):
            refuse_overwriting_inputs(output, [None, given])
    refuse_overwriting_inputs(tmp_path / "out" / "new", [tmp_path / "out" / "in.pt"])
    refuse_overwriting_inputs(tmp_path / "other", [tmp_path / "out" / "in.pt", None])


def test_gallery_export_never_replaces_the_folder_that_holds_the_gallery(tmp_path, capsys):
    out = tmp_path / "out"
    make_gallery(tmp_path / "g.db")
    assert run_cli(["gallery", "export", out, "--gallery", tmp_path / "g.db"], capsys)[0] == 0
    path = out / "g.db"  # the gallery now lives in an earlier export
    shutil.move(tmp_path / "g.db", path)
    code, _, err = run_cli(["gallery", "export", out, "--gallery", path], capsys)
    line = one_line_error(err)
    assert code == 1 and f"holds the input {path}" in line, line
    with Gallery(path) as g:
        assert len(g) == 2


def test_export_force_never_replaces_the_folder_that_holds_its_inputs(tmp_path, capsys):
    out = tmp_path / "out"
    (out / "images").mkdir(parents=True)
    checkpoint = out / "last.pt"
    checkpoint.write_bytes(b"a checkpoint")  # refused before it is read
    code, _, err = run_cli(["export", checkpoint, "--out", out, "--force", "--no-progress"], capsys)
    line = one_line_error(err)
    assert code == 1 and f"holds the input {checkpoint}" in line, line
    outside = tmp_path / "last.pt"
    outside.write_bytes(b"a checkpoint")
    code, _, err = run_cli(["export", outside, "--out", out, "--force", "--int8", "--calib-data", out / "images",
                            "--no-progress"], capsys)
    line = one_line_error(err)
    assert code == 1 and "holds the input" in line and "images" in line, line
    assert checkpoint.read_bytes() == b"a checkpoint" and (out / "images").is_dir()


def test_calib_cache_never_writes_over_the_exports_files(reid_int8_export, tmp_path, capsys):
    export = tmp_path / "export"
    shutil.copytree(reid_int8_export, export)
    ranges = (export / "calibration.json").read_bytes()
    code, _, err = run_cli(["calib", "cache", export, "--tensorrt", "10.3.0", "--out", export / "calibration.json"],
                           capsys)
    line = one_line_error(err)
    assert code == 1 and "is the input" in line, line
    assert (export / "calibration.json").read_bytes() == ranges


# -- damaged and foreign gallery files ----------------------------------------------------------------
DAMAGE = {
    "feature_dim missing": ("DELETE FROM meta WHERE key = 'feature_dim'",),
    "feature_dim not an integer": ("UPDATE meta SET value = 'sixteen' WHERE key = 'feature_dim'",),
    "feature_dim zero": ("UPDATE meta SET value = '0' WHERE key = 'feature_dim'",),
    "feature blob too short": ("UPDATE templates SET feature = x'000000000000' WHERE id = 1",),
    "feature blob of another size": ("UPDATE templates SET feature = zeroblob(32) WHERE id = 1",),
    "templates table missing": ("DROP TABLE templates",),
    "a column missing": ("ALTER TABLE sightings DROP COLUMN track",),
}
WHAT = {"feature_dim missing": "no feature_dim", "feature_dim not an integer": "'sixteen'",
        "feature_dim zero": "'0'", "feature blob too short": "template 1 holds a feature of 6 bytes",
        "feature blob of another size": "template 1 holds a feature of 32 bytes",
        "templates table missing": "no templates table", "a column missing": "sightings table lacks the column(s) track"}
READERS = {"list": ["gallery", "list"], "show": ["gallery", "show", "1"], "export": ["gallery", "export", "OUT"]}


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_gallery_is_one_line_saying_what_is_wrong(damage, reader, tmp_path, capsys):
    path = tmp_path / "g.db"
    make_gallery(path)
    sql(path, *DAMAGE[damage])
    args = [str(tmp_path / "out") if a == "OUT" else a for a in READERS[reader]]
    code, _, err = run_cli([*args, "--gallery", path], capsys)
    line = one_line_error(err)
    assert code == 1 and "not a readable gallery" in line and WHAT[damage] in line, line
    assert not (tmp_path / "out").exists()
    with pytest.raises(GalleryError, match=f"not a readable gallery .*{re.escape(WHAT[damage])}"):
        Gallery(path, D)  # as the camera app opens it


@pytest.mark.parametrize("reader", sorted(READERS))
def test_a_file_that_is_not_a_gallery_is_one_line(reader, tmp_path, capsys):
    (tmp_path / "text.db").write_text("not a database")
    sql(tmp_path / "other.db", "CREATE TABLE t (x)")
    for name, what in (("text.db", "not an SQLite file"), ("other.db", "SQLite database but not a gallery")):
        args = [str(tmp_path / "out") if a == "OUT" else a for a in READERS[reader]]
        code, _, err = run_cli([*args, "--gallery", tmp_path / name], capsys)
        line = one_line_error(err)
        assert code == 1 and what in line, line


def test_a_damaged_structure_code_is_one_line(tmp_path):
    from dgnet_edge.apps.camera.storage.structure_bank import StructureBank

    path = tmp_path / "g.db"
    make_gallery(path)
    with Gallery(path) as g:
        StructureBank(g).add("cam1", np.zeros((1, 2, 4, 2), np.float32), [None], [1], 0.0)
    sql(path, "UPDATE structures SET code = x'0000'")
    with Gallery(path) as g, pytest.raises(GalleryError, match="structure 1 holds a code of 2 bytes"):
        StructureBank(g).choose(1, shape=(2, 4, 2))


# -- read-only and locked gallery files -----------------------------------------------------------------
@pytest.fixture()
def immutable_gallery(tmp_path):
    """A gallery file nobody may write (chattr +i: read-only even for root), in a writable folder."""
    path = tmp_path / "g.db"
    make_gallery(path)
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
        pytest.skip("chattr +i is not available on this file system")
    yield path
    subprocess.run(["chattr", "-i", str(path)], check=True)


@pytest.fixture()
def read_only_mount(tmp_path):
    """A gallery on a file system mounted read-only (SQLite cannot make its -shm file there)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(folder)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs is not allowed here")
    try:
        make_gallery(folder / "g.db")
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        yield folder / "g.db"
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.parametrize("where", ["immutable_gallery", "read_only_mount"])
def test_a_read_only_gallery_is_read_and_refuses_changes_saying_so(where, request, tmp_path, capsys):
    path = request.getfixturevalue(where)
    code, out, err = run_cli(["gallery", "list", "--gallery", path, "--json"], capsys)
    assert code == 0 and [i["name"] for i in json.loads(out)] == ["alice", None], err
    code, out, err = run_cli(["gallery", "list", "--gallery", path], capsys)
    assert code == 0 and "alice" in out, err
    assert run_cli(["gallery", "show", "1", "--gallery", path], capsys)[0] == 0
    code, _, err = run_cli(["gallery", "export", tmp_path / "out", "--gallery", path], capsys)
    assert code == 0 and len(json.loads((tmp_path / "out" / "gallery.json").read_text())["identities"]) == 2, err
    for args in (["rename", "1", "bob"], ["delete", "2"], ["merge", "1", "2"]):
        code, _, err = run_cli(["gallery", *args, "--gallery", path], capsys)
        line = one_line_error(err)
        assert code == 1 and "read-only" in line and "not a readable" not in line, line
    with pytest.raises(GalleryError, match="read-only"):
        Gallery(path, D)  # the camera app (and enrolment) open it to write: refused at once
    with Gallery(path, read_only=True) as g:
        assert [i.name for i in g.identities()] == ["alice", None]


def test_a_write_lock_held_elsewhere_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    path = tmp_path / "g.db"
    make_gallery(path)
    monkeypatch.setattr(gallery_module, "BUSY_TIMEOUT_S", 0.2, raising=False)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another program writing, and slow about it
    try:
        assert run_cli(["gallery", "list", "--gallery", path], capsys)[0] == 0  # readers do not wait
        code, _, err = run_cli(["gallery", "rename", "1", "bob", "--gallery", path], capsys)
        line = one_line_error(err)
        assert code == 1 and "locked" in line and "write lock" in line, line
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert run_cli(["gallery", "rename", "1", "bob", "--gallery", path], capsys)[0] == 0


# -- names and ids ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["[/b]", "[b]bold[/b]", "[/x] Bob", "[link=x]y"])
def test_names_print_literally(name, tmp_path, monkeypatch, capsys):
    from dgnet_edge.cli import output

    monkeypatch.setattr(output.out, "width", 200)  # no cell wraps the name
    path = tmp_path / "g.db"
    (identity, _) = make_gallery(path)
    code, out, err = run_cli(["gallery", "rename", identity, name, "--gallery", path], capsys)
    assert code == 0 and name in out, err
    for args in (["list"], ["show", identity]):
        code, out, err = run_cli(["gallery", *args, "--gallery", path], capsys)
        assert code == 0 and name in out, err


@pytest.mark.parametrize("name", ["", "   ", "\t", "x" * 100_000, "two\nlines"])
def test_names_that_cannot_name_a_person_are_refused(name, tmp_path, capsys):
    path = tmp_path / "g.db"
    (identity, _) = make_gallery(path)
    code, _, err = run_cli(["gallery", "rename", identity, name, "--gallery", path], capsys)
    line = one_line_error(err)
    assert code == 2 and "name" in line and len(line) < 300, line
    with Gallery(path) as g:
        assert g.identity(identity).name == "alice"
        with pytest.raises(UsageError):
            g.enrol(l2_normalise(np.ones(D)), name=name)
        assert len(g) == 2


@pytest.mark.parametrize("command", [["show", "ID"], ["rename", "ID", "bob"], ["delete", "ID"], ["merge", "1", "ID"],
                                     ["merge", "ID", "1"]])
@pytest.mark.parametrize("identity", ["99999999999999999999", "-99999999999999999999"])
def test_ids_beyond_sqlites_integers_are_unknown_ids(command, identity, tmp_path, capsys):
    path = tmp_path / "g.db"
    make_gallery(path)
    args = [identity if a == "ID" else a for a in command[1:]]
    code, _, err = run_cli(["gallery", command[0], "--gallery", path, "--", *args], capsys)
    line = one_line_error(err)
    assert code == 1 and f"no identity {identity}" in line, line


# -- enrolment ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory) -> Path:
    """Images no person crop can be: too small, a strip, blank."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    images = {"1x1": rng.integers(0, 255, (1, 1, 3)), "4x2000": rng.integers(0, 255, (2000, 4, 3)),
              "2000x4": rng.integers(0, 255, (4, 2000, 3)), "strip": rng.integers(0, 255, (20, 400, 3)),
              "grey": np.full((128, 64, 3), 128), "black": np.zeros((128, 64, 3))}
    for name, image in images.items():
        cv2.imwrite(str(folder / f"{name}.png"), image.astype(np.uint8))
    cv2.imwrite(str(folder / "grey.jpg"), np.full((128, 64, 3), 90, np.uint8))
    return folder


@pytest.mark.parametrize("photo, what", [("1x1.png", "at least 16 pixels"), ("4x2000.png", "at least 16 pixels"),
                                         ("2000x4.png", "at least 16 pixels"), ("strip.png", "no person's shape"),
                                         ("grey.png", "no person found"), ("black.png", "no person found"),
                                         ("grey.jpg", "no person found")])
def test_enrol_refuses_a_photo_that_shows_no_person(photo, what, photo_dir, reid_export, tmp_path, capsys):
    path = tmp_path / "g.db"
    code, _, err = run_cli(["gallery", "enrol", photo_dir / photo, "--name", "x", "--export", reid_export,
                            "--gallery", path], capsys)
    line = one_line_error(err)
    assert code == 1 and what in line and photo in line, line
    assert not path.exists()


@pytest.mark.parametrize("name", ["", "  ", "x" * 100_000])
def test_enrol_refuses_a_name_before_any_work(name, tiny_world, tmp_path, capsys):
    photo = sorted((tiny_world / "query").iterdir())[0]
    code, _, err = run_cli(["gallery", "enrol", photo, "--name", name, "--export", tmp_path / "no-export",
                            "--gallery", tmp_path / "g.db"], capsys)
    line = one_line_error(err)
    assert code == 2 and "name" in line, line
    assert not (tmp_path / "g.db").exists()


def test_enrol_prints_a_name_with_brackets_literally(tiny_world, reid_export, tmp_path, capsys):
    photo = sorted((tiny_world / "query").iterdir())[0]
    path = tmp_path / "g.db"
    code, out, err = run_cli(["gallery", "enrol", photo, "--name", "[/x] Bob", "--export", reid_export,
                              "--gallery", path], capsys)
    assert code == 0 and "enrolled [/x] Bob as identity 1" in out, err


@pytest.mark.parametrize("command", ["demo", "enrol", "calibrate"])
def test_an_unknown_precision_is_a_usage_error(command, tiny_world, reid_export, tmp_path, capsys):
    photo = sorted((tiny_world / "query").iterdir())[0]
    args = {"demo": ["demo", "--source", tiny_world / "query", "--export", reid_export, "--gallery", tmp_path / "g.db"],
            "enrol": ["gallery", "enrol", photo, "--name", "x", "--export", reid_export, "--gallery", tmp_path / "g.db"],
            "calibrate": ["gallery", "calibrate", reid_export, "--data", tiny_world]}[command]
    code, _, err = run_cli([*args, "--precision", "bogus", "--no-progress" if command == "demo" else "--json"], capsys)
    assert code == 2 and "'bogus'" in err and "fp16" in err and "Traceback" not in err, err
    assert not (tmp_path / "g.db").exists()


def test_the_runtime_refuses_an_unknown_precision_even_with_backend_auto(reid_export):
    from dgnet_edge.runtime.embedder import Embedder

    with pytest.raises(UsageError, match="precision 'bogus'"):
        Embedder.open(reid_export, backend="auto", precision="bogus")


# -- the export's threshold -----------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1.5", "-2", '"0.5"', "true", "null"])
def test_a_threshold_file_with_no_cosine_score_is_one_line(value, tmp_path):
    (tmp_path / THRESHOLD_FILE).write_text(
        f'{{"format": "dgnet-edge-reid-threshold", "version": 1, "threshold": {value}}}')
    with pytest.raises(ExportError, match=f"{tmp_path / THRESHOLD_FILE} is not a readable threshold file") as e:
        read_threshold(tmp_path)
    assert "\n" not in str(e.value)
    (tmp_path / THRESHOLD_FILE).write_text('{"format": "dgnet-edge-reid-threshold", "version": 1, "threshold": 0.25}')
    assert read_threshold(tmp_path) == 0.25
