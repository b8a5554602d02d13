"""Times PyVeda's runtime beside concurrent.futures.ThreadPoolExecutor, in one run.

Usage: python bench/compare_runtime.py [--quick] [--markdown] [--native PATH]

Cases (each the best of several rounds):
  * trivial task, batch: spawn N no-op tasks, then wait for all (per task);
  * trivial task, round trip: spawn one, wait for it, repeat (per task);
  * telemetry on vs off: the batch case with and without telemetry;
  * GIL-releasing work: 2,000 x time.sleep(0.001) on the same number of threads;
  * native C++ tasks: google-benchmark's BM_Scheduler_SubmitBatch and
    BM_Runtime_Submit, and BM_Runtime_SpawnOneWorker (telemetry on - off on
    one worker: what telemetry adds to a task), when the pyveda_bench binary
    is found (build it with -DVEDA_BUILD_BENCH=ON);
  * background collection at 1 Hz: process CPU time over 5 s of idle;
  * telemetry memory: process RSS after 100k and 1M tasks.
Ratios are ThreadPoolExecutor time / PyVeda time (higher is better for us).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyveda as veda

THREADS = 2


def noop() -> int:
    return 1


def batch_veda(runtime: veda.Runtime, n: int) -> float:
    start = time.perf_counter()
    futures = [runtime.spawn(noop) for _ in range(n)]
    for f in futures:
        f.result()
    return (time.perf_counter() - start) / n


def batch_pool(pool: ThreadPoolExecutor, n: int) -> float:
    start = time.perf_counter()
    futures = [pool.submit(noop) for _ in range(n)]
    for f in futures:
        f.result()
    return (time.perf_counter() - start) / n


def round_trip(submit, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        submit(noop).result()
    return (time.perf_counter() - start) / n


def best_interleaved(fns: list, rounds: int) -> list:
    """Runs the cases in turn, round after round (so drift in the machine's
    speed hits all of them alike), and keeps each one's best time."""
    results = [[] for _ in fns]
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            gc.collect()
            results[i].append(fn())
    return [min(r) for r in results]


def sleep_workload(submit, count: int) -> float:
    start = time.perf_counter()
    futures = [submit(time.sleep, 0.001) for _ in range(count)]
    for f in futures:
        f.result()
    return time.perf_counter() - start


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def native_bench(path: str | None) -> dict:
    candidates = [path] if path else [
        "build/ctest/bench/cpp/pyveda_bench",
        "build/bench/bench/cpp/pyveda_bench",
    ]
    binary = next((p for p in candidates if p and Path(p).is_file()), None)
    if binary is None:
        return {}
    out = subprocess.run(
        [binary, "--benchmark_filter=BM_Scheduler_SubmitBatch(/|$)|BM_Runtime_Submit|BM_Runtime_SpawnOneWorker",
         "--benchmark_min_time=0.2", "--benchmark_repetitions=3", "--benchmark_format=json"],
        capture_output=True, text=True, timeout=600,
    )
    if out.returncode != 0:
        return {}
    figures: dict = {}
    for b in json.loads(out.stdout)["benchmarks"]:
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        if b.get("run_type") == "aggregate":
            name = b["run_name"]
            value = b.get("time_per_task", b.get("real_time"))
            figures[name] = value * (1e9 if "time_per_task" in b else 1.0)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    parser.add_argument("--native", help="path to the pyveda_bench binary")
    args = parser.parse_args()
    n, rounds, trips = (5_000, 2, 1_000) if args.quick else (50_000, 5, 10_000)

    rows = []
    off = veda.Runtime(veda.Config.builder().threads(THREADS).telemetry(False).build())
    on = veda.Runtime(veda.Config.builder().threads(THREADS).telemetry(True).build())
    with ThreadPoolExecutor(THREADS) as pool:
        t_pool, t_on, t_off = best_interleaved(
            [lambda: batch_pool(pool, n), lambda: batch_veda(on, n), lambda: batch_veda(off, n)], rounds
        )
        rows.append(("trivial task, batch (telemetry on)", t_on, t_pool))
        rows.append(("trivial task, batch (telemetry off)", t_off, t_pool))
        rt_pool, rt_on = best_interleaved(
            [lambda: round_trip(pool.submit, trips), lambda: round_trip(on.spawn, trips)], rounds
        )
        rows.append(("trivial task, round trip (telemetry on)", rt_on, rt_pool))
        sleeps = 400 if args.quick else 2000
        s_pool = min(sleep_workload(pool.submit, sleeps) for _ in range(2))
        s_veda = min(sleep_workload(on.spawn, sleeps) for _ in range(2))
    off.shutdown()

    # Background collection at 1 Hz on an idle runtime: CPU seconds per wall second.
    idle_seconds = 2.0 if args.quick else 5.0
    on.telemetry.start()
    time.sleep(0.2)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    time.sleep(idle_seconds)
    collect_cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    on.telemetry.stop()
    idle_cpu0 = time.process_time()
    time.sleep(idle_seconds)
    idle_cpu = (time.process_time() - idle_cpu0) / idle_seconds

    # Telemetry memory: RSS after 100k and 1M tasks (histograms and counters are fixed-size).
    totals = (20_000, 100_000) if args.quick else (100_000, 1_000_000)
    rss = {}
    done = 0
    for target in totals:
        while done < target:
            step = min(50_000, target - done)
            for f in [on.spawn(noop) for _ in range(step)]:
                f.result()
            done += step
        gc.collect()
        rss[target] = rss_mb()
    executed = on.telemetry.snapshot().tasks_executed
    on.shutdown()

    native = native_bench(args.native)

    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    print(f"# compare_runtime: {THREADS} worker threads each, best of {rounds} ({machine})")
    if args.markdown:
        print("| case | pyveda | ThreadPoolExecutor | ratio |")
        print("|---|---:|---:|---:|")
    for name, ours, peer in rows:
        if args.markdown:
            print(f"| {name} | {ours * 1e6:.2f} µs | {peer * 1e6:.2f} µs | {peer / ours:.1f}x |")
        else:
            print(f"{name:42s} pyveda {ours * 1e6:7.2f} us  ThreadPoolExecutor {peer * 1e6:7.2f} us  ({peer / ours:.1f}x)")
    overhead_ns = (t_on - t_off) * 1e9
    serial = sleeps * 0.001
    lines = [
        f"telemetry overhead per task: {overhead_ns:.0f} ns (batch, on - off)",
        f"{sleeps} x sleep(1 ms): pyveda {s_veda:.3f} s (speed-up {serial / s_veda:.2f}x),"
        f" ThreadPoolExecutor {s_pool:.3f} s (speed-up {serial / s_pool:.2f}x)",
        f"background collection at 1 Hz: {collect_cpu * 100:.3f}% CPU (idle runtime without it: {idle_cpu * 100:.3f}%)",
        f"RSS after {totals[0]:,} tasks: {rss[totals[0]]:.1f} MiB; after {totals[1]:,}: {rss[totals[1]]:.1f} MiB"
        f" (growth {rss[totals[1]] - rss[totals[0]]:+.1f} MiB; tasks counted: {executed:,})",
    ]
    if native:
        for name, ns in sorted(native.items()):
            lines.append(f"native {name}: {ns:.0f} ns per task (median of 3)")
        base = native.get("BM_Runtime_SpawnOneWorker/telemetry:0/real_time")
        with_telemetry = native.get("BM_Runtime_SpawnOneWorker/telemetry:1/real_time")
        if base and with_telemetry:
            lines.append(f"native telemetry cost per task (one worker, no cross-core effects): {with_telemetry - base:.0f} ns")
    else:
        lines.append("native: pyveda_bench not found (configure with -DVEDA_BUILD_BENCH=ON)")
    for line in lines:
        print(("- " if args.markdown else "") + line)


if __name__ == "__main__":
    main()
