"""The camera app's typed config: defaults in one place, YAML with `_base_`, options and `--set` over
it, one-line errors naming the key, and the resolved config saved beside a run's outputs."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import TINY_BENCH
from dgnet_edge.apps.camera.config import CONFIG_FILE, CameraConfig, config_from_tree, load_camera_config
from dgnet_edge.apps.camera.live.tracking.identities import IdentityParams
from dgnet_edge.apps.camera.live.tracking.tracker import TrackerParams
from dgnet_edge.cli.main import main
from dgnet_edge.data.video.world import load_site
from dgnet_edge.errors import ConfigError


def _demo(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main(["demo", *[str(a) for a in args], "--no-progress", "--no-show"])
    captured = capsys.readouterr()
    return (0 if e.value.code is None else e.value.code), captured.out, captured.err


def test_the_sections_take_the_stages_own_defaults():
    config = CameraConfig()
    assert config.tracker == TrackerParams()
    assert IdentityParams(**{k: v for k, v in vars(config.identities).items() if k != "threshold"}) == IdentityParams()
    assert config.identities.threshold is None and config.gallery.location == "gallery.db"
    assert config_from_tree(config.to_dict()) == config  # what is saved reads back as the same config


def test_base_file_then_options_then_set(tmp_path):
    (tmp_path / "site.yaml").write_text("tracker:\n  max_lost_s: 7\n  confirm_hits: 2\ngallery:\n  location: site.db\n")
    (tmp_path / "door.yaml").write_text("_base_: site.yaml\nsources:\n  cameras: [door=0]\ntracker:\n  max_lost_s: 4\n")
    config = load_camera_config(tmp_path / "door.yaml", [("gallery.location", "cli.db")], ["tracker.confirm_hits=5"])
    assert config.sources.cameras == ["door=0"]
    assert config.tracker.max_lost_s == 4.0  # the file over its base
    assert config.gallery.location == "cli.db"  # an option over the file
    assert config.tracker.confirm_hits == 5  # --set last
    assert config.tracker.min_score == TrackerParams().min_score  # untouched keys keep their defaults


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("tracker.max_lost=3", "tracker.max_lost: unknown key"),
        ("tracker.max_lost_s=soon", "tracker.max_lost_s: expected a finite float"),
        ("tracker.confirm_hits=2.5", "tracker.confirm_hits: expected int"),
        ("tracker.appearance=1", "tracker.appearance: expected bool"),
        ("sources.cameras=cam.mp4", "sources.cameras: expected a list"),
        ("detector.kind=sonar", "detector: kind 'sonar'"),
        ("detector={kind: yolo}", "needs the model file"),
        ("identities.decide_after=0", "decide_after must be >= 1"),
        ("identities.threshold=2", "threshold must be in [-1, 1]"),
        ("synthesis.views=0", "views must be >= 1"),
        ("outputs=3", "outputs: expected a section"),
        ("tracker.max_lost_s=.nan", "tracker.max_lost_s: expected a finite float"),
        ("nosuch.key=1", "nosuch: unknown key"),
    ],
)
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError) as e:
        load_camera_config(overrides=[override])
    assert message in str(e.value)


def test_a_base_chain_that_loops_is_an_error(tmp_path):
    (tmp_path / "a.yaml").write_text("_base_: b.yaml\n")
    (tmp_path / "b.yaml").write_text("_base_: a.yaml\n")
    with pytest.raises(ConfigError, match="loops"):
        load_camera_config(tmp_path / "a.yaml")


def test_demo_runs_a_config_file_and_saves_the_resolved_one(tiny_bench, tmp_path, capsys):
    site = load_site(tiny_bench)
    cameras = [str(site.camera_dir(name)) for name in site.camera_names]
    config_file = tmp_path / "cams.yaml"
    config_file.write_text(yaml.safe_dump({"sources": {"cameras": cameras}, "tracker": {"max_lost_s": 1.5},
                                           "outputs": {"save_txt": str(tmp_path / "tracks")}}))
    code, out, err = _demo(capsys, "--config", config_file, "--no-appearance", "--max-frames", 6,
                           "--set", "tracker.confirm_hits=2", "--json")
    assert code == 0, err
    assert json.loads(out)["frames"] == 6
    saved = load_camera_config(tmp_path / "tracks" / CONFIG_FILE)
    assert saved.sources.cameras == cameras and saved.embedder.export is None
    assert (saved.tracker.max_lost_s, saved.tracker.confirm_hits, saved.outputs.max_frames) == (1.5, 2, 6)
    assert TINY_BENCH.frames > 6


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "tracker.max_lost_s=-"], "tracker.max_lost_s: expected a finite float"),
        (["--set", "tracker"], "expected KEY=VALUE"),
        (["--config", "nosuch.yaml"], "nosuch.yaml"),
    ],
)
def test_demo_config_errors_are_one_line(args, message, capsys):
    code, _, err = _demo(capsys, "--source", "0", "--no-appearance", *args)
    assert code == 1
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err, err


def test_bench_camera_takes_the_export_from_the_config_or_says_it_is_missing(tiny_bench, tmp_path, capsys):
    (tmp_path / "bench.yaml").write_text("tracker: {max_lost_s: 2.0}\n")
    with pytest.raises(SystemExit) as e:
        main(["bench", "camera", str(tiny_bench), "--config", str(tmp_path / "bench.yaml"), "--out", str(tmp_path / "out")])
    assert e.value.code == 2 and "--export" in capsys.readouterr().err
