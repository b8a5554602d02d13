"""Times prometheus_client's API on PyVeda beside prometheus_client itself, in one run.

Usage: python bench/compare_promclient.py [--quick] [--markdown]

The same statement runs against ``pyveda.telemetry`` and against
``prometheus_client`` (the drop-in claim: only the import differs). Each
figure is the best of several timeit repeats, taken in turn for the two
libraries, in ns per operation; the ratio is prometheus_client's time / PyVeda's, so 10.0x means PyVeda is ten
times faster. The last row scrapes a registry holding one custom collector
that yields 1,000 samples (collect + render), per scrape in microseconds.
Needs the `bench` extra: pip install ".[bench]".
"""

from __future__ import annotations

import argparse
import os
import platform
import timeit

import prometheus_client
import prometheus_client.core
import prometheus_client.exposition

from pyveda import telemetry as veda

# (operation, statement); `m` is the module under test, `r` its registry.
SETUP = """
c = m.Counter("c_total", "c", registry=r)
g = m.Gauge("g", "g", registry=r)
h = m.Histogram("h", "h", registry=r, **histogram_options)
s = m.Summary("s", "s", registry=r)
e = m.Enum("e", "e", states=["a", "b", "c"], registry=r)
i = m.Info("i", "i", registry=r)
l = m.Counter("l_total", "l", ["route"], registry=r)
timer = h.time()

@h.time()
def timed():
    pass

@c.count_exceptions()
def counted():
    pass

@g.track_inprogress()
def tracked():
    pass

info = {"version": "1.2.3"}
"""

CASES = [
    ("Counter.inc()", "c.inc()"),
    ("Gauge.set(v)", "g.set(3.5)"),
    ("Gauge.inc()", "g.inc()"),
    ("Histogram.observe(v)", "h.observe(0.25)"),
    ("Summary.observe(v)", "s.observe(0.25)"),
    ("labels('/a').inc()", "l.labels('/a').inc()"),
    ("with h.time():", "with h.time():\n    pass"),
    ("@h.time() call", "timed()"),
    ("with g.track_inprogress():", "with g.track_inprogress():\n    pass"),
    ("@g.track_inprogress() call", "tracked()"),
    ("@c.count_exceptions() call", "counted()"),
    ("Enum.state(s)", "e.state('b')"),
    ("Info.info(d)", "i.info(info)"),
]


def env_for(module, registry, histogram_options):
    env = {"m": module, "r": registry, "histogram_options": histogram_options}
    exec(SETUP, env)
    return env


def best_ns(stmt: str, env: dict, number: int, repeat: int) -> float:
    return min(timeit.repeat(stmt, globals=env, number=number, repeat=repeat)) / number * 1e9


def collector_scrape_us(number: int, repeat: int):
    """One custom collector of 1,000 gauge samples: collect and render 0.0.4 text, per scrape."""
    labels = [str(k) for k in range(1000)]

    def collector(family_class):
        class Queues:
            def collect(self):
                depth = family_class("queue_depth", "Jobs waiting per queue.", labels=["queue"])
                for name in labels:
                    depth.add_metric([name], 1.5)
                yield depth

        return Queues()

    ours = veda.CollectorRegistry()
    ours.register(collector(veda.GaugeMetricFamily))
    theirs = prometheus_client.CollectorRegistry()
    theirs.register(collector(prometheus_client.core.GaugeMetricFamily))
    assert veda.generate_latest(ours) == prometheus_client.exposition.generate_latest(theirs)  # the same bytes
    scrape = {"v": veda.generate_latest, "p": prometheus_client.exposition.generate_latest, "vr": ours, "pr": theirs}
    return (best_ns("v(vr)", scrape, number, repeat) / 1e3, best_ns("p(pr)", scrape, number, repeat) / 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()
    number, repeat = (2_000, 3) if args.quick else (100_000, 7)
    ours = env_for(veda, veda.CollectorRegistry(), {})
    theirs = env_for(prometheus_client, prometheus_client.CollectorRegistry(), {})
    rows = []
    for name, stmt in CASES:
        # Repeats alternate between the two libraries, so a slow spell of the VM hits both alike.
        mine, peer = float("inf"), float("inf")
        for _ in range(repeat):
            mine = min(mine, best_ns(stmt, ours, number, 1))
            peer = min(peer, best_ns(stmt, theirs, number, 1))
        rows.append((name, mine, peer, "ns"))
    rows.append(("scrape 1 collector x 1,000 samples", *collector_scrape_us(max(number // 1000, 5), repeat), "us"))
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    from importlib.metadata import version

    print(f"# compare_promclient: best of {repeat} ({machine}), prometheus_client {version('prometheus-client')}")
    if args.markdown:
        print("| operation | pyveda | prometheus_client | ratio |")
        print("|---|---:|---:|---:|")
    for name, mine, peer, unit in rows:
        if args.markdown:
            print(f"| {name} | {mine:,.0f} {unit} | {peer:,.0f} {unit} | {peer / mine:.1f}x |")
        else:
            print(f"{name:38s} pyveda {mine:10,.0f} {unit}  prometheus_client {peer:10,.0f} {unit}  {peer / mine:6.1f}x")


if __name__ == "__main__":
    main()
