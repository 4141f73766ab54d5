"""The memory a deployment process needs: a fresh interpreter that loads the embedder and the
generator parts, embeds a batch and synthesises images, then reports its peak resident memory.

    python -m dgnet_edge.apps.report.footprint EXPORT_DIR [--precision int8] [--batch 8] [--decode-batch N]

It uses only the deployment API (:class:`~dgnet_edge.runtime.embedder.Embedder`,
:class:`~dgnet_edge.runtime.embedder.Generator`) and prints one JSON object; ``torch_imported``
must stay false. :func:`measure_footprint` runs it from another process.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

MODULE = "dgnet_edge.apps.report.footprint"


def run(export_dir: str, backend: str = "onnxruntime", precision: str = "int8", batch: int = 8,
        decode_batch: int | None = None) -> dict[str, Any]:
    import numpy as np

    from dgnet_edge.apps.report.memory import current_rss_bytes, peak_rss_bytes
    from dgnet_edge.manifest import load_manifest
    from dgnet_edge.runtime.embedder import Embedder, Generator

    manifest = load_manifest(export_dir)
    fmt = manifest.input
    crops = np.random.default_rng(0).integers(0, 256, (batch, fmt.height, fmt.width, 3), dtype=np.uint8)
    result: dict[str, Any] = {"rss_start_bytes": current_rss_bytes()}
    with Embedder.open(export_dir, backend=backend, precision=precision) as embedder:
        result["embedder"] = embedder.runner.name
        # An export with its own E_a copy (a distilled embedder) takes the codes from the generator.
        own_coder = manifest.has_model("appearance")
        features, codes = (embedder.embed(crops), None) if own_coder else embedder.embed_with_code(crops)
        result["rss_embedder_bytes"] = current_rss_bytes()
        result["generator"] = None
        if manifest.has_model("structure") and manifest.has_model("decoder"):
            with Generator.open(export_dir, backend=backend, decode_batch=decode_batch) as generator:
                result["generator"] = f"{generator.structure_runner.name} + {generator.decoder_runner.name}"
                result["decode_batch"] = generator.decode_batch
                if codes is None:
                    _, codes = generator.codes(crops, embedder)
                images = generator.decode(generator.structure(crops), codes)
                result["synthesised"] = int(len(images))
        result["embedded"] = int(len(features))
        result["rss_end_bytes"] = current_rss_bytes()
        result["peak_rss_bytes"] = peak_rss_bytes()
    result["torch_imported"] = "torch" in sys.modules
    return result


def measure_footprint(
    export_dir: str | Path, backend: str = "onnxruntime", precision: str = "int8", batch: int = 8, decode_batch: int | None = None
) -> dict[str, Any]:
    """Run :func:`run` in a fresh interpreter; its result, or ``{"error": ...}``."""
    command = [sys.executable, "-m", MODULE, str(export_dir), "--backend", backend, "--precision", precision, "--batch", str(batch)]
    if decode_batch is not None:
        command += ["--decode-batch", str(decode_batch)]
    process = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in process.stdout.splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        tail = " | ".join(process.stderr.strip().splitlines()[-3:])
        return {"error": f"exit code {process.returncode}: {tail}"}
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    from dgnet_edge.errors import DgnetEdgeError

    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.splitlines()[0])
    parser.add_argument("export_dir")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--precision", default="int8")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--decode-batch", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        result = run(args.export_dir, args.backend, args.precision, args.batch, args.decode_batch)
    except DgnetEdgeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
