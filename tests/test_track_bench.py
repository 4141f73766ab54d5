"""The tracker comparison on a tiny video bench: results files, metrics, re-id accounting, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dgnet_edge.apps.camera.live.tracking.tracker import TrackerParams
from dgnet_edge.apps.camera.measure.track_bench import (
    FrameImages,
    bench_cameras,
    compare_trackers,
    format_comparison,
    track_camera,
)
from dgnet_edge.data.video.mot import read_mot
from dgnet_edge.data.video.site import VideoSpec
from dgnet_edge.data.video.world import load_site, write_bench
from dgnet_edge.errors import UsageError

TINY = VideoSpec(cameras=2, seconds=4.0, fps=10.0, width=320, height=240, seed=3)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("track_bench") / "bench"
    write_bench(root, TINY, workers=1)
    return root


def colour_features(image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Mean colour of each box's upper and lower half: a stand-in embedder."""
    out = []
    for x1, y1, x2, y2 in boxes.astype(int):
        crop = image[max(0, y1):max(y1 + 2, y2), max(0, x1):max(x1 + 1, x2)].astype(np.float32)
        half = len(crop) // 2
        out.append(np.concatenate([crop[:half].mean((0, 1)), crop[half:].mean((0, 1))]) + 1.0)
    f = np.asarray(out, np.float32).reshape(-1, 6)
    return f / np.linalg.norm(f, axis=1, keepdims=True)


def test_iou_tracker_results_are_written_and_scored(bench, tmp_path):
    (run,) = compare_trackers(bench, tmp_path / "out", kinds=("iou",))
    site = load_site(bench)
    assert run.kind == "iou" and sorted(run.result.per_camera) == list(site.camera_names)
    for name in site.camera_names:
        rows = read_mot(tmp_path / "out" / "iou" / f"{name}.txt")
        assert len(rows) > 0 and rows.frame.max() <= site.frames
        assert run.timing[name].frames == site.frames and run.timing[name].embedded == 0
        m = run.result.per_camera[name]
        assert 0.0 < m.idf1 <= 100.0 and 0 < m.pred_boxes <= len(rows)  # less those on barely visible people
    assert json.loads(json.dumps(run.to_dict()))["speed"]["frames"] == 2 * site.frames
    table = format_comparison([run])
    assert "| iou | cam1 |" in table and "**mean**" in table


def test_appearance_tracker_embeds_only_part_of_the_detections(bench):
    camera = bench_cameras(load_site(bench))[0]
    calls = []

    def features(image, boxes):
        assert image.shape == (TINY.height, TINY.width, 3)
        calls.append(len(boxes))
        return colour_features(image, boxes)

    rows, timing = track_camera(camera, "appearance", TrackerParams(refresh_every=5), features)
    assert len(rows) > 0
    assert timing.embed_calls == len(calls) <= timing.frames
    assert 0 < timing.embedded == sum(calls) < timing.detections
    assert timing.tracking_s > 0 and timing.embedding_s > 0


def test_same_detections_with_and_without_appearance_differ_only_in_ids(bench):
    camera = bench_cameras(load_site(bench))[0]
    with_app, _ = track_camera(camera, "appearance", None, colour_features)
    without, _ = track_camera(camera, "iou", None)
    dets = read_mot(camera.folder / "det" / "det.txt")
    # Every reported box is one of that frame's public detections.
    for rows in (with_app, without):
        for f in np.unique(rows.frame)[:10]:
            d = dets.at(int(f)).boxes
            for box in rows.at(int(f)).boxes:
                assert np.abs(d - box).max(axis=1).min() < 0.02


def _has_bytetrack() -> bool:
    try:
        import supervision
    except ImportError:
        return False
    return hasattr(supervision, "ByteTrack")


@pytest.mark.skipif(not _has_bytetrack(), reason="no supervision with ByteTrack (supervision<0.30) installed")
def test_bytetrack_runs_on_the_same_detections(bench, tmp_path):
    (run,) = compare_trackers(bench, tmp_path / "out", kinds=("bytetrack",))
    assert all(m.pred_boxes > 0 for m in run.result.per_camera.values())


def test_errors(bench, tmp_path):
    with pytest.raises(UsageError, match="export"):
        compare_trackers(bench, tmp_path / "out", kinds=("appearance",))
    with pytest.raises(UsageError, match="expected one of"):
        compare_trackers(bench, tmp_path / "out", kinds=("sort",))
    camera = bench_cameras(load_site(bench))[0]
    with pytest.raises(UsageError, match="features"):
        track_camera(camera, "appearance", None, None)


def test_frames_are_read_lazily_by_index(bench):
    camera = bench_cameras(load_site(bench))[0]
    images = FrameImages(camera)
    assert images.get(3).shape == (TINY.height, TINY.width, 3)
    assert images.get(1).shape == (TINY.height, TINY.width, 3)
