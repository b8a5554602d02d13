"""Work run in child processes by test_fork_runtime.py (importable under every start method)."""

import os

import pyveda as veda
from pyveda.telemetry import CollectorRegistry, Counter, generate_latest


def _square(x):
    return x * x


def tasks_and_metrics(n):
    """Spawns n tasks on the process-wide runtime and counts them in a Counter; returns what the child saw."""
    registry = CollectorRegistry()
    done = Counter("child_tasks_total", "Tasks the child ran.", registry=registry)
    futures = [veda.spawn(_square, i) for i in range(n)]
    results = [f.result(timeout=30) for f in futures]
    done.inc(len(results))
    return os.getpid(), sum(results), veda.get_runtime()._core.completed, generate_latest(registry).decode()
