"""The synthetic video bench: plan, rendering, files, determinism, atomic writing, MOT I/O and the CLI."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from dgnet_edge.data.video.mot import MotRows, read_mot, write_mot
from dgnet_edge.data.video.site import VideoSpec, plan_site
from dgnet_edge.data.video.world import load_site, write_bench
from dgnet_edge.errors import DatasetError, OutputPathError

SMALL = VideoSpec(cameras=3, seconds=6.0, fps=2.0, width=320, height=240, seed=5)


@pytest.fixture(scope="module")
def small_bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("video") / "bench"
    summary = write_bench(root, SMALL, workers=1)
    return root, summary


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# -- plan --------------------------------------------------------------------------------------------
def test_default_plan_has_cross_camera_walks_reentries_and_look_alikes():
    plan = plan_site(VideoSpec())
    per_count = Counter(len(p.cameras) for p in plan.people)
    assert per_count[1] > 0 and per_count[2] > 0 and per_count[3] > 0
    returns = [p for p in plan.people if len(p.visits) > len({v.camera for v in p.visits})]
    assert len(returns) >= 2
    for p in returns:  # back in the same camera within the bench, after a long time away
        by_camera: dict[int, list] = {}
        for v in p.visits:
            by_camera.setdefault(v.camera, []).append(v)
        again = [vs for vs in by_camera.values() if len(vs) > 1][0]
        assert again[1].start - again[0].end > 20.0
        assert again[1].start < 60.0
    assert any(p.look_alike_of is not None for p in plan.people)
    for p in plan.people:  # visits in time order, each leaving before the next starts
        for a, b in zip(p.visits, p.visits[1:]):
            assert b.start > a.end
    assert plan == plan_site(VideoSpec())


def test_scene_base_row_matches_the_scene_pixels():
    """The row where the plan stands the building fronts is where the scene's wall meets the ground."""
    from dgnet_edge.data.synth.scene import background
    from dgnet_edge.data.video.site import make_view

    hits = 0
    for index in range(4):  # the default bench's cameras (at the default size: scenes depend on it)
        view = make_view(VideoSpec(), index)
        img = background(view.camera, np.random.default_rng(view.scene_seed), 480, 640).astype(np.float32)
        step = np.abs(np.diff(img.mean(axis=1), axis=0)).sum(axis=1)  # colour change between rows
        base = int(view.base_row)
        hits += step[base - 3 : base + 3].max() >= np.percentile(step, 97)
    assert hits == 4


def test_person_heights_in_the_default_geometry():
    plan = plan_site(VideoSpec())
    for view in plan.views:
        near = view.focal * 1.75 / view.near
        far = view.focal * 1.75 / view.far
        assert 200 <= near <= 260 and 70 <= far <= 100
        assert view.project(0.0, view.near)[1] <= 480


# -- files -------------------------------------------------------------------------------------------
def test_layout_and_seqinfo(small_bench):
    root, summary = small_bench
    site = load_site(root)
    assert site.camera_names == ("cam1", "cam2", "cam3")
    assert (site.fps, site.width, site.height, site.frames) == (2.0, 320, 240, 12)
    data = json.loads((root / "site.json").read_text())
    assert data["format"] == "dgnet-edge-video" and data["version"] == 1 and data["seed"] == 5
    assert data["identities"] == sorted(data["identities"]) and min(data["identities"]) >= 1
    assert "measured" in data["detections"] and "miss" in data["detections"]
    world = json.loads((root / "world.json").read_text())
    assert {"spec", "views", "people", "detections"} <= set(world)
    import configparser

    for cam in site.cameras:
        assert cam.video is None
        ini = configparser.ConfigParser()
        ini.optionxform = str
        ini.read(root / cam.dir / "seqinfo.ini")
        seq = ini["Sequence"]
        assert dict(seq) == {
            "name": cam.name, "imDir": "img1", "frameRate": "2", "seqLength": "12",
            "imWidth": "320", "imHeight": "240", "imExt": ".jpg",
        }
        assert "miss_rate" in ini["Detections"]
        frames = sorted((root / cam.dir / "img1").iterdir())
        assert [f.name for f in frames] == [f"{i:06d}.jpg" for i in range(1, 13)]
        import cv2

        assert cv2.imread(str(frames[0])).shape == (240, 320, 3)
    assert summary.identities == len(data["identities"])


def test_ground_truth_and_detections_are_sane(small_bench):
    root, _ = small_bench
    site = load_site(root)
    seen = set()
    assert sum(len(site.gt(name)) for name in site.camera_names) > 10
    for name in site.camera_names:
        gt, det = site.gt(name), site.det(name)
        x, y, w, h = gt.boxes.T
        assert np.all(w >= 2) and np.all(h >= 2) and np.all(x >= 0) and np.all(y >= 0)
        assert np.all(x + w <= 320 + 1e-3) and np.all(y + h <= 240 + 1e-3)
        assert np.all(h > w)  # people are taller than wide
        assert np.all((gt.visibility >= 0) & (gt.visibility <= 1))
        assert np.all(gt.frame >= 1) and np.all(gt.frame <= site.frames)
        for f in np.unique(gt.frame):
            ids = gt.at(int(f)).ids
            assert len(ids) == len(set(ids.tolist()))
        assert np.all(det.ids == -1) and np.all((det.scores > 0) & (det.scores < 1))
        seen |= set(gt.ids.tolist())
    assert sorted(seen) == list(site.identities)


def test_same_seed_same_bytes_any_workers_other_seed_differs(small_bench, tmp_path):
    root, _ = small_bench
    again = tmp_path / "again"
    write_bench(again, SMALL, workers=2)
    assert _digests(again) == _digests(root)
    other = tmp_path / "other"
    write_bench(other, VideoSpec(**{**SMALL.__dict__, "seed": 6}), workers=1)
    a, b = _digests(root), _digests(other)
    assert a["cam1/gt/gt.txt"] != b["cam1/gt/gt.txt"] and a["cam1/det/det.txt"] != b["cam1/det/det.txt"]


def test_video_file_instead_of_frames(tmp_path):
    import cv2

    spec = VideoSpec(cameras=1, seconds=1.0, fps=5.0, width=320, height=240, seed=1)
    write_bench(tmp_path / "b", spec, frames=False, video=True, workers=1)
    site = load_site(tmp_path / "b")
    assert site.cameras[0].video == "cam1.mp4" and not (tmp_path / "b" / "cam1" / "img1").exists()
    capture = cv2.VideoCapture(str(tmp_path / "b" / "cam1.mp4"))
    count = 0
    while capture.read()[0]:
        count += 1
    assert count == 5


# -- atomic ------------------------------------------------------------------------------------------
def test_exception_mid_render_leaves_nothing(tmp_path):
    def stop(done, total):
        if done >= 4:
            raise KeyboardInterrupt

    root = tmp_path / "bench"
    with pytest.raises(KeyboardInterrupt):
        write_bench(root, SMALL, workers=1, progress=stop)
    assert not root.exists()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DatasetError, match="not a complete video bench"):
        load_site(root)


@pytest.mark.parametrize("workers", [1, 2])
def test_killed_render_leaves_no_complete_bench(tmp_path, workers):
    import psutil

    root = tmp_path / "bench"
    started = tmp_path / "started"
    code = (
        "from pathlib import Path\n"
        "from dgnet_edge.data.video.world import write_bench\n"
        "from dgnet_edge.data.video.site import VideoSpec\n"
        "spec = VideoSpec(cameras=2, seconds=30, fps=5, width=320, height=240)\n"
        f"write_bench({str(root)!r}, spec, workers={workers}, progress=lambda d, t: Path({str(started)!r}).touch())\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    children = []
    try:
        deadline = time.monotonic() + 90
        while not started.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert started.exists(), "the render never started"
        children = psutil.Process(proc.pid).children(recursive=True)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with pytest.raises(DatasetError):
        load_site(root)
    assert not root.exists()
    _, alive = psutil.wait_procs(children, timeout=10)  # render workers end with their parent
    assert alive == []
    left = [p for p in tmp_path.iterdir() if p.name.startswith(".bench.staging-")]
    assert len(left) == 1  # the killed run's staging folder, until the next run removes it
    write_bench(root, VideoSpec(cameras=1, seconds=1, fps=5, width=320, height=240), workers=1)
    assert not left[0].exists()


def test_load_site_rejects_incomplete_folders(small_bench, tmp_path):
    root, _ = small_bench
    broken = tmp_path / "broken"
    broken.mkdir()
    with pytest.raises(DatasetError, match="site.json: missing"):
        load_site(broken)
    text = (root / "site.json").read_text()
    (broken / "site.json").write_text(text[: len(text) // 2])
    with pytest.raises(DatasetError, match="incomplete JSON"):
        load_site(broken)
    (broken / "site.json").write_text(text)
    with pytest.raises(DatasetError, match="seqinfo.ini: missing"):
        load_site(broken)


def test_existing_folder_needs_force(small_bench, tmp_path):
    target = tmp_path / "full"
    target.mkdir()
    (target / "keep.txt").write_text("x")
    spec = VideoSpec(cameras=1, seconds=1.0, fps=2.0, width=320, height=240)
    with pytest.raises(OutputPathError, match="--force"):
        write_bench(target, spec, workers=1)
    write_bench(target, spec, workers=1, force=True)
    assert not (target / "keep.txt").exists() and load_site(target).frames == 2


# -- MOT text I/O ------------------------------------------------------------------------------------
def test_mot_round_trip_and_at(tmp_path):
    rows = MotRows.of([3, 1, 2, 1], [7, 5, 5, 6], [[1, 2, 3, 4], [5, 6, 7, 8], [0, 0, 1, 1], [9, 9, 2, 3]], [0.9, 0.8, 0.7, 0.6])
    assert rows.frame.tolist() == [1, 1, 2, 3] and rows.ids.tolist() == [5, 6, 5, 7]
    write_mot(tmp_path / "r.txt", rows)
    back = read_mot(tmp_path / "r.txt")
    assert back.frame.tolist() == [1, 1, 2, 3] and back.ids.tolist() == [5, 6, 5, 7]
    np.testing.assert_allclose(back.boxes, rows.boxes)
    np.testing.assert_allclose(back.scores, rows.scores, atol=1e-3)
    assert back.at(1).ids.tolist() == [5, 6] and len(back.at(4)) == 0
    assert (tmp_path / "r.txt").read_text().splitlines()[0] == "1,5,5.00,6.00,7.00,8.00,0.800,-1,-1,-1"
    write_mot(tmp_path / "g.txt", MotRows.of([1], [2], [[1, 2, 3, 4]], visibility=[0.5]), "gt")
    assert (tmp_path / "g.txt").read_text() == "1,2,1.00,2.00,3.00,4.00,1,1,0.500\n"
    assert read_mot(tmp_path / "g.txt").visibility.tolist() == [0.5]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("2,1,10,10,5", "at least 6"),
        ("2,1,10,x,5,5,1", "not a number"),
        ("2,1,10,10,-5,5,1", "negative box size"),
        ("0,1,10,10,5,5,1", "frame must be"),
        ("2,1.5,10,10,5,5,1", "id must be"),
    ],
)
def test_mot_bad_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.txt"
    path.write_text("1,1,10,10,5,5,1,-1,-1,-1\n\n" + line + "\n")
    with pytest.raises(DatasetError, match=message) as e:
        read_mot(path)
    assert str(e.value).startswith(f"{path}:3: ") and "\n" not in str(e.value)


# -- CLI ---------------------------------------------------------------------------------------------
def _cli(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "dgnet_edge", *args], capture_output=True, text=True, env=env, timeout=120)


def test_cli_writes_a_bench_with_preview_and_refuses_a_full_folder(tmp_path):
    out = tmp_path / "b"
    result = _cli(["data", "video", str(out), "--cameras", "2", "--seconds", "1", "--fps", "3", "-j", "1", "--preview", str(tmp_path / "grid.jpg"), "--json"])
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["spec"]["cameras"] == 2 and load_site(out).frames == 3
    assert (tmp_path / "grid.jpg").stat().st_size > 10_000
    again = _cli(["data", "video", str(out), "--cameras", "2", "--seconds", "1"])
    assert again.returncode == 1
    lines = again.stderr.strip().splitlines()
    assert len(lines) == 1 and "not empty" in lines[0] and "--force" in lines[0]


@pytest.mark.parametrize(
    "args", [["--cameras", "0"], ["--seconds", "-1"], ["--fps", "0"], ["--seed", "-2"], ["--no-frames"]]
)
def test_cli_rejects_bad_options(tmp_path, args):
    result = _cli(["data", "video", str(tmp_path / "b"), *args])
    assert result.returncode == 2, result.stderr
    assert not (tmp_path / "b").exists()


def test_preview_grid_shows_the_busiest_frame_with_boxes(small_bench):
    import cv2

    from dgnet_edge.data.video.preview import busiest_frame, preview_grid

    root, _ = small_bench
    site = load_site(root)
    frame = busiest_frame(site, site.camera_names)
    counts = Counter(int(f) for name in site.camera_names for f in site.gt(name).frame)
    assert counts[frame] == max(counts.values())
    grid = preview_grid(root, scale=1.0)
    assert grid.shape == (480, 640, 3)
    raw = cv2.imread(str(root / "cam1" / "img1" / f"{frame:06d}.jpg"))
    assert np.any(grid[:240, :320] != raw)  # boxes and labels drawn over the frame
    with pytest.raises(DatasetError, match="outside"):
        preview_grid(root, frame=site.frames + 1)


def test_cli_defaults_are_the_spec_defaults():
    import inspect

    from dgnet_edge.cli.data_video import video

    defaults = {name: p.default for name, p in inspect.signature(video).parameters.items()}
    spec = VideoSpec()
    assert (defaults["cameras"], defaults["seconds"], defaults["fps"], defaults["seed"]) == (spec.cameras, spec.seconds, spec.fps, spec.seed)
