"""Times ``import pyveda`` beside ``import prometheus_client`` and ``import opentelemetry.sdk.trace``.

Usage: python bench/compare_import.py [--runs N] [--markdown]

Each import runs in a fresh interpreter under ``python -X importtime``; the
figure is the module's cumulative import time as the interpreter reports it
(the median of N runs, in ms), so the interpreter's own start-up (``site``) is
not counted. The last row is the standard-library modules PyVeda's runtime
needs anyway (threading, concurrent.futures, contextvars), as a floor. Ratios
are peer time / PyVeda time.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys

CASES = [
    ("pyveda", "pyveda"),
    ("prometheus_client", "prometheus_client"),
    ("opentelemetry.sdk.trace", "opentelemetry.sdk.trace"),
    ("stdlib floor", "threading, concurrent.futures, contextvars"),
]


def import_ms(modules: str) -> float:
    """Cumulative -X importtime of the top-level modules in ``modules`` (ms), in a fresh interpreter."""
    names = [m.strip() for m in modules.split(",")]
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {modules}"],
        check=True,
        capture_output=True,
        text=True,
    ).stderr
    total_us = 0
    for line in out.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = (part.strip() for part in line[len("import time:") :].split("|"))
        if name in names:  # reported with no indent: imported by the -c statement itself
            total_us += int(cumulative)
    return total_us / 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, got {args.runs}")

    results = {}
    for _ in range(args.runs):  # interleaved, so a noisy moment hits every case
        for label, modules in CASES:
            results.setdefault(label, []).append(import_ms(modules))
    medians = {label: statistics.median(times) for label, times in results.items()}
    ours = medians["pyveda"]
    print(f"# {platform.machine()}, Python {platform.python_version()}, {args.runs} runs, median ms")
    if args.markdown:
        print("| import | ms | vs pyveda |\n|---|---|---|")
    for label, _ in CASES:
        ms = medians[label]
        ratio = "" if label in ("pyveda", "stdlib floor") else f"{ms / ours:.1f}x"
        if args.markdown:
            print(f"| `{label}` | {ms:.1f} | {ratio} |")
        else:
            print(f"{label:<26} {ms:8.1f} ms  {ratio}")


if __name__ == "__main__":
    main()
