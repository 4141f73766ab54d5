"""INT8 CPU models of the generator parts (structure encoder and decoder) for ONNX Runtime.

On a CPU the fp32 decoder already runs its convolutions near the machine's fp32 matrix-multiply
peak, so only integer kernels make synthesis faster. The pass reuses the embedder's calibration
images: the structure encoder is calibrated on them, and the decoder on the codes they give, both
as each image's own pair (reconstruction) and as swaps (the structure of image i with the
appearance of image i+1), the two ways the app renders. Then, as for the embedder's CPU model:
uint8 activations and int8 per-channel weights on x86 (int8/int8 on ARM), from the same
calibration method.

Only the CPU flavour is written: on TensorRT the generator runs as the fp16 ONNX models, since the
decoder's instance and layer norms keep most of its work in float there and an INT8 engine would
gain little for the quality it costs. The check renders swaps of calibration images the generator
pass did not use with the fp32 and the INT8 parts (INT8 structure encoder into INT8 decoder, as
deployed) and records the PSNR of the pixels.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dgnet_edge.calib.collect import batch_size_for, collect_histograms, load_model
from dgnet_edge.calib.qdq import QuantSettings, write_int8_model
from dgnet_edge.calib.ranges import ranges_from_histograms
from dgnet_edge.calib.sampling import image_batches
from dgnet_edge.export.onnx_export import graph_specs
from dgnet_edge.manifest import Manifest, ModelEntry, sha256_of
from dgnet_edge.runtime.onnxrt import OnnxRuntimeRunner, SessionFromOnnx
from dgnet_edge.visualize import to_uint8

log = logging.getLogger(__name__)

PRECISION = "int8-cpu"
FILES = {"structure": "structure.int8-cpu.onnx", "decoder": "decoder.int8-cpu.onnx"}
DEFAULT_COUNT = 128  # images: the decoder's activations are full-resolution, so its pass is the slow one
CHECK_PAIRS = 16
PSNR_WARNING = 25.0  # dB


@dataclass(frozen=True)
class GeneratorQuality:
    """fp32 vs INT8 generator on the same (structure, appearance) pairs."""

    pairs: int
    psnr_db: float  # over all pixels, 8-bit images
    mean_abs_error: float  # pixel levels, 0..255
    structure_cosine: float  # mean cosine of the INT8 structure codes to fp32

    def to_dict(self) -> dict[str, float | int]:
        return {"pairs": self.pairs, "psnr_db": round(float(self.psnr_db), 3), "mean_abs_error": round(self.mean_abs_error, 4),
                "structure_cosine": round(self.structure_cosine, 6)}


def _run(path: Path, feeds: Sequence[dict[str, np.ndarray]], output: str) -> np.ndarray:
    with OnnxRuntimeRunner(SessionFromOnnx(path, device="cpu")) as runner:
        return np.concatenate([runner.infer(f)[output] for f in feeds])


def _code_feeds(structure: np.ndarray, appearance: np.ndarray, batch: int) -> list[dict[str, np.ndarray]]:
    """Own pairs, then swaps (structure i with appearance i+1), in batches."""
    s = np.concatenate([structure, structure])
    a = np.concatenate([appearance, np.roll(appearance, -1, axis=0)])
    return [{"structure": s[i : i + batch], "appearance": a[i : i + batch]} for i in range(0, len(s), batch)]


def _psnr(reference: np.ndarray, candidate: np.ndarray) -> tuple[float, float]:
    diff = reference.astype(np.float64) - candidate.astype(np.float64)
    mse = float(np.mean(diff**2))
    return (float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)), float(np.mean(np.abs(diff)))


def coder_file(manifest: Manifest) -> str:
    """The fp32 model whose ``appearance`` output feeds the decoder: the export's own DG-Net E_a when
    its embedder is another network (a distilled E_a), else the embedder."""
    return manifest.model("appearance" if manifest.has_model("appearance") else "embedder", "fp32").file


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    num = np.sum(a * b, axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(np.mean(num / np.maximum(den, 1e-12)))


def calibrate_generator(
    folder: Path,
    manifest: Manifest,
    images: Sequence[Path],
    settings: QuantSettings,
    method: str,
    percentile: float,
    count: int = DEFAULT_COUNT,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[ModelEntry]:
    """Write the INT8 CPU structure encoder and decoder into ``folder``; their manifest entries."""
    fmt = manifest.input
    paths = list(images[:: max(1, len(images) // count)][:count])
    structure_entry, decoder_entry = manifest.model("structure", "fp32"), manifest.model("decoder", "fp32")
    structure_path, decoder_path = folder / structure_entry.file, folder / decoder_entry.file
    coder_path = folder / coder_file(manifest)
    notify = progress or (lambda *a: None)

    notify("calibrating the generator", 0, 2 * len(paths))
    structure_model = load_model(structure_path)
    image_feeds = list(image_batches(paths, fmt.height, fmt.width, fmt.dtype, batch_size_for(structure_model)))
    structure_hist = collect_histograms(structure_model, image_feeds)
    notify("calibrating the generator", len(paths), 2 * len(paths))
    codes = _run(structure_path, image_feeds, "structure")
    appearance = _run(coder_path, image_feeds, "appearance")
    decoder_model = load_model(decoder_path)
    code_feeds = _code_feeds(codes, appearance, batch_size_for(decoder_model, largest=8))
    decoder_hist = collect_histograms(decoder_model, code_feeds)
    notify("calibrating the generator", 2 * len(paths), 2 * len(paths))

    written = {}
    for role, source, hist, samples in (("structure", structure_entry, structure_hist, len(codes)),
                                        ("decoder", decoder_entry, decoder_hist, 2 * len(codes))):
        ranges = ranges_from_histograms(hist, method, samples, percentile)
        model, done = write_int8_model(folder / source.file, ranges, folder / FILES[role], settings)
        written[role] = (source, model, {"calibration": "generator pass", "method": method,
                                         "percentile": ranges.percentile, "samples": samples, **done.details()})

    used = set(paths)
    held_out = [p for p in images if p not in used] or paths
    check_paths = held_out[:: max(1, len(held_out) // CHECK_PAIRS)][:CHECK_PAIRS]
    check_feeds = list(image_batches(check_paths, fmt.height, fmt.width, fmt.dtype, CHECK_PAIRS))
    quality = check_generator(folder, {"fp32": (structure_entry.file, decoder_entry.file),
                                       PRECISION: (FILES["structure"], FILES["decoder"])}, manifest, check_feeds)
    if quality.psnr_db < PSNR_WARNING:
        log.warning("INT8 generator: PSNR %.1f dB to fp32 on %d pairs (< %.0f dB); Generator.open(precision='fp32') keeps fp32",
                    quality.psnr_db, quality.pairs, PSNR_WARNING)
    log.info("INT8 generator vs fp32 on %d pairs: PSNR %.1f dB, mean |error| %.2f levels, structure cosine %.4f",
             quality.pairs, quality.psnr_db, quality.mean_abs_error, quality.structure_cosine)
    return [
        ModelEntry(role, PRECISION, FILES[role], sha256_of(folder / FILES[role]), graph_specs(model.graph.input),
                   graph_specs(model.graph.output), source.opset, {**details, "vs_fp32": quality.to_dict()})
        for role, (source, model, details) in written.items()
    ]


def check_generator(
    folder: Path, files: dict[str, tuple[str, str]], manifest: Manifest, image_feeds: Sequence[dict[str, np.ndarray]]
) -> GeneratorQuality:
    """Render swaps of the images (structure of image i, appearance of image i+1, from the fp32
    embedder) with the fp32 and the INT8 (structure, decoder) files."""
    images = np.concatenate([next(iter(f.values())) for f in image_feeds])
    swapped = np.roll(_run(folder / coder_file(manifest), [{"images": images}], "appearance"), -1, axis=0)
    outputs, codes = {}, {}
    for precision, (structure_file, decoder_file) in files.items():
        codes[precision] = _run(folder / structure_file, [{"images": images}], "structure")
        decoded = _run(folder / decoder_file, [{"structure": codes[precision], "appearance": swapped}], "images")
        outputs[precision] = to_uint8(decoded, manifest.input.mean, manifest.input.std)
    psnr, mae = _psnr(outputs["fp32"], outputs[PRECISION])
    return GeneratorQuality(len(images), psnr, mae, _cosine(codes["fp32"], codes[PRECISION]))
