"""The write spool of a PostgreSQL gallery: batches kept in order across processes, one process at a
time, every value a write holds coming back as it went in."""

from __future__ import annotations

import numpy as np
import pytest

from dgnet_edge.apps.camera.storage.gallery_base import GalleryError
from dgnet_edge.apps.camera.storage.spool import WriteSpool, spool_folder

WRITES = [("identity", 7, None, 1.5), ("template", 9, 7, b"\x00\xffraw", None, "cam1", np.float64(2.25), "real", "t", True),
          ("extend", [(3, 4.0), (5, 6.5)]), ("structures", "cam1", [(1, (2, 0.5, "s", b"code", None))], 64)]


def test_batches_come_back_in_order_as_written_and_outlive_the_process(tmp_path):
    path = tmp_path / "a" / "frames.sqlite3"
    spool = WriteSpool(path)
    spool.append("u1", WRITES[:2])
    spool.append("u2", WRITES[2:])
    spool.close()
    spool = WriteSpool(path)  # the next run
    assert len(spool) == 2
    batch_id, writes = spool.first()
    assert batch_id == "u1" and writes == [("identity", 7, None, 1.5), ("template", 9, 7, b"\x00\xffraw", None, "cam1", 2.25, "real", "t", True)]
    spool.pop("u1")
    assert spool.first() == ("u2", [("extend", ((3, 4.0), (5, 6.5))), ("structures", "cam1", ((1, (2, 0.5, "s", b"code", None)),), 64)])
    spool.pop("u2")
    assert len(spool) == 0 and spool.first() is None
    spool.close()


def test_one_process_at_a_time_and_bad_input_is_refused(tmp_path):
    path = tmp_path / "frames.sqlite3"
    with pytest.raises(TypeError, match="cannot hold a ndarray"):
        WriteSpool(None).append("u", [("template", np.zeros(3))])
    held = WriteSpool(path)
    with pytest.raises(GalleryError, match="in use by another process"):
        WriteSpool(path)
    held.close()
    WriteSpool(path).close()  # free again
    (tmp_path / "file").write_text("x")
    with pytest.raises(GalleryError, match="cannot write there .*gallery.spool"):
        WriteSpool(tmp_path / "file" / "frames.sqlite3")  # its folder is a file
    bad = tmp_path / "bad.sqlite3"
    bad.write_bytes(b"not a database" * 100)
    with pytest.raises(GalleryError, match="write spool .*bad.sqlite3"):
        WriteSpool(bad)


def test_each_device_cameras_and_database_get_their_own_folder(tmp_path):
    url = "postgresql://reid:secret@db/site"
    door = spool_folder(str(tmp_path), url, "door", ["door1", "door2"])
    assert door.parent == tmp_path and door.name.startswith("door-") and "secret" not in str(door)
    assert door == spool_folder(str(tmp_path), "postgresql://reid:other@db/site", "door", ["door2", "door1"])
    assert door != spool_folder(str(tmp_path), url, "door", ["yard"])
    assert door != spool_folder(str(tmp_path), "postgresql://reid@db/other", "door", ["door1", "door2"])
