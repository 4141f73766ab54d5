import subprocess
import sys

import numpy as np
import pytest
import torch

from dgnet_edge.errors import BackendUnavailableError, ExportError, UsageError
from dgnet_edge.manifest import load_manifest
from dgnet_edge.models import ReidEmbedder
from dgnet_edge.models.factory import load_dgnet
from dgnet_edge.runtime.embedder import Embedder, Generator, prepare_crops
from dgnet_edge.runtime.select import open_runner


def crops(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (rng.integers(40, 120), rng.integers(20, 60), 3), dtype=np.uint8) for _ in range(n)]


def test_generator_parts_are_exported(tiny_dgnet_export):
    manifest = load_manifest(tiny_dgnet_export)
    assert {e.key for e in manifest.models} >= {"embedder:fp32", "structure:fp32", "decoder:fp32", "structure:fp16", "decoder:fp16"}
    for role in ("structure", "decoder"):
        assert manifest.model(role).details["max_abs_diff_vs_torch"] <= 1e-4
    assert [(s.name, s.shape) for s in manifest.model("decoder").inputs] == [("structure", ("batch", 128, 16, 8)), ("appearance", ("batch", 2048))]


def test_embedder_matches_torch_and_splits_batches(tiny_dgnet_export, tiny_dgnet_checkpoint):
    model, cfg = load_dgnet(tiny_dgnet_checkpoint)
    images = prepare_crops(crops(7), 64, 32, "uint8")
    with torch.no_grad():
        expected = ReidEmbedder(model.appearance, cfg.data.mean, cfg.data.std, flip=True)(torch.from_numpy(images)).numpy()
    with Embedder.open(tiny_dgnet_export, backend="onnxruntime", precision="fp32") as embedder:
        assert embedder.backend == "onnxruntime"
        embedder.max_batch = 3  # forces three chunks
        features, codes = embedder.embed_with_code(images)
        np.testing.assert_allclose(features, expected, atol=1e-4)
        assert codes.shape == (7, 2048)
        np.testing.assert_array_equal(embedder.embed(images), features)
        assert embedder.embed([]).shape == (0, 32)


def test_crops_of_any_size_are_resized(tiny_dgnet_export):
    with Embedder.open(tiny_dgnet_export, backend="onnxruntime") as embedder:
        features = embedder.embed(crops(4))
    assert features.shape == (4, 32) and np.isfinite(features).all()
    with pytest.raises(ValueError, match="RGB image"):
        prepare_crops([np.zeros((10, 10), np.uint8)], 64, 32, "uint8")


def test_generator_matches_torch(tiny_dgnet_export, tiny_dgnet_checkpoint):
    model, cfg = load_dgnet(tiny_dgnet_checkpoint)
    images = prepare_crops(crops(3, seed=1), 64, 32, "uint8")
    x = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - torch.tensor(cfg.data.mean).view(1, 3, 1, 1)) / torch.tensor(cfg.data.std).view(1, 3, 1, 1)
    with torch.no_grad():
        f, s = model.encode(x)
        expected = model.generate(s, f.flip(0))
    expected = ((expected.permute(0, 2, 3, 1).numpy() * np.array(cfg.data.std) + np.array(cfg.data.mean)).clip(0, 1) * 255 + 0.5).astype(np.uint8)
    with Generator.open(tiny_dgnet_export, backend="onnxruntime", precision="fp32") as generator, \
            Embedder.open(tiny_dgnet_export, backend="onnxruntime", precision="fp32") as embedder:
        _, codes = embedder.embed_with_code(images)
        structure = generator.structure(images)
        np.testing.assert_allclose(structure, s.numpy(), atol=1e-4)
        out = generator.decode(structure, codes[::-1])
        assert out.dtype == np.uint8 and out.shape == (3, 64, 32, 3)
        assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1
        views = generator.synthesise(codes[0], images)
        assert views.shape == (3, 64, 32, 3)
        with pytest.raises(ValueError, match="structure codes"):
            generator.decode(structure, codes[:2])


def test_backend_selection(tiny_dgnet_export):
    manifest = load_manifest(tiny_dgnet_export)
    runner = open_runner(tiny_dgnet_export, manifest, "embedder", "auto", "auto", "cpu")
    assert runner.backend == "onnxruntime"  # no TensorRT here
    assert open_runner(tiny_dgnet_export, manifest, "embedder", "onnxruntime", "fp16").name == "onnxruntime fp16"
    with pytest.raises(BackendUnavailableError, match="TensorRT"):
        open_runner(tiny_dgnet_export, manifest, "embedder", "tensorrt", "fp16")
    with pytest.raises(ExportError, match="int8-cpu"):
        open_runner(tiny_dgnet_export, manifest, "embedder", "onnxruntime", "int8")
    with pytest.raises(UsageError, match="backend"):
        open_runner(tiny_dgnet_export, manifest, "embedder", "openvino")


def test_the_fallback_to_onnxruntime_is_told_once(tiny_dgnet_export, caplog, monkeypatch):
    from dgnet_edge.runtime import select

    monkeypatch.setattr(select, "_FALLBACKS_TOLD", set())
    manifest = load_manifest(tiny_dgnet_export)
    with caplog.at_level("INFO", logger=select.log.name):
        for role in ("embedder", "structure", "decoder", "embedder"):
            open_runner(tiny_dgnet_export, manifest, role, "auto", "auto", "cpu")
    told = [r.getMessage() for r in caplog.records if r.getMessage().startswith("using ONNX Runtime")]
    assert len(told) == len(set(told))  # here (no TensorRT): the embedder's reason, once


def test_deployment_side_never_imports_torch(tiny_dgnet_export):
    code = f"""
import sys
import dgnet_edge.runtime.embedder, dgnet_edge.runtime.select, dgnet_edge.runtime.onnxrt, dgnet_edge.runtime.tensorrt
import dgnet_edge.retrieval, dgnet_edge.manifest, dgnet_edge.apps
from dgnet_edge.runtime.embedder import Embedder, Generator
with Embedder.open({str(tiny_dgnet_export)!r}) as e, Generator.open({str(tiny_dgnet_export)!r}) as g:
    import numpy as np
    f, c = e.embed_with_code(np.zeros((2, 64, 32, 3), np.uint8))
    g.synthesise(c[0], np.zeros((2, 64, 32, 3), np.uint8))
assert "torch" not in sys.modules, "torch was imported"
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
