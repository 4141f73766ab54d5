"""The command line as a whole: every module imports, every command has help, errors map to exit codes."""

import importlib
import json
import pkgutil
import re
import shutil

import pytest
from conftest import tiny_overrides
from typer.testing import CliRunner

import dgnet_edge
from dgnet_edge.cli.main import app, main


def all_modules():
    names = []
    for info in pkgutil.walk_packages(dgnet_edge.__path__, "dgnet_edge."):
        if info.name != "dgnet_edge.__main__":  # runs the CLI when imported
            names.append(info.name)
    for sub in ("export", "calib", "apps", "configs"):
        package = importlib.import_module(f"dgnet_edge.{sub}")
        names += [f"dgnet_edge.{sub}.{m.name}" for m in pkgutil.iter_modules(package.__path__)]
    return sorted(set(names))


@pytest.mark.parametrize("name", all_modules())
def test_every_module_imports(name):
    importlib.import_module(name)


def command_paths():
    from typer.main import get_command

    root = get_command(app)
    paths = []
    for name, cmd in root.commands.items():
        paths.append([name])
        for sub in getattr(cmd, "commands", {}):
            paths.append([name, sub])
    return paths


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p))
def test_every_command_has_help(path):
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_user_errors_exit_1_without_traceback(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["eval", str(tmp_path / "missing.pt")])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert "error:" in err and "not found" in err and "Traceback" not in err


def test_error_text_is_printed_verbatim(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("data: [unclosed\n")
    with pytest.raises(SystemExit) as e:
        main(["train", "--stage", "teacher", "--config", str(tmp_path / "bad.yaml")])
    assert e.value.code == 1
    assert "[unclosed" in capsys.readouterr().err  # not eaten as console markup


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--stage", "student"])
    assert e.value.code == 2
    assert "--stage must be one of" in capsys.readouterr().err


def test_debug_variable_shows_the_traceback(tmp_path, monkeypatch):
    from dgnet_edge.errors import CheckpointError

    monkeypatch.setenv("DGNET_EDGE_DEBUG", "1")
    with pytest.raises(CheckpointError):
        main(["eval", str(tmp_path / "missing.pt")])


def test_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == dgnet_edge.__version__


@pytest.fixture(scope="module")
def quickstart_run(tiny_world, tmp_path_factory):
    """A finished quickstart on the tiny world with a DG-Net of two iterations: (its arguments
    without the DG-Net ones, the DG-Net ones, the out folder, its stdout, its stderr)."""
    import contextlib
    import io

    from dgnet_edge.data.video.site import VideoSpec
    from dgnet_edge.data.video.world import write_bench

    tmp = tmp_path_factory.mktemp("quickstart")
    video = tmp / "video"
    write_bench(video, VideoSpec(cameras=2, seconds=2.0, fps=10.0, width=320, height=240), workers=1)
    qs = tmp / "qs"
    args = ["quickstart", "--out", str(qs), "--world", str(tiny_world), "--video", str(video), "--no-progress",
            "--batch", "1", "--runs", "2"]
    args += sum((["--set", o] for o in tiny_overrides(tiny_world) + ["id_train.epochs=1"] if not o.startswith("data.root")), [])
    dgnet_args = quickstart_dgnet_sets(tiny_world)
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr), pytest.raises(SystemExit) as e:
        main(args + dgnet_args)
    assert e.value.code in (None, 0), stderr.getvalue()
    return args, dgnet_args, qs, stdout.getvalue(), stderr.getvalue()


def quickstart_dgnet_sets(world, *extra: str) -> list[str]:
    """--dgnet-set options for a DG-Net of two iterations on the tiny world."""
    from conftest import TINY_DGNET

    items = [o for o in tiny_overrides(world) if not o.startswith("data.root")] + TINY_DGNET
    items += ["data.batch_size=4", "eval.flip=false", "dgnet.max_iter=2", "dgnet.sample_every=0", "dgnet.log_every=1",
              *extra]
    return sum((["--dgnet-set", o] for o in items), [])


def timed_steps(err: str) -> list[str]:
    return re.findall(r"^(\w+): [\d.]+ min$", err, re.MULTILINE)


def test_quickstart_trains_exports_and_reports_then_skips(quickstart_run, capsys):
    args, dgnet_args, qs, out, err = quickstart_run
    assert "rank-1" in out and "train:" in err and "export:" in err
    metrics = json.loads((qs / "model" / "metrics.json").read_text())
    assert 0 <= metrics["rank1"] <= 100
    dgnet_metrics = json.loads((qs / "dgnet" / "metrics.json").read_text())
    assert 0 <= dgnet_metrics["swap_teacher_top1_appearance"] <= 100 and dgnet_metrics["swap_chance"] > 0
    assert "dgnet" in timed_steps(err) and "swap = appearance id" in out
    manifest = json.loads((qs / "export" / "manifest.json").read_text())
    assert manifest["source"]["kind"] == "dgnet"
    assert {m["role"] for m in manifest["models"]} == {"embedder", "structure", "decoder"}
    assert {"int8-cpu", "int8-qdq", "fp16"} <= {m["precision"] for m in manifest["models"] if m["role"] == "embedder"}
    assert "int8-cpu" in {m["precision"] for m in manifest["models"] if m["role"] == "decoder"}
    report = json.loads((qs / "export" / "report" / "report.json").read_text())
    rows = {r["key"]: r for r in report["rows"]}
    assert rows["onnxruntime:int8-cpu"]["available"] and rows["onnxruntime:int8-cpu"]["accuracy"]["queries"] > 0
    assert (qs / "export" / "report" / "pareto.png").is_file()
    assert "multi-camera IDF1" in out  # the camera app ran on the video bench and was scored
    assert "synthesis at enrolment: on" in out  # the export has the generator parts
    assert (qs / "export" / "reid_threshold.json").is_file()
    assert {p.name for p in (qs / "demo" / "tracks").iterdir()} == {"cam1.txt", "cam2.txt", "camera.yaml"}  # the tracks and the run's resolved config
    with pytest.raises(SystemExit):
        main(args + dgnet_args)
    # The finished steps (E_a, DG-Net, export, threshold) are skipped; the report and the demo run again.
    assert timed_steps(capsys.readouterr().err) == ["report", "demo"]


def test_quickstart_without_dgnet_exports_the_baseline_again(quickstart_run, tmp_path, capsys):
    args, _, qs, _, _ = quickstart_run
    copy = tmp_path / "qs"
    shutil.copytree(qs, copy)
    args = [copy if a == str(qs) else a for a in args]
    with pytest.raises(SystemExit) as e:
        main([*map(str, args), "--no-dgnet"])
    assert e.value.code in (None, 0)
    captured = capsys.readouterr()
    # The DG-Net export is not the baseline's: it is made again, and its threshold with it.
    assert timed_steps(captured.err) == ["export", "threshold", "report", "demo"]
    manifest = json.loads((copy / "export" / "manifest.json").read_text())
    assert manifest["source"]["kind"] == "baseline" and {m["role"] for m in manifest["models"]} == {"embedder"}
    assert "synthesis at enrolment: off" in captured.out and "swap = appearance id" not in captured.out
    assert "DG-Net:" not in captured.err


@pytest.mark.parametrize("stage", ["teacher", "baseline", "dgnet"])
def test_bench_checkpoint_loads_like_a_trained_one(tiny_world, tmp_path, stage):
    from conftest import TINY_DGNET

    from dgnet_edge.checkpoint import load_checkpoint
    from dgnet_edge.models.factory import load_dgnet, load_reid_net

    path = tmp_path / f"{stage}.pt"
    sets = sum((["--set", o] for o in tiny_overrides(tiny_world) + TINY_DGNET), [])
    with pytest.raises(SystemExit) as e:
        main(["bench", "checkpoint", "--config", "synth_small", "--stage", stage, "--num-classes", "5", "--out", str(path), *sets])
    assert e.value.code in (None, 0)
    net, cfg, kind = load_reid_net(path)
    assert kind == stage and net.num_classes == 5 and net.with_code == (stage != "teacher")
    assert load_checkpoint(path)["num_classes"] == 5
    if stage == "dgnet":
        model, _ = load_dgnet(path)
        assert model.decoder is not None
