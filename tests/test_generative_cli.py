"""import-official and synth: converting official release files and rendering swap grids."""

import cv2
import pytest
import torch

from dgnet_edge.cli.main import main
from dgnet_edge.config import load_config
from dgnet_edge.errors import CheckpointError
from dgnet_edge.models import build_dgnet, build_reid_net
from dgnet_edge.models.factory import load_dgnet, load_reid_net
from dgnet_edge.models.official import appearance_to_official, discriminator_to_official, generator_to_official, teacher_to_official
from dgnet_edge.training.dgnet_trainer import DGNetTrainer

SMALL = ["data.height=64", "data.width=32", "dgnet.generator.dilations=[1,2,3]", "dgnet.generator.mlp_dim=16",
         "dgnet.generator.n_res=1", "dgnet.discriminator.n_res=1", "appearance.backbone=resnet18",
         "teacher.backbone=resnet18", "appearance.bottleneck=16", "teacher.bottleneck=16"]


@pytest.fixture()
def official_files(tmp_path):
    """Release-style files (official key names and layouts) written from a random model."""
    torch.manual_seed(0)
    cfg = load_config("dgnet_market", SMALL)
    model = build_dgnet(cfg, 7).eval()
    teacher = build_reid_net(cfg.teacher, 7, appearance_code=False).eval()
    files = {
        "gen": {"a": generator_to_official(model)},
        "id": {"a": appearance_to_official(model.appearance)},
        "dis": {"a": discriminator_to_official(model)},
        "teacher": teacher_to_official(teacher),
    }
    paths = {}
    for name, state in files.items():
        paths[name] = tmp_path / f"{name}.pt"
        torch.save(state, paths[name])
    return cfg, model, teacher, paths


def test_import_official_reproduces_the_source_model(official_files, tmp_path):
    cfg, model, teacher, p = official_files
    out = tmp_path / "imported.pt"
    with pytest.raises(SystemExit) as e:
        main(["import-official", "--gen", str(p["gen"]), "--id", str(p["id"]), "--dis", str(p["dis"]),
              "--teacher", str(p["teacher"]), "--out", str(out), "--config", "dgnet_market", *sum((["--set", s] for s in SMALL), [])])
    assert e.value.code in (None, 0)
    imported, imported_cfg = load_dgnet(out)
    assert imported_cfg == cfg
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        f0, s0 = model.encode(x)
        f1, s1 = imported.encode(x)
        torch.testing.assert_close(s1, s0, atol=1e-5, rtol=0)
        torch.testing.assert_close(f1, f0, atol=1e-5, rtol=0)
        torch.testing.assert_close(imported.generate(s1, f1), model.generate(s0, f0), atol=1e-5, rtol=0)
        for a, b in zip(imported.discriminator(x), model.discriminator(x)):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
        t_net, _, kind = load_reid_net(tmp_path / "imported_teacher.pt")
        assert kind == "teacher"
        torch.testing.assert_close(t_net(x).logits[0], teacher(x).logits[0], atol=1e-5, rtol=0)


def test_imported_checkpoint_cannot_resume(official_files, tmp_path, tiny_world):
    cfg, _, _, p = official_files
    from dgnet_edge.official_import import import_official

    result = import_official(cfg, p["gen"], p["id"], tmp_path / "imported.pt")
    with pytest.raises(CheckpointError, match="cannot resume"):
        DGNetTrainer(cfg, tmp_path, tmp_path / "teacher.pt", resume=result.checkpoint)


def test_import_rejects_the_wrong_file(official_files, tmp_path, capsys):
    _, _, _, p = official_files
    with pytest.raises(SystemExit) as e:
        main(["import-official", "--gen", str(p["id"]), "--id", str(p["id"]), "--out", str(tmp_path / "x.pt"),
              *sum((["--set", s] for s in SMALL), [])])
    assert e.value.code == 1
    assert "error" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()


def test_synth_renders_grid_and_strip(official_files, tmp_path, tiny_world):
    cfg, _, _, p = official_files
    from dgnet_edge.official_import import import_official

    ckpt = import_official(cfg, p["gen"], p["id"], tmp_path / "imported.pt").checkpoint
    grid_png, strip_png = tmp_path / "grid.png", tmp_path / "strip.png"
    with pytest.raises(SystemExit) as e:
        main(["synth", str(ckpt), "--data", str(tiny_world), "-n", "3", "-o", str(grid_png), "--strip", str(strip_png), "--steps", "4"])
    assert e.value.code in (None, 0)
    grid_img, strip_img = cv2.imread(str(grid_png)), cv2.imread(str(strip_png))
    gap = 2
    assert grid_img.shape == (4 * 64 + 3 * gap, 4 * 32 + 3 * gap, 3)  # (N+1) x (N+1) cells
    assert strip_img.shape == (64, 6 * 32 + 5 * gap, 3)  # first, 4 steps, second
    with pytest.raises(SystemExit) as e:
        main(["synth", str(ckpt), "-o", str(grid_png)])
    assert e.value.code == 2
