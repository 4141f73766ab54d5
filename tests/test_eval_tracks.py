"""Tracking metrics on a video bench: TrackEval's figures, the multi-camera IDF1, bad prediction files, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dgnet_edge.cli.main import main
from dgnet_edge.data.video.mot import MotRows, write_mot
from dgnet_edge.data.video.world import FORMAT, VERSION, load_site
from dgnet_edge.errors import DatasetError
from dgnet_edge.eval.tracking import evaluate_tracks, read_predictions

FRAMES = 30


def _walker(gid: int, x0: float, dx: float, frames: range, y: float = 40.0, vis: float = 1.0) -> list[tuple]:
    return [(f, gid, x0 + dx * f, y, 20.0, 50.0, vis) for f in frames]


def _rows(items: list[tuple]) -> MotRows:
    a = np.asarray(items, np.float64).reshape(-1, 7)
    return MotRows.of(a[:, 0], a[:, 1], a[:, 2:6], None, a[:, 6])


def _write_site(root, gts: dict[str, MotRows]) -> None:
    """A bench folder in the layout `dgnet-edge data video` writes, with hand-made ground truth."""
    for name, gt in gts.items():
        write_mot(root / name / "gt" / "gt.txt", gt, "gt")
        write_mot(root / name / "det" / "det.txt", MotRows.empty(), "det")
        (root / name / "seqinfo.ini").write_text(
            f"[Sequence]\nname = {name}\nimDir = img1\nframeRate = 10\nseqLength = {FRAMES}\nimWidth = 320\nimHeight = 240\nimExt = .jpg\n"
        )
    ids = sorted({int(i) for gt in gts.values() for i in gt.ids})
    site = {
        "format": FORMAT, "version": VERSION, "seed": 0, "fps": 10, "width": 320, "height": 240, "frames": FRAMES,
        "cameras": [{"name": n, "dir": n, "video": None} for n in gts], "identities": ids, "detections": {},
    }
    (root / "site.json").write_text(json.dumps(site))


@pytest.fixture()
def two_cameras(tmp_path):
    """Persons 1 and 2 cross both cameras; person 3 is seen by cam2 only, partly behind something at first."""
    cam1 = _rows(_walker(1, 0, 5, range(1, 21)) + _walker(2, 200, -4, range(5, 30), y=100))
    cam2 = _rows(
        _walker(1, 10, 4, range(8, 30)) + _walker(2, 250, -5, range(1, 25), y=120)
        + _walker(3, 100, 0, range(1, 11), y=10, vis=0.1) + _walker(3, 100, 1, range(11, 31), y=10)
    )
    root = tmp_path / "bench"
    _write_site(root, {"cam1": cam1, "cam2": cam2})
    return root, {"cam1": cam1, "cam2": cam2}


def _swap(rows: MotRows, a: int, b: int) -> MotRows:
    ids = rows.ids.copy()
    ids[rows.ids == a], ids[rows.ids == b] = b, a
    return MotRows(rows.frame, ids, rows.boxes, rows.scores, rows.visibility)


def test_perfect_tracks_score_100(two_cameras):
    root, gt = two_cameras
    result = evaluate_tracks(gt, root)
    for m in [*result.per_camera.values(), result.combined]:
        assert (m.hota, m.idf1, m.mota, m.id_switches) == (100.0, 100.0, 100.0, 0)
    assert result.multi_camera_idf1 == 100.0


def test_identity_swap_across_cameras_costs_only_multi_camera_idf1(two_cameras):
    root, gt = two_cameras
    swapped = {"cam1": gt["cam1"], "cam2": _swap(gt["cam2"], 1, 2)}  # cam2 calls person 1 "2" and 2 "1"
    result = evaluate_tracks(swapped, root)
    assert all(m.idf1 == 100.0 and m.hota == 100.0 for m in result.per_camera.values())
    assert result.combined.idf1 == 100.0
    assert result.multi_camera_idf1 < 90.0


def test_id_switch_within_a_camera_is_counted(two_cameras):
    root, gt = two_cameras
    ids = gt["cam1"].ids.copy()
    ids[(gt["cam1"].ids == 1) & (gt["cam1"].frame > 10)] = 9  # person 1's track breaks half way
    broken = MotRows(gt["cam1"].frame, ids, gt["cam1"].boxes, gt["cam1"].scores, gt["cam1"].visibility)
    result = evaluate_tracks({"cam1": broken, "cam2": gt["cam2"]}, root)
    assert result.per_camera["cam1"].id_switches == 1 and result.per_camera["cam1"].idf1 < 100.0
    assert result.per_camera["cam2"].idf1 == 100.0


def test_barely_visible_ground_truth_is_ignored_with_the_tracks_on_it(two_cameras):
    root, gt = two_cameras
    hidden = gt["cam2"].select(gt["cam2"].visibility >= 0.25)  # the tracker does not box person 3 behind the object
    result = evaluate_tracks({"cam1": gt["cam1"], "cam2": hidden}, root)
    assert result.per_camera["cam2"].mota == 100.0  # neither a miss...
    full = evaluate_tracks(gt, root)
    assert full.per_camera["cam2"].mota == 100.0 and full.per_camera["cam2"].pred_boxes == len(hidden)  # ...nor a false positive
    strict = evaluate_tracks({"cam1": gt["cam1"], "cam2": hidden}, root, min_visibility=0.0)
    assert strict.per_camera["cam2"].mota < 100.0


def test_reproduces_trackeval_on_its_own_file_layout(two_cameras, tmp_path):
    """Our loading + TrackEval's metric classes give what TrackEval's MOTChallenge evaluator gives."""
    import trackeval

    root, gt = two_cameras
    rng = np.random.default_rng(0)
    noisy = {}
    for name, rows in gt.items():
        keep = rng.random(len(rows)) > 0.2
        boxes = rows.boxes + rng.normal(0, 3, rows.boxes.shape).astype(np.float32)
        ids = np.where(rng.random(len(rows)) < 0.1, 50 + np.arange(len(rows)), rows.ids)
        noisy[name] = MotRows.of(rows.frame[keep], ids[keep], boxes[keep], np.full(int(keep.sum()), 0.9))
    site = load_site(root)
    for name in site.camera_names:
        write_mot(tmp_path / "trackers" / "t" / "data" / f"{name}.txt", noisy[name])
    ours = evaluate_tracks(read_predictions(tmp_path / "trackers" / "t" / "data", site), site, min_visibility=0.0)
    dataset = trackeval.datasets.MotChallenge2DBox({
        "GT_FOLDER": str(root), "TRACKERS_FOLDER": str(tmp_path / "trackers"), "TRACKERS_TO_EVAL": ["t"],
        "SEQ_INFO": {name: FRAMES for name in site.camera_names}, "SKIP_SPLIT_FOL": True, "PRINT_CONFIG": False,
    })
    evaluator = trackeval.Evaluator({
        "USE_PARALLEL": False, "PRINT_RESULTS": False, "PRINT_CONFIG": False, "OUTPUT_SUMMARY": False,
        "OUTPUT_DETAILED": False, "PLOT_CURVES": False, "TIME_PROGRESS": False, "DISPLAY_LESS_PROGRESS": True,
    })
    metrics = [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR({"PRINT_CONFIG": False}), trackeval.metrics.Identity({"PRINT_CONFIG": False})]
    res, _ = evaluator.evaluate([dataset], metrics)
    theirs = res["MotChallenge2DBox"]["t"]
    for name in site.camera_names:
        r = theirs[name]["pedestrian"]
        m = ours.per_camera[name]
        assert m.hota == pytest.approx(100 * np.mean(r["HOTA"]["HOTA"]), abs=1e-3)
        assert m.idf1 == pytest.approx(100 * r["Identity"]["IDF1"], abs=1e-3)
        assert m.mota == pytest.approx(100 * r["CLEAR"]["MOTA"], abs=1e-3)
        assert m.id_switches == r["CLEAR"]["IDSW"]
    combined = theirs["COMBINED_SEQ"]["pedestrian"]
    assert ours.combined.idf1 == pytest.approx(100 * combined["Identity"]["IDF1"], abs=1e-3)
    assert ours.combined.hota == pytest.approx(100 * np.mean(combined["HOTA"]["HOTA"]), abs=1e-3)


# -- bad input and the CLI -------------------------------------------------------------------------
def _write_predictions(folder, rows: dict[str, MotRows]) -> None:
    for name, r in rows.items():
        write_mot(folder / f"{name}.txt", r)


def _run(argv, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(argv)
    captured = capsys.readouterr()
    return e.value.code, captured.out, captured.err


def test_cli_table_and_json(two_cameras, tmp_path, capsys):
    root, gt = two_cameras
    _write_predictions(tmp_path / "pred", {"cam1": gt["cam1"], "cam2": _swap(gt["cam2"], 1, 2)})
    code, out, _ = _run(["eval-tracks", str(tmp_path / "pred"), "--gt", str(root), "--json"], capsys)
    assert code in (0, None)
    data = json.loads(out)
    assert data["per_camera"]["cam1"]["idf1"] == 100.0 and data["multi_camera"]["idf1"] < 90.0
    code, out, _ = _run(["eval-tracks", str(tmp_path / "pred"), "--gt", str(root)], capsys)
    assert "multi-camera IDF1" in out and "cam2" in out and "HOTA" in out


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("missing", "cam2.txt: missing"),
        ("malformed", "cam2.txt:2: not a number"),
        ("negative", "cam2.txt:2: negative box size"),
        ("beyond", "cam2.txt: frame 99 is beyond"),
        ("duplicate", "cam2.txt: id 2 appears more than once in frame 1"),
    ],
)
def test_bad_prediction_files_give_one_line_errors(two_cameras, tmp_path, capsys, damage, expected):
    root, gt = two_cameras
    pred = tmp_path / "pred"
    _write_predictions(pred, gt)
    path = pred / "cam2.txt"
    lines = path.read_text().splitlines()
    if damage == "missing":
        path.unlink()
    elif damage == "malformed":
        lines[1] = "1,2,10,oops,20,50,1,-1,-1,-1"
    elif damage == "negative":
        lines[1] = "1,2,10,10,-20,50,1,-1,-1,-1"
    elif damage == "beyond":
        lines.append("99,1,10,10,20,50,1,-1,-1,-1")
    else:
        lines.append("1,2,10,10,20,50,1,-1,-1,-1")
    if damage != "missing":
        path.write_text("\n".join(lines) + "\n")
    code, _, err = _run(["eval-tracks", str(pred), "--gt", str(root)], capsys)
    assert code == 1
    assert expected in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_gt_folder_must_be_a_complete_bench(tmp_path, capsys):
    (tmp_path / "pred").mkdir()
    code, _, err = _run(["eval-tracks", str(tmp_path / "pred"), "--gt", str(tmp_path)], capsys)
    assert code == 1 and "site.json: missing" in err


def test_evaluate_tracks_needs_every_camera(two_cameras):
    root, gt = two_cameras
    with pytest.raises(DatasetError, match="no tracks for camera cam2"):
        evaluate_tracks({"cam1": gt["cam1"]}, root)
