"""INT8 calibration: sampling, ranges, the Q/DQ and CPU models, TensorRT caches, `dgnet-edge export --int8`.

Accuracy targets are measured by `dgnet-edge calib check`, not here: these tests check formats,
invariants and that the INT8 models of the tiny model stay close to fp32.
"""

from __future__ import annotations

import json
import shutil
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from dgnet_edge.calib import histogram as hist_mod
from dgnet_edge.calib import pipeline
from dgnet_edge.calib.accuracy import check_accuracy, feature_cosine, features_on
from dgnet_edge.calib.collect import activation_tensors, collect_histograms
from dgnet_edge.calib.histogram import AbsHistogram, amax_entropy, amax_percentile, kl_divergences
from dgnet_edge.calib.pipeline import CalibrationOptions, calibrate_export
from dgnet_edge.calib.qdq import int8_tensors, quantizable_nodes, resolve_excludes, settings_for, write_int8_model
from dgnet_edge.calib.ranges import CalibrationRanges, TensorRange, int8_scale, load_ranges, ranges_from_histograms
from dgnet_edge.calib.sampling import calibration_set, camera_quotas, image_batches, stratified_sample
from dgnet_edge.calib.sensitivity import layer_sensitivity
from dgnet_edge.calib.trt_cache import (
    cache_text, hex_scale, parse_cache, ranges_from_cache, read_cache, restamp, scale_hex, version_number, version_string,
)
from dgnet_edge.cli.main import app, main
from dgnet_edge.data.dataset import ImageRecord
from dgnet_edge.errors import ExportError, UsageError
from dgnet_edge.export.trt_ops import check_tensorrt_compatible
from dgnet_edge.manifest import load_manifest, verified_path

runner = CliRunner()
CALIB_COUNT = 24


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def int8_export(tiny_checkpoint, tiny_world, tmp_path_factory) -> Path:
    """An export with INT8 models, made through the CLI (the command's success path)."""
    out = tmp_path_factory.mktemp("int8") / "export"
    result = runner.invoke(app, ["export", str(tiny_checkpoint), "--out", str(out), "--int8", "--calib-data", str(tiny_world),
                                 "--calib-count", str(CALIB_COUNT), "--no-progress", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert {f["file"] for f in summary["files"]} >= {"embedder.onnx", "embedder.int8-qdq.onnx", "embedder.int8-cpu.onnx",
                                                     "calibration.json", "embedder.trt-8502.cache", "manifest.json"}
    return out


@pytest.fixture(scope="module")
def feeds(tiny_world) -> list[dict[str, np.ndarray]]:
    """Query images of the tiny world at the network size, as the graphs take them."""
    paths = sorted((tiny_world / "query").glob("*.jpg"))[:16]
    return list(image_batches(paths, 64, 32, "float32", 8))


def _conv_model() -> onnx.ModelProto:
    """x (N,3,8,8) -> Conv -> Relu -> ConvTranspose -> Relu -> Flatten -> Gemm -> y, with known op types."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.normal(size=4).astype(np.float32), "b1"),
        numpy_helper.from_array(rng.normal(size=(4, 2, 2, 2)).astype(np.float32), "w2"),  # (C_in, C_out, kH, kW)
        numpy_helper.from_array(rng.normal(size=2).astype(np.float32), "b2"),
        numpy_helper.from_array((rng.normal(size=(6, 512)) / 20).astype(np.float32), "w3"),
        numpy_helper.from_array(rng.normal(size=6).astype(np.float32), "b3"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("ConvTranspose", ["r1", "w2", "b2"], ["c2"], name="deconv", strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Flatten", ["r2"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["features"], name="gemm", transB=1),
    ]
    graph = helper.make_graph(nodes, "toy", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 8, 8])],
                              [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 6])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _toy_ranges(model: onnx.ModelProto, method: str = "minmax") -> CalibrationRanges:
    data = np.random.default_rng(1).normal(size=(32, 3, 8, 8)).astype(np.float32)
    hists = collect_histograms(model, [{"x": data[:16]}, {"x": data[16:]}])
    return ranges_from_histograms(hists, method, 32)


def _initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def _activation_scales(model: onnx.ModelProto) -> dict[str, float]:
    """Quantized activation tensor -> the scale of its QuantizeLinear (weights excluded)."""
    inits = _initializers(model)
    return {n.input[0]: float(inits[n.input[1]]) for n in model.graph.node
            if n.op_type == "QuantizeLinear" and n.input[0] not in inits}


def _weight_dq(model: onnx.ModelProto, consumer: str, index: int = 1) -> onnx.NodeProto | None:
    """The DequantizeLinear feeding input ``index`` of node ``consumer`` (None if the input is float)."""
    producer = {o: n for n in model.graph.node for o in n.output}
    node = next(n for n in model.graph.node if n.name == consumer)
    dq = producer.get(node.input[index])
    return dq if dq is not None and dq.op_type == "DequantizeLinear" else None


# -- sampling --------------------------------------------------------------------------------------
def test_camera_quotas_share_evenly_and_redistribute():
    assert camera_quotas({0: 100, 1: 100, 2: 100}, 10) == {0: 4, 1: 3, 2: 3}
    assert camera_quotas({0: 100, 1: 2, 2: 100}, 12) == {0: 5, 1: 2, 2: 5}  # a small camera gives its rest away
    assert camera_quotas({0: 3, 1: 2}, 50) == {0: 3, 1: 2}


def test_stratified_sample_spreads_over_cameras_and_identities(tmp_path):
    records = [ImageRecord(tmp_path / f"{pid}_{cam}_{k}.jpg", pid, cam) for cam in range(3) for pid in range(10) for k in range(4)]
    records += [ImageRecord(tmp_path / f"x{k}.jpg", 99, 3) for k in range(2)]  # a camera with two images
    chosen = stratified_sample(records, 20, seed=0)
    per_cam = {c: [r for r in chosen if r.camid == c] for c in range(4)}
    assert [len(per_cam[c]) for c in range(4)] == [6, 6, 6, 2]
    for cam in range(3):
        assert len({r.pid for r in per_cam[cam]}) == 6  # no identity repeats before all have been used
    assert chosen == stratified_sample(records, 20, seed=0)
    assert chosen != stratified_sample(records, 20, seed=1)


def test_calibration_set_from_dataset_and_from_a_plain_folder(tiny_world, tmp_path):
    sample = calibration_set(tiny_world, 12, dataset="market1501")
    assert len(sample) == 12 and sample.provenance["kind"] == "dataset" and sample.provenance["split"] == "train"
    assert sample.per_camera() == {0: 4, 1: 4, 2: 4}
    assert all("bounding_box_train" in str(p) for p in sample.paths)
    for cam in ("left", "right"):
        (tmp_path / "imgs" / cam).mkdir(parents=True)
        for k in range(3):
            (tmp_path / "imgs" / cam / f"{k}.jpg").write_bytes(sample.paths[k].read_bytes())
    folder = calibration_set(tmp_path / "imgs", 4)
    assert folder.provenance["kind"] == "folder" and folder.per_camera() == {0: 2, 1: 2}
    batch = next(image_batches(folder.paths, 64, 32, "uint8", 4))["images"]
    assert batch.shape == (4, 64, 32, 3) and batch.dtype == np.uint8


# -- statistics and methods ------------------------------------------------------------------------
def _relu_model() -> onnx.ModelProto:
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"), helper.make_node("Neg", ["r"], ["y"], name="neg")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1000])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 1000])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_methods_on_a_toy_graph_with_known_ranges():
    rng = np.random.default_rng(0)
    uniform = rng.uniform(-3.0, 2.0, (64, 1000)).astype(np.float32)
    gauss = rng.normal(size=(64, 1000)).astype(np.float32)
    gauss[5, 7] = 40.0  # one outlier
    model = _relu_model()
    assert list(activation_tensors(model)) == ["x", "r", "y"]
    for data, tail in ((uniform, False), (gauss, True)):
        hists = collect_histograms(model, ({"x": b} for b in np.split(data, 4)))
        exact = {"x": np.abs(data).max(), "r": data.max(), "y": data.max()}
        minmax = ranges_from_histograms(hists, "minmax", 64)
        for name in exact:  # min-max is exact
            assert minmax.tensors[name].amax == pytest.approx(float(exact[name]), rel=0, abs=0)
        assert minmax.tensors["r"].min == 0.0 and minmax.tensors["y"].max == 0.0
        for method in ("entropy", "percentile"):
            amax = ranges_from_histograms(hists, method, 64).tensors["x"].amax
            if tail:  # the outlier is clipped, the bulk is kept
                assert 3.0 < amax < 10.0, (method, amax)
            else:  # nothing to clip in a uniform distribution
                assert amax == pytest.approx(3.0, rel=0.01), (method, amax)
    # Percentile: 99% of |N(0,1)| lies below 2.576.
    h = AbsHistogram()
    h.update(rng.normal(size=400_000).astype(np.float32))
    assert amax_percentile(h, 99.0) == pytest.approx(2.576, abs=0.02)


def test_entropy_ignores_relu_zeros_and_matches_the_reference_kl():
    rng = np.random.default_rng(2)
    values = rng.normal(size=500_000).astype(np.float32)
    relu, full = AbsHistogram(), AbsHistogram()
    relu.update(np.maximum(values, 0))
    full.update(values)
    assert relu.exact_zeros == int((values <= 0).sum())
    # |x| of the ReLU's positive half has the distribution of |N(0,1)|: same threshold, not one pulled in by zeros.
    assert amax_entropy(relu) == pytest.approx(amax_entropy(full), rel=0.1)
    assert amax_entropy(relu, skip_zeros=False) < 0.7 * amax_entropy(relu)

    def reference(counts, t, levels=128):  # the algorithm spelled out bin by bin
        h = counts[:t].astype(float)
        p = h.copy()
        p[-1] += counts[t:].sum()
        level = (np.arange(t) * levels) // t
        q = np.zeros(t)
        for k in range(levels):
            inside, nonzero = level == k, (level == k) & (h > 0)
            if nonzero.any():
                q[nonzero] = h[inside].sum() / nonzero.sum()
        p, q = p / p.sum(), q / q.sum()
        if ((p > 0) & (q == 0)).any():
            return np.inf
        m = p > 0
        return float((p[m] * np.log(p[m] / q[m])).sum())

    counts = rng.poisson(40 * np.exp(-np.arange(400) / 90)).astype(float)
    counts[rng.integers(0, 400, 25)] = 0
    thresholds = np.arange(128, 401, 9)
    want = np.array([reference(counts, t) for t in thresholds])
    got = kl_divergences(counts, thresholds)
    assert np.array_equal(np.isinf(got), np.isinf(want))
    np.testing.assert_allclose(got[np.isfinite(want)], want[np.isfinite(want)], atol=1e-12)


def test_histogram_grows_and_coarsens_without_losing_counts():
    h = AbsHistogram(num_bins=16, max_bins=64)
    h.update(np.linspace(-1, 1, 101, dtype=np.float32))
    h.update(np.array([100.0], np.float32))  # far beyond: bins merge until 100 fits in 64
    assert h.counts.sum() == 102 and len(h.counts) <= 64 and h.width * len(h.counts) >= 100
    assert h.amax == 100.0 and h.min == -1.0
    with pytest.raises(ValueError, match="NaN"):
        h.update(np.array([np.nan], np.float32))


def test_calibration_json_round_trip(tmp_path):
    ranges = CalibrationRanges("percentile", {"a": TensorRange(1.5, -1.0, 2.0), "b/c:0": TensorRange(0.25, 0.0, 0.3)}, 512,
                               source={"kind": "dataset", "root": "/x", "cameras": {"0": 256, "1": 256}}, percentile=99.99,
                               model={"file": "embedder.onnx", "sha256": "0" * 64})
    path = ranges.save(tmp_path / "calibration.json")
    again = load_ranges(path)
    assert again == ranges
    data = json.loads(path.read_text())
    assert data["format"] == "dgnet-edge-calibration" and data["tensors"]["a"] == {"amax": 1.5, "min": -1.0, "max": 2.0}
    data["version"] = 7
    path.write_text(json.dumps(data))
    with pytest.raises(ExportError, match="version 7"):
        load_ranges(path)
    path.write_text("{not json")
    with pytest.raises(ExportError, match="not valid JSON"):
        load_ranges(path)
    assert TensorRange(2.0, 0.0, 3.0).asymmetric() == (0.0, 2.0)
    assert TensorRange(2.0).asymmetric(nonnegative=True) == (0.0, 2.0)


# -- the INT8 models -------------------------------------------------------------------------------
def test_tensorrt_qdq_model_on_a_toy_graph(tmp_path):
    model = _conv_model()
    ranges = _toy_ranges(model)
    written, done = write_int8_model(model, ranges, tmp_path / "q.onnx", settings_for("tensorrt"))
    inits = _initializers(written)
    for node in written.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            zero_point = inits[node.input[2]]
            assert zero_point.dtype == np.int8 and not zero_point.any()
    conv_w, deconv_w, gemm_w = (_weight_dq(written, n) for n in ("conv", "deconv", "gemm"))
    attrs = {a.name: helper.get_attribute_value(a) for a in conv_w.attribute}
    assert attrs.get("axis", 1) == 0 and inits[conv_w.input[1]].shape == (4,)
    attrs = {a.name: helper.get_attribute_value(a) for a in deconv_w.attribute}
    assert attrs["axis"] == 1 and inits[deconv_w.input[1]].shape == (2,)
    assert inits[gemm_w.input[1]].shape == ()  # per-tensor for Gemm
    for consumer in ("conv", "deconv", "gemm"):  # biases stay float initializers
        bias = next(n for n in written.graph.node if n.name == consumer).input[2]
        assert bias in inits and inits[bias].dtype == np.float32
    scales = _activation_scales(written)
    assert set(scales) == {"x", "r1", "f"}  # inputs of Conv, ConvTranspose, Gemm: no output quantization
    for name, scale in scales.items():
        assert np.float32(scale) == int8_scale(ranges.tensors[name].amax)
    check_tensorrt_compatible(written, "q.onnx")
    assert done.details()["quantized_ops"] == {"Conv": 1, "ConvTranspose": 1, "Gemm": 1}


def test_cpu_model_types_follow_the_architecture(tmp_path):
    model = _conv_model()
    ranges = _toy_ranges(model)
    x86 = settings_for("cpu", arch="x86", vnni=True)
    assert (x86.activation_type, x86.weight_type, x86.reduce_range) == ("uint8", "int8", False)
    assert settings_for("cpu", arch="x86", vnni=False).reduce_range
    written, done = write_int8_model(model, ranges, tmp_path / "cpu.onnx", x86)
    inits = _initializers(written)
    q_types = {inits[n.input[2]].dtype for n in written.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in inits}
    assert q_types == {np.dtype(np.uint8)}
    assert "Relu" in done.details()["quantized_ops"] and done.details()["arch"] == "x86"
    arm, _ = write_int8_model(model, ranges, tmp_path / "arm.onnx", settings_for("cpu", arch="arm"))
    inits = _initializers(arm)
    assert {inits[n.input[2]].dtype for n in arm.graph.node if n.op_type == "QuantizeLinear"} == {np.dtype(np.int8)}


def test_exclude_resolution_and_errors(tmp_path):
    model = _conv_model()
    assert quantizable_nodes(model) == ["conv", "deconv", "gemm"]
    assert quantizable_nodes(model, "cpu") == ["conv", "relu1", "deconv", "relu2", "gemm"]
    assert resolve_excludes(model, ["gem*", "c1"]) == ["gemm", "conv"]  # wildcards; output names count
    with pytest.raises(UsageError, match="matches no quantized node"):
        resolve_excludes(model, ["nope"])
    with pytest.raises(UsageError, match="nothing left"):
        write_int8_model(model, _toy_ranges(model), tmp_path / "q.onnx", settings_for("tensorrt"), ["*"])
    incomplete = CalibrationRanges("minmax", {"x": TensorRange(1.0)}, 1)
    with pytest.raises(ExportError, match="no entry for"):
        write_int8_model(model, incomplete, tmp_path / "q.onnx", settings_for("tensorrt"))


def test_export_writes_int8_models_with_manifest_entries(int8_export):
    manifest = load_manifest(int8_export)
    assert {e.key for e in manifest.models} == {"embedder:fp32", "embedder:int8-qdq", "embedder:int8-cpu"}
    for entry in manifest.models:
        verified_path(int8_export, entry)
    qdq, cpu = manifest.model("embedder", "int8-qdq"), manifest.model("embedder", "int8-cpu")
    assert qdq.details["method"] == "entropy" and qdq.details["samples"] == CALIB_COUNT
    assert (qdq.details["activation_type"], qdq.details["format"]) == ("int8", "QDQ")
    assert cpu.details["activation_type"] == "uint8" and cpu.details["arch"] == "x86"
    assert qdq.inputs == manifest.model("embedder").inputs and qdq.outputs == manifest.model("embedder").outputs
    cal = manifest.calibration
    assert cal["method"] == "entropy" and cal["count"] == CALIB_COUNT and cal["source"]["kind"] == "dataset"
    assert cal["source"]["cameras"] == {"0": 8, "1": 8, "2": 8}
    assert [c["tensorrt"] for c in cal["caches"]] == ["8.5.2", "8.6.2", "10.3.0", "10.13.3"]
    assert [c["file"] for c in cal["caches"]][:2] == ["embedder.trt-8502.cache", "embedder.trt-8602.cache"]


def test_exported_qdq_model_is_symmetric_per_channel_and_uses_calibration_scales(int8_export):
    model = onnx.load(int8_export / "embedder.int8-qdq.onnx")
    ranges = load_ranges(int8_export / "calibration.json")
    inits = _initializers(model)
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            assert inits[node.input[2]].dtype == np.int8 and not inits[node.input[2]].any()
    producer = {o: n for n in model.graph.node for o in n.output}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    for conv in convs:
        dq = _weight_dq(model, conv.name)
        weight = inits[producer[dq.input[0]].input[0]]  # float weight -> Q -> DQ -> Conv
        assert {a.name: a.i for a in dq.attribute}.get("axis", 1) == 0
        assert inits[dq.input[1]].shape == (weight.shape[0],)  # one scale per output channel
        assert conv.input[2] in inits and inits[conv.input[2]].dtype == np.float32  # bias float
    scales = _activation_scales(model)
    assert len(scales) >= len(convs)
    for name, scale in scales.items():
        assert np.float32(scale) == int8_scale(ranges.tensors[name].amax), name
    check_tensorrt_compatible(model, "embedder.int8-qdq.onnx")


def test_int8_models_run_and_stay_close_to_fp32(int8_export, feeds):
    reference = features_on(int8_export / "embedder.onnx", feeds)
    for file in ("embedder.int8-qdq.onnx", "embedder.int8-cpu.onnx"):
        mean, low = feature_cosine(reference, features_on(int8_export / file, feeds))
        assert mean > 0.9 and low > 0.8, (file, mean, low)


# -- TensorRT caches -------------------------------------------------------------------------------
def test_tensorrt_cache_text_format(int8_export):
    assert [version_number(v) for v in ("8.5.2", "8.6.1", "8.6.2.3", "10.3.0", "10.13.3")] == [8502, 8601, 8602, 100300, 101303]
    assert version_string(8602) == "8.6.2" and version_string(101303) == "10.13.3"
    with pytest.raises(ExportError):
        version_number("7.2.1")
    assert scale_hex(np.float32(1.0) / np.float32(127.0)) == "3c010204"  # amax 1.0
    assert cache_text({"t": 127.0}, "8.6.1") == "TRT-8601-EntropyCalibration2\nt: 3f800000\n"

    ranges = load_ranges(int8_export / "calibration.json")
    listed = int8_tensors(onnx.load(int8_export / "embedder.onnx"))
    assert "features" not in listed and "images" not in listed  # the float parts get no range
    text = (int8_export / "embedder.trt-100300.cache").read_text()
    lines = text.split("\n")
    assert lines[0] == "TRT-100300-EntropyCalibration2" and lines[-1] == ""
    assert [line.rsplit(": ", 1)[0] for line in lines[1:-1]] == listed
    for line in lines[1:-1]:
        tensor, value = line.rsplit(": ", 1)
        assert len(value) == 8 and value == value.lower()
        decoded = struct.unpack(">f", bytes.fromhex(value))[0]
        assert np.float32(decoded) == int8_scale(ranges.tensors[tensor].amax)
    assert (int8_export / "embedder.trt-8502.cache").read_text().split("\n", 1)[1] == text.split("\n", 1)[1]
    assert restamp(text, "8.6.2").startswith("TRT-8602-EntropyCalibration2\n")
    parsed = parse_cache(text)
    assert parsed.version == 100300 and parsed.scales[listed[0]] == hex_scale(lines[1].rsplit(" ", 1)[1])
    with pytest.raises(ExportError, match="not a TensorRT calibration cache"):
        parse_cache("hello\n")


# -- reuse and exclusion ---------------------------------------------------------------------------
def _fp32_only(export: Path, folder: Path):
    """A copy of ``export`` as a plain fp32 export (what the extend hook receives) and its manifest."""
    folder.mkdir()
    manifest = load_manifest(export)
    fp32 = manifest.model("embedder", "fp32")
    shutil.copy(export / fp32.file, folder / fp32.file)
    return replace(manifest, models=(fp32,), calibration=None)


def test_calib_cache_reuse_gives_identical_scales_without_a_pass(int8_export, tmp_path, monkeypatch):
    def no_pass(*args, **kwargs):
        raise AssertionError("a calibration pass ran although ranges were given")

    monkeypatch.setattr(pipeline, "collect_histograms", no_pass)
    want = _activation_scales(onnx.load(int8_export / "embedder.int8-qdq.onnx"))
    original = load_ranges(int8_export / "calibration.json")

    out = tmp_path / "reused"
    manifest = calibrate_export(out, _fp32_only(int8_export, out), CalibrationOptions(cache=int8_export / "calibration.json"))
    assert _activation_scales(onnx.load(out / "embedder.int8-qdq.onnx")) == want
    assert load_ranges(out / "calibration.json").tensors == original.tensors
    assert manifest.calibration["source"]["reused_from"].endswith("calibration.json")

    from_trt = ranges_from_cache(read_cache(int8_export / "embedder.trt-8602.cache"))
    assert set(from_trt.tensors) < set(original.tensors)
    for name, r in from_trt.tensors.items():  # amax read back from the hex scale gives the same scale
        assert int8_scale(r.amax) == int8_scale(original.tensors[name].amax)
    out = tmp_path / "from-trt"
    manifest = calibrate_export(out, _fp32_only(int8_export, out), CalibrationOptions(cache=int8_export / "embedder.trt-8602.cache"))
    assert _activation_scales(onnx.load(out / "embedder.int8-qdq.onnx")) == want
    assert manifest.calibration["source"]["kind"] == "tensorrt-cache"


def test_exclude_keeps_a_node_float(int8_export, tmp_path):
    manifest = load_manifest(int8_export)
    ranges = load_ranges(int8_export / "calibration.json")
    fp32 = int8_export / manifest.model("embedder").file
    first_conv = next(n.name for n in onnx.load(fp32).graph.node if n.op_type == "Conv")
    written, done = write_int8_model(fp32, ranges, tmp_path / "q.onnx", settings_for("tensorrt"), [first_conv])
    assert _weight_dq(written, first_conv) is None and _weight_dq(written, first_conv, 0) is None
    assert done.excluded == (first_conv,)
    others = [n.name for n in written.graph.node if n.op_type == "Conv" and n.name != first_conv]
    assert all(_weight_dq(written, name) is not None for name in others)
    cpu, _ = write_int8_model(fp32, ranges, tmp_path / "c.onnx", settings_for("cpu"), [first_conv])
    assert _weight_dq(cpu, first_conv) is None


def test_sensitivity_ranks_layers(int8_export, feeds, tmp_path):
    ranges = load_ranges(int8_export / "calibration.json")
    fp32 = int8_export / "embedder.onnx"
    layers = quantizable_nodes(onnx.load(fp32))
    report = layer_sensitivity(fp32, ranges, feeds[:1], "single", layers=[layers[0], layers[-1]])
    assert [c.node for c in report.layers] in ([layers[0], layers[-1]], [layers[-1], layers[0]])
    assert report.layers[0].cost >= report.layers[1].cost and 0.9 < report.baseline["cosine_mean"] <= 1.0
    data = json.loads(report.save(tmp_path / "s.json").read_text())
    assert data["format"] == "dgnet-edge-sensitivity" and data["mode"] == "single" and len(data["layers"]) == 2


# -- the commands -------------------------------------------------------------------------------------
def _usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    return capsys.readouterr().err.replace("\n", "")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--int8"], "--int8 needs calibration images"),
        (["--calib-data", "."], "only apply with --int8"),
        (["--batch", "1,8"], "three integers"),
        (["--batch", "8,1,32"], "increasing"),
        (["--batch", "1,x,3"], "three integers"),
        (["--batch", "1,8,32", "--preset", "jetson"], "either --batch or --preset"),
        (["--preset", "orin"], "--preset must be one of"),
        (["--input-dtype", "int16"], "--input-dtype must be one of"),
        (["--int8", "--calib-data", ".", "--calib-method", "magic"], "--calib-method must be one of"),
        (["--int8", "--calib-data", ".", "--calib-percentile", "99.9"], "goes with --calib-method percentile"),
    ],
)
def test_export_usage_errors(extra, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cal.json").write_text("{}")
    assert message in _usage_error(["export", "ckpt.pt", "--out", "out", *extra], capsys)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--int8", "--calib-cache", "missing.json"], "--calib-cache file missing.json does not exist"),
        (["--int8", "--calib-cache", "."], "--calib-cache file . is a folder, not a file"),
        (["--int8", "--calib-data", "no-such-dir"], "--calib-data folder no-such-dir does not exist"),
        (["--int8", "--calib-data", "cal.json"], "--calib-data folder cal.json is a file, not a folder"),
    ],
)
def test_export_missing_calibration_inputs(extra, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cal.json").write_text("{}")
    with pytest.raises(SystemExit) as exc:
        main(["export", "ckpt.pt", "--out", "out", *extra])
    assert exc.value.code == 1
    assert message in capsys.readouterr().err.replace("\n", "")
    assert not (tmp_path / "out").exists()


def test_export_usage_error_for_calib_method_with_cache(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cal.json").write_text("{}")
    err = _usage_error(["export", "ckpt.pt", "--out", "out", "--int8", "--calib-cache", "cal.json", "--calib-method", "minmax"], capsys)
    assert "reuses its ranges" in err
    with pytest.raises(UsageError):
        CalibrationOptions()


def test_calib_check_and_cache_commands(int8_export, tiny_world, tmp_path):
    report = check_accuracy(int8_export, latency_runs=2)
    assert [r.precision for r in report.rows()] == ["fp32", "int8-qdq", "int8-cpu"]
    assert all(r.cosine_mean > 0.9 for r in report.int8) and report.fp32.latency_ms > 0
    result = runner.invoke(app, ["calib", "check", str(int8_export), "--data", str(tiny_world), "--json", "--no-progress",
                                 "--latency-runs", "0"])
    data = json.loads(result.stdout)
    assert result.exit_code == (0 if data["passed"] else 1)
    assert data["fp32"]["precision"] == "fp32" and {r["precision"] for r in data["int8"]} == {"int8-qdq", "int8-cpu"}
    result = runner.invoke(app, ["calib", "cache", str(int8_export), "--tensorrt", "10.7.0", "--out", str(tmp_path / "c.cache")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "c.cache").read_text().startswith("TRT-100700-EntropyCalibration2\n")


@pytest.mark.parametrize("argv", [["export"], ["calib"], ["calib", "check"], ["calib", "sensitivity"], ["calib", "cache"]])
def test_help(argv):
    result = runner.invoke(app, [*argv, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_calib_sensitivity_command(int8_export, monkeypatch):
    from dgnet_edge.calib import sensitivity

    measured = sensitivity.layer_sensitivity

    def two_layers(fp32, ranges, feeds, mode, flavour, exclude=(), layers=None, progress=None):
        first = quantizable_nodes(onnx.load(fp32))[:2]
        return measured(fp32, ranges, feeds[:1], mode, flavour, exclude, first, progress)

    monkeypatch.setattr(sensitivity, "layer_sensitivity", two_layers)
    result = runner.invoke(app, ["calib", "sensitivity", str(int8_export), "--images", "4", "--top", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "sensitivity" in result.stdout and "cost" in result.stdout
    report = json.loads((int8_export / "sensitivity.json").read_text())
    assert report["images"] == 4 and len(report["layers"]) == 2


def test_calib_bench_times_both_cpu_formats(int8_export):
    result = runner.invoke(app, ["calib", "bench", str(int8_export), "--runs", "2", "--threads", "1", "--json"])
    assert result.exit_code == 0, result.output
    names = [m["model"] for m in json.loads(result.stdout)["models"]]
    assert names[0].startswith("fp32") and "int8-cpu as QOperator" in names


# -- the generator parts ---------------------------------------------------------------------------
def test_int8_generator_parts_are_quantized_checked_and_picked_by_default(tiny_dgnet_int8_export):
    from dgnet_edge.runtime.embedder import Generator

    manifest = load_manifest(tiny_dgnet_int8_export)
    for role in ("structure", "decoder"):
        entry = manifest.model(role, "int8-cpu")
        verified_path(tiny_dgnet_int8_export, entry)
        ops = {n.op_type for n in onnx.load(tiny_dgnet_int8_export / entry.file).graph.node}
        assert "QuantizeLinear" in ops or "QLinearConv" in ops, ops
        assert entry.details["quantized_ops"].get("Conv", 0) > 0 and entry.details["samples"] > 0
        assert entry.details["activation_type"] == settings_for("cpu").activation_type
    quality = manifest.model("decoder", "int8-cpu").details["vs_fp32"]
    assert quality["pairs"] > 0 and quality["psnr_db"] > 20 and quality["structure_cosine"] > 0.98, quality
    with Generator.open(tiny_dgnet_int8_export, backend="onnxruntime") as generator:
        assert generator.decoder_runner.name == "onnxruntime int8-cpu"
        crops = np.random.default_rng(0).integers(0, 256, (3, 64, 32, 3), dtype=np.uint8)
        code_dim = next(s for s in manifest.model("decoder").inputs if s.name == "appearance").shape[1]
        images = generator.decode(generator.structure(crops), np.ones((3, code_dim), np.float32))
        assert images.shape == (3, 64, 32, 3) and images.dtype == np.uint8


def test_int8_generator_can_be_left_out(tiny_dgnet_checkpoint, tiny_world, tmp_path):
    out = tmp_path / "export"
    result = runner.invoke(app, ["export", str(tiny_dgnet_checkpoint), "--out", str(out), "--int8", "--calib-data", str(tiny_world),
                                 "--calib-count", "8", "--no-int8-generator", "--no-progress"])
    assert result.exit_code == 0, result.output
    manifest = load_manifest(out)
    assert manifest.has_model("embedder", "int8-cpu") and not manifest.has_model("decoder", "int8-cpu")
