"""Forked workers (gunicorn --preload, multiprocessing's fork) never repeat each other's span or trace ids."""

import multiprocessing
import sys

import pytest

from pyveda.telemetry import TracingSystem

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="fork() is POSIX")

SPANS = 10_000


def _ids(_):
    tracing = TracingSystem()
    ids = []
    for _ in range(SPANS):
        with tracing.span("work") as span:
            ids.append((span.trace_id, span.span_id))
    return ids


def test_eight_forked_children_make_distinct_ids():
    _ids(0)  # the parent's generators exist before the fork, as in a pre-loading server
    context = multiprocessing.get_context("fork")
    with context.Pool(8) as pool:
        results = pool.map(_ids, range(8), chunksize=1)
    trace_ids = [t for ids in results for t, _ in ids] + [t for t, _ in _ids(0)]
    span_ids = [s for ids in results for _, s in ids]
    assert len(trace_ids) == 9 * SPANS and len(set(trace_ids)) == len(trace_ids)
    assert len(set(span_ids)) == len(span_ids) == 8 * SPANS
