import json

import numpy as np
import onnx
import pytest

from dgnet_edge.errors import ExportError
from dgnet_edge.export.pipeline import ExportOptions, export_checkpoint
from dgnet_edge.export.trt_ops import check_tensorrt_compatible, graph_ops, tensorrt_versions, unsupported_ops
from dgnet_edge.manifest import BatchProfile, load_manifest, verified_path
from dgnet_edge.runtime.onnxrt import OnnxRuntimeRunner, SessionFromOnnx


@pytest.fixture(scope="module")
def export_dir(tiny_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("exports") / "tiny"
    export_checkpoint(tiny_checkpoint, out, ExportOptions(fp16=True))
    return out


def test_export_writes_models_and_manifest(export_dir, tiny_checkpoint):
    manifest = load_manifest(export_dir)
    assert {e.key for e in manifest.models} == {"embedder:fp32", "embedder:fp16"}
    fp32 = manifest.model("embedder", "fp32")
    assert [s.name for s in fp32.inputs] == ["images"] and fp32.inputs[0].shape == ("batch", 64, 32, 3)
    assert [(s.name, s.shape) for s in fp32.outputs] == [("features", ("batch", 32)), ("appearance", ("batch", 2048))]
    assert fp32.details["max_abs_diff_vs_torch"] <= 1e-4
    assert manifest.feature_dim == 32 and manifest.heads == 2 and manifest.flip
    assert manifest.profile == BatchProfile(1, 8, 32)
    assert manifest.source["checkpoint"].endswith(tiny_checkpoint.name)
    for entry in manifest.models:
        verified_path(export_dir, entry)
    data = json.loads((export_dir / "manifest.json").read_text())
    assert data["schema"] == "dgnet-edge-export" and data["schema_version"] == 1


def test_fp16_model_has_float32_io_and_half_weights(export_dir):
    model = onnx.load(export_dir / "embedder.fp16.onnx")
    io_types = {v.type.tensor_type.elem_type for v in (*model.graph.input, *model.graph.output)}
    assert io_types == {onnx.TensorProto.FLOAT}
    weight_types = {t.data_type for t in model.graph.initializer if len(t.dims) == 4}
    assert weight_types == {onnx.TensorProto.FLOAT16}


def test_every_op_parses_in_tensorrt(export_dir):
    for file in ("embedder.onnx", "embedder.fp16.onnx"):
        model = onnx.load(export_dir / file)
        assert unsupported_ops(model) == {}
        check_tensorrt_compatible(model, file)


def test_op_check_catches_unsupported_operators():
    node = onnx.helper.make_node("LayerNormalization", ["x", "s"], ["y"])
    graph = onnx.helper.make_graph([node], "g", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])],
                                   [onnx.numpy_helper.from_array(np.ones(4, np.float32), "s")])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    assert graph_ops(model) == {"LayerNormalization"}
    bad = unsupported_ops(model)
    assert list(bad) == ["8.5"]  # the parser learnt LayerNormalization in TensorRT 8.6
    with pytest.raises(ExportError, match="TensorRT 8.5: LayerNormalization"):
        check_tensorrt_compatible(model, "toy.onnx")
    assert tensorrt_versions()[0] == "8.5"


def test_dynamic_batch_runs_in_onnxruntime(export_dir):
    with OnnxRuntimeRunner(SessionFromOnnx(export_dir / "embedder.onnx", device="cpu")) as runner:
        for n in (1, 3, 9):
            out = runner.infer({"images": np.random.default_rng(n).uniform(0, 255, (n, 64, 32, 3)).astype(np.float32)})
            assert out["features"].shape == (n, 32)
            norms = np.linalg.norm(out["features"].reshape(n, 2, 16), axis=2)
            np.testing.assert_allclose(norms, 1.0, atol=1e-5)
        with pytest.raises(ValueError, match="must be float32"):
            runner.infer({"images": np.zeros((1, 64, 32, 3), np.uint8)})
        with pytest.raises(ValueError, match="shape"):
            runner.infer({"images": np.zeros((1, 32, 64, 3), np.float32)})


def test_uint8_input_option(tiny_checkpoint, tmp_path):
    manifest = export_checkpoint(tiny_checkpoint, tmp_path / "u8", ExportOptions(input_dtype="uint8", with_code=False))
    entry = manifest.model("embedder")
    assert entry.inputs[0].dtype == "uint8" and [o.name for o in entry.outputs] == ["features"]


def test_export_refuses_to_overwrite_and_leaves_nothing_on_failure(export_dir, tiny_checkpoint, tmp_path, monkeypatch):
    with pytest.raises(ExportError, match="not empty"):
        export_checkpoint(tiny_checkpoint, export_dir)
    from dgnet_edge.export import pipeline

    monkeypatch.setattr(pipeline, "PARITY_ATOL", 0.0)  # impossible to meet: the export must fail cleanly
    with pytest.raises(ExportError, match="does not reproduce PyTorch"):
        export_checkpoint(tiny_checkpoint, tmp_path / "failed")
    assert list(tmp_path.iterdir()) == []


def test_manifest_rejects_tampering_and_other_versions(export_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(export_dir, copy)
    manifest = load_manifest(copy)
    (copy / "embedder.onnx").write_bytes(b"tampered")
    with pytest.raises(ExportError, match="sha256"):
        verified_path(copy, manifest.model("embedder"))
    data = json.loads((copy / "manifest.json").read_text())
    data["schema_version"] = 99
    (copy / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ExportError, match="schema version 99"):
        load_manifest(copy)
    with pytest.raises(ExportError, match="no manifest.json"):
        load_manifest(tmp_path)
    with pytest.raises(ExportError, match="no decoder model"):
        manifest.model("decoder")


def test_shared_constants_become_initializers_of_their_own(tmp_path):
    """Identical biases (every folded BatchNorm bias is zero at initial weights) reach each Conv as
    an initializer, as the quantizer and TensorRT's parser need, not through an Identity node."""
    import torch

    from dgnet_edge.export.onnx_export import export_onnx

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, bias=False), torch.nn.BatchNorm2d(8),
                              torch.nn.Conv2d(8, 8, 3, bias=False), torch.nn.BatchNorm2d(8)).eval()
    x = torch.randn(2, 3, 16, 16)
    model = export_onnx(net, (x,), tmp_path / "net.onnx", ["x"], ["y"])
    initializers = {i.name for i in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert len(convs) == 2 and all(i in initializers for n in convs for i in n.input[1:])
    assert not [n for n in model.graph.node if n.op_type == "Identity"]
    got = OnnxRuntimeRunner(SessionFromOnnx(tmp_path / "net.onnx")).activate().infer({"x": x.numpy()})["y"]
    np.testing.assert_allclose(got, net(x).detach().numpy(), atol=1e-5)
