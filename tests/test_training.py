import json
import os
import signal

import pytest
import torch
from conftest import stop_after, tiny_overrides

from dgnet_edge.checkpoint import load_checkpoint, save_checkpoint
from dgnet_edge.config import load_config
from dgnet_edge.errors import CheckpointError, DeviceError
from dgnet_edge.models.factory import load_reid_net
from dgnet_edge.training.id_trainer import IdTrainer, train_id
from dgnet_edge.training.trainer import resume_config


def tiny_config(root, out_dir, *extra):
    return load_config("synth_small", tiny_overrides(root, out_dir) + list(extra))


@pytest.mark.parametrize("stage", ["teacher", "baseline"])
def test_train_end_to_end(tiny_world, tmp_path, stage):
    cfg = tiny_config(tiny_world, tmp_path)
    result = train_id(cfg, stage, tmp_path, progress=False)
    assert result.stopped is None
    assert result.step == 2 * (len(list((tiny_world / "bounding_box_train").iterdir())) // 8)
    assert {"rank1", "mAP", "mINP"} <= set(result.metrics)
    assert json.loads((tmp_path / "metrics.json").read_text())["mAP"] == result.metrics["mAP"]
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in lines].count("train") == result.step
    assert (tmp_path / "train.csv").read_text().startswith("step,epoch,loss,acc,lr")
    assert load_config(tmp_path / "config.yaml") == cfg
    net, saved_cfg, kind = load_reid_net(result.checkpoint)
    assert kind == stage and saved_cfg == cfg and not net.training
    assert len(net.heads) == (1 if stage == "teacher" else 2)


def _weights(path):
    return load_checkpoint(path)["models"]["appearance"]


def test_resume_continues_exactly(tiny_world, tmp_path, monkeypatch):
    straight = tiny_config(tiny_world, tmp_path / "a")
    full = train_id(straight, "baseline", tmp_path / "a", progress=False)

    trainer = IdTrainer(tiny_config(tiny_world, tmp_path / "b"), "baseline", tmp_path / "b", progress=False)
    stop_at = trainer.iters_per_epoch + 1  # mid-way through the second epoch
    stop_after(monkeypatch, trainer, stop_at)
    partial = trainer.run()
    assert partial.stopped == "interrupted" and partial.step == stop_at
    monkeypatch.undo()

    resumed = train_id(resume_config(partial.checkpoint), "baseline", tmp_path / "b", resume=partial.checkpoint, progress=False)
    assert resumed.step == full.step
    a, b = _weights(full.checkpoint), _weights(resumed.checkpoint)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=f"{key} differs after resume")
    assert resumed.metrics == full.metrics


def test_ctrl_c_saves_a_checkpoint(tiny_world, tmp_path, monkeypatch):
    trainer = IdTrainer(tiny_config(tiny_world, tmp_path), "teacher", tmp_path, progress=False)
    step = trainer.train_step

    def interrupting_step(index):
        if trainer.step == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return step(index)

    monkeypatch.setattr(trainer, "train_step", interrupting_step)
    result = trainer.run()
    assert result.stopped == "interrupted"
    assert load_checkpoint(result.checkpoint)["step"] == result.step == 2


def test_resume_rejects_missing_and_foreign_checkpoints(tiny_world, tmp_path):
    cfg = tiny_config(tiny_world, tmp_path)
    with pytest.raises(CheckpointError, match="not found"):
        IdTrainer(cfg, "baseline", tmp_path, resume=tmp_path / "missing.pt")
    result = train_id(tiny_config(tiny_world, tmp_path, "id_train.epochs=1"), "baseline", tmp_path, progress=False)
    with pytest.raises(CheckpointError, match="expected one of: teacher"):
        IdTrainer(cfg, "teacher", tmp_path, resume=result.checkpoint)
    other = tiny_config(tiny_world, tmp_path, "appearance.bottleneck=8")
    with pytest.raises(CheckpointError, match="network"):
        IdTrainer(other, "baseline", tmp_path, resume=result.checkpoint)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a weights-only checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"a": torch.zeros(1)}, tmp_path / "official.pt")
    with pytest.raises(CheckpointError, match="import-official"):
        load_checkpoint(tmp_path / "official.pt")


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    target = save_checkpoint(tmp_path / "ck.pt", {"kind": "teacher", "step": 1})

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint(target, {"kind": "teacher", "step": 2})
    assert load_checkpoint(target)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_request_without_gpu(tiny_world, tmp_path):
    with pytest.raises(DeviceError, match="no usable CUDA"):
        IdTrainer(tiny_config(tiny_world, tmp_path, "device=cuda"), "baseline", tmp_path)
