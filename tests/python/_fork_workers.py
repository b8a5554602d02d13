"""Work run in child processes by test_fork_runtime.py (importable under every start method)."""

import os
import time

import pyveda as veda
from pyveda.telemetry import CollectorRegistry, Counter, generate_latest


def wait_until_quiet(runtime, timeout=10.0):
    """Waits until the runtime has nothing queued or running (a task is counted just after its future is set)."""
    deadline = time.monotonic() + timeout
    while (runtime._core.pending or runtime._core.running) and time.monotonic() < deadline:
        time.sleep(0.001)


def _square(x):
    return x * x


def tasks_and_metrics(n):
    """Spawns n tasks on the process-wide runtime and counts them in a Counter; returns what the child saw."""
    registry = CollectorRegistry()
    done = Counter("child_tasks_total", "Tasks the child ran.", registry=registry)
    futures = [veda.spawn(_square, i) for i in range(n)]
    results = [f.result(timeout=30) for f in futures]
    done.inc(len(results))
    runtime = veda.get_runtime()
    wait_until_quiet(runtime)
    return os.getpid(), sum(results), runtime._core.completed, generate_latest(registry).decode()
