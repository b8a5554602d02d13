"""Times PyVeda's multi-process mode beside prometheus_client's, in one run.

Usage: python bench/compare_multiprocess.py [--quick] [--markdown]

Each library runs in processes of its own (both choose their mode when
imported), each in a fresh directory:
- recording: ns per operation from Python in multi-process mode (best of
  several timeit repeats), with PyVeda in one process beside it;
- rendering the aggregate of 16 live processes x 1,000 labelled counter
  series (best of 5, ms);
- scraping after 1,000 worker lifetimes (forked, each counting 10 series,
  then folded by mark_process_dead() as gunicorn's child_exit hook does),
  beside the scrape after the first one;
- the file bytes a process takes per series (blocks in use on disk).
Ratios are prometheus_client / PyVeda: 20x means PyVeda is twenty times faster.
Needs the `bench` extra: pip install ".[bench]".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

WORKER = textwrap.dedent(r'''
    import json, os, sys, time, timeit
    lib, case, directory, quick = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
    if lib == "pyveda":
        from pyveda.telemetry import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
        from pyveda.telemetry.multiprocess import mark_process_dead
        def scrape():
            return generate_latest(REGISTRY)
        def own_files():
            from pyveda.telemetry import multiprocess
            return [multiprocess.process_file()] if multiprocess.enabled() else []
    else:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
        def scrape():
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            return generate_latest(registry)
        def own_files():
            return [os.path.join(directory, n) for n in os.listdir(directory) if n.endswith(f"_{os.getpid()}.db")]

    def best_ns(stmt, env, number, repeat):
        return min(timeit.repeat(stmt, globals=env, number=number, repeat=repeat)) / number * 1e9

    def best_ms(fn, repeat):
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times) * 1e3

    out = {}
    if case == "ops":
        number, repeat = (20_000, 3) if quick else (300_000, 7)
        env = {"c": Counter("c_total", "c"), "l": Counter("l_total", "l", ["method"]),
               "h": Histogram("h", "h"), "g": Gauge("g", "g", multiprocess_mode="livesum")}
        env["child"] = env["l"].labels("GET")
        out["Counter.inc()"] = best_ns("c.inc()", env, number, repeat)
        out["labels('GET').inc()"] = best_ns("l.labels('GET').inc()", env, number, repeat)
        out["Histogram.observe(v)"] = best_ns("h.observe(0.25)", env, number, repeat)
        out["Gauge.set(v) (livesum)"] = best_ns("g.set(3.5)", env, number, repeat)
    elif case == "render16":
        processes, series = (4, 250) if quick else (16, 1_000)
        c = Counter("requests_total", "Requests", ["path"])
        go_r, go_w = os.pipe()
        ready_r, ready_w = os.pipe()
        children = []
        for p in range(processes):
            pid = os.fork()
            if pid == 0:
                for i in range(series):
                    c.labels(f"/item/{i}").inc(i + p)
                os.write(ready_w, b"x")
                os.read(go_r, 1)
                os._exit(0)
            children.append(pid)
        for _ in children:
            os.read(ready_r, 1)
        text = scrape()
        expected = sum(i + p for p in range(processes) for i in range(series))
        got = sum(float(line.rsplit(" ", 1)[1]) for line in text.decode().splitlines()
                  if line.startswith("requests_total{"))
        assert got == expected, (got, expected)
        out["processes"], out["series"] = processes, series
        out["ms"] = best_ms(scrape, 5)
        os.write(go_w, b"x" * processes)
        for pid in children:
            os.waitpid(pid, 0)
    elif case == "lifetimes":
        lifetimes = 100 if quick else 1_000
        c = Counter("jobs_total", "Jobs", ["kind"])
        def one_lifetime():
            pid = os.fork()
            if pid == 0:
                for k in range(10):
                    c.labels(f"k{k}").inc()
                os._exit(0)
            os.waitpid(pid, 0)
            mark_process_dead(pid)
        one_lifetime()
        scrape()
        out["first_ms"] = best_ms(scrape, 5)
        start = time.perf_counter()
        for _ in range(lifetimes - 1):
            one_lifetime()
        out["per_lifetime_ms"] = (time.perf_counter() - start) * 1e3 / (lifetimes - 1)
        scrape()  # what one scrape after the lifetimes has left to fold
        out["last_ms"] = best_ms(scrape, 5)
        text = scrape().decode()
        total = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("jobs_total{"))
        assert total == lifetimes * 10, total
        out["lifetimes"] = lifetimes
        out["files"] = len(os.listdir(directory))
    elif case == "memory":
        n = 1_000
        before = sum(os.stat(f).st_blocks * 512 for f in own_files())
        c = Counter("mem_c_total", "c", ["i"])
        for i in range(n):
            c.labels(str(i)).inc()
        mid = sum(os.stat(f).st_blocks * 512 for f in own_files())
        h = Histogram("mem_h", "h", ["i"])
        for i in range(n):
            h.labels(str(i)).observe(0.1 * (i % 50 + 1))
        after = sum(os.stat(f).st_blocks * 512 for f in own_files())
        out["counter_bytes"] = (mid - before) / n
        out["histogram_bytes"] = (after - mid) / n
    print(json.dumps(out))
''')


def run_worker(lib: str, case: str, quick: bool) -> dict:
    directory = tempfile.mkdtemp(prefix=f"mp-bench-{lib}-")
    env = {k: v for k, v in os.environ.items() if "MULTIPROC" not in k}
    if lib == "pyveda-single":  # multi-process mode off
        lib = "pyveda"
    else:
        env["PYVEDA_MULTIPROC_DIR" if lib == "pyveda" else "PROMETHEUS_MULTIPROC_DIR"] = directory
    try:
        result = subprocess.run([sys.executable, "-c", WORKER, lib, case, directory, "1" if quick else "0"],
                                env=env, capture_output=True, text=True, timeout=1800)
        if result.returncode != 0:
            raise SystemExit(f"{lib} {case} failed:\n{result.stderr}")
        return json.loads(result.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations and processes (a smoke run)")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    args = parser.parse_args()
    started = time.perf_counter()

    ours = run_worker("pyveda", "ops", args.quick)
    single = run_worker("pyveda-single", "ops", args.quick)
    peer = run_worker("prometheus_client", "ops", args.quick)
    render = {lib: run_worker(lib, "render16", args.quick) for lib in ("pyveda", "prometheus_client")}
    lifetimes = {lib: run_worker(lib, "lifetimes", args.quick) for lib in ("pyveda", "prometheus_client")}
    memory = {lib: run_worker(lib, "memory", args.quick) for lib in ("pyveda", "prometheus_client")}

    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    print(f"# compare_multiprocess ({machine}; {time.perf_counter() - started:.0f} s)")
    print("\nRecording in multi-process mode, ns per operation from Python:")
    if args.markdown:
        print("\n| operation | pyveda | prometheus_client | ratio | pyveda, one process |")
        print("|---|---:|---:|---:|---:|")
    for op, t in ours.items():
        if args.markdown:
            print(f"| {op} | {t:,.0f} | {peer[op]:,.0f} | {peer[op] / t:.1f}x | {single[op]:,.0f} |")
        else:
            print(f"{op:26s} pyveda {t:7,.0f}  prometheus_client {peer[op]:8,.0f} ({peer[op] / t:6.1f}x)"
                  f"  pyveda in one process {single[op]:6,.0f}")
    r, p = render["pyveda"], render["prometheus_client"]
    l, q = lifetimes["pyveda"], lifetimes["prometheus_client"]
    rows = [
        (f"render {r['processes']} live processes x {r['series']:,} series", r["ms"], p["ms"]),
        ("scrape after the first worker lifetime", l["first_ms"], q["first_ms"]),
        (f"scrape after {l['lifetimes']:,} worker lifetimes", l["last_ms"], q["last_ms"]),
        ("one worker lifetime (fork, 10 inc, exit, mark_process_dead)", l["per_lifetime_ms"], q["per_lifetime_ms"]),
    ]
    print("\nAggregating, ms:")
    if args.markdown:
        print("\n| operation | pyveda | prometheus_client | ratio |")
        print("|---|---:|---:|---:|")
    for op, a, b in rows:
        if args.markdown:
            print(f"| {op} | {a:,.2f} | {b:,.2f} | {b / a:.1f}x |")
        else:
            print(f"{op:60s} pyveda {a:9,.2f}  prometheus_client {b:9,.2f} ({b / a:6.1f}x)")
    print(f"\nScrape growth over {l['lifetimes']:,} lifetimes: pyveda {l['last_ms'] / l['first_ms']:.2f}x "
          f"({l['files']} files left), prometheus_client {q['last_ms'] / q['first_ms']:.2f}x ({q['files']} files left)")
    m, n = memory["pyveda"], memory["prometheus_client"]
    print(f"File bytes per series in use on disk: counter pyveda {m['counter_bytes']:,.0f}, prometheus_client "
          f"{n['counter_bytes']:,.0f}; histogram pyveda {m['histogram_bytes']:,.0f}, prometheus_client "
          f"{n['histogram_bytes']:,.0f}")


if __name__ == "__main__":
    main()
