"""`dgnet-edge report` and its parts: statistics, MAC counting, roofline, rows, files, CLI errors.

The report itself runs once per session on the tiny DG-Net export at tiny settings (3 runs, batch 1
and 2, small roofline matrices); timings are not checked, only that every part is there.
"""

import base64
import importlib
import json
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from dgnet_edge.apps.report.macs import count_macs
from dgnet_edge.apps.report.pareto import HEIGHT, WIDTH, Point, nice_ticks, pareto_front
from dgnet_edge.apps.report.pipeline import FILES, ReportOptions, make_report, write_report
from dgnet_edge.apps.report.recommend import recommend
from dgnet_edge.apps.report.render import recommendation_table
from dgnet_edge.apps.report.roofline import fraction_of_peak, measure_roofline, peak_kind
from dgnet_edge.apps.report.stats import percentile, summarise, time_calls
from dgnet_edge.apps.report.worker import RowJob, run_row_process
from dgnet_edge.cli.main import app, main
from dgnet_edge.errors import UsageError

ALL_ROWS = ["torch:fp32", "onnxruntime:fp32", "onnxruntime:fp16", "onnxruntime:int8-cpu", "onnxruntime:int8-qdq",
            "tensorrt:fp32", "tensorrt:fp16", "tensorrt:int8"]


# -- statistics --------------------------------------------------------------------------------------
def test_percentiles_of_known_data():
    values = [float(v) for v in range(1, 11)]  # 1..10
    assert percentile(values, 0) == 1 and percentile(values, 100) == 10
    assert percentile(values, 50) == pytest.approx(5.5)
    assert percentile(values, 95) == pytest.approx(9.55)  # position 8.55: 9 + 0.55 * (10 - 9)
    assert percentile(values, 99) == pytest.approx(9.91)
    assert percentile(list(reversed(values)), 25) == pytest.approx(3.25)  # order of the input does not matter
    assert percentile([7.0], 99) == 7.0
    rng = np.random.default_rng(0)
    data = list(rng.exponential(size=37))
    for q in (50, 95, 99):
        assert percentile(data, q) == pytest.approx(np.percentile(data, q))
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_summary_in_milliseconds_and_throughput():
    stats = summarise([0.010, 0.020, 0.030, 0.040], batch=8)
    assert stats.runs == 4 and stats.min_ms == pytest.approx(10) and stats.max_ms == pytest.approx(40)
    assert stats.p50_ms == pytest.approx(25) and stats.mean_ms == pytest.approx(25)
    assert stats.images_per_s == pytest.approx(8 / 0.025)
    assert stats.to_dict()["images_per_s"] == pytest.approx(320)


def test_timing_loop_warms_up_and_reads_the_backend_time():
    calls = []
    timings = time_calls(lambda: calls.append(1), runs=5, warmup=2, backend_time=lambda: 0.5)
    assert len(calls) == 7 and len(timings.call) == 5 and timings.backend == [0.5] * 5
    budgeted = time_calls(lambda: None, runs=1000, warmup=0, budget_s=0.0, min_runs=3)
    assert len(budgeted.call) == 3


# -- MAC counting ------------------------------------------------------------------------------------
def _toy_model(flip: bool = False):
    """x (N,3,8,8) -> Conv 3->4 k3 p1 -> Conv 4->4 k3 s2 p1 group 2 -> ConvTranspose 4->2 k2 s2
    -> Relu -> Flatten -> Gemm 128->10 (transB) -> MatMul 10->5. With ``flip``, the image and its
    mirror go through the same layers (concatenated on the batch axis), as the embedder does."""
    rng = np.random.default_rng(0)

    def const(name, shape):
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)

    inits = [const("w1", (4, 3, 3, 3)), const("w2", (4, 2, 3, 3)), const("w3", (4, 2, 2, 2)),
             const("w4", (10, 128)), const("b4", (10,)), const("w5", (10, 5))]
    nodes = []
    x = "x"
    if flip:
        inits += [numpy_helper.from_array(np.array([-1], np.int64), n) for n in ("starts",)]
        inits += [numpy_helper.from_array(np.array([v], np.int64), n) for n, v in
                  (("ends", -(2**62)), ("axes", 3), ("steps", -1))]
        nodes += [helper.make_node("Slice", ["x", "starts", "ends", "axes", "steps"], ["x_flip"]),
                  helper.make_node("Concat", ["x", "x_flip"], ["x2"], axis=0)]
        x = "x2"
    nodes += [
        helper.make_node("Conv", [x, "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["c1", "w2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2], group=2),
        helper.make_node("ConvTranspose", ["c2", "w3"], ["c3"], strides=[2, 2]),
        helper.make_node("Relu", ["c3"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"]),
        helper.make_node("Gemm", ["f", "w4", "b4"], ["g"], transB=1),
        helper.make_node("MatMul", ["g", "w5"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "toy", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 5])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


# Per image, by hand:
#   Conv 3->4, 3x3, out 8x8:              4*8*8 * 3*3*3     = 6912
#   Conv 4->4, 3x3, stride 2, 2 groups:   4*4*4 * (4/2)*3*3 = 1152
#   ConvTranspose 4->2, 2x2, stride 2:    (4*4*4 inputs) * 2*2*2 = 512
#   Gemm 128 -> 10:                       10 * 128          = 1280
#   MatMul 10 -> 5:                       5 * 10            = 50
TOY_MACS = {"Conv": 6912 + 1152, "ConvTranspose": 512, "Gemm": 1280, "MatMul": 50}


@pytest.mark.parametrize("batch", [1, 3])
def test_macs_of_a_toy_graph(batch):
    count = count_macs(_toy_model(), batch)
    assert count.by_op == {op: batch * macs for op, macs in TOY_MACS.items()}
    assert count.total == batch * 9906 and count.per_image == 9906 and not count.unresolved


def test_flip_in_the_graph_doubles_the_macs():
    assert count_macs(_toy_model(flip=True), 2).total == 2 * count_macs(_toy_model(), 2).total


def test_macs_of_the_exported_embedder(tiny_dgnet_export):
    import onnx

    model = onnx.load(str(tiny_dgnet_export / "embedder.onnx"))
    one, four = count_macs(model, 1), count_macs(model, 4)
    assert one.total > 0 and not one.unresolved
    assert four.total == 4 * one.total


# -- roofline ----------------------------------------------------------------------------------------
def test_roofline_returns_positive_rates():
    roofline = measure_roofline(sizes=(64, 128), runs=2, warmup=1, threads=(1,))
    assert {m.kind for m in roofline.measurements} == {"fp32", "int8-u8s8", "int8-s8s8"}
    assert all(m.gmacs > 0 and m.best_ms <= m.median_ms for m in roofline.measurements)
    for kind in ("fp32", "int8-u8s8", "int8-s8s8"):
        assert roofline.peak(kind, 1) > 0
    assert roofline.peak("int8", 1) == max(roofline.peak("int8-u8s8", 1), roofline.peak("int8-s8s8", 1))
    assert roofline.to_dict()["peaks"]["fp32"]["single_thread_gmacs"] > 0


def test_fraction_of_peak_and_matching_peaks():
    assert fraction_of_peak(10**9, 0.01, 2e11) == pytest.approx(0.5)  # 1 GMAC in 10 ms = 100 GMAC/s of 200
    assert fraction_of_peak(10**9, 0.01, None) is None
    assert peak_kind("onnxruntime", "fp16") == "fp32" and peak_kind("torch", "fp32") == "fp32"
    assert peak_kind("onnxruntime", "int8-cpu") == peak_kind("onnxruntime", "int8-qdq") == "int8"
    assert peak_kind("tensorrt", "int8") is None


# -- the picture -------------------------------------------------------------------------------------
def test_pareto_front_and_ticks():
    points = [Point("a", "onnxruntime", "fp32", 10, 50), Point("b", "onnxruntime", "int8-cpu", 4, 48),
              Point("c", "torch", "fp32", 30, 50), Point("d", "onnxruntime", "fp16", 12, 45)]
    assert [p.label for p in pareto_front(points)] == ["b", "a"]
    ticks = nice_ticks(13.3, 14.7)
    assert ticks[0] <= 13.3 and ticks[-1] >= 14.7 and len(ticks) >= 3


# -- the report on the tiny export -------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_report(tiny_dgnet_export, tiny_world, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    options = ReportOptions(tiny_dgnet_export, data=tiny_world, batches=(1, 2), runs=3, warmup=1, generator_batch=2,
                            generator_budget_s=0.5, roofline_sizes=(64, 128), roofline_runs=2, out=out)
    stages = []
    report = make_report(options, lambda label, stage, done, total: stages.append((label, stage)))
    paths = write_report(report, options.out_dir)
    return report, paths, stages


def test_report_writes_all_four_files(tiny_report):
    _, paths, stages = tiny_report
    assert sorted(paths) == sorted(FILES)
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths.values())
    assert ("report", "roofline") in stages and any(stage == "accuracy" for _, stage in stages)


def test_report_json_lists_every_row_with_reasons(tiny_report):
    _, paths, _ = tiny_report
    report = json.loads(paths["report.json"].read_text())
    rows = {r["key"]: r for r in report["rows"]}
    assert list(rows) == ALL_ROWS
    for key in ("tensorrt:fp32", "tensorrt:fp16", "tensorrt:int8"):
        assert not rows[key]["available"] and "TensorRT" in rows[key]["reason"]
    for key in ("onnxruntime:int8-cpu", "onnxruntime:int8-qdq"):
        assert not rows[key]["available"] and "--int8" in rows[key]["reason"]
    for key in ("torch:fp32", "onnxruntime:fp32", "onnxruntime:fp16"):
        row = rows[key]
        assert row["available"], row.get("reason")
        assert set(row["latency"]) == {"1", "2", "8"}  # asked for 1 and 2; 8 is always timed for the roofline
        for lat in row["latency"].values():
            assert lat["call"]["runs"] == 3 and lat["call"]["p50_ms"] > 0 and lat["backend"]["p50_ms"] > 0
            assert lat["call"]["p50_ms"] <= lat["call"]["p95_ms"] <= lat["call"]["p99_ms"] <= lat["call"]["max_ms"]
        assert 0 <= row["accuracy"]["mAP"] <= 100 and row["accuracy"]["ap"] == "standard"
        assert row["accuracy"]["queries"] > 0
        assert row["peak_rss_bytes"] > 20e6 and row["model_bytes"] > 0
        assert row["startup"]["startup_s"] == pytest.approx(row["startup"]["load_s"] + row["startup"]["first_inference_s"])
        assert row["generator"]["available"] and row["generator"]["images_per_s"] > 0
        assert row["roofline"]["peak_kind"] == "fp32" and row["roofline"]["fraction"]["1"]["call"] > 0
        assert row["torch_imported"] is (key == "torch:fp32")  # the deployment rows ran without torch
    # fp32 ONNX Runtime reproduces torch: same ranking on the same images
    assert rows["onnxruntime:fp32"]["accuracy"]["mAP"] == pytest.approx(rows["torch:fp32"]["accuracy"]["mAP"], abs=0.01)
    machine = report["machine"]
    assert machine["cpu"]["usable_cpus"] >= 1 and "simd" in machine["cpu"]
    assert set(machine["libraries"]) >= {"numpy", "onnxruntime", "torch", "tensorrt", "opencv"}
    assert report["macs"]["embedder.onnx"]["1"]["total"] > 0
    assert "standard" in report["conventions"]["ap"]
    rec = report["recommendation"]
    assert rec["reference"] == "onnxruntime:fp32" and {p["goal"] for p in rec["picks"]} == {
        "lowest latency", "highest throughput", "smallest memory"}


def test_pareto_png_is_a_valid_picture(tiny_report):
    _, paths, _ = tiny_report
    data = paths["pareto.png"].read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape == (HEIGHT, WIDTH, 3)
    assert (image < 250).any(axis=2).mean() > 0.02  # something is drawn


def test_markdown_and_html(tiny_report):
    _, paths, _ = tiny_report
    md = paths["report.md"].read_text()
    for heading in ("What to deploy", "Accuracy on", "Latency per call", "Memory, model size and start-up", "Generator", "Roofline",
                    "Fraction of the matching peak", "Rows not measured here"):
        assert heading in md
    assert "![mAP vs batch-1 latency](pareto.png)" in md and "TensorRT: not installed" in md
    page = paths["report.html"].read_text()
    match = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert match and base64.b64decode(match.group(1)) == paths["pareto.png"].read_bytes()
    assert "<table>" in page and 'src="pareto.png"' not in page  # self-contained


def _row(key, rank1, mAP, ms1, rate32, rss):
    backend, precision = key.split(":")
    accuracy = None if rank1 is None else {"rank1": rank1, "mAP": mAP}
    latency = {"1": {"call": {"p50_ms": ms1, "images_per_s": 1000 / ms1}},
               "32": {"call": {"p50_ms": 32000 / rate32, "images_per_s": rate32}}}
    return {"key": key, "label": f"{backend} {precision}", "available": True, "accuracy": accuracy, "latency": latency,
            "peak_rss_bytes": rss}


def test_recommendation_picks_the_fastest_row_within_the_accuracy_tolerance():
    rows = [
        _row("torch:fp32", 90.0, 80.0, 40.0, 150, 600e6),
        _row("onnxruntime:fp32", 90.0, 80.0, 5.0, 260, 340e6),
        _row("onnxruntime:int8-cpu", 89.2, 78.9, 2.0, 700, 190e6),   # within 1 / 1.5 points
        _row("onnxruntime:int8-qdq", 87.0, 79.5, 1.0, 900, 150e6),   # fastest, but rank-1 3 points down
        {"key": "tensorrt:int8", "label": "tensorrt int8", "available": False, "reason": "TensorRT: not installed"},
    ]
    rec = recommend(rows)
    assert rec["reference"] == "onnxruntime:fp32" and rec["accuracy_measured"]
    picks = {p["goal"]: p for p in rec["picks"]}
    assert {p["key"] for p in picks.values()} == {"onnxruntime:int8-cpu"}
    assert picks["lowest latency"]["value"] == "2.00 ms p50 at batch 1 (2.5x onnxruntime fp32)"
    assert picks["highest throughput"]["value"] == "700 images/s at batch 32"
    assert picks["lowest latency"]["rank1_drop"] == pytest.approx(0.8)
    assert [(r["key"], "rank-1 3.00 points below" in r["reason"]) for r in rec["rejected"]] == [("onnxruntime:int8-qdq", True)]
    table = recommendation_table({"recommendation": rec})
    assert table.rows[0][:2] == ["lowest latency", "onnxruntime int8-cpu"] and table.rows[0][3:] == ["-0.80", "-1.10"]
    assert any("Left out: onnxruntime int8-qdq" in n for n in table.notes)


def test_recommendation_without_an_accuracy_pass_goes_by_speed_and_says_so():
    rows = [_row("onnxruntime:fp32", None, None, 5.0, 260, 340e6), _row("onnxruntime:int8-qdq", None, None, 1.0, 900, 150e6)]
    rec = recommend(rows)
    assert not rec["accuracy_measured"] and rec["reference"] is None and not rec["rejected"]
    assert {p["key"] for p in rec["picks"]} == {"onnxruntime:int8-qdq"}
    assert "not measured" in recommendation_table({"recommendation": rec}).notes[0]


def test_speed_targets_measure_the_generator_as_deployed(tiny_dgnet_int8_export):
    from dgnet_edge.apps.report.speed import measure_speed

    result = measure_speed(tiny_dgnet_int8_export, runs=2, roofline_sizes=(64,))
    targets = {t.name: t for t in result.targets}
    gen = targets["generator images/s (structure encoder + decoder, ORT int8-cpu)"]
    assert gen.measured > 0 and "fp32 parts:" in gen.detail
    ratio = targets["int8 (ORT int8-cpu) vs ORT fp32, batch 1"]
    assert ratio.measured > 0 and ratio.met is (ratio.measured >= 2.5)
    assert result.footprint["generator"] == "onnxruntime int8-cpu + onnxruntime int8-cpu" and not result.footprint["torch_imported"]


def test_a_row_that_cannot_run_reports_why(tiny_dgnet_export):
    job = RowJob(str(tiny_dgnet_export), "onnxruntime", "int8-cpu", [], [1], runs=1, warmup=0, generator=False)
    result = run_row_process(job)
    assert result["available"] is False and "int8-cpu" in result["reason"] and result["torch_imported"] is False


# -- command line ------------------------------------------------------------------------------------
def test_report_help():
    result = CliRunner().invoke(app, ["report", "--help"])
    assert result.exit_code == 0
    for option in ("--data", "--backends", "--batch", "--runs", "--out"):
        assert option in result.output


@pytest.mark.parametrize("args, message", [
    (["--batch", "1,x"], "--batch"),
    (["--batch", "0,8"], "--batch"),
    (["--backends", "torch,openvino"], "openvino"),
    (["--ap", "area"], "--ap"),
])
def test_usage_errors_exit_2(args, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["report", str(tmp_path), *args])
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_batch_above_the_profile_is_a_usage_error(tiny_dgnet_export, tiny_world, capsys):
    with pytest.raises(SystemExit) as e:
        main(["report", str(tiny_dgnet_export), "--data", str(tiny_world), "--batch", "1,64", "--no-progress"])
    assert e.value.code == 2
    assert "batch profile maximum" in capsys.readouterr().err


def test_options_are_checked():
    with pytest.raises(UsageError):
        ReportOptions("x", backends=("onnxruntime", "openvino"))
    with pytest.raises(UsageError):
        ReportOptions("x", runs=0)


# -- the deployment side stays free of torch ------------------------------------------------------------
def test_runtime_and_apps_modules_never_import_torch():
    code = """
import importlib, pkgutil, sys
import dgnet_edge.runtime, dgnet_edge.apps
names = []
for package in (dgnet_edge.runtime, dgnet_edge.apps):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(info.name)
        names.append(info.name)
assert "torch" not in sys.modules, "torch was imported"
print("\\n".join(names))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    imported = set(result.stdout.split())
    assert {"dgnet_edge.runtime.torch_runner", "dgnet_edge.runtime.tensorrt", "dgnet_edge.apps.quickstart",
            "dgnet_edge.apps.report.worker", "dgnet_edge.apps.report.pipeline", "dgnet_edge.apps.report.speed",
            "dgnet_edge.apps.camera.live.app", "dgnet_edge.apps.camera.live.run", "dgnet_edge.apps.camera.storage.gallery"} <= imported
    importlib.import_module("dgnet_edge.apps.report")


def test_generator_decodes_in_smaller_chunks_alike(tiny_dgnet_export):
    from dgnet_edge.runtime.embedder import Generator

    crops = np.random.default_rng(0).integers(0, 256, (3, 64, 32, 3), dtype=np.uint8)
    codes = np.abs(np.random.default_rng(1).standard_normal((3, 2048))).astype(np.float32)
    with Generator.open(tiny_dgnet_export, backend="onnxruntime", decode_batch=32) as whole, \
            Generator.open(tiny_dgnet_export, backend="onnxruntime") as single:
        assert whole.decode_batch == 32 and single.decode_batch == 1  # one image per call by default on the CPU
        assert not single.decoder_runner._source.memory_arena and not single.structure_runner._source.memory_arena
        structure = whole.structure(crops)
        assert np.abs(whole.decode(structure, codes).astype(int) - single.decode(structure, codes).astype(int)).max() <= 1
    with pytest.raises(ValueError, match="decode_batch"):
        Generator(whole.structure_runner, whole.decoder_runner, whole.manifest, decode_batch=0)
