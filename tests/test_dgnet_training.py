import json

import pytest
import torch
from conftest import stop_after, tiny_overrides

from dgnet_edge.checkpoint import load_checkpoint, save_checkpoint
from dgnet_edge.config import DGNetConfig, NetConfig, load_config
from dgnet_edge.errors import CheckpointError, ConfigError
from dgnet_edge.models import build_reid_net
from dgnet_edge.training.dgnet_trainer import DGNetTrainer, train_dgnet
from dgnet_edge.training.frozen import frozen_call
from dgnet_edge.training.id_trainer import train_id
from dgnet_edge.training.trainer import resume_config

SMALL_DGNET = [
    "teacher.last_stride=1",
    "dgnet.generator.dilations=[1,2,3]",
    "dgnet.generator.mlp_dim=32",
    "dgnet.generator.n_res=2",
    "dgnet.discriminator.n_res=1",
    "dgnet.discriminator.num_scales=2",
    "dgnet.warm_iter=1",
    "dgnet.warm_teacher_iter=1",
    "dgnet.warm_scale=0.5",
    "dgnet.appearance_init=teacher",
    "dgnet.log_every=1",
    "dgnet.max_iter=4",
    "dgnet.sample_every=2",
    "dgnet.save_every=2",
]


def dgnet_config(world, out, *extra):
    return load_config("synth_small", tiny_overrides(world, out) + SMALL_DGNET + list(extra))


@pytest.fixture(scope="module")
def teacher(tiny_world, tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    cfg = load_config("synth_small", tiny_overrides(tiny_world, out) + ["teacher.last_stride=1", "id_train.epochs=1"])
    return train_id(cfg, "teacher", out, progress=False).checkpoint


def test_dgnet_trains_end_to_end(tiny_world, teacher, tmp_path):
    result = train_dgnet(dgnet_config(tiny_world, tmp_path), teacher, tmp_path, progress=False)
    assert result.stopped is None and result.step == 4
    state = load_checkpoint(result.checkpoint, kinds=("dgnet",))
    assert set(state["models"]) == {"appearance", "structure", "decoder", "discriminator"}
    assert set(state["optimizers"]) == {"gen", "dis", "id"}
    assert {"rank1", "mAP", "swap_teacher_top1_appearance", "swap_chance"} <= set(result.metrics)
    assert 0 <= result.metrics["swap_teacher_top1_appearance"] <= 100
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines() if '"train"' in line]
    assert len(rows) == 4
    for key in ("dis", "gan", "recon_x", "recon_xp", "recon_f", "recon_s", "cycle", "id", "pid", "recon_id", "teacher"):
        assert all(torch.isfinite(torch.tensor(r[key])) for r in rows), key
    # The warm weights grow from 0 after warm_iter: off at step 0 and 1, on after.
    assert [r["w_teacher"] for r in rows] == [0.0, 0.0, 0.5, 1.0]
    assert rows[0]["cycle"] == 0.0 and rows[-1]["cycle"] > 0
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["train_00000002.png", "train_00000004.png"]


def test_dgnet_resume_continues_exactly(tiny_world, teacher, tmp_path, monkeypatch):
    full = train_dgnet(dgnet_config(tiny_world, tmp_path / "a"), teacher, tmp_path / "a", progress=False)

    trainer = DGNetTrainer(dgnet_config(tiny_world, tmp_path / "b"), tmp_path / "b", teacher, progress=False)

    stop_after(monkeypatch, trainer, 2)
    partial = trainer.run()
    assert partial.stopped == "interrupted" and partial.step == 2
    monkeypatch.undo()

    # Without --teacher: the checkpoint remembers it.
    resumed = train_dgnet(resume_config(partial.checkpoint), None, tmp_path / "b", resume=partial.checkpoint, progress=False)
    a, b = load_checkpoint(full.checkpoint), load_checkpoint(resumed.checkpoint)
    for part in a["models"]:
        for key, value in a["models"][part].items():
            torch.testing.assert_close(value, b["models"][part][key], rtol=0, atol=0, msg=f"{part}.{key}")


def test_teacher_checks(tiny_world, teacher, tiny_checkpoint, tmp_path):
    cfg = dgnet_config(tiny_world, tmp_path)
    with pytest.raises(ConfigError, match="--teacher"):
        DGNetTrainer(cfg, tmp_path, None)
    DGNetTrainer(cfg, tmp_path, tiny_checkpoint)  # a baseline E_a serves as a teacher
    save_checkpoint(tmp_path / "dgnet.pt", {"kind": "dgnet", "num_classes": 8})
    with pytest.raises(CheckpointError, match="--stage teacher, baseline or distil"):
        DGNetTrainer(cfg, tmp_path, tmp_path / "dgnet.pt")
    state = load_checkpoint(teacher)
    state["num_classes"] = 99
    save_checkpoint(tmp_path / "other.pt", {k: v for k, v in state.items() if k not in ("format", "version", "toolkit_version")})
    with pytest.raises(CheckpointError, match="classifies 99 identities"):
        DGNetTrainer(cfg, tmp_path, tmp_path / "other.pt")
    wide = dgnet_config(tiny_world, tmp_path, "appearance.backbone=resnet34")
    with pytest.raises(ConfigError, match="does not fit"):
        DGNetTrainer(wide, tmp_path, teacher)


def test_config_size_checks(tiny_world, teacher, tmp_path):
    with pytest.raises(ConfigError, match="dilations"):
        DGNetTrainer(dgnet_config(tiny_world, tmp_path, "dgnet.generator.dilations=[3,6,9]"), tmp_path, teacher)
    with pytest.raises(ConfigError, match="stripes"):
        DGNetTrainer(dgnet_config(tiny_world, tmp_path, "appearance.last_stride=2"), tmp_path, teacher)


def test_warm_weights_follow_the_official_schedule():
    d = DGNetConfig()
    assert d.warm_weight(0.0, 2.0, 30_000, d.warm_iter) == 0.0
    assert d.warm_weight(0.0, 2.0, 30_001, d.warm_iter) == pytest.approx(0.0005)
    assert d.warm_weight(0.0, 2.0, 32_000, d.warm_iter) == pytest.approx(1.0)
    assert d.warm_weight(0.0, 1.0, 99_999, d.warm_iter) == 1.0


def test_frozen_call_passes_gradients_to_the_input_only():
    torch.manual_seed(0)
    net = build_reid_net(NetConfig(backbone="resnet18", bottleneck=8), 4).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(3, 3, 64, 32, requires_grad=True)
    out = frozen_call(net, x, batch_stats=True)
    (out.code.sum() + out.logits[0].sum()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    assert net.training and all(m.training for m in net.modules())


def test_positives_share_the_identity(tiny_world, teacher, tmp_path):
    trainer = DGNetTrainer(dgnet_config(tiny_world, tmp_path), tmp_path, teacher, progress=False)
    labels = trainer.train_set.labels
    index = torch.arange(len(labels))
    for _ in range(3):
        pos = trainer.positives(index)
        assert torch.equal(labels[pos], labels)
        assert (pos != index).all()  # every identity of the tiny world has several images


def test_reconstruction_warm_up_trains_only_the_generator_and_swaps_are_logged(tiny_world, teacher, tmp_path):
    cfg = dgnet_config(tiny_world, tmp_path, "dgnet.recon_warm_iter=2", "dgnet.warm_iter=3", "dgnet.warm_teacher_iter=3",
                       "dgnet.swap_every=2", "dgnet.max_iter=3", "dgnet.sample_every=0")
    trainer = DGNetTrainer(cfg, tmp_path, teacher, progress=False)
    before = {name: {k: v.clone() for k, v in getattr(trainer.model, name).state_dict().items()}
              for name in ("appearance", "discriminator", "decoder")}
    batches = trainer.batches(0)
    for _ in range(2):
        stats = trainer.train_step(next(batches))
        trainer.step += 1
    assert stats["recon_x"] > 0 and stats["gan"] == stats["recon_id"] == stats["dis"] == 0
    after = {name: getattr(trainer.model, name).state_dict() for name in before}
    for name in ("appearance", "discriminator"):  # E_a (weights and BN statistics) and D untouched
        for key, value in before[name].items():
            assert torch.equal(value, after[name][key]), f"{name}.{key}"
    assert any(not torch.equal(v, after["decoder"][k]) for k, v in before["decoder"].items())
    full = trainer.train_step(next(batches))  # then the full losses, logged in the same columns
    assert list(full) == list(stats) and full["gan"] > 0

    result = train_dgnet(cfg, teacher, tmp_path / "run", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    swaps = [r for r in rows if r["kind"] == "swap"]
    assert [r["step"] for r in swaps] == [2]
    assert 0 <= swaps[0]["swap_teacher_top1_appearance"] <= 100 and swaps[0]["train_seconds"] > 0
    state = load_checkpoint(result.checkpoint)
    assert state["train_seconds"] >= swaps[0]["train_seconds"]  # kept for a resumed run's curve
    assert sorted(p.name for p in (tmp_path / "run").glob("train*.csv")) == ["train.csv"]


def test_a_zero_gan_weight_leaves_d_alone_and_edges_train(tiny_world, teacher, tmp_path):
    """gan_w 0: D is neither run nor updated (its loss weighs nothing); E_s on edges trains as on gray."""
    cfg = dgnet_config(tiny_world, tmp_path, "dgnet.gan_w=0", "dgnet.generator.structure_input=edges",
                       "dgnet.sample_every=0")
    trainer = DGNetTrainer(cfg, tmp_path, teacher, progress=False)
    assert trainer.model.structure.input == "edges"
    d_before = {k: v.clone() for k, v in trainer.model.discriminator.state_dict().items()}
    s_before = {k: v.clone() for k, v in trainer.model.structure.state_dict().items()}
    batches = trainer.batches(0)
    for _ in range(3):
        stats = trainer.train_step(next(batches))
        trainer.step += 1
    assert stats["dis"] == stats["gan"] == 0 and stats["recon_x"] > 0 and stats["recon_id"] > 0
    assert all(torch.equal(v, trainer.model.discriminator.state_dict()[k]) for k, v in d_before.items())
    assert trainer.dis_opt.state == {}
    assert any(not torch.equal(v, trainer.model.structure.state_dict()[k]) for k, v in s_before.items())
