"""Bad input across the commands: each case ends in a one-line error (or a clear note), never in a
traceback, a silent success or work done before the error.

Read-only outputs are tested on a read-only tmpfs mount (skipped where `mount` is not allowed)
and under a folder made immutable with `chattr +i` (skipped where chattr is not available).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import tiny_overrides

from dgnet_edge.cli.main import main


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``dgnet-edge ARGS``."""
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    code = 0 if e.value.code is None else e.value.code
    return code, captured.out, captured.err


def one_line_error(err: str) -> str:
    assert "Traceback" not in err, err
    assert "error:" in err, err
    lines = [line for line in err[err.index("error:"):].splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def sets(items: list[str]) -> list[str]:
    return sum((["--set", s] for s in items), [])


@pytest.fixture(scope="module")
def reid_checkpoint(tiny_world, tmp_path_factory) -> Path:
    """A baseline (E_a) checkpoint for the tiny world at its initial weights (nothing trained)."""
    from dgnet_edge.config import load_config
    from dgnet_edge.models.factory import save_initial_checkpoint

    cfg = load_config("synth_small", tiny_overrides(tiny_world))
    return save_initial_checkpoint(tmp_path_factory.mktemp("reid") / "baseline.pt", cfg, "baseline", 8)


@pytest.fixture(scope="module")
def reid_export(reid_checkpoint, tmp_path_factory) -> Path:
    """The fp32 and fp16 export of :func:`reid_checkpoint`."""
    from dgnet_edge.export.pipeline import ExportOptions, export_checkpoint

    out = tmp_path_factory.mktemp("reid_export") / "export"
    export_checkpoint(reid_checkpoint, out, ExportOptions(fp16=True))
    return out


@pytest.fixture(scope="module")
def reid_int8_export(reid_checkpoint, tiny_world, tmp_path_factory) -> Path:
    """:func:`reid_checkpoint` exported with INT8 models calibrated on 8 images."""
    from dgnet_edge.calib.pipeline import CalibrationOptions, int8_extend
    from dgnet_edge.export.pipeline import ExportOptions, export_checkpoint

    out = tmp_path_factory.mktemp("reid_int8") / "export"
    export_checkpoint(reid_checkpoint, out, ExportOptions(), extend=int8_extend(CalibrationOptions(data=tiny_world, count=8)))
    return out


@pytest.fixture()
def corrupt_images(tmp_path) -> Path:
    """A folder of three '.jpg' files that are not images."""
    folder = tmp_path / "corrupt"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i:04d}_c1s1_000001_00.jpg").write_bytes(b"not a jpeg" * 10)
    return folder


# -- issue 13 (1): an input set that decodes to nothing -------------------------------------------------
def test_export_int8_on_unreadable_images_counts_them(reid_checkpoint, corrupt_images, tmp_path, capsys):
    out = tmp_path / "exp"
    code, _, err = run_cli(["export", reid_checkpoint, "--out", out, "--int8", "--calib-data", corrupt_images,
                            "--no-progress"], capsys)
    line = one_line_error(err)
    assert code == 1 and "3 image(s) found, 3 could not be read" in line and "calibration needs readable images" in line
    assert not out.exists()


@pytest.mark.slow  # the INT8 export it needs takes about 25 s
def test_calib_sensitivity_on_unreadable_images_counts_them(reid_int8_export, corrupt_images, tmp_path, capsys):
    code, _, err = run_cli(["calib", "sensitivity", reid_int8_export, "--data", corrupt_images, "--images", "3",
                            "--out", tmp_path / "s.json", "--no-progress"], capsys)
    line = one_line_error(err)
    assert code == 1 and "3 image(s) found, 3 could not be read" in line
    assert not (tmp_path / "s.json").exists()


def test_image_batches_raise_only_when_nothing_decodes(tiny_world, corrupt_images):
    from dgnet_edge.calib.sampling import image_batches

    from dgnet_edge.errors import DatasetError

    good = sorted((tiny_world / "query").iterdir())[:2]
    batches = list(image_batches([*good, *corrupt_images.iterdir()], 64, 32, batch_size=2))
    assert sum(len(b["images"]) for b in batches) == 2  # the unreadable ones are skipped
    with pytest.raises(DatasetError, match="3 image"):
        list(image_batches(list(corrupt_images.iterdir()), 64, 32))


@pytest.mark.parametrize("command", ["train", "eval", "data baseline", "report"])
def test_a_dataset_that_decodes_to_nothing_is_one_line(command, tiny_world, reid_checkpoint, reid_export, tmp_path,
                                                      monkeypatch, capsys):
    from dgnet_edge.apps.report import roofline

    monkeypatch.setattr(roofline, "measure_roofline", lambda **k: None)
    world = tmp_path / "world"
    shutil.copytree(tiny_world, world)
    for image in world.glob("*/*.jpg"):
        image.write_bytes(b"not a jpeg")
    args = {
        "train": ["train", "--stage", "baseline", "--out", tmp_path / "run", "--no-progress",
                  *sets([f"data.root={world}", *tiny_overrides(world)[1:]])],
        "eval": ["eval", reid_checkpoint, "--data", world, "--no-progress"],
        "data baseline": ["data", "baseline", world, "--no-progress"],
        "report": ["report", reid_export, "--data", world, "--backends", "onnxruntime", "--out", tmp_path / "r",
                   "--no-progress"],
    }[command]
    code, _, err = run_cli(args, capsys)
    line = one_line_error(err)
    assert code == 1 and "not a readable image" in line and str(world) in line, line


# -- issue 13 (2) and issue 15: outputs that cannot be written, checked before any work ----------------------
def output_commands(base: Path, ctx: SimpleNamespace) -> dict[str, list]:
    """For each command, its arguments with ``base`` as the parent of the output it writes."""
    return {
        "export": ["export", ctx.reid, "--out", base / "exp"],
        "data synth": ["data", "synth", base / "world", "--train-ids", "2", "--test-ids", "2", "--no-progress"],
        "train": ["train", "--stage", "baseline", "--out", base / "run", "--no-progress", *sets(tiny_overrides(ctx.world))],
        "bench checkpoint": ["bench", "checkpoint", "--config", "synth_small", "--stage", "baseline", "--out", base / "c.pt"],
        "synth": ["synth", ctx.dgnet, "--image", ctx.image, "--image", ctx.image, "--out", base / "grid.png"],
        "synth --strip": ["synth", ctx.dgnet, "--image", ctx.image, "--image", ctx.image, "--out", ctx.tmp / "g.png",
                          "--strip", base / "strip.png"],
        "calib cache": ["calib", "cache", ctx.export, "--tensorrt", "10.3.0", "--out", base / "x.cache"],
        "calib sensitivity": ["calib", "sensitivity", ctx.export, "--out", base / "s.json"],
        "report": ["report", ctx.export, "--data", ctx.world, "--out", base / "report", "--no-progress"],
        "import-official": ["import-official", "--gen", ctx.image, "--id", ctx.image, "-o", base / "o.pt"],
        "quickstart --out": ["quickstart", "--out", base / "qs", "--world", ctx.world, "--no-progress"],
        "quickstart --world": ["quickstart", "--out", ctx.tmp / "qs", "--world", base / "w", "--no-progress"],
        "build --timing-cache": ["build", ctx.export, "--precision", "fp32", "--timing-cache", base / "t.cache"],
        "data video": ["data", "video", base / "bench", "--cameras", "1", "--seconds", "1", "--no-progress"],
        "quickstart --video": ["quickstart", "--out", ctx.tmp / "qs", "--world", ctx.world, "--video", base / "v",
                               "--no-progress"],
        "demo --save": ["demo", "--source", ctx.world / "query", "--no-appearance", "--save", base / "v", "--no-progress"],
        "demo --save-txt": ["demo", "--source", ctx.world / "query", "--no-appearance", "--save-txt", base / "t",
                            "--no-progress"],
        "demo --events": ["demo", "--source", ctx.world / "query", "--no-appearance", "--events", base / "e.jsonl",
                          "--no-progress"],
    }


@pytest.fixture()
def ctx(tiny_world, reid_checkpoint, tiny_dgnet_checkpoint, reid_export, tmp_path, monkeypatch):
    """Valid inputs for every command; any work past the path checks fails the test."""
    from dgnet_edge.apps.report import pipeline

    def no_work(*a, **k):
        raise AssertionError("the command started its work before checking the output path")

    monkeypatch.setattr(pipeline, "make_report", no_work)  # "report only after measuring every row"
    image = sorted((tiny_world / "query").iterdir())[0]
    return SimpleNamespace(world=tiny_world, reid=reid_checkpoint, dgnet=tiny_dgnet_checkpoint, export=reid_export,
                           image=image, tmp=tmp_path)


OUTPUT_COMMANDS = ["export", "data synth", "train", "bench checkpoint", "synth", "synth --strip", "calib cache",
                   "calib sensitivity", "report", "import-official", "quickstart --out", "quickstart --world",
                   "build --timing-cache", "data video", "quickstart --video", "demo --save", "demo --save-txt",
                   "demo --events"]


@pytest.mark.parametrize("command", OUTPUT_COMMANDS)
def test_output_under_a_file_names_the_file(command, ctx, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code, _, err = run_cli(output_commands(blocker, ctx)[command], capsys)
    line = one_line_error(err)
    assert code == 1 and f"has a file in its path: {blocker}" in line, line


@pytest.fixture()
def read_only_dir(tmp_path):
    target = tmp_path / "ro"
    target.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro", "tmpfs", str(target)], capture_output=True).returncode:
        pytest.skip("mounting a read-only tmpfs is not allowed here")
    yield target
    subprocess.run(["umount", str(target)], check=True)


@pytest.fixture()
def immutable_dir(tmp_path):
    target = tmp_path / "immutable"
    target.mkdir()
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(target)], capture_output=True).returncode:
        pytest.skip("chattr +i is not available on this file system")
    yield target
    subprocess.run(["chattr", "-i", str(target)], check=True)


READ_ONLY_COMMANDS = ["export", "data synth", "train", "bench checkpoint", "synth", "calib cache", "report"]


@pytest.mark.parametrize("command", READ_ONLY_COMMANDS)
def test_output_on_a_read_only_file_system(command, ctx, read_only_dir, capsys):
    code, _, err = run_cli(output_commands(read_only_dir, ctx)[command], capsys)
    line = one_line_error(err)
    assert code == 1 and str(read_only_dir) in line and "read-only file system" in line, line


@pytest.mark.parametrize("command", READ_ONLY_COMMANDS)
def test_output_under_an_immutable_folder(command, ctx, immutable_dir, capsys):
    code, _, err = run_cli(output_commands(immutable_dir, ctx)[command], capsys)
    line = one_line_error(err)
    assert code == 1 and str(immutable_dir) in line and "not permitted" in line, line


# -- issue 15: tracebacks -----------------------------------------------------------------------------------
def test_report_names_a_corrupted_model_file(reid_export, tiny_world, tmp_path, capsys):
    export = tmp_path / "export"
    shutil.copytree(reid_export, export)
    model = export / "embedder.fp16.onnx"
    model.write_bytes(model.read_bytes()[:1000] + b"\x00garbage")
    code, _, err = run_cli(["report", export, "--data", tiny_world, "--no-progress"], capsys)
    line = one_line_error(err)
    assert code == 1 and "embedder.fp16.onnx" in line and "sha256" in line


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_eval_alpha_must_be_finite(value, reid_checkpoint, capsys):
    code, _, err = run_cli(["eval", reid_checkpoint, "--alpha", value], capsys)
    assert code == 2 and "--alpha" in err and "Traceback" not in err
    assert "must be a finite number (x >= 0)" in err  # finiteness first: NaN is not "out of range"


@pytest.mark.parametrize("args", [["data", "synth", "w", "--junk", "nan"], ["data", "synth", "w", "--distractors", "nan"],
                                  ["export", "c.pt", "--out", "o", "--int8", "--calib-data", ".", "--calib-method",
                                   "percentile", "--calib-percentile", "nan"]], ids=["junk", "distractors", "percentile"])
def test_float_options_reject_nan(args, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(args, capsys)
    assert code == 2 and "Traceback" not in err
    assert not (tmp_path / "w").exists() and not (tmp_path / "o").exists()


def test_config_values_must_be_finite(capsys):
    code, _, err = run_cli(["bench", "checkpoint", "--out", "x.pt", "--set", "eval.alpha=.nan"], capsys)
    assert code == 1 and "field 'eval.alpha': Input should be a finite number" in err and "Traceback" not in err


@pytest.fixture()
def nan_checkpoint(reid_checkpoint, tmp_path) -> Path:
    from dgnet_edge.checkpoint import load_checkpoint, save_checkpoint

    state = load_checkpoint(reid_checkpoint)
    weights = state["models"]["appearance"]
    key = next(k for k, v in weights.items() if v.is_floating_point() and v.ndim == 4)
    weights[key][0, 0, 0, 0] = float("nan")
    payload = {k: v for k, v in state.items() if k not in ("format", "version", "toolkit_version")}
    return save_checkpoint(tmp_path / "nan.pt", payload)


@pytest.mark.parametrize("command", ["eval", "export"])
def test_nan_weights_are_named_when_a_checkpoint_loads(command, nan_checkpoint, tmp_path, capsys):
    args = {"eval": ["eval", nan_checkpoint], "export": ["export", nan_checkpoint, "--out", tmp_path / "exp"]}[command]
    code, _, err = run_cli(args, capsys)
    line = one_line_error(err)
    assert code == 1 and "NaN or Inf" in line and "appearance." in line
    assert "does not reproduce" not in err


# -- issue 15: exit 0 on bad input, or misleading ------------------------------------------------------------
@pytest.fixture()
def stub_training(monkeypatch):
    """train_id replaced by a stub that records its calls."""
    from dgnet_edge.training import id_trainer

    calls = []

    def fake(cfg, stage, out_dir=None, resume=None, progress=True):
        calls.append((stage, out_dir, resume))
        return SimpleNamespace(stopped=None, step=1, seconds=1.0, checkpoint=Path(out_dir) / "checkpoints" / "last.pt", metrics={})

    monkeypatch.setattr(id_trainer, "train_id", fake)
    return calls


def test_train_refuses_an_earlier_runs_folder_without_resume_or_force(stub_training, tiny_world, tmp_path, capsys):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.pt").write_bytes(b"earlier")
    args = ["train", "--stage", "baseline", "--out", run, "--no-progress", *sets(tiny_overrides(tiny_world))]
    code, _, err = run_cli(args, capsys)
    line = one_line_error(err)
    assert code == 2 and "--resume" in line and "--force" in line and not stub_training
    assert (run / "checkpoints" / "last.pt").read_bytes() == b"earlier"
    code, _, _ = run_cli([*args, "--force"], capsys)
    assert code == 0 and stub_training == [("baseline", run, None)]


@pytest.fixture()
def finished_quickstart(tiny_world, tmp_path) -> Path:
    """A quickstart folder whose model step finished with the tiny config."""
    from dgnet_edge.config import load_config
    from dgnet_edge.models.factory import save_initial_checkpoint

    out = tmp_path / "qs"
    cfg = load_config("synth_small", [f"data.root={tiny_world}", *tiny_overrides(tiny_world)[1:]])
    save_initial_checkpoint(out / "model" / "checkpoints" / "last.pt", cfg, "baseline", 8)
    (out / "model" / "metrics.json").write_text("{}")
    return out


def test_quickstart_says_when_the_model_was_trained_with_another_config(finished_quickstart, tiny_world, capsys):
    overrides = tiny_overrides(tiny_world)[1:]
    code, _, err = run_cli(["quickstart", "--out", finished_quickstart, "--world", tiny_world, "--no-progress",
                            *sets([*overrides, "id_train.epochs=7"])], capsys)
    line = one_line_error(err)
    assert code == 2 and "another config" in line and "id_train.epochs" in line and "--force" not in line


def test_a_config_field_newer_than_the_checkpoint_is_no_change():
    """A checkpoint saved before a config field existed holds it at its default: not another config."""
    from dgnet_edge.apps.quickstart import config_changes

    from dgnet_edge.config import load_config

    new = load_config("synth_small").to_dict()
    old = load_config("synth_small").to_dict()
    del old["dgnet"]["generator"]["structure_input"]
    assert config_changes(old, new) == []
    old["id_train"]["epochs"] = 3
    assert config_changes(old, new) == ["id_train.epochs"]
    new["dgnet"]["generator"]["structure_input"] = "edges"
    assert config_changes(old, new) == ["dgnet.generator.structure_input", "id_train.epochs"]


def dgnet_sets(world, *extra: str) -> list[str]:
    """--dgnet-set options for a DG-Net of two iterations on the tiny world."""
    from conftest import TINY_DGNET

    items = [*tiny_overrides(world)[1:], *TINY_DGNET, "data.batch_size=4", "eval.flip=false", "dgnet.max_iter=2",
             "dgnet.sample_every=0", "dgnet.log_every=1", *extra]
    return sum((["--dgnet-set", s] for s in items), [])


def test_quickstart_resumes_a_dgnet_run_stopped_part_way(finished_quickstart, tiny_world, capsys, monkeypatch):
    from dgnet_edge.apps.quickstart import ensure_dgnet

    from dgnet_edge.checkpoint import load_checkpoint
    from dgnet_edge.training import trainer as trainer_module
    from dgnet_edge.training.dgnet_trainer import DGNetTrainer

    class StopAfterOneStep:  # the time limit, reached after the first iteration
        reason = None
        checks = 0

        @property
        def stop(self):
            self.checks += 1
            if self.checks > 1:
                self.reason = "time limit"
            return self.reason is not None

    class Limit:
        def __init__(self, max_seconds):
            assert max_seconds is not None  # dgnet.max_minutes caps each run

        def __enter__(self):
            return StopAfterOneStep()

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(trainer_module, "stop_on_interrupt", Limit)
    code, _, err = run_cli(["quickstart", "--out", finished_quickstart, "--world", tiny_world, "--no-progress",
                            *sets(tiny_overrides(tiny_world)[1:]), *dgnet_sets(tiny_world, "dgnet.max_minutes=20")], capsys)
    line = one_line_error(err)
    assert code == 2 and "time limit" in line and "run the quickstart again" in line
    run = finished_quickstart / "dgnet"
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 1 and not (run / "metrics.json").exists()
    assert not (finished_quickstart / "export").exists()
    monkeypatch.undo()
    # What is evaluated at the end is the trainer's own business (test_dgnet_training): stubbed here.
    monkeypatch.setattr(DGNetTrainer, "final_metrics", lambda self: {"rank1": 50.0, "step": self.step})

    # The next run resumes at iteration 1 (with a longer cap: the cap is no part of what is trained).
    teacher = finished_quickstart / "model" / "checkpoints" / "last.pt"
    overrides = [o for o in dgnet_sets(tiny_world, "dgnet.max_minutes=30") if o != "--dgnet-set"]
    checkpoint, metrics, seconds = ensure_dgnet(run, tiny_world, teacher, "dgnet_synth_small", overrides, False)
    state = load_checkpoint(checkpoint)
    assert seconds is not None and state["step"] == 2 and state["config"]["dgnet"]["max_minutes"] == 30
    assert json.loads((run / "metrics.json").read_text()) == metrics == {"rank1": 50.0, "step": 2}
    assert ensure_dgnet(run, tiny_world, teacher, "dgnet_synth_small", overrides, False)[2] is None  # finished: skipped


def test_quickstart_says_when_dgnet_was_trained_with_another_config(finished_quickstart, tiny_world, capsys):
    from dgnet_edge.config import load_config
    from dgnet_edge.models.factory import save_initial_checkpoint

    overrides = [o for o in dgnet_sets(tiny_world) if o != "--dgnet-set"]
    cfg = load_config("dgnet_synth_small", [f"data.root={tiny_world}", *overrides])
    save_initial_checkpoint(finished_quickstart / "dgnet" / "checkpoints" / "last.pt", cfg, "dgnet", 8)
    code, _, err = run_cli(["quickstart", "--out", finished_quickstart, "--world", tiny_world, "--no-progress",
                            *sets(tiny_overrides(tiny_world)[1:]), *dgnet_sets(tiny_world, "dgnet.warm_iter=7")], capsys)
    line = one_line_error(err)
    assert code == 2 and "another config" in line and "dgnet.warm_iter" in line and "--force" not in line


def test_quickstart_refuses_dgnet_options_with_no_dgnet(tmp_path, capsys):
    code, _, err = run_cli(["quickstart", "--out", tmp_path / "qs", "--world", tmp_path / "w", "--no-dgnet",
                            "--dgnet-set", "dgnet.max_iter=3"], capsys)
    assert code == 2 and "--no-dgnet" in one_line_error(err)
    assert not (tmp_path / "w").exists() and not (tmp_path / "qs").exists()


def test_quickstart_never_names_a_force_it_does_not_have(tmp_path, capsys):
    world = tmp_path / "notaworld"
    world.mkdir()
    (world / "holiday.jpg").write_bytes(b"x")
    code, _, err = run_cli(["quickstart", "--out", tmp_path / "qs", "--world", world, "--no-progress"], capsys)
    line = one_line_error(err)
    assert code == 2 and "--world" in line and "--force" not in line


def test_quickstart_checks_the_config_before_rendering_the_world(tmp_path, capsys):
    world = tmp_path / "world"
    code, _, err = run_cli(["quickstart", "--out", tmp_path / "qs", "--world", world, "--config", "nosuch"], capsys)
    assert code == 1 and "config nosuch not found" in one_line_error(err)
    assert not world.exists()


def test_report_on_a_manifest_without_models_exits_1(reid_export, tiny_world, tmp_path, capsys):
    export = tmp_path / "export"
    shutil.copytree(reid_export, export)
    manifest = json.loads((export / "manifest.json").read_text())
    manifest["models"] = []
    (export / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = run_cli(["report", export, "--data", tiny_world, "--no-progress"], capsys)
    assert code == 1 and "lists no models" in one_line_error(err)


def test_report_rejects_an_unknown_device(reid_export, capsys):
    code, _, err = run_cli(["report", reid_export, "--device", "npu"], capsys)
    assert code == 2 and "--device" in one_line_error(err)


def test_report_says_a_shared_reason_once(reid_export, tiny_world, tmp_path, monkeypatch, capsys):
    from dgnet_edge.apps.report import roofline, worker

    monkeypatch.setattr(worker, "run_row_process", lambda job, progress=None: {"available": False, "reason": "disk on fire"})
    monkeypatch.setattr(roofline, "measure_roofline", lambda **k: None)
    code, _, err = run_cli(["report", reid_export, "--data", tiny_world, "--out", tmp_path / "r", "--no-progress"], capsys)
    assert code == 1 and err.count("disk on fire") == 2  # one warning naming the rows, then the error
    assert "no row of the report could run" in err


def test_bench_speed_without_int8_models_does_not_claim_the_memory_target(reid_export, monkeypatch):
    from dgnet_edge.apps.report import footprint, machine, roofline, speed, worker

    monkeypatch.setattr(worker, "run_row_process", lambda job, progress=None: {"available": False, "reason": "skipped"})
    monkeypatch.setattr(roofline, "measure_roofline", lambda **k: SimpleNamespace(to_dict=dict, peak=lambda kind: None))
    monkeypatch.setattr(footprint, "measure_footprint", lambda *a, **k: {"peak_rss_bytes": 100e6, "embedder": "fp32"})
    monkeypatch.setattr(machine, "machine_info", lambda: {})
    result = speed.measure_speed(reid_export, runs=1)
    memory = next(t for t in result.targets if t.name.startswith("peak RSS"))
    assert memory.verdict == "not measured" and memory.measured is None and "no int8 models" in memory.detail


@pytest.mark.parametrize("value", ["-5", "-0.1"])
def test_eval_alpha_range(value, reid_checkpoint, capsys):
    code, _, err = run_cli(["eval", reid_checkpoint, "--alpha", value], capsys)
    assert code == 2 and "--alpha" in err


@pytest.fixture()
def world_copy(tiny_world, tmp_path) -> Path:
    copy = tmp_path / "world"
    shutil.copytree(tiny_world, copy)
    return copy


@pytest.mark.parametrize("bad", ["broken link", "empty file"])
def test_data_check_flags_empty_files_and_broken_links_without_decoding(bad, world_copy, capsys):
    train = world_copy / "bounding_box_train"
    victim = sorted(train.iterdir())[0]
    if bad == "broken link":
        victim.unlink()
        victim.symlink_to(world_copy / "gone.jpg")
    else:
        victim.write_bytes(b"")
    code, out, err = run_cli(["data", "check", world_copy], capsys)
    line = one_line_error(err)
    assert code == 1 and victim.name in line and ("broken symbolic link" if bad == "broken link" else "0 bytes") in line
    assert "empty files and broken links: 1" in out


def test_broken_links_count_as_unreadable_training_images(world_copy):
    from dgnet_edge.data.registry import build_dataset
    from dgnet_edge.data.train_set import TrainImages

    train = world_copy / "bounding_box_train"
    victim = sorted(train.iterdir())[0]
    victim.unlink()
    victim.symlink_to(world_copy / "gone.jpg")
    records = build_dataset("market1501", world_copy).train
    assert victim in [r.path for r in records]
    assert TrainImages.load(records, 64, 32, workers=0).skipped == 1


def test_data_baseline_says_when_queries_have_no_gallery_match(world_copy, capsys):
    query = sorted((world_copy / "query").iterdir())[0]
    pid = query.name.split("_")[0]
    for f in (world_copy / "bounding_box_test").glob(f"{pid}_*"):
        f.unlink()
    code, out, _ = run_cli(["data", "baseline", world_copy, "--no-progress"], capsys)
    assert code == 0 and "have no gallery image of their identity" in out


def test_an_empty_config_warns(tmp_path, caplog):
    from dgnet_edge.config import load_config

    (tmp_path / "empty.yaml").write_text("# nothing yet\n")
    cfg = load_config(tmp_path / "empty.yaml")
    assert cfg.name == "run"
    assert any("is empty" in r.getMessage() and "default" in r.getMessage() for r in caplog.records)


def test_an_empty_config_warns_through_the_cli(stub_training, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.yaml").write_text("")
    code, _, err = run_cli(["train", "--stage", "baseline", "--config", "empty.yaml", "--no-progress"], capsys)
    assert code == 0 and "is empty" in err


@pytest.mark.parametrize("case", ["data check FILE", "eval FOLDER", "report FILE", "synth --image FOLDER",
                                  "--config FOLDER", "calib check FILE"])
def test_file_or_folder_mixups_say_which(case, tmp_path, tiny_dgnet_checkpoint, capsys):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    folder = tmp_path / "a-folder"
    folder.mkdir()
    args, expected = {
        "data check FILE": (["data", "check", a_file], "is a file, not a folder"),
        "eval FOLDER": (["eval", folder], "is a folder, not a file"),
        "report FILE": (["report", a_file], "is a file, not a folder"),
        "synth --image FOLDER": (["synth", tiny_dgnet_checkpoint, "--image", folder, "--image", folder, "--out",
                                  tmp_path / "g.png"], "is a folder, not an image file"),
        "--config FOLDER": (["train", "--stage", "baseline", "--config", folder], "is a folder, not a YAML file"),
        "calib check FILE": (["calib", "check", a_file], "is a file, not a folder"),
    }[case]
    code, _, err = run_cli(args, capsys)
    line = one_line_error(err)
    assert code == 1 and expected in line, line


# -- issue 15: after kill -9 ----------------------------------------------------------------------------------
def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_stale_staging_folders_are_removed_on_the_next_run(reid_checkpoint, tmp_path, capsys):
    dead = _dead_pid()
    stale_export = tmp_path / f".exp.staging-{dead}-abcd"
    stale_world = tmp_path / f".world.staging-{dead}-efgh"
    live = tmp_path / f".exp.staging-{os.getppid()}-ijkl"  # a process that still runs keeps its folder
    for folder in (stale_export, stale_world, live):
        folder.mkdir()
        (folder / "part.onnx").write_bytes(b"x" * 1000)
    code, _, _ = run_cli(["export", reid_checkpoint, "--out", tmp_path / "exp", "--no-code", "--no-progress"], capsys)
    assert code == 0 and not stale_export.exists() and stale_world.exists() and live.exists()
    code, _, _ = run_cli(["data", "synth", tmp_path / "world", "--train-ids", "2", "--test-ids", "2", "--cameras", "2",
                          "--height", "32", "--width", "16", "-j", "1", "--no-progress"], capsys)
    assert code == 0 and not stale_world.exists() and live.exists()


WRITER = """
import sys
from dgnet_edge.data.synth import WorldSpec, write_world
write_world(sys.argv[1], WorldSpec(train_ids=400, test_ids=400, cameras=6, height=256, width=128), workers=2)
"""


def test_synth_workers_exit_when_the_parent_is_killed(tmp_path):
    psutil = pytest.importorskip("psutil")
    root = tmp_path / "world"
    parent = subprocess.Popen([sys.executable, "-c", WRITER, str(root)])
    try:
        deadline = time.monotonic() + 60
        workers: list = []
        while time.monotonic() < deadline and len(workers) < 2:
            time.sleep(0.5)
            workers = [p for p in psutil.Process(parent.pid).children() if "spawn_main" in " ".join(p.cmdline())]
        assert len(workers) == 2, "the writer did not start its workers"
        staging = [p for p in tmp_path.iterdir() if p.name.startswith(".world.staging-")]
        assert staging
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        gone, alive = psutil.wait_procs(workers, timeout=10)
        assert not alive, "rendering processes outlived their parent"
    finally:
        if parent.poll() is None:
            parent.kill()
    from dgnet_edge.staging import remove_stale_staging

    assert remove_stale_staging(root) == staging
