"""Matching at gallery scale: the exact in-memory path against approximate indexes, on synthetic features.

The gallery matches each track's feature against every template (``Gallery.identity_scores``: a
dense product over an in-memory float32 matrix). This module measures what that costs at 10^4 to
10^6 templates, and what an approximate index costs instead:

- ``exact``: the app's path, ``matrix @ query`` over float32 templates, argmax;
- ``faiss-hnsw`` (HNSW over float32), ``faiss-ivfpq`` (inverted lists of product-quantised codes);
- ``usearch-f16``, ``usearch-i8``: usearch's HNSW over half-precision or 8-bit quantised vectors;
- ``pgvector``: an HNSW index in PostgreSQL (inner-product ops), queried one query at a time over a
  connection, as a device querying a shared database would.

For each: build time (loading included), per-query latency (one query at a time, as the app
matches a track; median and p95), resident memory of this process (RSS delta; pgvector adds the
server's table and index size) and recall@1 against exact search (is the index's top template the
exact one?) with top-1 identity agreement (is its identity the exact top template's?).

The features have identity structure: identities are random unit centres, each with
``templates_per_identity`` noisy templates; queries are fresh noisy samples of known identities.
Nothing here asserts a target: the figures are printed by ``dgnet-edge bench gallery``.
"""

from __future__ import annotations

import gc
import math
import os
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, List, Optional, Sequence

import numpy as np
from dgnet_edge.apps.camera.defaults import GALLERY_HNSW_EF_CONSTRUCTION, GALLERY_HNSW_EF_SEARCH, GALLERY_HNSW_M
from dgnet_edge.apps.report.memory import current_rss_bytes

from dgnet_edge.boxes import l2_normalise
from dgnet_edge.errors import BackendUnavailableError, DgnetEdgeError, UsageError

PATHS = ("exact", "faiss-hnsw", "faiss-ivfpq", "usearch-f16", "usearch-i8", "pgvector")
FEATURE_DIM = 512  # the synth_small exports' feature: two heads x 256 (configs/synth_small.yaml bottleneck)
SIZES = (10_000, 100_000, 1_000_000)
NOISE = 1.0  # template = centre + NOISE x unit-variance noise / sqrt(dim): cosine to its centre about 0.71
ADD_BATCH = 10_000  # vectors added per call while building, so that a build can stop at its time cap
TIMING_BUDGET_S = 60.0  # per path and size: queries are timed one at a time for this long, the rest run batched


class PgvectorError(DgnetEdgeError):
    """A PostgreSQL server that cannot be reached, or lacks pgvector."""


@dataclass(frozen=True)
class IndexParams:
    """Build and search parameters of the approximate indexes (HNSW: the camera app's, apps/camera/defaults.py)."""

    hnsw_m: int = GALLERY_HNSW_M  # links per node (faiss M, usearch connectivity, pgvector m)
    ef_construction: int = GALLERY_HNSW_EF_CONSTRUCTION  # candidate list while building
    ef_search: int = GALLERY_HNSW_EF_SEARCH  # candidate list while searching (faiss efSearch, usearch expansion_search, hnsw.ef_search)
    nlist: Optional[int] = None  # IVF lists; None: sqrt(templates)
    nprobe: int = 16  # IVF lists searched per query
    pq_bytes: Optional[int] = None  # bytes per product-quantised code; None: dim / 8 (8 dimensions per byte)


@dataclass
class GalleryProblem:
    templates: np.ndarray  # (T, D) float32, unit rows, grouped by identity
    identity: np.ndarray  # (T,) identity of each template
    queries: np.ndarray  # (Q, D) float32, unit rows
    query_identity: np.ndarray  # (Q,)


@dataclass
class ScaleRow:
    path: str
    templates: int
    completed: bool
    build_s: float  # to a searchable index, loading included; when not completed, the time it had
    added: int = 0  # templates in the index when the build stopped
    median_ms: Optional[float] = None
    p95_ms: Optional[float] = None
    timed_queries: int = 0
    rss_mb: Optional[float] = None  # this process's resident memory grown by building the index
    server_mb: Optional[float] = None  # pgvector: the table and index on the server
    recall_at_1: Optional[float] = None  # share of queries whose top template is the exact one
    identity_agreement: Optional[float] = None  # share whose top template's identity is the exact one's
    ef_search: Optional[int] = None  # HNSW paths: the candidate list the queries ran with
    detail: str = ""


@dataclass
class ScaleReport:
    dim: int
    queries: int
    templates_per_identity: int
    params: IndexParams
    build_cap_s: float
    rows: List[ScaleRow] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"benchmark": "gallery", "dim": self.dim, "queries": self.queries,
                "templates_per_identity": self.templates_per_identity, "params": asdict(self.params),
                "build_cap_s": self.build_cap_s, "rows": [asdict(r) for r in self.rows]}


# -- the problem ------------------------------------------------------------------------------------
def synthetic_gallery(templates: int, dim: int, queries: int, templates_per_identity: int = 8,
                      seed: int = 0) -> GalleryProblem:
    """``templates`` unit features of ``templates // templates_per_identity`` identities, and queries of them."""
    if templates < 1 or dim < 2 or queries < 1 or templates_per_identity < 1:
        raise UsageError("templates, queries and templates per identity must be at least 1, dim at least 2")
    rng = np.random.default_rng(seed)
    identities = max(1, templates // templates_per_identity)
    centres = l2_normalise(rng.standard_normal((identities, dim), dtype=np.float32))
    identity = np.minimum(np.arange(templates) // templates_per_identity, identities - 1)
    features = np.empty((templates, dim), np.float32)
    for start in range(0, templates, 100_000):  # in chunks: the noise of 10^6 x 512 at once is 2 GB more
        part = identity[start:start + 100_000]
        features[start:start + len(part)] = _noisy(centres[part], rng)
    query_identity = rng.integers(0, identities, queries)
    return GalleryProblem(features, identity, _noisy(centres[query_identity], rng), query_identity)


def _noisy(centres: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noise = rng.standard_normal(centres.shape, dtype=np.float32) * (NOISE / math.sqrt(centres.shape[1]))
    return l2_normalise(centres + noise)


def exact_top1(templates: np.ndarray, queries: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    """Index of each query's highest-scoring template (inner product), by chunks of templates."""
    best = np.full(len(queries), -1, np.int64)
    best_score = np.full(len(queries), -np.inf, np.float32)
    for start in range(0, len(templates), chunk):
        scores = queries @ templates[start:start + chunk].T
        arg = scores.argmax(axis=1)
        top = scores[np.arange(len(queries)), arg]
        better = top > best_score
        best[better], best_score[better] = arg[better] + start, top[better]
    return best


# -- the matching paths -----------------------------------------------------------------------------
class Matcher:
    """One matching path: built by adding templates in batches, searched one query at a time."""

    name = ""

    def add(self, start: int, features: np.ndarray) -> None:
        raise NotImplementedError

    def finish(self, deadline: float) -> bool:
        """Whatever the build does after the last add (pgvector: the index); False when past ``deadline``."""
        return True

    def search(self, query: np.ndarray) -> int:
        """Index of the best template for one (D,) query."""
        raise NotImplementedError

    def search_batch(self, queries: np.ndarray) -> np.ndarray:
        return np.array([self.search(q) for q in queries], np.int64)

    def set_ef_search(self, ef: int) -> bool:
        """Search with candidate list ``ef`` from now on; False for a path that has none (not HNSW)."""
        return False

    def server_bytes(self) -> Optional[int]:
        return None

    def close(self) -> None:
        pass


class ExactMatcher(Matcher):
    """The app's path: every template in one float32 matrix, a matrix-vector product per query."""

    name = "exact"

    def __init__(self, templates: int, dim: int, params: IndexParams) -> None:
        self.matrix = np.empty((templates, dim), np.float32)
        self.matrix[:] = 0.0  # touch the pages, as a loaded gallery holds them
        self.size = 0

    def add(self, start: int, features: np.ndarray) -> None:
        self.matrix[start:start + len(features)] = features
        self.size = start + len(features)

    def search(self, query: np.ndarray) -> int:
        return int(np.argmax(self.matrix[:self.size] @ query))

    def search_batch(self, queries: np.ndarray) -> np.ndarray:
        return exact_top1(self.matrix[:self.size], queries)


def _faiss():
    # Idle OpenMP threads sleep instead of spinning: on a device whose cores also run the cameras, a
    # spinning pool slows both (here, a 2-core machine under load: IVF-PQ training 2x slower).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import faiss
    except ImportError:
        raise BackendUnavailableError("the faiss paths need faiss-cpu: pip install faiss-cpu (in the dev extra)") from None
    return faiss


class FaissHnswMatcher(Matcher):
    name = "faiss-hnsw"

    def __init__(self, templates: int, dim: int, params: IndexParams) -> None:
        faiss = _faiss()
        self.index = faiss.IndexHNSWFlat(dim, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = params.ef_construction
        self.index.hnsw.efSearch = params.ef_search

    def add(self, start: int, features: np.ndarray) -> None:
        self.index.add(features)

    def search(self, query: np.ndarray) -> int:
        return int(self.index.search(query[None], 1)[1][0, 0])

    def search_batch(self, queries: np.ndarray) -> np.ndarray:
        return self.index.search(queries, 1)[1][:, 0].astype(np.int64)

    def set_ef_search(self, ef: int) -> bool:
        self.index.hnsw.efSearch = ef
        return True


class FaissIvfPqMatcher(Matcher):
    """Inverted lists over k-means cells of product-quantised codes, trained on the first batch."""

    name = "faiss-ivfpq"

    def __init__(self, templates: int, dim: int, params: IndexParams) -> None:
        faiss = _faiss()
        pq_bytes = params.pq_bytes or max(1, dim // 8)
        if dim % pq_bytes:
            raise UsageError(f"faiss-ivfpq: the dimension ({dim}) must be a multiple of the code size ({pq_bytes} bytes)")
        self.nlist = params.nlist or max(1, int(math.sqrt(templates)))
        self.train_size = min(templates, max(40 * self.nlist, 10_000))  # faiss warns under 39 points per list
        self.quantiser = faiss.IndexFlatIP(dim)
        self.index = faiss.IndexIVFPQ(self.quantiser, dim, self.nlist, pq_bytes, 8, faiss.METRIC_INNER_PRODUCT)
        self.index.nprobe = params.nprobe
        self.index.cp.min_points_per_centroid = self.index.pq.cp.min_points_per_centroid = 1  # small galleries train on what they have
        self.pending: List[np.ndarray] = []

    def add(self, start: int, features: np.ndarray) -> None:
        if not self.index.is_trained:
            self.pending.append(features)
            if sum(len(p) for p in self.pending) < self.train_size:
                return
            features = np.concatenate(self.pending)
            self.pending = []
            self.index.train(features[:self.train_size])
        self.index.add(features)

    def finish(self, deadline: float) -> bool:
        if self.pending:  # fewer templates than a training set
            features = np.concatenate(self.pending)
            self.pending = []
            self.index.train(features)
            self.index.add(features)
        return True

    def search(self, query: np.ndarray) -> int:
        return int(self.index.search(query[None], 1)[1][0, 0])

    def search_batch(self, queries: np.ndarray) -> np.ndarray:
        return self.index.search(queries, 1)[1][:, 0].astype(np.int64)


class UsearchMatcher(Matcher):
    def __init__(self, templates: int, dim: int, params: IndexParams, dtype: str) -> None:
        try:
            from usearch.index import Index
        except ImportError:
            raise BackendUnavailableError("the usearch paths need usearch: pip install usearch (in the dev extra)") from None
        self.name = f"usearch-{dtype}"
        self.index = Index(ndim=dim, metric="ip", dtype=dtype, connectivity=params.hnsw_m,
                           expansion_add=params.ef_construction, expansion_search=params.ef_search)

    def add(self, start: int, features: np.ndarray) -> None:
        self.index.add(np.arange(start, start + len(features), dtype=np.uint64), features)

    def search(self, query: np.ndarray) -> int:
        return int(self.index.search(query, 1, threads=1).keys[0])

    def search_batch(self, queries: np.ndarray) -> np.ndarray:
        return self.index.search(queries, 1).keys[:, 0].astype(np.int64)

    def set_ef_search(self, ef: int) -> bool:
        self.index.expansion_search = ef
        return True


class PgvectorMatcher(Matcher):
    """Templates in a PostgreSQL table with an HNSW index (pgvector, inner-product ops).

    The table is this process's own (dropped on close). Each query is one round trip:
    ``ORDER BY embedding <#> query LIMIT 1`` (``<#>`` is the negated inner product).
    """

    name = "pgvector"

    def __init__(self, templates: int, dim: int, params: IndexParams, url: str) -> None:
        psycopg = _psycopg()
        self.params, self.dim = params, dim
        self.table = f"dgnet_edge_gallery_scale_{os.getpid()}"
        try:
            self.db = psycopg.connect(url, autocommit=True)
        except psycopg.Error as e:
            raise PgvectorError(f"cannot connect to {_redact(url)}: {_first_line(e)}") from None
        try:
            self.db.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.Error as e:
            self.db.close()
            raise PgvectorError(f"{_redact(url)}: pgvector is not available there: {_first_line(e)}") from None
        self.db.execute(f"DROP TABLE IF EXISTS {self.table}")
        self.db.execute(f"CREATE TABLE {self.table} (id integer, embedding vector({dim}))")
        # A 512-d vector (2 KB) would be moved out of line to TOAST: the heap would look tiny to the planner,
        # which then builds the index without parallel workers, and every read would detoast.
        self.db.execute(f"ALTER TABLE {self.table} ALTER COLUMN embedding SET STORAGE PLAIN")

    def add(self, start: int, features: np.ndarray) -> None:
        with self.db.cursor().copy(f"COPY {self.table} (id, embedding) FROM STDIN WITH (FORMAT binary)") as copy:
            copy.write(binary_copy_rows(start, features))

    def finish(self, deadline: float) -> bool:
        psycopg = _psycopg()
        left_ms = max(1, int((deadline - time.perf_counter()) * 1000))
        p = self.params
        self.db.execute("SET maintenance_work_mem = '8GB'")  # the graph is built in memory when it fits
        self.db.execute(f"SET max_parallel_maintenance_workers = {max(0, (os.cpu_count() or 1) - 1)}")  # the leader builds too
        self.db.execute(f"SET statement_timeout = {left_ms}")
        try:
            self.db.execute(f"CREATE INDEX {self.table}_hnsw ON {self.table} USING hnsw (embedding vector_ip_ops) "
                            f"WITH (m = {p.hnsw_m}, ef_construction = {p.ef_construction})")
        except psycopg.errors.QueryCanceled:
            return False
        finally:
            self.db.execute("SET statement_timeout = 0")
        self.db.execute(f"SET hnsw.ef_search = {p.ef_search}")
        self.db.execute(f"ANALYZE {self.table}")
        return True

    def search(self, query: np.ndarray) -> int:
        text = "[" + ",".join(f"{x:.7g}" for x in query.tolist()) + "]"
        row = self.db.execute(f"SELECT id FROM {self.table} ORDER BY embedding <#> %s::vector LIMIT 1", (text,),
                              prepare=True).fetchone()
        return int(row[0])

    def set_ef_search(self, ef: int) -> bool:
        self.db.execute(f"SET hnsw.ef_search = {int(ef)}")
        return True

    def server_bytes(self) -> Optional[int]:
        return int(self.db.execute("SELECT pg_total_relation_size(%s)", (self.table,)).fetchone()[0])

    def close(self) -> None:
        if not self.db.closed:
            self.db.execute(f"DROP TABLE IF EXISTS {self.table}")
            self.db.close()


def binary_copy_rows(start: int, features: np.ndarray) -> bytes:
    """PostgreSQL binary COPY data of rows (id integer, embedding vector) for ids from ``start``."""
    dim = features.shape[1]
    row = np.dtype([("fields", ">i2"), ("id_len", ">i4"), ("id", ">i4"), ("vec_len", ">i4"),
                    ("vec_dim", ">i2"), ("vec_unused", ">i2"), ("vec", ">f4", (dim,))])
    rows = np.zeros(len(features), row)
    rows["fields"], rows["id_len"], rows["vec_len"], rows["vec_dim"] = 2, 4, 4 + 4 * dim, dim
    rows["id"] = np.arange(start, start + len(features))
    rows["vec"] = features
    header = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") * 2
    return header + rows.tobytes() + (-1).to_bytes(2, "big", signed=True)


def _psycopg():
    try:
        import psycopg
    except ImportError:
        raise BackendUnavailableError("the pgvector path needs psycopg: pip install 'dgnet-edge[site]'") from None
    return psycopg


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def _redact(url: str) -> str:
    """The URL without its password."""
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def local_postgres(data_dir: str):
    """A PostgreSQL server with pgvector (PyPI ``pgserver``) in ``data_dir``, for this bench alone; ``.cleanup()`` stops it."""
    import logging

    logging.getLogger("pgserver").setLevel(logging.WARNING)  # it logs every command it runs at INFO
    try:
        import pgserver
    except ImportError:
        raise BackendUnavailableError("the pgvector path needs a server: give --database postgresql://... "
                                      "or pip install pgserver (in 'dgnet-edge[dev]')") from None
    return pgserver.get_server(data_dir, cleanup_mode="stop")


def open_matcher(path: str, templates: int, dim: int, params: IndexParams, database: Optional[str]) -> Matcher:
    if path == "exact":
        return ExactMatcher(templates, dim, params)
    if path == "faiss-hnsw":
        return FaissHnswMatcher(templates, dim, params)
    if path == "faiss-ivfpq":
        return FaissIvfPqMatcher(templates, dim, params)
    if path in ("usearch-f16", "usearch-i8"):
        return UsearchMatcher(templates, dim, params, path.split("-")[1])
    if path == "pgvector":
        if database is None:
            raise UsageError("the pgvector path needs a database URL")
        return PgvectorMatcher(templates, dim, params, database)
    raise UsageError(f"unknown matching path {path!r}: choose from {', '.join(PATHS)}")


# -- measuring --------------------------------------------------------------------------------------
def measure_path(path: str, problem: GalleryProblem, truth: np.ndarray, params: IndexParams, build_cap_s: float,
                 database: Optional[str] = None, timing_budget_s: float = TIMING_BUDGET_S) -> ScaleRow:
    """Build one path on the problem's templates (stopping at ``build_cap_s``), then time and score its queries."""
    return measure_path_rows(path, problem, truth, params, build_cap_s, database, timing_budget_s)[0]


def measure_path_rows(path: str, problem: GalleryProblem, truth: np.ndarray, params: IndexParams, build_cap_s: float,
                      database: Optional[str] = None, timing_budget_s: float = TIMING_BUDGET_S,
                      more_ef_search: Sequence[int] = ()) -> List[ScaleRow]:
    """:func:`measure_path`, then for an HNSW path one more row for each of ``more_ef_search`` on the
    same index (a build at 10^6 templates takes the better part of an hour here)."""
    templates, dim = problem.templates.shape
    _release_memory()
    rss_before = current_rss_bytes()
    start = time.perf_counter()
    deadline = start + build_cap_s
    matcher = open_matcher(path, templates, dim, params, database)
    try:
        added, completed = 0, True
        for first in range(0, templates, ADD_BATCH):
            if time.perf_counter() > deadline:
                completed = False
                break
            matcher.add(first, problem.templates[first:first + ADD_BATCH])
            added = min(templates, first + ADD_BATCH)
        loaded_s = time.perf_counter() - start
        completed = completed and matcher.finish(deadline)
        build_s = time.perf_counter() - start
        rss_after = current_rss_bytes()
        rss_mb = (rss_after - rss_before) / 2**20 if rss_before is not None and rss_after is not None else None
        if not completed:
            return [ScaleRow(path, templates, False, build_s, added, rss_mb=rss_mb,
                             detail=f"build stopped at the {build_cap_s:.0f} s cap with {added} of {templates} templates added"
                                    + (f" (in {loaded_s:.0f} s; the index unfinished)" if added == templates else ""))]
        server = matcher.server_bytes()
        hnsw = matcher.set_ef_search(params.ef_search)
        rows = []
        for ef in [params.ef_search, *(more_ef_search if hnsw else ())]:
            matcher.set_ef_search(ef)
            found, seconds = _run_queries(matcher, problem.queries, timing_budget_s)
            rows.append(ScaleRow(path, templates, True, build_s, added,
                                 median_ms=statistics.median(seconds) * 1000,
                                 p95_ms=float(np.percentile(seconds, 95)) * 1000,
                                 timed_queries=len(seconds), rss_mb=rss_mb,
                                 server_mb=server / 2**20 if server is not None else None,
                                 ef_search=ef if hnsw else None,
                                 **top1_agreement(found, truth, problem.identity)))
    finally:
        matcher.close()
    return rows


def top1_agreement(found: np.ndarray, truth: np.ndarray, identity: np.ndarray) -> dict:
    """recall@1 (share of queries whose top template is the exact one) and top-1 identity agreement."""
    return {"recall_at_1": float(np.mean(found == truth)), "identity_agreement": float(np.mean(identity[found] == identity[truth]))}


def _run_queries(matcher: Matcher, queries: np.ndarray, budget_s: float):
    """Each query's top template; queries run one at a time (timed) until ``budget_s`` is spent, the rest batched."""
    matcher.search(queries[0])  # warm-up: caches, a prepared statement
    found = np.empty(len(queries), np.int64)
    seconds: List[float] = []
    stop = time.perf_counter() + budget_s
    for i, query in enumerate(queries):
        if time.perf_counter() > stop:
            found[i:] = matcher.search_batch(queries[i:])
            break
        begin = time.perf_counter()
        found[i] = matcher.search(query)
        seconds.append(time.perf_counter() - begin)
    return found, seconds


def _release_memory() -> None:
    """Hand freed memory back to the OS, so that the next RSS delta counts the next index alone."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def measure_gallery_scale(sizes: Sequence[int] = SIZES, paths: Sequence[str] = PATHS, dim: int = FEATURE_DIM,
                          queries: int = 1000, templates_per_identity: int = 8, params: IndexParams = IndexParams(),
                          build_cap_s: float = 1200.0, database: Optional[str] = None, seed: int = 0,
                          more_ef_search: Sequence[int] = (),
                          on_row: Optional[Callable[[ScaleRow], None]] = None,
                          on_stage: Optional[Callable[[str], None]] = None) -> ScaleReport:
    """Every path at every size. ``database``: a PostgreSQL URL for pgvector; None starts a local
    server (``pgserver``) in a temporary folder for the run. ``more_ef_search``: HNSW paths are also
    searched with these candidate lists, on the same index."""
    for path in paths:
        if path not in PATHS:
            raise UsageError(f"unknown matching path {path!r}: choose from {', '.join(PATHS)}")
    if not sizes or min(sizes) < 1:
        raise UsageError("gallery sizes must be at least 1 template")
    report = ScaleReport(dim, queries, templates_per_identity, params, build_cap_s)
    with _database(database if "pgvector" in paths else "") as url:
        for size in sizes:
            if on_stage:
                on_stage(f"{size} templates: generating features")
            problem = synthetic_gallery(size, dim, queries, templates_per_identity, seed)
            truth = exact_top1(problem.templates, problem.queries)
            for path in paths:
                if on_stage:
                    on_stage(f"{size} templates: {path}")
                for row in measure_path_rows(path, problem, truth, params, build_cap_s, url, more_ef_search=more_ef_search):
                    report.rows.append(row)
                    if on_row:
                        on_row(row)
            del problem
    return report


class _database:
    """The URL given, or a local pgserver's for the duration (None given); '' when no path needs one."""

    def __init__(self, url: Optional[str]) -> None:
        self.url, self.server, self.folder = url, None, None

    def __enter__(self) -> Optional[str]:
        if self.url is None:
            self.folder = tempfile.TemporaryDirectory(prefix="dgnet-edge-pg-")
            self.server = local_postgres(self.folder.name)
            return self.server.get_uri()
        return self.url or None

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.cleanup()
        if self.folder is not None:
            self.folder.cleanup()


def format_report(report: ScaleReport) -> str:
    p = report.params
    lines = [f"Gallery matching: {report.dim}-d unit features, {report.templates_per_identity} templates per identity, "
             f"{report.queries} queries one at a time; HNSW m={p.hnsw_m} ef_construction={p.ef_construction} "
             f"ef_search={p.ef_search}; IVF-PQ nprobe={p.nprobe} {p.pq_bytes or max(1, report.dim // 8)} B codes; build cap {report.build_cap_s:.0f} s.",
             f"{'path':<12} {'templates':>10} {'build s':>9} {'median ms':>10} {'p95 ms':>8} {'RSS MB':>8} "
             f"{'server MB':>10} {'recall@1':>9} {'id agree':>9}  note"]
    lines += [format_row(r, report.queries) for r in report.rows]
    return "\n".join(lines)


def format_row(r: ScaleRow, queries: Optional[int] = None) -> str:
    """One row of the table; the note says what was not measured."""
    def num(value: Optional[float], width: int, digits: int) -> str:
        return f"{value:{width}.{digits}f}" if value is not None else f"{'-':>{width}}"

    note = r.detail if not r.completed else (f"timed {r.timed_queries} of {queries}" if queries and r.timed_queries < queries else "")
    if r.ef_search is not None:
        note = f"ef_search {r.ef_search}" + (f"; {note}" if note else "")
    return (f"{r.path:<12} {r.templates:>10} {r.build_s:9.1f} {num(r.median_ms, 10, 3)} {num(r.p95_ms, 8, 3)} "
            f"{num(r.rss_mb, 8, 0)} {num(r.server_mb, 10, 0)} {num(r.recall_at_1, 9, 3)} {num(r.identity_agreement, 9, 3)}  {note}").rstrip()


def parse_sizes(text: str) -> List[int]:
    """'10000,1e5,1000000' -> [10000, 100000, 1000000]; UsageError on anything not a whole number >= 1."""
    sizes = []
    for part in text.split(","):
        try:
            value = float(part.strip())
        except ValueError:
            raise UsageError(f"--sizes: {part.strip()!r} is not a number (give e.g. 10000,100000,1000000)") from None
        if not math.isfinite(value) or value < 1 or value != int(value):
            raise UsageError(f"--sizes: {part.strip()!r} is not a whole number of templates >= 1")
        sizes.append(int(value))
    return sizes


def parse_ef_search(text: str) -> List[int]:
    """'128,400' -> [128, 400]; UsageError on anything not a whole number in pgvector's range 1..1000."""
    values = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or not 1 <= int(part) <= 1000:
            raise UsageError(f"--ef-search: {part!r} is not a whole number from 1 to 1000 (give e.g. 128 or 128,400,1000)")
        values.append(int(part))
    return values


def parse_paths(text: str) -> List[str]:
    paths = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in paths if p not in PATHS]
    if unknown or not paths:
        raise UsageError(f"--paths: unknown {', '.join(map(repr, unknown)) or 'empty list'}: choose from {', '.join(PATHS)}")
    return paths

