"""The ``pyveda`` command line.

``pyveda demo`` runs a mixed workload (fast, slow, failing and nested tasks,
with nested spans) on the runtime with telemetry, serves ``/metrics`` while it
runs and shows the live dashboard (:mod:`pyveda.telemetry.dashboard`); piped,
it prints plain lines and then the Prometheus exposition of everything it
measured. ``pyveda top [URL]`` shows the same dashboard for another process
by polling its ``/metrics.json``.
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


_CHUNK = 256  # demo tasks spawned at a time
_TOP_MAX_BYTES = 4 << 20  # most of a /metrics.json reply that `pyveda top` reads


def _demo(args: argparse.Namespace) -> int:
    import json
    import threading

    import pyveda as veda
    from pyveda.telemetry import Counter, Histogram, generate_prometheus, start_http_server
    from pyveda.telemetry.dashboard import Dashboard, format_summary

    requests = Counter("demo_requests_total", "Requests handled by the demo", ("route", "outcome"))
    payload = Histogram("demo_payload_bytes", "Size of each request's payload")

    config = (
        veda.Config.builder().threads(args.threads).telemetry(True).tracing(True).collect_interval(0.5).build()
    )
    runtime = veda.init(config)
    telemetry = runtime.telemetry
    tracing = runtime.tracing  # every task gets a span; the handler adds nested ones

    def handle(route: str, size: int, fail: bool) -> str:
        # Real work with a real latency: hash a payload, sometimes wait on "I/O".
        with tracing.span("hash", attributes={"route": route, "bytes": size}):
            digest = hashlib.sha256(os.urandom(size)).hexdigest()
        if route == "/slow":
            with tracing.span("io_wait"):
                time.sleep(0.005)
        if route == "/nested":
            # A task that fans out and waits: the waiting worker runs the children itself.
            with tracing.span("fan_out", attributes={"children": 4}):
                parts = [veda.spawn(hashlib.sha256, os.urandom(size // 4)) for _ in range(4)]
                digest = "".join(p.result().hexdigest()[:4] for p in parts)
        payload.observe(size)
        if fail:
            requests.labels(route, "error").inc()
            raise RuntimeError(f"simulated failure on {route}")
        requests.labels(route, "ok").inc()
        return digest

    try:
        server = start_http_server(port=args.port, runtime=runtime)
    except OSError as exc:
        veda.shutdown()
        print(f"pyveda demo: cannot serve metrics on 127.0.0.1:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(f"# serving {server.url} (and {server.url}.json)", file=sys.stderr, flush=True)

    telemetry.start()
    quit_requested = threading.Event()
    counts = {"spawned": 0, "failed": 0}

    fullscreen = sys.stdout.isatty()
    # Without --duration: rounds until q or Ctrl+C on a terminal, one round when piped.
    endless = args.duration <= 0 and fullscreen

    def workload() -> None:
        # Rounds of --tasks tasks (see `endless`; with --duration, rounds until it
        # has passed), _CHUNK at a time; after spawning a chunk it waits for the one
        # before, so at most two are in flight and q (or the deadline) stops it fast.
        rng = random.Random(7)
        routes = ["/hash", "/hash", "/slow", "/nested"]
        deadline = time.monotonic() + args.duration
        previous: list = []

        def more() -> bool:
            return not quit_requested.is_set() and (args.duration <= 0 or time.monotonic() < deadline)

        while more():
            left = args.tasks
            while left > 0 and more():
                n = min(_CHUNK, left)
                chunk = [
                    veda.spawn(handle, rng.choice(routes), rng.randint(1_000, 100_000), rng.random() < 0.03)
                    for _ in range(n)
                ]
                counts["spawned"] += n
                left -= n
                counts["failed"] += sum(1 for f in previous if f.exception() is not None)
                previous = chunk
            if args.duration <= 0 and not endless:
                break
        counts["failed"] += sum(1 for f in previous if f.exception() is not None)

    started = time.perf_counter()
    worker = threading.Thread(target=workload, name="pyveda-demo-workload", daemon=True)
    worker.start()
    board = Dashboard(
        lambda: telemetry.snapshot().export_json(),
        title="PyVeda Live Dashboard - demo",
        subtitle=f"{args.tasks} tasks/round on {args.threads} threads, metrics at {server.url}",
        interval=0.5 if fullscreen else 1.0,
        failure_threshold=args.failure_threshold,
        stream=sys.stdout if fullscreen else sys.stderr,
        plain_prefix="# ",
    )
    interrupted = False
    try:
        board.run(until=lambda: not worker.is_alive())
        interrupted = worker.is_alive()
        quit_requested.set()
        worker.join()
    except KeyboardInterrupt:  # a second Ctrl+C while the last chunk drains
        interrupted = True
        quit_requested.set()
    elapsed = time.perf_counter() - started
    telemetry.stop()
    snapshot = telemetry.snapshot()
    server.shutdown()
    veda.shutdown(wait=not interrupted)

    spans = len(tracing.get_spans())
    summary = (
        f"# demo: {counts['spawned']} tasks ({counts['failed']} failed) on {args.threads} threads "
        f"in {elapsed:.2f}s, {spans} spans{' (stopped early)' if interrupted and not endless else ''}"
    )
    if fullscreen:
        print("PyVeda demo: final snapshot")
        print(format_summary(snapshot.export_json()))
        print(summary)
    else:
        sys.stdout.write(generate_prometheus())
        print(json.dumps(snapshot.export_json(), indent=2), file=sys.stderr)
        print(summary, file=sys.stderr)
    return 0


def _metrics_json_url(text: str) -> str:
    """The ``/metrics.json`` address for ``pyveda top``'s URL argument; ValueError if unusable."""
    import urllib.parse

    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise ValueError("expected an http:// or https:// URL such as http://127.0.0.1:9464")
    if not parts.hostname:
        raise ValueError("the URL has no host")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ValueError("the URL has an invalid port") from None
    path = parts.path.rstrip("/")
    if path.endswith("/metrics"):
        path += ".json"
    elif not path.endswith("/metrics.json"):
        path += "/metrics.json"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def _top(args: argparse.Namespace) -> int:
    import json
    import urllib.error
    import urllib.request

    from pyveda.telemetry.dashboard import Dashboard
    from pyveda.telemetry.system import MetricsSnapshot

    try:
        url = _metrics_json_url(args.url)
    except ValueError as exc:
        print(f"pyveda top: invalid URL {args.url!r}: {exc}", file=sys.stderr)
        return 2

    timeout = min(args.interval, 5.0) + 1.0

    def fetch() -> dict:
        # One deadline for the whole read (the socket timeout alone is per
        # recv, so a server trickling bytes could hold us forever) and a cap on
        # the size; the body must be a snapshot as export_json() writes it.
        deadline = time.monotonic() + timeout
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                body = bytearray()
                while True:
                    if time.monotonic() > deadline:
                        raise ConnectionError(f"no complete reply within {timeout:g} s")
                    chunk = response.read1(65536)
                    if not chunk:
                        break
                    body += chunk
                    if len(body) > _TOP_MAX_BYTES:
                        raise ConnectionError(f"the reply is larger than {_TOP_MAX_BYTES >> 20} MiB")
        except urllib.error.HTTPError as exc:
            try:
                reason = json.loads(exc.read(_TOP_MAX_BYTES)).get("error", exc.reason)
            except (ValueError, AttributeError, OSError):
                reason = exc.reason
            raise ConnectionError(f"HTTP {exc.code}: {reason}") from None
        except urllib.error.URLError as exc:
            raise ConnectionError(str(exc.reason)) from None
        except OSError as exc:  # a timeout or reset in the middle of the body
            raise ConnectionError(str(exc) or type(exc).__name__) from None
        try:
            data = json.loads(body)
        except ValueError:
            raise ConnectionError("the response is not JSON") from None
        if not isinstance(data, dict) or "tasks" not in data:
            raise ConnectionError("the response is not a pyveda snapshot")
        try:  # checks every field's type and range; the dashboard then renders clean values
            return MetricsSnapshot.from_json(data).export_json()
        except (TypeError, ValueError) as exc:
            raise ConnectionError(f"not a valid pyveda snapshot: {exc}") from None

    board = Dashboard(
        fetch,
        title="PyVeda Live Dashboard",
        subtitle=url,
        waiting_for=url,
        interval=args.interval,
        failure_threshold=args.failure_threshold,
        plain=args.once,  # one full-screen frame would vanish at once
    )
    board.run(iterations=1 if args.once else args.iterations)
    if (args.once or args.iterations is not None) and board.reads == 0:
        return 1  # a bounded run that never read a snapshot: say so to scripts
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyveda", description="PyVeda command line")
    parser.add_argument("--version", action="version", version=f"pyveda {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="run a mixed workload with telemetry, serve its metrics and show the live dashboard",
        description=(
            "Runs fast, slow, failing and nested (spawning) tasks with telemetry and tracing, serves "
            "/metrics and /metrics.json, and shows the live dashboard: on a terminal it runs rounds "
            "until q or Ctrl+C (or --duration). When stdout is not a terminal it runs one round (or "
            "--duration), prints plain lines to stderr and, at the end, the Prometheus exposition to stdout."
        ),
    )
    demo.add_argument("--tasks", type=_positive_int, default=3000, help="tasks per round (default 3000)")
    demo.add_argument("--threads", type=_positive_int, default=4, help="worker threads (default 4)")
    demo.add_argument(
        "--port", type=_port, default=9464, help="port for /metrics on 127.0.0.1 (default 9464; 0: any free port)"
    )
    demo.add_argument(
        "--duration",
        type=_seconds,
        default=0.0,
        help="run rounds of --tasks tasks for this many seconds (default 0: until q on a terminal, one round when piped)",
    )
    demo.add_argument(
        "--failure-threshold",
        type=_fraction,
        default=0.05,
        help="failure rate shown red above this fraction (default 0.05)",
    )
    demo.set_defaults(func=_demo)

    top = sub.add_parser(
        "top",
        help="show the live dashboard of another process from its /metrics.json",
        description="Polls URL/metrics.json (as served by pyveda.telemetry.start_http_server) and shows it live.",
    )
    top.add_argument("url", nargs="?", default="http://127.0.0.1:9464", help="default http://127.0.0.1:9464")
    top.add_argument("--interval", type=_seconds_positive, default=1.0, help="seconds between polls (default 1)")
    top.add_argument(
        "--failure-threshold",
        type=_fraction,
        default=0.05,
        help="failure rate shown red above this fraction (default 0.05)",
    )
    bounded = top.add_mutually_exclusive_group()
    bounded.add_argument("--iterations", type=_positive_int, help="stop after N polls (exit 1 if none succeeded)")
    bounded.add_argument("--once", action="store_true", help="poll once and print one plain line, even on a terminal")
    top.set_defaults(func=_top)
    return parser


def _parse(text: str, convert, expected: str):
    """Converts a command-line value, or says what was expected."""
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None


def _port(text: str) -> int:
    value = _parse(text, int, "a port number")
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be in 0..65535 (0: any free port), got {value}")
    return value


def _seconds(text: str) -> float:
    value = _parse(text, float, "seconds")
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds >= 0, got {text}")
    return value


def _seconds_positive(text: str) -> float:
    value = _seconds(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0 seconds, got {text}")
    return value


def _fraction(text: str) -> float:
    value = _parse(text, float, "a fraction such as 0.05")
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be in 0..1, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = _parse(text, int, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
