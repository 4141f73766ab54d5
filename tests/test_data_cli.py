"""`dgnet-edge data synth | check | baseline` on a tiny synthetic world and on broken trees."""

from __future__ import annotations

import dataclasses
import inspect
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dgnet_edge.cli import data as data_cli
from dgnet_edge.cli.main import app, main
from dgnet_edge.data.synth import WorldSpec

runner = CliRunner()
TINY = ["--train-ids", "4", "--test-ids", "4", "--cameras", "3", "--images-per-camera", "3", "--height", "64", "--width", "32"]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "world"
    result = runner.invoke(app, ["data", "synth", str(root), *TINY, "--seed", "5", "--workers", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "bounding_box_train" in result.output
    return root


@pytest.fixture
def broken(world: Path, tmp_path: Path) -> Path:
    root = tmp_path / "broken"
    shutil.copytree(world, root)
    return root


def _fail(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the console entry point, expect exit code 1, return stderr unwrapped (rich wraps long lines)."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 1
    return capsys.readouterr().err.replace("\n", "")


def test_synth_writes_a_market_world(world: Path) -> None:
    for folder in ("bounding_box_train", "query", "bounding_box_test"):
        assert any((world / folder).glob("*.jpg"))
    assert json.loads((world / "world.json").read_text())["spec"]["seed"] == 5


def test_synth_json_summary(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "synth", str(tmp_path / "w"), *TINY, "-j", "1", "--no-progress", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["identities"] == {"train": 4, "test": 4}
    assert summary["images"]["query"] == len(list((tmp_path / "w" / "query").iterdir()))


def test_synth_refuses_a_non_empty_folder(world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    message = _fail(["data", "synth", str(world), *TINY, "--no-progress"], capsys)
    assert "--force" in message


def test_synth_defaults_are_the_world_spec_defaults() -> None:
    params = inspect.signature(data_cli.synth).parameters
    for f in dataclasses.fields(WorldSpec):
        assert params[f.name].default == f.default, f.name


def test_check_reports_counts(world: Path) -> None:
    result = runner.invoke(app, ["data", "check", str(world), "--json", "--decode"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["splits"]["train"]["identities"] == 4
    assert report["splits"]["query"]["identities"] == 4
    assert report["splits"]["gallery"]["identities"] == 4
    assert report["problems"] == [] and report["undecodable"] == []
    assert report["distractors"] > 0 and report["junk"] > 0
    images = {f: len(list((world / f).iterdir())) for f in ("bounding_box_train", "query", "bounding_box_test")}
    assert report["splits"]["query"]["images"] == images["query"]
    assert sum(report["splits"]["gallery"]["per_camera"].values()) == images["bounding_box_test"]

    table = runner.invoke(app, ["data", "check", str(world)])
    assert table.exit_code == 0, table.output
    assert "images per camera" in table.output


def test_check_names_a_badly_named_file(broken: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = sorted((broken / "query").iterdir())[0]
    first.rename(first.with_name("holiday_photo.jpg"))
    assert "holiday_photo.jpg" in _fail(["data", "check", str(broken)], capsys)


def test_check_names_the_expected_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "query").mkdir()
    message = _fail(["data", "check", str(tmp_path / "half")], capsys)
    assert "bounding_box_train" in message
    assert "does not exist" in _fail(["data", "check", str(tmp_path / "nowhere")], capsys)


def test_check_finds_query_ids_missing_from_the_gallery(broken: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pid = sorted((broken / "query").iterdir())[0].name[:4]
    for p in (broken / "bounding_box_test").glob(f"{pid}_*"):
        p.unlink()
    message = _fail(["data", "check", str(broken)], capsys)
    assert "no gallery image from another camera" in message and str(int(pid)) in message


def test_check_decode_names_a_corrupt_image(broken: Path, capsys: pytest.CaptureFixture[str]) -> None:
    victim = sorted((broken / "bounding_box_train").iterdir())[0]
    victim.write_bytes(b"not a jpeg")
    runner_ok = runner.invoke(app, ["data", "check", str(broken)])  # names are fine: passes without --decode
    assert runner_ok.exit_code == 0, runner_ok.output
    assert victim.name in _fail(["data", "check", str(broken), "--decode"], capsys)


def test_baseline_prints_rank1_and_map(world: Path) -> None:
    result = runner.invoke(app, ["data", "baseline", str(world), "--no-progress", "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert 0.0 <= metrics["rank1"] <= 100.0 and 0.0 <= metrics["mAP"] <= 100.0
    text = runner.invoke(app, ["data", "baseline", str(world), "--no-progress", "--stripes", "4"])
    assert text.exit_code == 0, text.output
    assert "rank-1" in text.output
