"""Matching at gallery scale (apps/camera/measure/gallery_scale.py, `dgnet-edge bench gallery`): every
path finds the right template, recall@1 is measured against exact search, a capped build reports no
figures, and the bench's table and JSON carry every column. pgvector runs on a real PostgreSQL
server (PyPI pgserver) started here on a local socket."""

from __future__ import annotations

import json
import os
import tempfile
import time

import numpy as np
import pytest
from dgnet_edge.apps.camera.measure.gallery_scale import (
    PATHS,
    IndexParams,
    PgvectorError,
    ScaleRow,
    exact_top1,
    measure_path,
    measure_path_rows,
    open_matcher,
    parse_sizes,
    synthetic_gallery,
    top1_agreement,
)
from test_bad_input import one_line_error, run_cli

from dgnet_edge.errors import UsageError

SIZE, DIM = 2000, 64
IN_PROCESS = [p for p in PATHS if p != "pgvector"]
FLOAT_PATHS = ("exact", "faiss-hnsw", "usearch-f16", "pgvector")  # no quantisation: a template's nearest is itself
COLUMNS = {"path", "templates", "completed", "build_s", "added", "median_ms", "p95_ms", "timed_queries", "rss_mb",
           "server_mb", "recall_at_1", "identity_agreement", "ef_search", "detail"}


@pytest.fixture(scope="module")
def problem():
    return synthetic_gallery(SIZE, DIM, queries=200, templates_per_identity=8, seed=1)


@pytest.fixture(scope="module")
def truth(problem):
    return exact_top1(problem.templates, problem.queries)


@pytest.fixture(scope="module")
def postgres():
    """URL of a PostgreSQL server with pgvector, started for this module; fails in CI when it cannot start."""
    try:
        import pgserver  # noqa: F401
        import psycopg  # noqa: F401
        from dgnet_edge.apps.camera.measure.gallery_scale import local_postgres

        folder = tempfile.TemporaryDirectory(prefix="dgnet-edge-test-pg-")  # not under pytest's 0700 root: the server runs as its own user
        server = local_postgres(folder.name)
    except Exception as e:  # a missing package or a server that does not start
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the pgvector tests: {type(e).__name__}: {e}")
        pytest.skip(f"no PostgreSQL server: {e}")
    yield server.get_uri()
    server.cleanup()
    folder.cleanup()


def build(path, problem, params=IndexParams(), database=None):
    matcher = open_matcher(path, *problem.templates.shape, params, database)
    for start in range(0, len(problem.templates), 500):
        matcher.add(start, problem.templates[start:start + 500])
    assert matcher.finish(deadline=time.perf_counter() + 120)
    return matcher


def test_synthetic_gallery_has_identity_structure(problem):
    assert problem.templates.shape == (SIZE, DIM) and problem.queries.shape == (200, DIM)
    assert np.allclose(np.linalg.norm(problem.templates, axis=1), 1, atol=1e-5)
    assert np.bincount(problem.identity).tolist() == [8] * (SIZE // 8)
    same = problem.templates[0] @ problem.templates[1]  # two templates of identity 0
    other = problem.templates[0] @ problem.templates[8]  # identity 0 against identity 1
    assert same > 0.3 > abs(other)


def test_exact_top1_is_the_argmax_of_the_full_product(problem, truth):
    assert np.array_equal(truth, (problem.queries @ problem.templates.T).argmax(axis=1))
    assert np.array_equal(exact_top1(problem.templates, problem.queries, chunk=300), truth)  # across chunk borders
    assert np.mean(problem.identity[truth] == problem.query_identity) > 0.95


@pytest.mark.parametrize("path", IN_PROCESS)
def test_each_path_returns_the_identity_of_a_clean_query(path, problem):
    check_clean_queries(build(path, problem), path, problem)


def test_pgvector_returns_the_identity_of_a_clean_query(postgres, problem):
    check_clean_queries(build("pgvector", problem, database=postgres), "pgvector", problem)


def check_clean_queries(matcher, path, problem):
    """A template itself as the query: its own identity comes back (float paths: the template itself)."""
    try:
        rows = np.arange(0, SIZE, 37)
        found = np.array([matcher.search(problem.templates[i]) for i in rows])
        assert np.array_equal(problem.identity[found], problem.identity[rows])
        if path in FLOAT_PATHS:
            assert np.array_equal(found, rows)
    finally:
        matcher.close()


@pytest.mark.parametrize("path", IN_PROCESS)
def test_rows_of_in_process_paths(path, problem, truth):
    row = measure_path(path, problem, truth, IndexParams(), build_cap_s=120)
    assert row.completed and row.added == SIZE and row.timed_queries == 200
    assert 0 < row.median_ms <= row.p95_ms
    assert row.identity_agreement >= 0.97
    if path in FLOAT_PATHS:  # quantised codes blur the template's siblings of the same identity, not other identities
        assert row.recall_at_1 >= 0.9
    assert row.identity_agreement >= row.recall_at_1
    assert row.server_mb is None
    if path == "exact":
        assert row.recall_at_1 == 1.0 and row.identity_agreement == 1.0


@pytest.mark.parametrize("path, params", [("faiss-hnsw", IndexParams(hnsw_m=2, ef_construction=2, ef_search=1)),
                                          ("usearch-f16", IndexParams(hnsw_m=2, ef_construction=2, ef_search=1)),
                                          ("faiss-ivfpq", IndexParams(nprobe=1, nlist=64, pq_bytes=8))])
def test_recall_is_measured_against_exact_search(path, params, problem, truth):
    """A starved index misses the exact top template, mostly for a sibling of the same identity."""
    row = measure_path(path, problem, truth, params, build_cap_s=120)
    assert row.completed and row.recall_at_1 < 0.95
    assert row.identity_agreement >= row.recall_at_1


@pytest.mark.parametrize("path", ["faiss-hnsw", "usearch-f16", "exact"])
def test_one_index_is_searched_with_each_candidate_list_asked_for(path, problem, truth):
    rows = measure_path_rows(path, problem, truth, IndexParams(hnsw_m=2, ef_construction=2, ef_search=1), build_cap_s=120,
                             more_ef_search=[64])
    if path == "exact":  # no candidate list: one row
        assert [r.ef_search for r in rows] == [None] and rows[0].recall_at_1 == 1.0
        return
    assert [r.ef_search for r in rows] == [1, 64] and len({r.build_s for r in rows}) == 1  # one build
    assert rows[1].recall_at_1 > rows[0].recall_at_1  # the longer list finds what the starved one missed


def test_top1_agreement_counts_templates_and_identities():
    identity = np.array([0, 0, 1, 1, 2])
    truth = np.array([0, 2, 4, 1])
    found = np.array([0, 3, 2, 0])  # the exact one; a sibling; another identity; a sibling
    assert top1_agreement(found, truth, identity) == {"recall_at_1": 0.25, "identity_agreement": 0.75}


def test_pgvector_row_counts_the_server_side(postgres, problem, truth):
    row = measure_path("pgvector", problem, truth, IndexParams(), build_cap_s=120, database=postgres)
    assert row.completed and row.identity_agreement >= 0.97
    assert row.server_mb > SIZE * DIM * 4 / 2**20  # the table's vectors alone, and the index beside them
    starved, fed = measure_path_rows("pgvector", problem, truth, IndexParams(hnsw_m=2, ef_construction=4, ef_search=1),
                                     build_cap_s=120, database=postgres, more_ef_search=[200])
    assert starved.recall_at_1 < row.recall_at_1 and (starved.ef_search, fed.ef_search) == (1, 200)
    assert fed.recall_at_1 > starved.recall_at_1  # hnsw.ef_search set on the same index


def test_pgvector_unreachable_server_is_a_one_line_error(problem):
    with pytest.raises(PgvectorError, match=r"cannot connect to postgresql://u:\*\*\*@127.0.0.1:1/db") as e:
        open_matcher("pgvector", SIZE, DIM, IndexParams(), "postgresql://u:secret@127.0.0.1:1/db?connect_timeout=2")
    assert "\n" not in str(e.value) and "secret" not in str(e.value)


def test_a_build_past_its_cap_reports_no_figures(problem, truth):
    row = measure_path("faiss-hnsw", problem, truth, IndexParams(), build_cap_s=0)
    assert not row.completed and row.added < SIZE
    assert row.median_ms is None and row.recall_at_1 is None and row.identity_agreement is None
    assert "cap" in row.detail


def test_bench_gallery_json_has_every_column(postgres, capsys):
    code, out, err = run_cli(["bench", "gallery", "--sizes", "600,1e3", "--dim", "32", "--queries", "20",
                              "--paths", ",".join(PATHS), "--database", postgres, "--no-progress", "--json"], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["dim"] == 32 and report["queries"] == 20
    assert [(r["templates"], r["path"]) for r in report["rows"]] == [(n, p) for n in (600, 1000) for p in PATHS]
    for row in report["rows"]:
        assert set(row) == COLUMNS
        assert row["completed"] and row["recall_at_1"] is not None
    assert all((r["server_mb"] is not None) == (r["path"] == "pgvector") for r in report["rows"])


def test_bench_gallery_table_has_every_column(capsys):
    code, out, err = run_cli(["bench", "gallery", "--sizes", "500", "--dim", "32", "--queries", "10",
                              "--paths", "exact,usearch-i8", "--no-progress"], capsys)
    assert code == 0, err
    header = next(line for line in out.splitlines() if line.startswith("path"))
    for column in ("templates", "build s", "median ms", "p95 ms", "RSS MB", "server MB", "recall@1", "id agree"):
        assert column in header
    assert [line.split()[:2] for line in out.splitlines() if line.startswith(("exact", "usearch"))] == \
        [["exact", "500"], ["usearch-i8", "500"]]


@pytest.mark.parametrize("args, message", [(["--sizes", "0"], "--sizes: '0' is not a whole number"),
                                           (["--sizes", "10,abc"], "--sizes: 'abc' is not a number"),
                                           (["--sizes", "1.5"], "--sizes: '1.5' is not a whole number"),
                                           (["--paths", "exact,annoy"], "--paths: unknown 'annoy'"),
                                           (["--paths", ","], "--paths: unknown empty list"),
                                           (["--ef-search", "128,0"], "--ef-search: '0' is not a whole number from 1 to 1000"),
                                           (["--ef-search", "2000"], "--ef-search: '2000' is not a whole number from 1 to 1000")])
def test_bad_options_are_usage_errors(args, message, capsys):
    code, _, err = run_cli(["bench", "gallery", "--no-progress", *args], capsys)
    assert code == 2
    assert message in one_line_error(err)


def test_parse_sizes_reads_exponents():
    assert parse_sizes("10000, 1e5,1000000") == [10_000, 100_000, 1_000_000]
    with pytest.raises(UsageError):
        parse_sizes("-5")


def test_row_fields_match_the_documented_columns():
    assert {f for f in ScaleRow.__dataclass_fields__} == COLUMNS
