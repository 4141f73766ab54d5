"""Colour weighed per site from unlabelled tracklets: the fusion, the choice, the embedder and the command."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from dgnet_edge.apps.camera.measure.threshold import resolve_threshold, write_threshold
from dgnet_edge.boxes import l2_normalise
from dgnet_edge.errors import ExportError
from dgnet_edge.runtime.colour import (
    MAX_WEIGHT,
    SITE_COLOUR_FILE,
    SiteColour,
    choose_site_colour,
    colour_features,
    fuse,
    read_site_colour,
    write_site_colour,
)
from dgnet_edge.runtime.embedder import Embedder
from tests.test_bad_input import one_line_error, run_cli


def test_the_fused_cosine_is_the_weighted_sum_of_both_cosines():
    rng = np.random.default_rng(0)
    f, h = rng.normal(size=(5, 16)), rng.random((5, 24))
    fused = fuse(f, h, 0.3)
    assert np.allclose(np.linalg.norm(fused, axis=1), 1, atol=1e-5)
    expected = 0.7 * l2_normalise(f) @ l2_normalise(f).T + 0.3 * l2_normalise(h) @ l2_normalise(h).T
    assert np.allclose(fused @ fused.T, expected, atol=1e-5)


def tracklets(colour_informs: bool, seed: int = 0):
    """8 tracks x 6 crops, 10 frames apart, all tracks in every frame: features that tell people
    apart only weakly; colours that tell them apart well, or that are noise."""
    rng = np.random.default_rng(seed)
    tracks, frames = np.repeat(np.arange(8), 6), np.tile(np.arange(6) * 10, 8)
    people_f, people_h = rng.normal(size=(8, 32)), rng.random((8, 48))
    features = people_f[tracks] + 2.5 * rng.normal(size=(48, 32))
    colours = (people_h[tracks] + 0.05 * rng.random((48, 48))) if colour_informs else rng.random((48, 48))
    return features, colours, tracks, frames


def test_colour_gets_weight_where_it_separates_people_and_none_where_it_is_noise():
    informs = choose_site_colour(*tracklets(True), model_threshold=0.5)
    assert 0 < informs.weight <= MAX_WEIGHT
    aucs = informs.evidence["auc_by_weight"]
    assert aucs[f"{informs.weight:.2f}"] > aucs["0.00"] + 5
    noise = choose_site_colour(*tracklets(False), model_threshold=0.5)
    assert noise.weight == 0.0


def test_the_fused_threshold_keeps_the_model_thresholds_share_of_different_people_over_it():
    features, colours, tracks, frames = tracklets(True)
    site = choose_site_colour(features, colours, tracks, frames, model_threshold=0.2)
    model = l2_normalise(features) @ l2_normalise(features).T
    fused = (1 - site.weight) * model + site.weight * l2_normalise(colours) @ l2_normalise(colours).T
    apart = (frames[:, None] == frames[None]) & (tracks[:, None] != tracks[None]) & np.triu(np.ones_like(model, bool), 1)
    share = (model[apart] >= 0.2).mean()
    assert 0 < share < 1 and site.evidence["different_pairs_over_threshold"] == pytest.approx(share, abs=1e-4)
    assert (fused[apart] >= site.threshold).mean() == pytest.approx(share, abs=0.02)


def test_too_few_tracklet_pairs_is_an_error_saying_so():
    features, colours, tracks, frames = tracklets(True)
    with pytest.raises(ExportError, match="too few tracklet pairs"):
        choose_site_colour(features[:3], colours[:3], tracks[:3], frames[:3], model_threshold=0.5)


@pytest.fixture
def export(tiny_dgnet_export, tmp_path):
    """A copy of the tiny export with a calibrated threshold (tests may write into it)."""
    from dgnet_edge.apps.camera.measure.threshold import Calibration

    folder = shutil.copytree(tiny_dgnet_export, tmp_path / "export")
    write_threshold(folder, Calibration(0.6, 0.9, 0.1, 0.01, 0.5, 0.01, 10, 20), {"data": "test"})
    return folder


def test_the_embedder_carries_the_site_colour_and_the_app_takes_its_threshold(export):
    rng = np.random.default_rng(1)
    crops = [rng.integers(0, 255, (60 + 10 * i, 30, 3), dtype=np.uint8) for i in range(4)]
    with Embedder.open(export) as plain:
        base, dim = plain.embed(crops), plain.feature_dim
    write_site_colour(export, SiteColour(0.4, 0.55), {"video": "test"})
    with Embedder.open(export) as coloured:
        assert coloured.feature_dim == dim + 3 * 256
        got = coloured.embed(crops)
        features, _ = coloured.embed_with_code(crops)
    assert np.allclose(got, fuse(base, colour_features(crops), 0.4), atol=1e-5) and np.allclose(features, got)
    assert resolve_threshold(export, None) == 0.55 and resolve_threshold(export, 0.7) == 0.7
    (export / SITE_COLOUR_FILE).write_text(json.dumps({"format": "dgnet-edge-site-colour", "version": 1,
                                                       "weight": 2.0, "threshold": 0.5, "stripes": 3}))
    with pytest.raises(ExportError, match="weight 2.0 is not in"):
        read_site_colour(export)


@pytest.fixture(scope="module")
def site_video(tmp_path_factory):
    """One rendered camera, 20 s at 10 frames/s and 640x480 (people tall enough, tracks long enough
    for pairs 30 frames apart), as a video with its ground-truth tracks standing in for a tracker's."""
    from dgnet_edge.data.video.site import VideoSpec
    from dgnet_edge.data.video.world import write_bench

    root = tmp_path_factory.mktemp("site") / "bench"
    write_bench(root, VideoSpec(cameras=1, seconds=20.0, fps=10.0, seed=5), frames=False, video=True, workers=1)
    return root / "cam1.mp4", root / "cam1" / "gt" / "gt.txt"


def test_gallery_colour_weighs_a_video_from_its_tracks_and_off_removes_it(export, site_video, capsys):
    video, tracks = site_video
    code, out, err = run_cli(["gallery", "colour", export, "--video", video, "--tracks", tracks, "--every", 2,
                              "--json"], capsys)
    assert code == 0, err
    body = json.loads(out)
    assert 0.0 <= body["weight"] <= MAX_WEIGHT and body["measured_on"]["crops"] > 10
    assert read_site_colour(export).weight == body["weight"]
    code, _, err = run_cli(["gallery", "colour", export, "--video", video, "--tracks", tracks, "--off"], capsys)
    assert code == 0 and read_site_colour(export) is None


def test_gallery_colour_needs_the_models_threshold_first(tiny_dgnet_export, site_video, tmp_path, capsys):
    folder = shutil.copytree(tiny_dgnet_export, tmp_path / "export")
    code, _, err = run_cli(["gallery", "colour", folder, "--video", site_video[0], "--tracks", site_video[1]], capsys)
    assert code == 1 and "run `dgnet-edge gallery calibrate" in one_line_error(err)
