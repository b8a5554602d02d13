"""The ``pyveda`` command line.

``pyveda demo`` runs a small threaded workload instrumented with PyVeda's
metrics and prints the Prometheus exposition of what it measured.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
import threading
import time
from typing import List, Optional

from pyveda import __version__


def _demo(args: argparse.Namespace) -> int:
    from pyveda.telemetry import Counter, Gauge, Histogram, generate_prometheus

    requests = Counter("demo_requests_total", "Requests handled by the demo", ("route", "outcome"))
    in_flight = Gauge("demo_requests_in_flight", "Requests being handled right now")
    latency = Histogram("demo_request_duration_ms", "Time to handle one request, in milliseconds", ("route",))
    payload = Histogram("demo_payload_bytes", "Size of each request's payload")

    routes = {
        # route: (payload sizes in bytes, failure probability)
        "/hash": ((1_000, 200_000), 0.0),
        "/upload": ((50_000, 2_000_000), 0.02),
        "/search": ((100, 10_000), 0.10),
    }
    per_thread = max(1, args.requests // args.threads)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(per_thread):
            route = rng.choice(list(routes))
            (low, high), failure = routes[route]
            size = rng.randint(low, high)
            in_flight.inc()
            start = time.perf_counter()
            try:
                hashlib.sha256(os.urandom(size)).hexdigest()  # real work, real latency
                if rng.random() < failure:
                    raise RuntimeError("simulated failure")
                outcome = "ok"
            except RuntimeError:
                outcome = "error"
            finally:
                in_flight.dec()
            latency.labels(route).observe((time.perf_counter() - start) * 1000.0)
            requests.labels(route, outcome).inc()
            payload.observe(size)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started

    sys.stdout.write(generate_prometheus())
    total = per_thread * args.threads
    print(f"# demo: {total} requests on {args.threads} threads in {elapsed:.2f}s", file=sys.stderr)
    for route in routes:
        h = latency.labels(route)
        print(
            f"# {route:8s} n={h.get_count():5d}  mean={h.get_mean():7.3f} ms  "
            f"p95={h.get_percentile(95):7.3f} ms  p99={h.get_percentile(99):7.3f} ms",
            file=sys.stderr,
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyveda", description="PyVeda command line")
    parser.add_argument("--version", action="version", version=f"pyveda {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run an instrumented workload and print its Prometheus metrics")
    demo.add_argument("--requests", type=_positive_int, default=2000, help="requests to handle (default 2000)")
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
