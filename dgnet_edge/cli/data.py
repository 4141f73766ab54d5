"""`dgnet-edge data ...`: dataset readers and checks."""

from __future__ import annotations

import typer

from dgnet_edge.cli.output import out

app = typer.Typer(help="Datasets: list readers, make the synthetic world, check a folder.", no_args_is_help=True)


@app.command("list")
def list_readers() -> None:
    """List the dataset readers `--dataset` accepts."""
    from dgnet_edge.data.registry import dataset_names

    for name in dataset_names():
        out.print(name)
