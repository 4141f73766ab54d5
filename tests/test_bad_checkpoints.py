"""Bad checkpoint files: one-line errors for every command that loads one, and import-official
writing nothing unless every input converts."""

import os

import pytest
import torch
from test_generative_cli import SMALL, official_files  # noqa: F401  (fixture)

from dgnet_edge.cli.main import main

SETS = sum((["--set", s] for s in SMALL), [])


def _bad_file(path, kind):
    if kind == "random bytes":
        path.write_bytes(os.urandom(4096))
    elif kind == "truncated":
        torch.save({"weights": torch.zeros(20000)}, path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:  # a pickled module: refused by weights_only loading
        torch.save(torch.nn.Linear(2, 2), path)
    return path


def _run(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    return e.value.code, capsys.readouterr().err


KINDS = ["random bytes", "truncated", "pickled module"]
EXPECTED = {"random bytes": "truncated, or not a torch file", "truncated": "truncated, or not a torch file",
            "pickled module": "pickled Python objects"}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", ["eval", "export", "synth", "train --resume", "import-official"])
def test_bad_checkpoint_is_one_line(command, kind, tmp_path, capsys, official_files):  # noqa: F811
    bad = _bad_file(tmp_path / "bad.pt", kind)
    _, _, _, p = official_files
    args = {
        "eval": ["eval", str(bad)],
        "export": ["export", str(bad), "--out", str(tmp_path / "exp")],
        "synth": ["synth", str(bad), "--out", str(tmp_path / "grid.png"), "--image", "a.jpg", "--image", "b.jpg"],
        "train --resume": ["train", "--stage", "baseline", "--resume", str(bad), "--no-progress"],
        "import-official": ["import-official", "--gen", str(bad), "--id", str(p["id"]), "-o", str(tmp_path / "o.pt"), *SETS],
    }[command]
    code, err = _run(args, capsys)
    assert code == 1
    lines = [line for line in err[err.index("error:"):].splitlines() if line.strip()]
    assert len(lines) == 1, err  # the error and nothing after it
    assert "not a weights-only checkpoint" in lines[0] and EXPECTED[kind] in lines[0] and str(bad) in lines[0]
    assert "Traceback" not in err and "PytorchStreamReader" not in err and "WeightsUnpickler" not in err


def test_debug_variable_shows_torchs_error(tmp_path, monkeypatch):
    from dgnet_edge.errors import CheckpointError

    bad = _bad_file(tmp_path / "bad.pt", "pickled module")
    monkeypatch.setenv("DGNET_EDGE_DEBUG", "1")
    with pytest.raises(CheckpointError) as e:
        main(["eval", str(bad)])
    assert "Weights only load failed" in str(e.value.__cause__)  # torch's own text, kept for debugging


@pytest.mark.parametrize("teacher", ["a generator file", "another class count", "random bytes"])
def test_import_official_bad_teacher_writes_nothing(teacher, official_files, tmp_path, capsys):  # noqa: F811
    cfg, _, _, p = official_files
    if teacher == "a generator file":
        bad = p["gen"]
    elif teacher == "another class count":
        from dgnet_edge.models import build_reid_net
        from dgnet_edge.models.official import teacher_to_official

        bad = tmp_path / "teacher9.pt"
        torch.save(teacher_to_official(build_reid_net(cfg.teacher, 9, appearance_code=False)), bad)
    else:
        bad = _bad_file(tmp_path / "teacher.pt", "random bytes")
    out = tmp_path / "imported.pt"
    code, err = _run(["import-official", "--gen", str(p["gen"]), "--id", str(p["id"]), "--teacher", str(bad),
                      "-o", str(out), *SETS], capsys)
    assert code == 1 and str(bad) in err
    assert not out.exists() and not (tmp_path / "imported_teacher.pt").exists()
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".imported")]  # no temporary files either
