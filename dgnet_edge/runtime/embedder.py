"""The deployment API: an :class:`Embedder` (crops -> re-id features [+ appearance codes]) and a
:class:`Generator` (structure codes + appearance codes -> images), each on any backend.

Crops of any size go in as RGB uint8 arrays; they are resized to the network size here and
everything else (normalisation, flip, L2) happens inside the graph. Batches larger than the
export's batch profile maximum are split. Neither class imports torch unless the torch backend is
asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence, Union

import numpy as np

from dgnet_edge.data.images import resize
from dgnet_edge.manifest import Manifest, load_manifest
from dgnet_edge.runtime.base import Runner
from dgnet_edge.runtime.colour import SiteColour, read_site_colour
from dgnet_edge.runtime.select import open_runner
from dgnet_edge.visualize import to_uint8

Crops = Union[np.ndarray, Sequence[np.ndarray]]


def prepare_crops(crops: Crops, height: int, width: int, dtype: str) -> np.ndarray:
    """Resize RGB uint8 crops to the network size and stack them as (N, H, W, 3) of ``dtype``."""
    if isinstance(crops, np.ndarray) and crops.ndim == 4 and crops.shape[1:3] == (height, width):
        batch = crops
    else:
        images = [crops[i] for i in range(len(crops))]
        for i, image in enumerate(images):
            if image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"crop {i}: expected an RGB image (H, W, 3), got shape {image.shape}")
        batch = np.stack([resize(image, height, width) for image in images]) if images else np.zeros((0, height, width, 3), np.uint8)
    return np.ascontiguousarray(batch, dtype=dtype)


def run_split(runner: Runner, feeds: dict[str, np.ndarray], max_batch: int) -> dict[str, np.ndarray]:
    """Run ``feeds`` in chunks of at most ``max_batch`` rows and concatenate the outputs."""
    n = len(next(iter(feeds.values())))
    parts = [runner.infer({k: v[i : i + max_batch] for k, v in feeds.items()}) for i in range(0, n, max_batch)]
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


class Embedder:
    """Re-id features (and appearance codes, when the export has them) for person crops.

    With a :class:`~dgnet_edge.runtime.colour.SiteColour` (the export's ``site_colour.json``, which
    :meth:`open` reads unless ``site_colour=False``) the features carry the crops' colour too.
    """

    def __init__(self, runner: Runner, manifest: Manifest, site_colour: SiteColour | None = None):
        self.runner = runner
        self.manifest = manifest
        self.max_batch = manifest.profile.max
        self.site_colour = site_colour
        self.feature_dim = manifest.feature_dim + (site_colour.extra_dim if site_colour else 0)

    @classmethod
    def open(cls, export_dir: str | Path, backend: str = "auto", precision: str = "auto", device: str = "auto",
             site_colour: bool = True) -> Embedder:
        manifest = load_manifest(export_dir)
        colour = read_site_colour(export_dir) if site_colour else None
        return cls(open_runner(export_dir, manifest, "embedder", backend, precision, device).activate(), manifest, colour)

    @property
    def backend(self) -> str:
        return self.runner.backend

    def _run(self, crops: Crops) -> dict[str, np.ndarray]:
        fmt = self.manifest.input
        images = prepare_crops(crops, fmt.height, fmt.width, fmt.dtype)
        if len(images) == 0:
            return {"features": np.zeros((0, self.feature_dim), np.float32),
                    "appearance": np.zeros((0, self.manifest.code_dim), np.float32)}
        return run_split(self.runner, {"images": images}, self.max_batch)

    def _features(self, out: dict[str, np.ndarray], crops: Crops) -> np.ndarray:
        features = out["features"].astype(np.float32, copy=False)
        return self.site_colour.fuse(features, crops).astype(np.float32) if self.site_colour else features

    def embed(self, crops: Crops) -> np.ndarray:
        """(N, D) float32 features, one row per crop."""
        return self._features(self._run(crops), crops)

    def embed_with_code(self, crops: Crops) -> tuple[np.ndarray, np.ndarray]:
        """Features and appearance codes from one pass (enrolment needs both)."""
        out = self._run(crops)
        if "appearance" not in out:
            raise ValueError("this export has no appearance code output (exported with --no-code)")
        return self._features(out, crops), out["appearance"].astype(np.float32, copy=False)

    def close(self) -> None:
        self.runner.deactivate()

    def __enter__(self) -> Embedder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Generator:
    """DG-Net's generator on a device: structure codes of crops, and images decoded from a
    structure code and an appearance code.

    ``decode_batch`` caps the images per decoder call (default: the batch profile maximum). The
    decoder works at full image resolution, so its activations and convolution buffers grow with
    the batch. :meth:`open` therefore decodes one image per call on ONNX Runtime's CPU provider and
    runs both parts without ONNX Runtime's memory arena: for the ResNet-50 DG-Net at 256x128
    (INT8 CPU parts), a process that embeds 8 crops and synthesises 8 images peaked at 472 MB with
    the arena and 8 images per call, and at 250-284 MB without the arena and one image per call,
    at the same images per second within this machine's run-to-run noise. Its ONNX Runtime threads
    do not spin between runs: the generator runs now and then beside a frame loop, and threads left
    spinning after each structure-encoder call took the cores from the loop's embedder (the camera
    app on a 60 s, 2-camera video bench, 2 cores: 138 frames/s with spinning, 175 without, 189 with
    no generator; medians of 4 interleaved runs).
    """

    def __init__(self, structure: Runner, decoder: Runner, manifest: Manifest, decode_batch: int | None = None,
                 appearance: Runner | None = None):
        self.structure_runner = structure
        self.decoder_runner = decoder
        self.appearance_runner = appearance  # the export's own E_a code, when its embedder is another network
        self.manifest = manifest
        self.max_batch = manifest.profile.max
        if decode_batch is not None and decode_batch < 1:
            raise ValueError(f"decode_batch must be >= 1, got {decode_batch}")
        self.decode_batch = min(decode_batch or self.max_batch, self.max_batch)

    @classmethod
    def open(
        cls, export_dir: str | Path, backend: str = "auto", precision: str = "auto", device: str = "auto",
        decode_batch: int | None = None,
    ) -> Generator:
        manifest = load_manifest(export_dir)
        structure = open_runner(export_dir, manifest, "structure", backend, precision, device, memory_arena=False,
                                spinning=False).activate()
        decoder = open_runner(export_dir, manifest, "decoder", backend, precision, device, memory_arena=False,
                              spinning=False).activate()
        if decode_batch is None and decoder.on_cpu:
            decode_batch = 1
        appearance = None
        if any(m.role == "appearance" for m in manifest.models):
            # One precision of it (fp32) is written; run that wherever the other parts run.
            appearance_precision = precision if manifest.has_model("appearance", precision) else "fp32"
            appearance = open_runner(export_dir, manifest, "appearance", backend, appearance_precision, device,
                                     memory_arena=False, spinning=False).activate()
        return cls(structure, decoder, manifest, decode_batch, appearance)

    def codes(self, crops: Crops, embedder: Embedder) -> tuple[np.ndarray, np.ndarray]:
        """(re-id features, appearance codes) of crops: the codes from the export's own E_a when it has
        one (its embedder is then another network), else from the embedder's code output."""
        if self.appearance_runner is None:
            return embedder.embed_with_code(crops)
        fmt = self.manifest.input
        images = prepare_crops(crops, fmt.height, fmt.width, fmt.dtype)
        codes = run_split(self.appearance_runner, {"images": images}, self.max_batch)["appearance"]
        return embedder.embed(crops), codes.astype(np.float32, copy=False)

    def structure(self, crops: Crops) -> np.ndarray:
        fmt = self.manifest.input
        images = prepare_crops(crops, fmt.height, fmt.width, fmt.dtype)
        return run_split(self.structure_runner, {"images": images}, self.max_batch)["structure"]

    def decode(self, structure: np.ndarray, appearance: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) RGB uint8 images with the given structure and appearance codes."""
        if len(structure) != len(appearance):
            raise ValueError(f"{len(structure)} structure codes but {len(appearance)} appearance codes")
        out = run_split(self.decoder_runner, {"structure": structure.astype(np.float32, copy=False),
                                              "appearance": appearance.astype(np.float32, copy=False)}, self.decode_batch)
        return to_uint8(out["images"], self.manifest.input.mean, self.manifest.input.std)

    def synthesise(self, appearance: np.ndarray, structure_crops: Crops) -> np.ndarray:
        """Render one appearance code (D,) in the pose and layout of each structure crop."""
        codes = self.structure(structure_crops)
        return self.decode(codes, np.repeat(appearance.reshape(1, -1), len(codes), axis=0))

    def close(self) -> None:
        self.structure_runner.deactivate()
        self.decoder_runner.deactivate()
        if self.appearance_runner is not None:
            self.appearance_runner.deactivate()

    def __enter__(self) -> Generator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
