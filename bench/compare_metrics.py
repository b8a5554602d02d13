"""Times PyVeda's metrics beside prometheus_client and the OpenTelemetry SDK, in one run.

Usage: python bench/compare_metrics.py [--quick] [--markdown]

Each figure is the best of several timeit repeats (ns per operation, called
from Python). Ratios are peer time / PyVeda time, so 8.0x means PyVeda is
eight times faster. Needs the `bench` extra: pip install ".[bench]".
"""

from __future__ import annotations

import argparse
import os
import platform
import timeit

import prometheus_client
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from pyveda import telemetry as veda


def best_ns(stmt: str, env: dict, number: int, repeat: int) -> float:
    times = timeit.repeat(stmt, globals=env, number=number, repeat=repeat)
    return min(times) / number * 1e9


def record_cases():
    """(operation, {library: (setup-callable, statement)})."""
    vreg = veda.CollectorRegistry()
    preg = prometheus_client.CollectorRegistry()
    meter = MeterProvider(metric_readers=[InMemoryMetricReader()]).get_meter("bench")

    env = {
        "vc": veda.Counter("c_total", "c", registry=vreg),
        "vg": veda.Gauge("g", "g", registry=vreg),
        "vh": veda.Histogram("h", "h", registry=vreg),
        "vl": veda.Counter("l_total", "l", ("method",), registry=vreg),
        "pc": prometheus_client.Counter("c_total", "c", registry=preg),
        "pg": prometheus_client.Gauge("g", "g", registry=preg),
        "ph": prometheus_client.Histogram("h", "h", registry=preg),
        "pl": prometheus_client.Counter("l_total", "l", ("method",), registry=preg),
        "oc": meter.create_counter("c"),
        "og": meter.create_gauge("g"),
        "oh": meter.create_histogram("h"),
        "attrs": {"method": "GET"},
    }
    cases = [
        ("Counter.inc()", {"pyveda": "vc.inc()", "prometheus_client": "pc.inc()", "opentelemetry-sdk": "oc.add(1)"}),
        ("Gauge.set(v)", {"pyveda": "vg.set(3.5)", "prometheus_client": "pg.set(3.5)", "opentelemetry-sdk": "og.set(3.5)"}),
        (
            "Histogram.observe(v)",
            {"pyveda": "vh.observe(12.5)", "prometheus_client": "ph.observe(12.5)", "opentelemetry-sdk": "oh.record(12.5)"},
        ),
        (
            "labels('GET').inc()",
            {
                "pyveda": "vl.labels('GET').inc()",
                "prometheus_client": "pl.labels('GET').inc()",
                "opentelemetry-sdk": "oc.add(1, attrs)",
            },
        ),
    ]
    return env, cases


def exemplar_case(number: int, repeat: int):
    """Histogram.observe(v) inside a span, keeping the span as the exemplar:
    PyVeda does it by itself; prometheus_client needs the ids passed in
    (its documented exemplar= argument, with classic buckets); the OTel SDK
    records inside its own span (its default exemplar filter keeps sampled
    spans' exemplars)."""
    from opentelemetry import trace as otel_trace
    from opentelemetry.sdk.trace import TracerProvider

    vreg = veda.CollectorRegistry()
    preg = prometheus_client.CollectorRegistry()
    meter = MeterProvider(metric_readers=[InMemoryMetricReader()]).get_meter("bench")
    tracer = TracerProvider().get_tracer("bench")
    env = {
        "vh": veda.Histogram("h", "h", registry=vreg),
        "ph": prometheus_client.Histogram("h", "h", registry=preg),
        "oh": meter.create_histogram("h"),
        "ids": {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7"},
    }
    tracing = veda.TracingSystem()
    with tracing.span("request"):
        ours = best_ns("vh.observe(12.5)", env, number, repeat)
    peer = best_ns("ph.observe(12.5, exemplar=ids)", env, number, repeat)
    with otel_trace.use_span(tracer.start_span("request"), end_on_exit=True):
        otel = best_ns("oh.record(12.5)", env, number, repeat)
    return ours, peer, otel


def render_case(series: int, repeat: int):
    vreg = veda.CollectorRegistry()
    preg = prometheus_client.CollectorRegistry()
    vc = veda.Counter("requests_total", "Requests", ("path",), registry=vreg)
    pc = prometheus_client.Counter("requests_total", "Requests", ("path",), registry=preg)
    for i in range(series):
        vc.labels(f"/item/{i}").inc(i)
        pc.labels(f"/item/{i}").inc(i)
    from prometheus_client.openmetrics import exposition as om

    env = {
        "vreg": vreg,
        "preg": preg,
        "generate_latest": prometheus_client.generate_latest,
        "generate_openmetrics": om.generate_latest,
    }
    text = (
        best_ns("vreg.generate_prometheus()", env, 3, repeat) / series,
        best_ns("generate_latest(preg)", env, 3, repeat) / series,
    )
    openmetrics = (
        best_ns("vreg.generate_openmetrics()", env, 3, repeat) / series,
        best_ns("generate_openmetrics(preg)", env, 3, repeat) / series,
    )
    # prometheus_client has no protobuf exposition: its text is the peer figure.
    protobuf = (best_ns("vreg.generate_protobuf()", env, 3, repeat) / series, text[1])
    return text, openmetrics, protobuf


def histogram_render_case(series: int, repeat: int):
    """Histogram series (100 observations each): our text (a summary), our protobuf
    (native histograms) and prometheus_client's text (classic buckets)."""
    vreg = veda.CollectorRegistry()
    preg = prometheus_client.CollectorRegistry()
    vh = veda.Histogram("latency_ms", "Latency", ("path",), registry=vreg)
    ph = prometheus_client.Histogram("latency_ms", "Latency", ("path",), registry=preg)
    for i in range(series):
        v, p = vh.labels(f"/item/{i}"), ph.labels(f"/item/{i}")
        for k in range(100):
            v.observe(0.5 + k * 0.37)
            p.observe(0.5 + k * 0.37)
    env = {"vreg": vreg, "preg": preg, "generate_latest": prometheus_client.generate_latest}
    return (
        best_ns("vreg.generate_prometheus()", env, 3, repeat) / series,
        best_ns("vreg.generate_protobuf()", env, 3, repeat) / series,
        best_ns("generate_latest(preg)", env, 3, repeat) / series,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()
    number, repeat = (20_000, 3) if args.quick else (300_000, 7)

    env, cases = record_cases()
    rows = []
    for op, stmts in cases:
        t = {lib: best_ns(stmt, env, number, repeat) for lib, stmt in stmts.items()}
        rows.append((op, t["pyveda"], t["prometheus_client"], t["opentelemetry-sdk"]))
    rows.append(("Histogram.observe(v) in a span, exemplar", *exemplar_case(number, repeat)))
    series = 1_000 if args.quick else 10_000
    (ours_text, peer), (ours_om, peer_om), (ours_pb, peer_text) = render_case(series, repeat)
    rows.append((f"render {series:,} series (per series)", ours_text, peer, None))
    rows.append((f"render {series:,} series, OpenMetrics", ours_om, peer_om, None))
    rows.append((f"render {series:,} series, protobuf*", ours_pb, peer_text, None))
    hist_series = 100 if args.quick else 1_000
    hist_text, hist_pb, hist_peer = histogram_render_case(hist_series, repeat)
    rows.append((f"render {hist_series:,} histograms, text", hist_text, hist_peer, None))
    rows.append((f"render {hist_series:,} histograms, protobuf*", hist_pb, hist_peer, None))

    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    print(f"# compare_metrics: ns per operation, best of {repeat} ({machine})")
    if args.markdown:
        print("| operation | pyveda | prometheus_client | ratio | opentelemetry-sdk | ratio |")
        print("|---|---:|---:|---:|---:|---:|")
    for op, ours, prom, otel in rows:
        otel_text = f"{otel:,.0f}" if otel is not None else "-"
        otel_ratio = f"{otel / ours:.1f}x" if otel is not None else "-"
        if args.markdown:
            print(f"| {op} | {ours:,.0f} | {prom:,.0f} | {prom / ours:.1f}x | {otel_text} | {otel_ratio} |")
        else:
            print(f"{op:42s} pyveda {ours:8,.0f}  prometheus_client {prom:8,.0f} ({prom / ours:5.1f}x)"
                  f"  opentelemetry-sdk {otel_text:>8s} ({otel_ratio})")
    note = (f"* prometheus_client has no protobuf exposition: beside our protobuf stands its text format."
            f" Ours, protobuf / text per series: {ours_pb / ours_text:.2f} (counters), {hist_pb / hist_text:.2f} (histograms)")
    print(("\n" if args.markdown else "") + note)


if __name__ == "__main__":
    main()
