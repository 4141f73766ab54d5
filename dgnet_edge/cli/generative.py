"""`dgnet-edge import-official` and `dgnet-edge synth`: the generative half's commands."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import typer
from typing_extensions import Annotated

from dgnet_edge.cli.options import ConfigOpt, OverridesOpt
from dgnet_edge.cli.output import err


def import_official(
    gen: Annotated[Path, typer.Option("--gen", help="Official gen_XXXXXXXX.pt (E_s and G).")],
    id_file: Annotated[Path, typer.Option("--id", help="Official id_XXXXXXXX.pt (E_a and its heads).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Checkpoint to write.")],
    dis: Annotated[Optional[Path], typer.Option("--dis", help="Official dis_XXXXXXXX.pt (D), optional.")] = None,
    teacher: Annotated[Optional[Path], typer.Option("--teacher", help="The teacher's net_last.pth, optional.")] = None,
    teacher_out: Annotated[Optional[Path], typer.Option("--teacher-out", help="Where to write the teacher checkpoint.")] = None,
    config: ConfigOpt = "dgnet_market",
    overrides: OverridesOpt = None,
) -> None:
    """Convert the released official DG-Net files into a dgnet-edge checkpoint (and teacher)."""
    from dgnet_edge.config import load_config
    from dgnet_edge.official_import import import_official as run_import

    result = run_import(load_config(config, list(overrides or [])), gen, id_file, out, dis, teacher, teacher_out)
    err.print(f"wrote {result.checkpoint} ({result.num_classes} identities)")
    if result.teacher_checkpoint:
        err.print(f"wrote {result.teacher_checkpoint}")
    if result.unused:
        err.print(f"[yellow]{len(result.unused)} official key(s) had no place:[/] " + ", ".join(result.unused))


def synth(
    checkpoint: Annotated[Path, typer.Argument(help="A dgnet checkpoint (trained or imported).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG of the swap grid.")],
    images: Annotated[Optional[List[Path]], typer.Option("--image", "-i", help="An input image (repeatable).")] = None,
    data: Annotated[Optional[Path], typer.Option("--data", help="Take images from this dataset's query set instead.")] = None,
    count: Annotated[int, typer.Option("--count", "-n", min=2, help="Images taken from --data (distinct identities).")] = 6,
    strip: Annotated[Optional[Path], typer.Option("--strip", help="Also write an appearance-interpolation strip between the first two images.")] = None,
    steps: Annotated[int, typer.Option("--steps", min=2, help="Steps of the interpolation strip.")] = 8,
) -> None:
    """Render the swap grid (row = appearance of image i, column = structure of image j)."""
    from dgnet_edge.data.images import load_images
    from dgnet_edge.data.registry import build_dataset
    from dgnet_edge.errors import UsageError
    from dgnet_edge.models.factory import load_dgnet
    from dgnet_edge.paths import prepare_output_file
    from dgnet_edge.swap_grid import interpolation_strip, swap_grid
    from dgnet_edge.visualize import save_png

    if bool(images) == (data is not None):
        raise UsageError("give either --image (at least two) or --data")
    prepare_output_file(out, "--out file")
    if strip is not None:
        prepare_output_file(strip, "--strip file")
    model, cfg = load_dgnet(checkpoint)
    if data is not None:
        seen: Dict[int, Path] = {}
        for record in build_dataset(cfg.data.dataset, data).query:
            seen.setdefault(record.pid, record.path)
        paths = list(seen.values())[:count]
    else:
        paths = list(images)
    if len(paths) < 2:
        raise UsageError("need at least two images")
    pixels = load_images(paths, cfg.data.height, cfg.data.width).pixels
    save_png(out, swap_grid(model, cfg, pixels))
    err.print(f"wrote {out} ({len(paths)}x{len(paths)} swaps)")
    if strip is not None:
        save_png(strip, interpolation_strip(model, cfg, pixels[0], pixels[1], steps))
        err.print(f"wrote {strip}")
