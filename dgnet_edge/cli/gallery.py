"""`dgnet-edge gallery ...`: the camera app's persistent gallery of identities.

    dgnet-edge gallery list                                        # identities, templates, cameras
    dgnet-edge gallery show 3                                      # one identity's templates and sightings
    dgnet-edge gallery enrol alice.jpg --name Alice --export runs/quickstart/export
    dgnet-edge gallery enrol alice.jpg --name Alice --export runs/quickstart/export --synthesise   # + K rendered views
    dgnet-edge gallery rename 3 Bob
    dgnet-edge gallery merge 3 7                                   # 7 joins 3
    dgnet-edge gallery delete 7
    dgnet-edge gallery export gallery-export                       # gallery.json + crops/
    dgnet-edge gallery calibrate runs/quickstart/export --data data/synth   # writes reid_threshold.json
    dgnet-edge gallery migrate gallery.db postgresql://reid@db-host/site   # (and back): every row, nothing lost

``--gallery`` is a file (SQLite, one box) or ``postgresql://USER@HOST[:PORT]/DATABASE`` (shared by many devices).
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any, Optional

import typer
from typing_extensions import Annotated

from dgnet_edge.apps.camera.defaults import SYNTHETIC_VIEWS
from dgnet_edge.cli.options import BackendOpt, JsonOpt, PrecisionOpt, ProgressOpt
from dgnet_edge.cli.output import err, out, print_json

app = typer.Typer(help="The camera app's gallery: list, show, enrol, rename, merge, delete, export, calibrate.",
                  no_args_is_help=True)

GalleryOpt = Annotated[str, typer.Option("--gallery", "-g", help="Gallery: a file (SQLite) or postgresql://USER@HOST[:PORT]/DATABASE.")]
ThresholdOpt = Annotated[
    Optional[float],
    typer.Option("--threshold", help="Cosine score from which a person is a known identity "
                                     "(default: the export's reid_threshold.json, see `gallery calibrate`)."),
]
IdArg = Annotated[int, typer.Argument(metavar="ID", help="Identity id (see `gallery list`).")]
DEFAULT_GALLERY = "gallery.db"


def _open(gallery: str, feature_dim: Optional[int] = None, read_only: bool = False) -> Any:
    from dgnet_edge.apps.camera.storage.open_gallery import is_database_url, open_gallery, parse_gallery_spec

    options = {"listen": False} if is_database_url(gallery) else {}  # one command: no need to follow others
    return open_gallery(parse_gallery_spec(gallery), feature_dim, read_only=read_only, **options)


def _literal(text: object) -> Any:
    """``text`` as rich prints it literally: names, cameras, sources and paths are the user's, and
    brackets in them are not markup."""
    from rich.text import Text

    return Text(str(text))


def _shown(gallery: str) -> str:
    """The gallery as messages name it (a URL without its password)."""
    from dgnet_edge.apps.camera.storage.open_gallery import redact

    return redact(gallery)


def _when(t: Optional[float]) -> str:
    return "" if t is None else datetime.datetime.fromtimestamp(t).isoformat(sep=" ", timespec="seconds")


def _identity_dict(identity) -> dict:
    return {"id": identity.id, "name": identity.name, "created": identity.created, "updated": identity.updated,
            "templates": identity.templates, "synthetic": identity.synthetic, "cameras": list(identity.cameras)}


@app.command("list")
def list_identities(gallery: GalleryOpt = DEFAULT_GALLERY, as_json: JsonOpt = False) -> None:
    """Every identity: name, templates (real + synthetic), the cameras that saw it."""
    with _open(gallery, read_only=True) as g:
        identities = g.identities()
    if as_json:
        print_json([_identity_dict(i) for i in identities])
        return
    from rich.table import Table

    table = Table(title=_literal(f"{_shown(gallery)}: {len(identities)} identities"))
    for col in ("id", "name", "templates", "synthetic", "cameras", "created", "updated"):
        table.add_column(col, justify="right" if col in ("id", "templates", "synthetic") else "left")
    for i in identities:
        table.add_row(str(i.id), _literal(i.name or ""), str(i.templates), str(i.synthetic),
                      _literal(", ".join(i.cameras)), _when(i.created), _when(i.updated))
    out.print(table)


@app.command("show")
def show(identity: IdArg, gallery: GalleryOpt = DEFAULT_GALLERY, as_json: JsonOpt = False) -> None:
    """One identity: its templates (kind, camera, source) and where it was seen."""
    from dataclasses import asdict

    with _open(gallery, read_only=True) as g:
        info, templates, sightings = g.identity(identity), g.templates(identity), g.sightings(identity)
    if as_json:
        print_json({**_identity_dict(info), "templates": [asdict(t) for t in templates],
                    "sightings": [asdict(s) for s in sightings]})
        return
    from rich.table import Table

    out.print(f"identity {info.id} {info.name or '(no name)'}: created {_when(info.created)}, "
              f"updated {_when(info.updated)}", markup=False)
    table = Table(title="templates")
    for col in ("id", "kind", "camera", "time", "source", "enrolment"):
        table.add_column(col)
    for t in templates:
        table.add_row(str(t.id), _literal(t.kind), _literal(t.camera or ""), f"{t.time:.2f}", _literal(t.source),
                      "yes" if t.enrolment else "")
    out.print(table)
    table = Table(title="sightings (times on each camera's clock)")
    for col in ("camera", "track", "first", "last"):
        table.add_column(col)
    for s in sightings:
        table.add_row(_literal(s.camera), str(s.track), f"{s.first:.2f}", f"{s.last:.2f}")
    out.print(table)


@app.command("enrol")
def enrol(
    photo: Annotated[Path, typer.Argument(help="A photo of the person (a crop of one person, as a detector gives).")],
    name: Annotated[str, typer.Option("--name", help="The person's name.")],
    export: Annotated[Path, typer.Option("--export", help="Export folder whose embedder makes the feature.")],
    gallery: GalleryOpt = DEFAULT_GALLERY,
    camera: Annotated[Optional[str], typer.Option("--camera", help="Camera the photo comes from, if any.")] = None,
    synthesise: Annotated[bool, typer.Option("--synthesise/--no-synthesise", help="Also render the person in the gallery's banked structures (DG-Net export) as synthetic templates.")] = False,
    synthetic_views: Annotated[int, typer.Option("--synthetic-views", "-k", min=1, help="Synthetic views to render.")] = SYNTHETIC_VIEWS,
    backend: BackendOpt = "auto",
    precision: PrecisionOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Add a person to the gallery from one photo (created if missing); prints the new id."""
    import contextlib

    from dgnet_edge.apps.camera.storage.gallery_base import check_name
    from dgnet_edge.apps.camera.storage.open_gallery import is_database_url
    from dgnet_edge.apps.camera.storage.photo import check_person_photo
    from dgnet_edge.apps.camera.storage.structure_bank import StructureBank
    from dgnet_edge.apps.camera.storage.synthesis import EmptyBankError, Synthesiser, open_generator, require_generator
    from dgnet_edge.data.images import read_image
    from dgnet_edge.paths import prepare_output_file, require_dir, require_file
    from dgnet_edge.runtime.embedder import Embedder

    check_name(name)  # before the export is opened; the gallery checks it too
    require_file(photo, "photo")
    require_dir(export, "export folder")
    if synthesise:
        require_generator(export)
    if not is_database_url(gallery) and not Path(gallery).exists():
        prepare_output_file(Path(gallery), "gallery")
    rgb = check_person_photo(read_image(photo), photo)
    result, note = None, None
    with contextlib.ExitStack() as stack:
        embedder = stack.enter_context(Embedder.open(export, backend=backend, precision=precision))
        feature = embedder.embed([rgb])[0]
        g = stack.enter_context(_open(gallery, feature_dim=len(feature)))
        identity = g.enrol(feature, rgb[..., ::-1], name=name, camera=camera, source=f"photo:{photo.name}")
        if synthesise:
            generator = stack.enter_context(open_generator(export, backend, precision))
            try:
                result = Synthesiser(generator, embedder, StructureBank(g), synthetic_views).enrol(identity, rgb, camera)
            except EmptyBankError as e:
                note = str(e)
            except KeyboardInterrupt:  # the K views are committed together: none of them was kept
                err.print(f"interrupted: {name} is enrolled as identity {identity} in {_shown(gallery)} from the photo alone; "
                          f"no synthetic view was added", markup=False, highlight=False)
                raise typer.Exit(130) from None
    if as_json:
        print_json({"id": identity, "name": name, "gallery": _shown(gallery),
                    "synthetic": None if result is None else len(result.templates), "note": note})
        return
    out.print(f"enrolled {name} as identity {identity} in {_shown(gallery)}", markup=False)
    if result is not None:
        out.print(f"  + {len(result.templates)} synthetic views in {result.seconds:.2f} s")
    if note is not None:
        err.print(note, markup=False, highlight=False)


@app.command("rename")
def rename(identity: IdArg, name: Annotated[str, typer.Argument(help="The new name.")],
           gallery: GalleryOpt = DEFAULT_GALLERY) -> None:
    """Give an identity a (new) name."""
    with _open(gallery) as g:
        g.rename(identity, name)
    out.print(f"identity {identity} is now {name}", markup=False)


@app.command("merge")
def merge(
    keep: Annotated[int, typer.Argument(metavar="A", help="Identity that stays.")],
    other: Annotated[int, typer.Argument(metavar="B", help="Identity that joins A and disappears.")],
    gallery: GalleryOpt = DEFAULT_GALLERY,
) -> None:
    """Join two identities that are one person: B's templates and sightings move to A."""
    with _open(gallery) as g:
        g.merge(keep, other)
    out.print(f"identity {other} merged into {keep}")


@app.command("delete")
def delete(identity: IdArg, gallery: GalleryOpt = DEFAULT_GALLERY) -> None:
    """Remove an identity with its templates and sightings."""
    with _open(gallery) as g:
        g.delete(identity)
    out.print(f"identity {identity} deleted")


@app.command("export")
def export_gallery(
    out_dir: Annotated[Path, typer.Argument(metavar="OUT", help="Folder to write (gallery.json + crops/).")],
    gallery: GalleryOpt = DEFAULT_GALLERY,
) -> None:
    """Write the gallery as JSON (identities, templates with features, sightings) and the template crops."""
    from dgnet_edge.apps.camera.storage.gallery_export import export_gallery as write_export

    with _open(gallery, read_only=True) as g:
        summary = write_export(g, out_dir)
    out.print(f"wrote {summary['identities']} identities, {summary['templates']} templates and "
              f"{summary['crops']} crops to {out_dir}", markup=False)


@app.command("migrate")
def migrate(
    source: Annotated[str, typer.Argument(metavar="SRC", help="Gallery to copy: a file or postgresql://... URL.")],
    destination: Annotated[str, typer.Argument(metavar="DST", help="Where to: a new (or empty) file, or an empty database.")],
    as_json: JsonOpt = False,
) -> None:
    """Copy a gallery between a SQLite file and a PostgreSQL database (either way): identities, templates with
    features and thumbnails, sightings, the structure bank and the merge record, ids kept. DST must be empty."""
    from dgnet_edge.apps.camera.storage.gallery_migrate import migrate as copy_gallery
    from dgnet_edge.apps.camera.storage.open_gallery import parse_gallery_spec

    counts = copy_gallery(parse_gallery_spec(source), parse_gallery_spec(destination))
    if as_json:
        print_json({"source": _shown(source), "destination": _shown(destination), "rows": counts})
        return
    out.print(f"copied {_shown(source)} to {_shown(destination)}: " + ", ".join(f"{n} {t}" for t, n in counts.items()),
              markup=False)


@app.command("calibrate")
def calibrate(
    export: Annotated[Path, typer.Argument(metavar="EXPORT",
                                           help="Export folder; reid_threshold.json is written there.")],
    data: Annotated[Path, typer.Option("--data", help="Dataset root with a query/gallery split (e.g. data/synth).")],
    dataset: Annotated[str, typer.Option("--dataset", help="Dataset reader.")] = "market1501",
    backend: BackendOpt = "auto",
    precision: PrecisionOpt = "auto",
    as_json: JsonOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """Choose the re-id threshold on the dataset's query/gallery split and store it in the export."""
    from dataclasses import asdict

    from rich.progress import Progress

    from dgnet_edge.apps.camera.measure.threshold import calibrate_export, write_threshold
    from dgnet_edge.data.registry import build_dataset
    from dgnet_edge.paths import prepare_output_dir, require_dir

    require_dir(export, "export folder")
    prepare_output_dir(export, "export folder")
    ds = build_dataset(dataset, data)
    with Progress(console=err, disable=not progress) as bar:
        task = bar.add_task("embedding", total=len(ds.query) + len(ds.gallery))
        result, used = calibrate_export(export, ds, backend, precision,
                                        on_batch=lambda n: bar.advance(task, n))
    path = write_threshold(export, result, used)
    if as_json:
        print_json({**asdict(result), "calibrated_on": used, "file": str(path)})
        return
    out.print(f"threshold {result.threshold:.4f} ({result.rule}) written to {path}\n"
              f"  {result.queries} queries: re-identified {100 * result.tpr:.1f} %, false match "
              f"{100 * result.false_match_rate:.1f} %, wrong identity {100 * result.wrong_identity_rate:.1f} %\n"
              f"  pairs at the threshold: same identity {100 * result.pair_tpr:.1f} %, "
              f"different identities {100 * result.pair_fpr:.2f} %", markup=False)


@app.command("colour")
def colour(
    export: Annotated[Path, typer.Argument(metavar="EXPORT", help="Export folder; site_colour.json is written there.")],
    video: Annotated[Path, typer.Option("--video", help="Video of the site (unlabelled).")],
    tracks: Annotated[Path, typer.Option("--tracks", help="The tracks found in it, as MOT text (e.g. `dgnet-edge demo --source VIDEO --no-appearance --save-txt DIR`).")],
    every: Annotated[int, typer.Option("--every", min=1, help="Take a crop of each track every this many frames.")] = 5,
    max_frame: Annotated[Optional[int], typer.Option("--max-frame", min=0, help="Use frames up to this one (0-based) only.")] = None,
    backend: BackendOpt = "auto",
    precision: PrecisionOpt = "auto",
    off: Annotated[bool, typer.Option("--off", help="Remove the export's site colour instead (learned features alone).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Weigh colour beside the learned features for a site, from its unlabelled video, and store it in the export.

    Same-track crops far apart in time are the same person, people in one frame are different: the weight of colour that best separates them (at most 0.5) is kept, with the threshold moved to keep the model's false-match rate. The embedder and the camera app use it from then on.
    """
    from dataclasses import asdict

    from dgnet_edge.apps.camera.measure.site_colour import weigh_site_colour
    from dgnet_edge.paths import prepare_output_dir, require_dir, require_file
    from dgnet_edge.runtime.colour import SITE_COLOUR_FILE, write_site_colour

    require_dir(export, "export folder")
    prepare_output_dir(export, "export folder")
    if off:
        (export / SITE_COLOUR_FILE).unlink(missing_ok=True)
        out.print(f"removed {export / SITE_COLOUR_FILE}: the embedder gives learned features alone", markup=False)
        return
    site, used = weigh_site_colour(export, require_file(video, "video"), require_file(tracks, "tracks file"), every=every,
                                   max_frame=max_frame, backend=backend, precision=precision)
    path = write_site_colour(export, site, used)
    if as_json:
        print_json({**asdict(site), "measured_on": used, "file": str(path)})
        return
    aucs = site.evidence["auc_by_weight"]
    out.print(f"colour weight {site.weight:.2f}, threshold {site.threshold:.4f} written to {path}\n"
              f"  {site.evidence['same_person_pairs']} same-track pairs, {site.evidence['different_person_pairs']} "
              f"same-frame pairs from {used['crops']} crops of {used['tracks_used']} tracks; tracklet AUC "
              f"{aucs['0.00']:.1f} with features alone, {aucs[f'{site.weight:.2f}']:.1f} at the chosen weight", markup=False)
