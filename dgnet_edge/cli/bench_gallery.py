"""`dgnet-edge bench gallery`: matching latency, memory and recall@1 at 10^4 to 10^6 templates.

    dgnet-edge bench gallery                                   # every path, 10^4, 10^5, 10^6
    dgnet-edge bench gallery --sizes 10000,100000 --paths exact,usearch-i8,pgvector
    dgnet-edge bench gallery --database postgresql://user@host/db   # pgvector on a server of yours

A thin layer over :func:`dgnet_edge.apps.camera.measure.gallery_scale.measure_gallery_scale`, on
synthetic features with identity structure; the table to stdout (``--json`` for machines). Without
``--database`` the pgvector path runs on a local server started for the run (PyPI ``pgserver``).
"""

from __future__ import annotations

from typing import Optional

import typer
from typing_extensions import Annotated

from dgnet_edge.apps.camera.defaults import GALLERY_HNSW_EF_CONSTRUCTION, GALLERY_HNSW_EF_SEARCH, GALLERY_HNSW_M
from dgnet_edge.cli.options import JsonOpt, ProgressOpt, float_option
from dgnet_edge.cli.output import err, out, print_json


def gallery(
    sizes: Annotated[str, typer.Option("--sizes", help="Gallery sizes in templates, comma-separated.")] = "10000,100000,1000000",
    paths: Annotated[str, typer.Option("--paths", help="Matching paths, comma-separated: exact, faiss-hnsw, faiss-ivfpq, "
                                       "usearch-f16, usearch-i8, pgvector.")] = "exact,faiss-hnsw,faiss-ivfpq,usearch-f16,usearch-i8,pgvector",
    dim: Annotated[int, typer.Option("--dim", min=2, help="Feature size (default: the synth_small exports' 512).")] = 512,
    queries: Annotated[int, typer.Option("--queries", min=1, help="Queries per size, each a fresh sample of a known identity.")] = 1000,
    per_identity: Annotated[int, typer.Option("--templates-per-identity", min=1, help="Templates of each synthetic identity.")] = 8,
    hnsw_m: Annotated[int, typer.Option("--hnsw-m", min=2, help="HNSW links per node (faiss, usearch, pgvector).")] = GALLERY_HNSW_M,
    ef_construction: Annotated[int, typer.Option("--ef-construction", min=1, help="HNSW candidate list while building.")] = GALLERY_HNSW_EF_CONSTRUCTION,
    ef_search: Annotated[str, typer.Option("--ef-search", help="HNSW candidate list while searching; several, comma-separated "
                                           "(e.g. 128,400,1000), each measured on the same index.")] = str(GALLERY_HNSW_EF_SEARCH),
    nprobe: Annotated[int, typer.Option("--nprobe", min=1, help="IVF-PQ lists searched per query.")] = 16,
    build_cap: Annotated[float, float_option("--build-cap", min=1.0, help="Seconds a build may take before it is reported as not completed.")] = 1200.0,
    database: Annotated[Optional[str], typer.Option("--database", help="PostgreSQL URL (with pgvector) for the pgvector path; default: a local pgserver.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic features.")] = 0,
    progress: ProgressOpt = True,
    json_output: JsonOpt = False,
) -> None:
    """Build time, per-query latency, resident memory and recall@1 of each matching path at each gallery size."""
    from dgnet_edge.apps.camera.measure.gallery_scale import IndexParams, format_report, format_row, measure_gallery_scale, parse_ef_search, parse_paths, parse_sizes

    size_list, path_list, ef_list = parse_sizes(sizes), parse_paths(paths), parse_ef_search(ef_search)
    params = IndexParams(hnsw_m=hnsw_m, ef_construction=ef_construction, ef_search=ef_list[0], nprobe=nprobe)
    report = measure_gallery_scale(size_list, path_list, dim=dim, queries=queries, templates_per_identity=per_identity,
                                   params=params, build_cap_s=build_cap, database=database, seed=seed, more_ef_search=ef_list[1:],
                                   on_stage=(lambda stage: err.print(stage)) if progress else None,
                                   on_row=(lambda row: err.print(format_row(row, queries), markup=False, highlight=False)) if progress else None)
    if json_output:
        print_json(report.as_dict())
    else:
        out.print(format_report(report), markup=False, highlight=False, soft_wrap=True)
