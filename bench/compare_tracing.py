"""Times PyVeda's spans beside the OpenTelemetry SDK, in one run.

Usage: python bench/compare_tracing.py [--quick]

Cases: a span context manager with no attributes and with one attribute
(pyveda ``tracing.span`` vs the SDK's ``tracer.start_as_current_span`` with a
SimpleSpanProcessor into an InMemorySpanExporter, so both keep every finished
span), and OTLP protobuf encoding per span (pyveda ``export_otlp("protobuf")``
vs the SDK's ``encode_spans(...).SerializeToString()``) over the same number
of spans. Each figure is the best of several timeit repeats, in ns per span;
ratios are SDK time / PyVeda time (2.0x = PyVeda twice as fast).
Needs the `bench` extra (opentelemetry-sdk, opentelemetry-exporter-otlp-proto-common).
"""

from __future__ import annotations

import argparse
import platform
import timeit

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pyveda.telemetry import TracingSystem


def best_ns(stmt: str, env: dict, number: int, repeat: int, setup: str = "pass") -> float:
    times = timeit.repeat(stmt, setup=setup, globals=env, number=number, repeat=repeat)
    return min(times) / number * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    args = parser.parse_args()
    number, repeat = (2_000, 3) if args.quick else (20_000, 5)
    encode_spans_n = 200 if args.quick else 1_000

    tracing = TracingSystem(capacity=1_000_000)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("bench")
    env = {"tracing": tracing, "tracer": tracer, "exporter": exporter}

    rows = []
    cases = [
        ("span, no attributes", "with tracing.span('op'): pass", "with tracer.start_as_current_span('op'): pass"),
        (
            "span, one attribute",
            "with tracing.span('op', attributes={'batch_id': 123}): pass",
            "with tracer.start_as_current_span('op', attributes={'batch_id': 123}): pass",
        ),
        (
            "nested span (child of current)",
            "with tracing.span('outer'):\n    with tracing.span('inner'): pass",
            "with tracer.start_as_current_span('outer'):\n    with tracer.start_as_current_span('inner'): pass",
        ),
    ]
    for label, ours, theirs in cases:
        tracing.clear()
        exporter.clear()
        v = best_ns(ours, env, number, repeat)
        o = best_ns(theirs, env, number, repeat)
        per = 2 if "nested" in label else 1
        rows.append((label, v / per, o / per))

    # Encoding: the same number of spans (one attribute, one event each) through both encoders.
    tracing.clear()
    exporter.clear()
    for i in range(encode_spans_n):
        with tracing.span("op", attributes={"batch_id": i}) as span:
            span.add_event("loaded", {"rows": 10})
        with tracer.start_as_current_span("op", attributes={"batch_id": i}) as sdk_span:
            sdk_span.add_event("loaded", {"rows": 10})
    finished = exporter.get_finished_spans()
    env["finished"] = finished
    enc_repeat, enc_number = (3, 3) if args.quick else (5, 10)
    v = best_ns("tracing.export_otlp('protobuf')", env, enc_number, enc_repeat) / encode_spans_n
    o = best_ns("encode_spans(finished).SerializeToString()", {**env, "encode_spans": encode_spans}, enc_number, enc_repeat)
    rows.append((f"OTLP protobuf encode ({encode_spans_n} spans)", v, o / encode_spans_n))
    v_json = best_ns("tracing.export_otlp('json')", env, enc_number, enc_repeat) / encode_spans_n
    rows.append((f"OTLP/JSON dict ({encode_spans_n} spans; SDK has no JSON encoder)", v_json, float("nan")))

    print(f"Python {platform.python_version()} on {platform.machine()}; best of {repeat} x {number} (ns per span)")
    print(f"{'case':<58} {'pyveda':>10} {'otel-sdk':>10} {'ratio':>8}")
    for label, ours_ns, theirs_ns in rows:
        ratio = theirs_ns / ours_ns if theirs_ns == theirs_ns else float("nan")
        theirs_text = f"{theirs_ns:10.0f}" if theirs_ns == theirs_ns else f"{'-':>10}"
        ratio_text = f"{ratio:7.2f}x" if ratio == ratio else f"{'-':>8}"
        print(f"{label:<58} {ours_ns:10.0f} {theirs_text} {ratio_text}")


if __name__ == "__main__":
    main()
