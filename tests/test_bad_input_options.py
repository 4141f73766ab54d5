"""Bad input to options and to eval-tracks' files: exact ids and frames, a site.json blamed for its own
faults, usage errors before any work, finite float options, and only the backends the demo runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_bad_input import one_line_error, run_cli

from dgnet_edge.data.video.world import FORMAT, VERSION

# -- eval-tracks: ids and frames read exactly, site.json checked -------------------------------------
FRAMES = 3
PERSONS = {1: 10.0, 2: 100.0}  # ground-truth id -> x of its box, in every frame


def _gt_lines() -> list[str]:
    return [f"{f},{gid},{x},10,20,40,1,1,1.0" for f in range(1, FRAMES + 1) for gid, x in PERSONS.items()]


def _pred_lines(ids: dict[int, int]) -> list[str]:
    """The ground truth's boxes as tracks, person ``gid`` given the id ``ids[gid]``."""
    return [f"{f},{ids[gid]},{x},10,20,40,1,-1,-1,-1" for f in range(1, FRAMES + 1) for gid, x in PERSONS.items()]


@pytest.fixture()
def bench(tmp_path) -> Path:
    """A one-camera bench of two people standing still for 3 frames, in the layout `data video` writes."""
    root = tmp_path / "bench"
    (root / "cam1" / "gt").mkdir(parents=True)
    (root / "cam1" / "det").mkdir()
    (root / "cam1" / "gt" / "gt.txt").write_text("\n".join(_gt_lines()) + "\n")
    (root / "cam1" / "det" / "det.txt").write_text("")
    (root / "cam1" / "seqinfo.ini").write_text(f"[Sequence]\nname = cam1\nframeRate = 10\nseqLength = {FRAMES}\n")
    site = {"format": FORMAT, "version": VERSION, "seed": 0, "fps": 10, "width": 320, "height": 240, "frames": FRAMES,
            "cameras": [{"name": "cam1", "dir": "cam1", "video": None}], "identities": [1, 2], "detections": {}}
    (root / "site.json").write_text(json.dumps(site))
    return root


def _eval(bench: Path, lines: list[str], capsys) -> tuple[int, str, str]:
    pred = bench.parent / "pred"
    pred.mkdir(exist_ok=True)
    (pred / "cam1.txt").write_text("\n".join(lines) + "\n")
    return run_cli(["eval-tracks", pred, "--gt", bench, "--json"], capsys)


@pytest.mark.parametrize("ids", [{1: 9223372036854775807, 2: -9223372036854775807}, {1: 4294967296, 2: 0},
                                 {1: 2**53 + 1, 2: 2**53}], ids=["int64-extremes", "2**32-and-0", "past-float-precision"])
def test_eval_tracks_reads_ids_exactly(bench, ids, capsys):
    code, out, err = _eval(bench, _pred_lines(ids), capsys)
    assert code == 0, err
    cam = json.loads(out)["per_camera"]["cam1"]
    assert cam["pred_ids"] == 2 and cam["idf1"] == 100.0 and cam["id_switches"] == 0


def test_eval_tracks_still_refuses_an_id_twice_in_one_frame(bench, capsys):
    code, _, err = _eval(bench, _pred_lines({1: 4294967296, 2: 4294967296}), capsys)
    line = one_line_error(err)
    assert code == 1 and "id 4294967296 appears more than once in frame 1" in line


@pytest.mark.parametrize(("field", "value"), [("frame", "3000000000"), ("id", "99999999999999999999"),
                                              ("id", "-99999999999999999999"), ("id", "1e400000"), ("frame", "2.5")])
def test_eval_tracks_names_the_line_of_an_out_of_range_frame_or_id(bench, field, value, capsys):
    lines = _pred_lines({1: 1, 2: 2})
    parts = lines[1].split(",")
    parts[0 if field == "frame" else 1] = value
    lines[1] = ",".join(parts)
    code, _, err = _eval(bench, lines, capsys)
    line = one_line_error(err)
    assert code == 1 and "cam1.txt:2:" in line and f"{field} must be a whole number" in line and value in line


@pytest.mark.parametrize(("change", "expected"), [
    ({"cameras": []}, "no cameras"),
    ({"frames": 0}, "frames must be a whole number"),
    ({"frames": -10}, "frames must be a whole number"),
    ({"frames": 2.5}, "frames must be a whole number"),
    ({"frames": 3_000_000_000}, "frames must be a whole number"),
    ({"fps": -1}, "fps must be a positive number"),
    ({"cameras": [{"name": "../cam1", "dir": "cam1", "video": None}]}, "not a plain file name"),
    ({"cameras": [{"name": "cam1", "dir": "cam1", "video": None}] * 2}, "camera names repeat"),
], ids=["no-cameras", "frames-0", "frames-negative", "frames-fraction", "frames-huge", "fps", "name-path", "name-twice"])
def test_eval_tracks_blames_site_json_for_its_own_faults(bench, change, expected, capsys):
    site = json.loads((bench / "site.json").read_text())
    (bench / "site.json").write_text(json.dumps({**site, **change}))
    code, _, err = _eval(bench, _pred_lines({1: 1, 2: 2}), capsys)
    line = one_line_error(err)
    assert code == 1 and "site.json" in line and expected in line and "cam1.txt" not in line


# -- float options: finite first, then the range, for every float option of every command ------------
def _commands(app, path: tuple[str, ...] = ()):
    """(command words, callback) of every command of a Typer app, sub-apps included."""
    for command in app.registered_commands:
        yield path + (command.name or command.callback.__name__.replace("_", "-"),), command.callback
    for group in app.registered_groups:
        yield from _commands(group.typer_instance, path + (group.name,))


def _float_options() -> list[tuple[tuple[str, ...], str, float | None, float | None]]:
    """(command words, --option, min, max) of every float option, read from the app itself so that a
    new option is covered without a change here."""
    import typing

    from typer.utils import get_params_from_function

    from dgnet_edge.cli.main import app

    found = []
    for words, callback in _commands(app):
        for name, param in get_params_from_function(callback).items():
            if param.annotation is float or float in typing.get_args(param.annotation):
                info = param.default
                flag = next((d for d in info.param_decls or () if d.startswith("--")), "--" + name.replace("_", "-"))
                found.append((words, flag, info.min, info.max))
    return found


FLOAT_OPTIONS = _float_options()


def _flat(text: str) -> str:
    """Rich's error panel as one line: no box characters, no wrapping."""
    return " ".join(text.translate({ord(c): " " for c in "│╭╮╰╯─"}).split())


def test_the_float_options_are_found():
    flags = {(" ".join(words), flag) for words, flag, _, _ in FLOAT_OPTIONS}
    assert {("demo", "--threshold"), ("demo", "--open-timeout"), ("data video", "--seconds"), ("data video", "--fps"),
            ("data synth", "--distractors"), ("eval", "--alpha"), ("eval-tracks", "--min-visibility")} <= flags


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
@pytest.mark.parametrize(("words", "flag", "low", "high"), FLOAT_OPTIONS,
                         ids=[f"{' '.join(w)} {f}" for w, f, _, _ in FLOAT_OPTIONS])
def test_float_options_must_be_finite(words, flag, low, high, value, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli([*words, flag, value], capsys)
    message = _flat(err)
    assert code == 2 and "Traceback" not in err
    assert f"'{flag}': must be a finite number" in message and f"got {value}" in message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("words", "flag", "low", "high"), [o for o in FLOAT_OPTIONS if o[2] is not None or o[3] is not None],
                         ids=[f"{' '.join(w)} {f}" for w, f, lo, hi in FLOAT_OPTIONS if lo is not None or hi is not None])
def test_float_options_check_their_range(words, flag, low, high, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for value in [v for v in (low - 1 if low is not None else None, high + 1 if high is not None else None) if v is not None]:
        code, _, err = run_cli([*words, flag, str(value)], capsys)
        assert code == 2 and f"'{flag}': must be" in _flat(err) and f"got {value}" in _flat(err)
    code, _, err = run_cli([*words, flag, "lots"], capsys)
    assert code == 2 and f"'{flag}': 'lots' is not a number" in _flat(err)


# -- usage errors before any work -----------------------------------------------------------------------
def test_data_baseline_bounds_stripes_before_reading_the_dataset(tmp_path, capsys):
    code, _, err = run_cli(["data", "baseline", tmp_path / "no-such-dataset", "--stripes", "100000"], capsys)
    line = one_line_error(err)
    assert code == 2 and "--stripes must be in 1..128" in line and "100000" in line


def test_bench_eval_refuses_more_identities_than_images(monkeypatch, capsys):
    from dgnet_edge.cli import bench

    monkeypatch.setattr(bench, "_random_problem", lambda *a: pytest.fail("the problem was generated"))
    for args in (["--ids", "50", "--gallery", "2"], ["--ids", "50", "--queries", "10"]):
        code, _, err = run_cli(["bench", "eval", *args], capsys)
        line = one_line_error(err)
        assert code == 2 and "--ids (50) cannot exceed" in line


def test_bench_eval_says_when_a_small_draw_has_nothing_to_score(capsys):
    codes = set()
    for seed in range(12):
        code, _, err = run_cli(["bench", "eval", "--queries", "1", "--gallery", "1", "--ids", "1", "--cameras", "2",
                                "--repeat", "1", "--seed", seed, "--json"], capsys)
        codes.add(code)
        if code:
            assert code == 2 and "has a match in another camera" in one_line_error(err)
    assert codes == {0, 2}


REPORT = {"duration_s": 12.5, "export": {"dir": "e"}, "data": {"root": "d"}, "settings": {"batches": [1, 8], "runs": 3},
          "created": "2026-01-01T00:00:00"}


@pytest.mark.parametrize(("content", "expected"), [
    ("just some text\n", "not a report.json written by `dgnet-edge report`"),
    ('{"duration_s": 3}', "not a report.json written by `dgnet-edge report`"),
    (json.dumps({**REPORT, "duration_s": float("nan")}), "duration_s must be a number of seconds"),
    (None, "no such file"),
], ids=["text", "other-json", "nan-duration", "missing"])
def test_bench_speed_checks_report_json_before_timing(content, expected, tmp_path, monkeypatch, capsys):
    import dgnet_edge.apps.report.machine as machine

    import dgnet_edge.manifest as manifest

    monkeypatch.setattr(manifest, "load_manifest", lambda folder: object())
    monkeypatch.setattr(machine, "machine_info", lambda: pytest.fail("timing started"))
    report = tmp_path / "report.txt"
    if content is not None:
        report.write_text(content)
    code, _, err = run_cli(["bench", "speed", tmp_path, "--report-json", report, "--no-progress"], capsys)
    line = one_line_error(err)
    assert code == 2 and str(report) in line and expected in line


def test_a_report_json_of_the_report_command_is_read(tmp_path):
    from dgnet_edge.apps.report.speed import read_report_duration

    (tmp_path / "report.json").write_text(json.dumps(REPORT))
    seconds, detail = read_report_duration(tmp_path / "report.json")
    assert seconds == 12.5 and "e on d, batches 1,8, 3 runs" in detail


@pytest.mark.parametrize(("batch", "expected"), [
    ("1,8,99999999999999999999", "max <= 4096"),
    ("1,8,4097", "max <= 4096"),
    ("1,8,32.0", "three integers"),
    ("1,8,1e3", "three integers"),
    ("1,8,\u0663\u0662", "three integers"),  # Arabic-Indic digits: int() would take them
    ("0,8,32", "1 <= min"),
])
def test_export_bounds_the_batch_profile(batch, expected, tmp_path, capsys):
    code, _, err = run_cli(["export", tmp_path / "c.pt", "--out", tmp_path / "out", "--batch", batch], capsys)
    line = one_line_error(err)
    assert code == 2 and "--batch" in line and expected in line and not (tmp_path / "out").exists()


def test_the_largest_batch_profile_is_accepted():
    from dgnet_edge.cli.export import parse_batch

    assert parse_batch(" 1, 64 ,4096").max == 4096


# -- demo --backend: only what the camera app runs -------------------------------------------------------
def test_demo_offers_only_the_backends_it_runs(capsys):
    from dgnet_edge.runtime.select import BACKENDS

    code, out, _ = run_cli(["demo", "--help"], capsys)
    line = _flat(out)
    assert code == 0 and "torch" not in line
    assert f"Embedder backend: {' | '.join(BACKENDS)}." in line


@pytest.mark.parametrize("backend", ["torch", "bogus"])
def test_demo_refuses_another_backend_as_usage(backend, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(["demo", "--backend", backend, "--source", tmp_path, "--export", tmp_path], capsys)
    message = _flat(err)
    assert code == 2 and f"'--backend': '{backend}' is not one of auto, tensorrt, onnxruntime" in message
    assert list(tmp_path.iterdir()) == []
