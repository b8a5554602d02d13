"""Times the OpenTelemetry API on PyVeda (pyveda.otel) beside the OpenTelemetry SDK, in one run.

Usage: python bench/compare_otel.py [--quick] [--markdown]

The same statements run against a tracer from ``pyveda.otel.TracerProvider``
and one from the SDK's ``TracerProvider`` with a ``SimpleSpanProcessor`` and
an ``InMemorySpanExporter`` (each finished span kept, as PyVeda's store
keeps it); the SDK without any processor is shown too. The metrics rows
time instruments of ``pyveda.otel.MeterProvider`` (a registry) beside the
SDK's ``MeterProvider`` with an ``InMemoryMetricReader`` (and with no
reader, in the last column). A last line times the floor of a current
span behind the Python API (a ``with`` that copies the Context and sets two
ContextVars), beside the SDK's unsampled span divided by 20. Each library runs in
a process of its own (installing pyveda.otel changes the API's runtime
context). ns per operation, best of several timeit repeats; ratio = SDK
time / PyVeda time. Needs the `bench` extra: pip install ".[bench]".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import textwrap

WORKER = textwrap.dedent(r'''
    import json, sys, timeit
    from opentelemetry import trace
    which, quick = sys.argv[1], sys.argv[2] == "1"
    if which.startswith("pyveda"):
        import pyveda.otel
        sampler = "always_off" if which == "pyveda-off" else "parentbased_always_on"
        provider = pyveda.otel.TracerProvider(pyveda.telemetry.TracingSystem(capacity=1 << 16, sampler=sampler))
    else:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, ALWAYS_ON
        provider = TracerProvider(sampler=ALWAYS_OFF if which == "sdk-off" else ParentBased(ALWAYS_ON))
        if which in ("sdk", "sdk-off"):
            from opentelemetry.sdk.trace.export import SimpleSpanProcessor
            from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
            exporter = InMemorySpanExporter()
            provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("bench")
    if which.startswith("pyveda"):
        from pyveda.telemetry import CollectorRegistry
        meters = pyveda.otel.MeterProvider(registry=CollectorRegistry())
    else:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        meters = MeterProvider(metric_readers=[] if which == "sdk-no-processor" else [InMemoryMetricReader()])
    meter = meters.get_meter("bench")
    attrs = {"k": "v"}
    counter, histogram = meter.create_counter("c"), meter.create_histogram("h")
    up_down, gauge = meter.create_up_down_counter("u"), meter.create_gauge("g")
    for prime in (counter.add, histogram.record, up_down.add, gauge.set):
        prime(1, attrs)  # the first measurement makes the series
    env = {"tracer": tracer, "trace": trace, "counter": counter, "histogram": histogram, "up_down": up_down,
           "gauge": gauge, "attrs": attrs}
    cases = {
        "start_as_current_span('s', attributes={'k': 1})":
            "with tracer.start_as_current_span('s', attributes={'k': 1}):\n    pass",
        "start_span('s').end()": "tracer.start_span('s').end()",
        "two nested current spans": (
            "with tracer.start_as_current_span('a'):\n    with tracer.start_as_current_span('b'):\n        pass"),
        "get_current_span() in a span": None,
        "counter.add(1, {'k': 'v'})": "counter.add(1, attrs)",
        "histogram.record(0.5, {'k': 'v'})": "histogram.record(0.5, attrs)",
        "up_down_counter.add(1, {'k': 'v'})": "up_down.add(1, attrs)",
        "gauge.set(1.0, {'k': 'v'})": "gauge.set(1.0, attrs)",
    }
    if which == "pyveda":
        # The least any implementation behind the Python API does for a current span: a `with` on a
        # Python object that makes a new Context from the current one and sets, then resets, two
        # ContextVars (the API's current Context and the tracer's own current span).
        import contextvars
        from opentelemetry.context.context import Context
        current, own = contextvars.ContextVar("current", default=Context()), contextvars.ContextVar("own")

        class Floor:
            __slots__ = ("token",)

            def __enter__(self):
                context = Context(current.get())
                dict.__setitem__(context, "span", self)
                self.token = (current.set(context), own.set(self))
                return self

            def __exit__(self, *exc):
                own.reset(self.token[1])
                current.reset(self.token[0])

        env["Floor"] = Floor
        cases["floor: with + Context copy + two ContextVars set and reset"] = "with Floor():\n    pass"
    number, repeat = (2_000, 3) if quick else (20_000, 7)
    out = {}
    for name, stmt in cases.items():
        if stmt is None:
            with tracer.start_as_current_span("outer"):
                out[name] = min(timeit.repeat("trace.get_current_span()", globals=env, number=number * 10,
                                              repeat=repeat)) / (number * 10) * 1e9
            continue
        out[name] = min(timeit.repeat(stmt, globals=env, number=number, repeat=repeat)) / number * 1e9
        if which in ("sdk", "sdk-off") and "span" in name:
            exporter.clear()
    print(json.dumps(out))
''')


def run(which: str, quick: bool) -> dict:
    result = subprocess.run([sys.executable, "-c", WORKER, which, "1" if quick else "0"], capture_output=True,
                            text=True, timeout=900)
    if result.returncode != 0:
        raise SystemExit(f"{which} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()
    ours = run("pyveda", args.quick)
    sdk = run("sdk", args.quick)
    bare = run("sdk-no-processor", args.quick)
    key = "start_as_current_span('s', attributes={'k': 1})"
    ours_off, sdk_off = run("pyveda-off", args.quick), run("sdk-off", args.quick)
    ours["unsampled: " + key] = ours_off[key]
    sdk["unsampled: " + key] = sdk_off[key]
    bare["unsampled: " + key] = float("nan")
    floor_key = "floor: with + Context copy + two ContextVars set and reset"
    floor = ours.pop(floor_key)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    print(f"# compare_otel: the OpenTelemetry API, ns per operation ({machine})")
    if args.markdown:
        print("| operation | pyveda.otel | opentelemetry-sdk | ratio | sdk, no processor |")
        print("|---|---:|---:|---:|---:|")
    for op, t in ours.items():
        if args.markdown:
            print(f"| {op} | {t:,.0f} | {sdk[op]:,.0f} | {sdk[op] / t:.1f}x | {bare[op]:,.0f} |")
        else:
            print(f"{op:50s} pyveda.otel {t:8,.0f}  sdk {sdk[op]:8,.0f} ({sdk[op] / t:5.1f}x)"
                  f"  sdk without a processor {bare[op]:8,.0f}")
    unsampled = sdk["unsampled: " + key]
    print(f"\n{floor_key}: {floor:,.0f} ns, the SDK's unsampled span / 20: {unsampled / 20:,.0f} ns; "
          f"a current span through the Python API cannot be cheaper than the floor "
          f"({unsampled / floor:.1f}x the SDK's unsampled at best)")


if __name__ == "__main__":
    main()
