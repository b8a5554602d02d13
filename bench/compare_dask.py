"""Times veda.spawn on a Dask cluster beside a bare client.submit on the same cluster, in one run.

Usage: python bench/compare_dask.py [--quick] [--markdown]

One ``distributed.LocalCluster(n_workers=2, threads_per_worker=1,
processes=True)`` on 127.0.0.1 serves every row:
- one at a time: ``client.submit(inc, i, pure=False).result()`` beside
  ``runtime.spawn(inc, i).result()`` with ``Config.executor(client)`` and
  telemetry on (each spawn counted, its latency recorded, its traceparent
  sent), first without the worker plugin, then with ``PyVedaPlugin`` (each
  task also run by the worker's PyVeda runtime, in a span, counted there);
- 1,000 in flight: submit (spawn) them all, then wait for every result.

The three ways take turns, round after round, and each figure is the median
of its rounds (us per task), so drift in the machine's load hits all three.
Ratios are PyVeda / bare Dask: 1.10x means spawn costs 10% more than submit.
Needs the `dask` extra: pip install ".[dask]".
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time


def inc(x: int) -> int:
    return x + 1


def one_at_a_time(submit, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        assert submit(i).result() == i + 1
    return (time.perf_counter() - start) / n * 1e6


def in_flight(submit, n: int) -> float:
    start = time.perf_counter()
    futures = [submit(i) for i in range(n)]
    for i, future in enumerate(futures):
        assert future.result() == i + 1
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()
    import logging

    from distributed import Client, LocalCluster

    import pyveda as veda
    from pyveda.dask import PyVedaPlugin

    logging.getLogger("distributed").setLevel(logging.ERROR)
    started = time.perf_counter()
    rounds, sequential, batch = (3, 100, 300) if args.quick else (7, 400, 1000)
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None)
    client = Client(cluster)
    runtime = veda.Runtime(veda.Config.builder().executor(client).telemetry(True).build())
    try:
        def bare(i):
            return client.submit(inc, i, pure=False)

        ways = {"bare": bare, "spawn": lambda i: runtime.spawn(inc, i)}
        for submit in ways.values():  # warm up: the function pickled and cached on the workers
            in_flight(submit, 50)
        results = {(kind, way): [] for kind in ("one", "many") for way in ("bare", "spawn", "plugin")}
        for phase in ("without", "with"):
            if phase == "with":
                client.register_plugin(PyVedaPlugin(metrics_port=0))
                in_flight(ways["spawn"], 50)
            names = ("bare", "spawn") if phase == "without" else ("bare", "plugin")
            for _ in range(rounds):
                for name in names:
                    submit = ways["spawn" if name == "plugin" else name]
                    results[("one", name)].append(one_at_a_time(submit, sequential))
                    results[("many", name)].append(in_flight(submit, batch))
        snapshot = runtime.telemetry.snapshot()
    finally:
        runtime.shutdown()
        client.close()
        cluster.close()

    med = {key: statistics.median(values) for key, values in results.items() if values}
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    print(f"# compare_dask ({machine}; LocalCluster 2 workers x 1 thread; {time.perf_counter() - started:.0f} s)")
    print(f"# client counted {snapshot.tasks_executed:,} executed, {snapshot.tasks_failed} failed, "
          f"{snapshot.tasks_pending} pending")
    rows = [
        ("spawn(...).result(), one at a time", "one", "spawn"),
        ("spawn(...).result(), one at a time, PyVedaPlugin on the workers", "one", "plugin"),
        (f"{batch:,} spawns in flight, then their results", "many", "spawn"),
        (f"{batch:,} spawns in flight, PyVedaPlugin on the workers", "many", "plugin"),
    ]
    if args.markdown:
        print("\n| us per task | pyveda | bare client.submit | ratio |")
        print("|---|---:|---:|---:|")
    for label, kind, way in rows:
        ours, peer = med[(kind, way)], med[(kind, "bare")]
        if args.markdown:
            print(f"| {label} | {ours:,.0f} | {peer:,.0f} | {ours / peer:.2f}x |")
        else:
            print(f"{label:66s} pyveda {ours:8,.0f}  bare {peer:8,.0f}  ({ours / peer:5.2f}x)")


if __name__ == "__main__":
    main()
