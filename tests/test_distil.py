"""Stage distil: E_a trained on a bank of swaps rendered once by a frozen DG-Net generator, and its controls."""

import json

import pytest
import torch
from conftest import TINY_DGNET, stop_after, tiny_overrides

from dgnet_edge.checkpoint import load_checkpoint
from dgnet_edge.config import load_config
from dgnet_edge.data.market1501 import Market1501
from dgnet_edge.data.train_set import per_identity
from dgnet_edge.errors import ConfigError
from dgnet_edge.models.factory import load_reid_net
from dgnet_edge.training.distil_trainer import BANK_FILE, DistilTrainer, cutmix_box, train_distil
from dgnet_edge.training.frozen import teacher_labels
from dgnet_edge.training.id_trainer import IdTrainer, train_id
from dgnet_edge.training.swap_bank import SwapBank, draw_pairs
from dgnet_edge.training.trainer import resume_config

DISTIL = ["distil.steps=4", "distil.bank_size=20", "distil.batch_generated=4", "distil.log_every=1",
          "distil.save_every=2", "distil.milestones=[3]"]


def distil_config(world, out, *extra):
    return load_config("synth_small", tiny_overrides(world, out) + TINY_DGNET + DISTIL + list(extra))


@pytest.fixture(scope="module")
def teacher(tiny_world, tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    cfg = load_config("synth_small", tiny_overrides(tiny_world, out) + ["id_train.epochs=1"])
    return train_id(cfg, "baseline", out, progress=False).checkpoint


def rows(out):
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if '"train"' in line]


def test_distil_on_swaps_trains_and_keeps_its_bank(tiny_world, teacher, tiny_dgnet_checkpoint, tmp_path):
    result = train_distil(distil_config(tiny_world, tmp_path), teacher, tiny_dgnet_checkpoint, tmp_path, progress=False)
    assert result.stopped is None and result.step == 4
    assert {"rank1", "mAP"} <= set(result.metrics)
    logged = rows(tmp_path)
    assert len(logged) == 4
    assert all(r["kl"] > 0 and r["fine"] > 0 and torch.isfinite(torch.tensor(r["loss"])) for r in logged)
    assert [r["lr"] for r in logged] == pytest.approx([0.05, 0.05, 0.05, 0.005])  # x0.1 from step 3
    bank = SwapBank.load(tmp_path / BANK_FILE)
    assert len(bank) == 20 and bank.pixels.dtype == torch.uint8 and bank.pixels.shape[1:] == (64, 32, 3)
    assert (bank.appearance_labels != bank.structure_labels).all()
    torch.testing.assert_close(bank.teacher_probs.float().sum(1), torch.ones(20), atol=1e-2, rtol=0)
    # The checkpoint is a re-id network like E_a's, for evaluation and export.
    net, cfg, kind = load_reid_net(result.checkpoint)
    assert kind == "distil" and len(net.heads) == 2
    # A second run from the same generator, teacher, size and seed reuses the bank; another size renders anew.
    stamp = (tmp_path / BANK_FILE).stat().st_mtime_ns
    DistilTrainer(distil_config(tiny_world, tmp_path), tmp_path, teacher, tiny_dgnet_checkpoint, progress=False)
    assert (tmp_path / BANK_FILE).stat().st_mtime_ns == stamp
    DistilTrainer(distil_config(tiny_world, tmp_path, "distil.bank_size=12"), tmp_path, teacher, tiny_dgnet_checkpoint,
                  progress=False)
    assert len(SwapBank.load(tmp_path / BANK_FILE)) == 12


def test_distil_resume_continues_exactly(tiny_world, teacher, tiny_dgnet_checkpoint, tmp_path, monkeypatch):
    full = train_distil(distil_config(tiny_world, tmp_path / "a"), teacher, tiny_dgnet_checkpoint, tmp_path / "a",
                        progress=False)
    trainer = DistilTrainer(distil_config(tiny_world, tmp_path / "b"), tmp_path / "b", teacher, tiny_dgnet_checkpoint,
                            progress=False)

    stop_after(monkeypatch, trainer, 2)
    partial = trainer.run()
    assert partial.stopped == "interrupted" and partial.step == 2
    monkeypatch.undo()
    # Without --teacher and --generator: the checkpoint remembers them.
    resumed = train_distil(resume_config(partial.checkpoint), None, None, tmp_path / "b", resume=partial.checkpoint,
                           progress=False)
    a, b = load_checkpoint(full.checkpoint), load_checkpoint(resumed.checkpoint)
    for key, value in a["models"]["appearance"].items():
        torch.testing.assert_close(value, b["models"]["appearance"][key], rtol=0, atol=0, msg=key)


@pytest.mark.parametrize("source", ["mixup", "cutmix", "none"])
def test_the_controls_run_the_same_schedule_without_a_generator(tiny_world, teacher, tmp_path, source):
    result = train_distil(distil_config(tiny_world, tmp_path, f"distil.source={source}"), teacher, None, tmp_path,
                          progress=False)
    assert result.step == 4 and not (tmp_path / BANK_FILE).exists()
    logged = rows(tmp_path)
    if source == "none":
        assert all(r["kl"] == 0 and r["fine"] == 0 and r["loss"] == pytest.approx(r["id"]) for r in logged)
    else:
        assert all(r["kl"] > 0 and r["fine"] > 0 and r["loss"] > r["id"] for r in logged)


def test_distil_checks_what_it_is_given(tiny_world, teacher, tiny_dgnet_checkpoint, tmp_path):
    with pytest.raises(ConfigError, match="--generator"):
        DistilTrainer(distil_config(tiny_world, tmp_path), tmp_path, teacher, None, progress=False)
    with pytest.raises(ConfigError, match="--teacher"):
        DistilTrainer(distil_config(tiny_world, tmp_path), tmp_path, None, tiny_dgnet_checkpoint, progress=False)
    with pytest.raises(ConfigError, match="trained at 64x32"):
        DistilTrainer(distil_config(tiny_world, tmp_path, "data.height=128", "data.width=64"), tmp_path, teacher,
                      tiny_dgnet_checkpoint, progress=False)


def test_init_from_the_generator_starts_from_its_e_a(tiny_world, teacher, tiny_dgnet_checkpoint, tmp_path):
    trainer = DistilTrainer(distil_config(tiny_world, tmp_path, "distil.init=generator", "distil.source=none"),
                            tmp_path, teacher, tiny_dgnet_checkpoint, progress=False)
    saved = load_checkpoint(tiny_dgnet_checkpoint)["models"]["appearance"]
    for key, value in trainer.net.state_dict().items():
        torch.testing.assert_close(value, saved[key], msg=key)


def test_per_identity_cuts_every_identity_to_n_images(tiny_world, tmp_path):
    records = Market1501(tiny_world).train
    cut = per_identity(records, 2, seed=0)
    counts = {}
    for r in cut:
        counts[r.pid] = counts.get(r.pid, 0) + 1
    assert set(counts) == {r.pid for r in records} and set(counts.values()) == {2}
    assert cut == per_identity(records, 2, seed=0) and cut != per_identity(records, 2, seed=1)
    assert [records.index(r) for r in cut] == sorted(records.index(r) for r in cut)
    # Every stage trains on the cut.
    cfg = load_config("synth_small", tiny_overrides(tiny_world, tmp_path) + ["data.per_identity=2"])
    trainer = IdTrainer(cfg, "baseline", tmp_path, progress=False)
    assert len(trainer.train_set) == 2 * len(counts) and trainer.train_set.num_classes == 8


def test_cutmix_box_covers_the_asked_share():
    g = torch.Generator().manual_seed(0)
    for lam in (0.2, 0.5, 0.9):
        top, left, h, w = cutmix_box(lam, 64, 32, g)
        assert 0 <= top and top + h <= 64 and 0 <= left and left + w <= 32
        assert h * w <= round(64 * (1 - lam) ** 0.5 + 1) * round(32 * (1 - lam) ** 0.5 + 1)


def test_swap_pairs_differ_and_teacher_labels_leave_the_teacher_as_it_was(teacher):
    labels = torch.tensor([0, 0, 1, 1, 2])
    a, b = draw_pairs(labels, 50, torch.Generator().manual_seed(1))
    assert len(a) == 50 and (labels[a] != labels[b]).all()
    with pytest.raises(ValueError, match="two identities"):
        draw_pairs(torch.zeros(4, dtype=torch.int64), 3, torch.Generator())
    net, _, _ = load_reid_net(teacher)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    probs = teacher_labels(net, torch.randn(4, 3, 64, 32), batch_stats=True)
    torch.testing.assert_close(probs.sum(1), torch.ones(4))
    for key, value in net.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0, msg=key)


def test_a_distilled_e_a_exports_with_the_generator_it_learnt_from(tiny_world, teacher, tiny_dgnet_checkpoint, tmp_path):
    import numpy as np
    from dgnet_edge.apps.camera.storage.synthesis import has_generator
    from dgnet_edge.export.pipeline import ExportOptions, export_checkpoint

    from dgnet_edge.models.factory import load_dgnet
    from dgnet_edge.runtime.embedder import Embedder, Generator

    result = train_distil(distil_config(tiny_world, tmp_path / "run", "distil.steps=1"), teacher, tiny_dgnet_checkpoint,
                          tmp_path / "run", progress=False)
    manifest = export_checkpoint(result.checkpoint, tmp_path / "export", ExportOptions())
    roles = {m.role for m in manifest.models}
    assert roles == {"embedder", "appearance", "structure", "decoder"} and has_generator(tmp_path / "export")
    assert manifest.source["kind"] == "distil" and manifest.code_dim > 0
    crops = np.random.default_rng(0).integers(0, 256, (3, 64, 32, 3), dtype=np.uint8)
    with Embedder.open(tmp_path / "export") as embedder, Generator.open(tmp_path / "export") as generator:
        features, codes = generator.codes(list(crops), embedder)
        np.testing.assert_allclose(features, embedder.embed(list(crops)), atol=1e-5)
        # the codes are the DG-Net checkpoint's own E_a's, which its decoder was trained with
        model, cfg = load_dgnet(tiny_dgnet_checkpoint)
        x = (torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255 - torch.tensor(cfg.data.mean).view(1, 3, 1, 1)) \
            / torch.tensor(cfg.data.std).view(1, 3, 1, 1)
        np.testing.assert_allclose(codes, model.encode_appearance(x).numpy(), atol=1e-4)
        assert codes.shape == (3, manifest.code_dim)
        assert generator.decode(generator.structure(list(crops)), codes).shape == (3, 64, 32, 3)
    # A control run learnt from no generator: its export is the embedder alone.
    control = train_distil(distil_config(tiny_world, tmp_path / "none", "distil.steps=1", "distil.source=none"), None,
                           None, tmp_path / "none", progress=False)
    assert {m.role for m in export_checkpoint(control.checkpoint, tmp_path / "plain").models} == {"embedder"}
