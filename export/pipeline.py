"""`dgnet-edge export`: a checkpoint -> an export folder of ONNX models and its manifest.

The folder is assembled in a staging folder beside it (:mod:`dgnet_edge.staging`) and renamed into
place at the end, so a failed export (bad parity, unsupported operator, interrupted calibration)
leaves nothing behind; the output path is checked before any work.
Every fp32 model is checked against PyTorch with ONNX Runtime on random and, when the
checkpoint's dataset is on disk, real images (max |diff| <= 1e-4); fp16 models against the fp32
ones by cosine similarity.
"""

from __future__ import annotations

import copy
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from dgnet_edge.export.graphs import AppearanceGraph, DecoderGraph, StructureGraph
from dgnet_edge.export.onnx_export import DEFAULT_OPSET, export_onnx, graph_specs

from dgnet_edge import __version__
from dgnet_edge.config import Config
from dgnet_edge.data.images import load_images
from dgnet_edge.data.registry import build_dataset
from dgnet_edge.errors import DgnetEdgeError, ExportError
from dgnet_edge.manifest import BatchProfile, InputFormat, Manifest, ModelEntry, sha256_of
from dgnet_edge.models import ReidEmbedder
from dgnet_edge.models.factory import load_dgnet, load_reid_net
from dgnet_edge.models.preprocess import Normalise
from dgnet_edge.models.reid import PARTS
from dgnet_edge.paths import check_output_dir, refuse_overwriting_inputs
from dgnet_edge.runtime.base import TensorSpec
from dgnet_edge.runtime.compare import ComparisonResult, compare_runners
from dgnet_edge.runtime.onnxrt import OnnxRuntimeRunner, SessionFromOnnx
from dgnet_edge.runtime.torch_runner import TorchRunner
from dgnet_edge.staging import make_staging_dir

log = logging.getLogger(__name__)

PROFILES = {"default": BatchProfile(1, 8, 32), "jetson": BatchProfile(1, 8, 16)}
PARITY_ATOL = 1e-4
FP16_COSINE = 0.999


@dataclass(frozen=True)
class ExportOptions:
    """What to export.

    Args:
        fp16: also write fp16 models (fp32 inputs and outputs), as TensorRT 11 needs for FP16.
        flip: build the mirrored-image feature into the embedder (the DG-Net protocol).
        with_code: the embedder also outputs the appearance code (for on-device synthesis).
        input_dtype: float32 (0..255) or uint8 images; uint8 graph inputs need TensorRT >= 8.6.
        generator: for a DG-Net checkpoint, also export the structure encoder and the decoder.
        profile: batch profile (min/opt/max).
        opset: ONNX opset.
    """

    fp16: bool = False
    flip: bool = True
    with_code: bool = True
    input_dtype: str = "float32"
    generator: bool = True
    profile: BatchProfile = field(default_factory=BatchProfile)
    opset: int = DEFAULT_OPSET

    def __post_init__(self) -> None:
        if self.input_dtype not in ("float32", "uint8"):
            raise ExportError(f"input dtype must be float32 or uint8, got {self.input_dtype!r}")


def real_images(cfg: Config, count: int = 16) -> np.ndarray | None:
    """Up to ``count`` query images of the checkpoint's dataset at the network size, if on disk."""
    try:
        records = build_dataset(cfg.data.dataset, cfg.data.root).query
    except DgnetEdgeError:
        return None
    step = max(1, len(records) // count)
    return load_images([r.path for r in records[::step][:count]], cfg.data.height, cfg.data.width).pixels


def parity_feeds(name: str, fmt: InputFormat, real: np.ndarray | None, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Random batches of two sizes (checks the dynamic batch axis) plus the real images."""
    rng = np.random.default_rng(seed)
    batches = [rng.integers(0, 256, (n, fmt.height, fmt.width, 3)) for n in (1, 5)]
    if real is not None and len(real):
        batches.append(real)
    return [{name: b.astype(fmt.dtype)} for b in batches]


class ExportWriter:
    """Exports modules into ``folder``, checks each against PyTorch and collects manifest entries."""

    def __init__(self, folder: Path, fmt: InputFormat, options: ExportOptions, real: np.ndarray | None):
        self.folder = folder
        self.fmt = fmt
        self.options = options
        self.real = real
        self.entries: list[ModelEntry] = []
        self.parity: dict[str, ComparisonResult] = {}

    def add(
        self,
        role: str,
        precision: str,
        module: torch.nn.Module,
        inputs: list[TensorSpec],
        outputs: list[str],
        feeds: list[dict[str, np.ndarray]],
        reference: Callable[[], torch.nn.Module] | torch.nn.Module,
        atol: float | None,
        cosine_floor: float | None,
        fold: bool = False,
    ) -> ModelEntry:
        file = f"{role}.onnx" if precision == "fp32" else f"{role}.{precision}.onnx"
        path = self.folder / file
        example = tuple(torch.from_numpy(feeds[0][s.name]) for s in inputs)
        model = export_onnx(module, example, path, [s.name for s in inputs], outputs, self.options.opset, fold)
        with TorchRunner(reference, inputs, outputs, name=f"torch {role}") as ref, \
                OnnxRuntimeRunner(SessionFromOnnx(path, device="cpu"), name=f"onnxruntime {file}") as cand:
            result = compare_runners(ref, cand, feeds, atol, cosine_floor)
        log.info("%s", result.describe())
        if not result:
            raise ExportError(f"{file} does not reproduce PyTorch closely enough:\n{result.describe()}")
        self.parity[f"{role}:{precision}"] = result
        details = {"max_abs_diff_vs_torch": max(o.max_abs_diff for o in result.outputs.values())}
        entry = ModelEntry(role, precision, file, sha256_of(path), graph_specs(model.graph.input),
                           graph_specs(model.graph.output), self.options.opset, details)
        self.entries.append(entry)
        return entry


def _export_generator(writer: ExportWriter, checkpoint: Path, image_spec: TensorSpec, feeds: list[dict[str, np.ndarray]],
                      with_appearance: bool = False) -> int:
    """structure.onnx and decoder.onnx (and fp16 versions), fed with codes of the parity images; with
    ``with_appearance`` also appearance.onnx, DG-Net's own E_a code (for an embedder that is another
    network). Returns the appearance code's size."""
    model, cfg = load_dgnet(checkpoint)
    if (cfg.data.height, cfg.data.width) != (writer.fmt.height, writer.fmt.width):
        raise ExportError(f"the generator {checkpoint} works at {cfg.data.height}x{cfg.data.width}, the embedder at "
                          f"{writer.fmt.height}x{writer.fmt.width}")
    structure = StructureGraph(model.structure, cfg.data.mean, cfg.data.std).eval()
    decoder = DecoderGraph(model.decoder).eval()
    if with_appearance:
        appearance = AppearanceGraph(model.appearance, cfg.data.mean, cfg.data.std).eval()
        writer.add("appearance", "fp32", appearance, [image_spec], ["appearance"], feeds, appearance, PARITY_ATOL, None)
    code_feeds = []
    with torch.no_grad():
        for feed in feeds:
            x = Normalise(cfg.data.mean, cfg.data.std)(torch.from_numpy(feed["images"]))
            code_feeds.append({"structure": model.structure(x).numpy(), "appearance": model.encode_appearance(x).numpy()})
    s = code_feeds[0]["structure"].shape
    specs = [TensorSpec("structure", ("batch", *s[1:]), "float32"),
             TensorSpec("appearance", ("batch", model.appearance.code_dim), "float32")]
    writer.add("structure", "fp32", structure, [image_spec], ["structure"], feeds, structure, PARITY_ATOL, None, fold=True)
    writer.add("decoder", "fp32", decoder, specs, ["images"], code_feeds, decoder, PARITY_ATOL, None, fold=True)
    if writer.options.fp16:
        writer.add("structure", "fp16", copy.deepcopy(structure).half(), [image_spec], ["structure"], feeds, structure,
                   None, FP16_COSINE, fold=True)
        writer.add("decoder", "fp16", copy.deepcopy(decoder).half(), specs, ["images"], code_feeds, decoder,
                   None, FP16_COSINE, fold=True)
    return model.appearance.code_dim


def _distil_generator(checkpoint: Path) -> Path | None:
    """The DG-Net checkpoint a ``distil`` run learnt from (its generator parts go into the export),
    or None when it learnt from none (a control run); an error when it is gone."""
    from dgnet_edge.checkpoint import load_checkpoint

    recorded = load_checkpoint(checkpoint).get("generator")
    if not recorded:
        return None
    path = Path(recorded)
    if not path.is_file():
        raise ExportError(f"{checkpoint} learnt from the generator {path}, which is gone: the export takes its "
                          "generator parts from there; put it back")
    return path


def _check_part_rows(net: torch.nn.Module, cfg: Config) -> None:
    """The 4-stripe part pooling exports only when the feature map's height divides into 4 rows."""
    with torch.no_grad():
        rows = net.forward_features(torch.zeros(1, 3, cfg.data.height, cfg.data.width)).shape[2]
    if rows % PARTS:
        raise ExportError(
            f"the feature map at {cfg.data.height}x{cfg.data.width} has {rows} rows, which do not split into "
            f"{PARTS} stripes for the appearance code; export without it (--no-code) or train with last_stride 1"
        )


def export_checkpoint(
    checkpoint: str | Path,
    out_dir: str | Path,
    options: ExportOptions = ExportOptions(),
    force: bool = False,
    extend: Callable[[Path, Manifest], Manifest] | None = None,
) -> Manifest:
    """Write the export folder for ``checkpoint`` to ``out_dir`` (atomically).

    ``extend`` runs on the finished temporary folder before it is moved into place (e.g. INT8
    calibration adding its models) and returns the updated manifest.
    """
    checkpoint, out_dir = Path(checkpoint), check_output_dir(out_dir, "export folder")
    refuse_overwriting_inputs(out_dir, [checkpoint], "export folder")
    if out_dir.exists() and any(out_dir.iterdir()) and not force:
        raise ExportError(f"{out_dir} exists and is not empty; choose another --out or pass --force")
    net, cfg, kind = load_reid_net(checkpoint)
    # A distilled E_a's own appearance code is not what the generator it learnt from decodes: its
    # export carries that generator's E_a as the ``appearance`` model instead.
    generator = _distil_generator(checkpoint) if kind == "distil" and options.generator else None
    with_code = options.with_code and kind != "distil"
    if with_code:
        _check_part_rows(net, cfg)
    fmt = InputFormat(cfg.data.height, cfg.data.width, dtype=options.input_dtype, mean=cfg.data.mean, std=cfg.data.std)
    real = real_images(cfg)
    if real is None:
        log.warning("dataset %s not found: parity checked on random images only", cfg.data.root)

    tmp = make_staging_dir(out_dir)
    try:
        writer = ExportWriter(tmp, fmt, options, real)
        embedder = ReidEmbedder(net, cfg.data.mean, cfg.data.std, flip=options.flip, with_code=with_code).eval()
        image_spec = TensorSpec("images", ("batch", fmt.height, fmt.width, 3), fmt.dtype)
        outputs = ["features", "appearance"] if with_code else ["features"]
        feeds = parity_feeds("images", fmt, real)
        writer.add("embedder", "fp32", embedder, [image_spec], outputs, feeds, embedder, PARITY_ATOL, None)
        if options.fp16:
            half = copy.deepcopy(embedder).half()
            writer.add("embedder", "fp16", half, [image_spec], outputs, feeds, embedder, None, FP16_COSINE)
        code_dim = net.code_dim if with_code else 0
        if kind == "dgnet" and options.generator:
            _export_generator(writer, checkpoint, image_spec, feeds)
        elif generator is not None:
            code_dim = _export_generator(writer, generator, image_spec, feeds, with_appearance=True)

        manifest = Manifest(
            input=fmt,
            profile=options.profile,
            feature_dim=net.feature_dim,
            heads=len(net.heads),
            code_dim=code_dim,
            flip=options.flip,
            source={"checkpoint": str(checkpoint.resolve()), "sha256": sha256_of(checkpoint), "kind": kind,
                    "dataset": cfg.data.dataset, "data_root": cfg.data.root, "eval_alpha": cfg.eval.alpha},
            models=tuple(writer.entries),
            toolkit_version=__version__,
        )
        if extend is not None:
            manifest = extend(tmp, manifest)
        manifest.save(tmp)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest
