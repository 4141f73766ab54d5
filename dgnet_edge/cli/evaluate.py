"""`dgnet-edge eval`: rank a dataset's query set against its gallery with a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from typing_extensions import Annotated

from dgnet_edge.cli.options import DeviceOpt, JsonOpt, ProgressOpt, float_option
from dgnet_edge.cli.output import err, out, print_json


def evaluate(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint written by `dgnet-edge train`.")],
    data: Annotated[Optional[Path], typer.Option("--data", help="Dataset root (default: the checkpoint's).")] = None,
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="Dataset reader (default: the checkpoint's).")] = None,
    ap: Annotated[Optional[str], typer.Option("--ap", help="AP convention: standard | trapezoid (Market MATLAB).")] = None,
    rerank: Annotated[bool, typer.Option("--rerank", help="k-reciprocal re-ranking (k1 20, k2 6, lambda 0.3).")] = False,
    flip: Annotated[Optional[bool], typer.Option("--flip/--no-flip", help="Add the mirrored image's feature.")] = None,
    alpha: Annotated[
        Optional[float], float_option("--alpha", min=0.0, help="Weight (>= 0) of the fine-grained half of the query.")
    ] = None,
    device: DeviceOpt = None,
    as_json: JsonOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """CMC rank-1/5/10, mAP and mINP with the Market-1501 rules."""
    from rich.progress import Progress
    from rich.table import Table

    from dgnet_edge.data.registry import build_dataset
    from dgnet_edge.device import resolve_device
    from dgnet_edge.errors import UsageError
    from dgnet_edge.models import ReidEmbedder
    from dgnet_edge.models.embedder import numpy_embed
    from dgnet_edge.models.factory import load_reid_net
    from dgnet_edge.retrieval import rank_dataset

    if ap is not None and ap not in ("standard", "trapezoid"):
        raise UsageError(f"--ap must be standard or trapezoid, got {ap!r}")
    net, cfg, kind = load_reid_net(checkpoint)
    torch_device = resolve_device(device or cfg.device)
    ds = build_dataset(dataset or cfg.data.dataset, data or cfg.data.root)
    use_flip = cfg.eval.flip if flip is None else flip
    embedder = ReidEmbedder(net, cfg.data.mean, cfg.data.std, flip=use_flip).to(torch_device)
    with Progress(console=err, disable=not progress) as bar:
        task = bar.add_task("embedding", total=len(ds.query) + len(ds.gallery))
        run = rank_dataset(
            numpy_embed(embedder, torch_device),
            ds,
            cfg.data.height,
            cfg.data.width,
            heads=len(net.heads),
            alpha=cfg.eval.alpha if alpha is None else alpha,
            ap=ap or cfg.eval.ap,
            with_rerank=rerank,
            batch_size=cfg.eval.batch_size,
            workers=cfg.data.workers,
            on_batch=lambda n: bar.advance(task, n),
        )
    metrics = run.result.as_dict()
    summary = {"checkpoint": str(checkpoint), "kind": kind, "dataset": str(ds.root), "ap": run.result.ap,
               "rerank": rerank, "flip": use_flip, "queries": len(ds.query), "gallery": len(ds.gallery), **metrics}
    if as_json:
        print_json(summary)
        return
    table = Table(title=f"{kind} checkpoint on {ds.root} (AP: {run.result.ap}{', re-ranked' if rerank else ''})")
    for col in ("rank-1", "rank-5", "rank-10", "mAP", "mINP"):
        table.add_column(col, justify="right")
    table.add_row(*(f"{metrics[k]:.2f}" for k in ("rank1", "rank5", "rank10", "mAP", "mINP")))
    out.print(table)
