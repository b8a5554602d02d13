"""The ``pyveda`` command line.

``pyveda demo`` runs a mixed workload (fast, slow, failing and nested tasks)
on the runtime with telemetry, reports each collected snapshot, and prints the
Prometheus exposition of everything it measured.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
import time
from typing import List, Optional

from pyveda import __version__


def _demo(args: argparse.Namespace) -> int:
    import json

    import pyveda as veda
    from pyveda.telemetry import Counter, Histogram, generate_prometheus

    requests = Counter("demo_requests_total", "Requests handled by the demo", ("route", "outcome"))
    payload = Histogram("demo_payload_bytes", "Size of each request's payload")

    def handle(route: str, size: int, fail: bool) -> str:
        # Real work with a real latency: hash a payload, sometimes wait on "I/O".
        digest = hashlib.sha256(os.urandom(size)).hexdigest()
        if route == "/slow":
            time.sleep(0.005)
        if route == "/nested":
            # A task that fans out and waits: the waiting worker runs the children itself.
            parts = [veda.spawn(hashlib.sha256, os.urandom(size // 4)) for _ in range(4)]
            digest = "".join(p.result().hexdigest()[:4] for p in parts)
        payload.observe(size)
        if fail:
            requests.labels(route, "error").inc()
            raise RuntimeError(f"simulated failure on {route}")
        requests.labels(route, "ok").inc()
        return digest

    config = veda.Config.builder().threads(args.threads).telemetry(True).collect_interval(0.5).build()
    runtime = veda.init(config)
    telemetry = runtime.telemetry

    def report(snapshot) -> None:
        print(
            f"# {snapshot.tasks_executed:6d} done  {snapshot.tasks_failed:4d} failed  "
            f"{snapshot.tasks_pending:5d} queued  {snapshot.throughput_tasks_per_sec:8.1f} tasks/s  "
            f"p99 {snapshot.p99_latency_ms:7.2f} ms  CPU {snapshot.cpu_utilization_percent:5.1f}%",
            file=sys.stderr,
        )

    telemetry.add_callback(report)
    telemetry.start()
    rng = random.Random(7)
    routes = ["/hash", "/hash", "/slow", "/nested"]
    started = time.perf_counter()
    futures = []
    for _ in range(args.tasks):
        route = rng.choice(routes)
        futures.append(veda.spawn(handle, route, rng.randint(1_000, 100_000), rng.random() < 0.03))
    failed = sum(1 for f in futures if f.exception() is not None)
    elapsed = time.perf_counter() - started
    telemetry.stop()
    snapshot = telemetry.snapshot()
    veda.shutdown()

    sys.stdout.write(generate_prometheus())
    print(json.dumps(snapshot.export_json(), indent=2), file=sys.stderr)
    print(
        f"# demo: {args.tasks} tasks ({failed} failed) on {args.threads} threads in {elapsed:.2f}s",
        file=sys.stderr,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyveda", description="PyVeda command line")
    parser.add_argument("--version", action="version", version=f"pyveda {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run a mixed workload with telemetry and print its metrics")
    demo.add_argument("--tasks", type=_positive_int, default=3000, help="tasks to run (default 3000)")
    demo.add_argument("--threads", type=_positive_int, default=4, help="worker threads (default 4)")
    demo.set_defaults(func=_demo)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
