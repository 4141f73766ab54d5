"""Shared fixtures: small synthetic worlds, made once per test session."""

from __future__ import annotations

import pytest

from dgnet_edge.data.synth import WorldSpec, write_world
from dgnet_edge.data.video.site import VideoSpec


@pytest.fixture(autouse=True)
def _empty_detector_cache(tmp_path_factory, monkeypatch):
    """Every test sees an empty download cache: a detector cached on the machine (``--detector auto``
    picks ssdlite when it is there) never changes what a test runs."""
    monkeypatch.setenv("DGNET_EDGE_CACHE", str(tmp_path_factory.mktemp("cache")))


def stop_after(monkeypatch, trainer, steps: int) -> None:
    """Make ``trainer.run()`` stop as Ctrl-C does once ``steps`` steps are done."""
    from dgnet_edge.training import trainer as trainer_module

    class Stop:
        reason = None

        @property
        def stop(self):
            if trainer.step >= steps:
                self.reason = "interrupted"
            return self.reason is not None

    class Flag:
        def __enter__(self):
            return Stop()

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(trainer_module, "stop_on_interrupt", lambda max_seconds=None: Flag())


TINY_WORLD = WorldSpec(train_ids=8, test_ids=6, cameras=3, images_per_camera=4, height=64, width=32, seed=3)


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """A world of 8 training and 6 test identities at 64x32, written in Market-1501 layout."""
    root = tmp_path_factory.mktemp("worlds") / "tiny"
    write_world(root, TINY_WORLD, workers=1)
    return root


TINY_BENCH = VideoSpec(cameras=2, seconds=3.0, fps=10.0, width=320, height=240, seed=5)


@pytest.fixture(scope="session")
def tiny_bench(tmp_path_factory):
    """A video bench of 2 cameras x 30 frames at 320x240 (tests read it; none may write into it)."""
    from dgnet_edge.data.video.world import write_bench

    root = tmp_path_factory.mktemp("video") / "bench"
    write_bench(root, TINY_BENCH, workers=1)
    return root


def tiny_overrides(root, out_dir=None) -> list[str]:
    """Overrides of the synth_small config that make training on the tiny world take seconds."""
    items = [
        f"data.root={root}",
        "data.height=64",
        "data.width=32",
        "data.pad=2",
        "data.batch_size=8",
        "data.workers=0",
        "appearance.bottleneck=16",
        "appearance.last_stride=1",  # a 4x2 map at 64x32: the 4-stripe appearance code needs 4 rows
        "teacher.bottleneck=16",
        "id_train.epochs=2",
        "id_train.milestones=[1]",
        "id_train.warmup_epochs=0.5",
        "id_train.log_every=1",
        "eval.batch_size=16",
    ]
    if out_dir is not None:
        items.append(f"output_dir={out_dir}")
    return items


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_world, tmp_path_factory):
    """A baseline (E_a) checkpoint trained for one epoch on the tiny world."""
    from dgnet_edge.config import load_config
    from dgnet_edge.training.id_trainer import train_id

    out = tmp_path_factory.mktemp("runs") / "tiny"
    cfg = load_config("synth_small", tiny_overrides(tiny_world, out) + ["id_train.epochs=1"])
    return train_id(cfg, "baseline", out, progress=False).checkpoint


# A DG-Net small enough for the 64x32 tiny world (ASPP dilations below the 16x8 structure code).
TINY_DGNET = [
    "appearance.last_stride=1",
    "appearance.bottleneck=16",
    "dgnet.generator.dilations=[1,2,3]",
    "dgnet.generator.mlp_dim=32",
    "dgnet.generator.n_res=2",
    "dgnet.discriminator.n_res=1",
    "dgnet.discriminator.num_scales=2",
]


@pytest.fixture(scope="session")
def tiny_dgnet_checkpoint(tiny_world, tmp_path_factory):
    """A DG-Net checkpoint for the tiny world with random weights (for export and runtime tests)."""
    from dgnet_edge.config import load_config
    from dgnet_edge.models.factory import save_initial_checkpoint

    cfg = load_config("synth_small", tiny_overrides(tiny_world) + TINY_DGNET)
    return save_initial_checkpoint(tmp_path_factory.mktemp("dgnet") / "dgnet.pt", cfg, "dgnet", 8)


@pytest.fixture(scope="session")
def tiny_dgnet_int8_export(tiny_dgnet_checkpoint, tiny_world, tmp_path_factory):
    """The tiny DG-Net exported with INT8 models (embedder and generator parts), through the CLI."""
    from typer.testing import CliRunner

    from dgnet_edge.cli.main import app

    out = tmp_path_factory.mktemp("int8_dgnet") / "export"
    result = CliRunner().invoke(app, ["export", str(tiny_dgnet_checkpoint), "--out", str(out), "--int8", "--calib-data",
                                      str(tiny_world), "--calib-count", "24", "--no-progress"])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def tiny_dgnet_export(tiny_dgnet_checkpoint, tmp_path_factory):
    """The export folder (fp32 + fp16, embedder and generator parts) of the tiny DG-Net."""
    from dgnet_edge.export.pipeline import ExportOptions, export_checkpoint

    out = tmp_path_factory.mktemp("dgnet_export") / "export"
    export_checkpoint(tiny_dgnet_checkpoint, out, ExportOptions(fp16=True))
    return out
