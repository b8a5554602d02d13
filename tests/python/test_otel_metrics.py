"""pyveda.otel.MeterProvider: the OpenTelemetry metrics API recording into a PyVeda registry.

Each instrument kind records and shows up in the Prometheus text, protobuf
and OTLP exports; attributes become labels by the module's rules; bad
measurements are logged and dropped as the SDK does; bad names raise; the
observable instruments run their callbacks at each collection; the contrib
WSGI instrumentation's metrics land in the registry across a real HTTP hop.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
import wsgiref.simple_server

import pytest

api = pytest.importorskip("opentelemetry.metrics")

import pyveda.otel  # noqa: E402
from pyveda.telemetry import CollectorRegistry, otlp  # noqa: E402

from prometheus_proto import parse_delimited  # noqa: E402


@pytest.fixture
def provider():
    return pyveda.otel.MeterProvider(registry=CollectorRegistry())


@pytest.fixture
def meter(provider):
    return provider.get_meter("tests", "1.0")


def value(provider, name, labels=None):
    return provider.registry.get_sample_value(name, labels or {})


def otlp_metrics(provider):
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    request = ExportMetricsServiceRequest.FromString(otlp.registry_request_bytes(provider.registry, {}))
    return {m.name: m for m in request.resource_metrics[0].scope_metrics[0].metrics}


def test_each_synchronous_instrument_records_and_exports(provider, meter):
    counter = meter.create_counter("shop.requests", unit="{request}", description="Requests")
    up_down = meter.create_up_down_counter("shop.active")
    gauge = meter.create_gauge("shop.temperature", unit="Cel")
    histogram = meter.create_histogram("shop.latency", unit="s")
    sized = meter.create_histogram("shop.size", explicit_bucket_boundaries_advisory=[10, 100])
    for _ in range(3):
        counter.add(2, {"route": "/cart"})
    counter.add(1, {"route": "/pay"})
    up_down.add(5, {"pool": "a"})
    up_down.add(-2, {"pool": "a"})
    gauge.set(21.5)
    for v in (0.25, 0.5, 4.0):
        histogram.record(v, {"route": "/cart"})
    sized.record(50, {"route": "/cart"})

    assert value(provider, "shop.requests_total", {"route": "/cart"}) == 6
    assert value(provider, "shop.requests_total", {"route": "/pay"}) == 1
    assert value(provider, "shop.active", {"pool": "a"}) == 3
    assert value(provider, "shop.temperature") == 21.5
    assert value(provider, "shop.latency_count", {"route": "/cart"}) == 3
    assert value(provider, "shop.latency_sum", {"route": "/cart"}) == 4.75
    assert value(provider, "shop.size_bucket", {"route": "/cart", "le": "100.0"}) == 1
    assert value(provider, "shop.size_bucket", {"route": "/cart", "le": "10.0"}) == 0
    assert (counter.name, counter.unit, counter.description) == ("shop.requests", "{request}", "Requests")

    text = provider.registry.generate_prometheus()
    assert "# TYPE shop_requests_total counter" in text and "# TYPE shop_size histogram" in text
    families = {f.name: f for f in parse_delimited(provider.registry.generate_protobuf())}
    latency = families["shop_latency"].metric[0].histogram  # the protobuf exposition escapes names
    assert latency.sample_count == 3 and latency.schema > 0  # a native (exponential) histogram

    exported = otlp_metrics(provider)  # OTLP keeps the instruments' names
    assert exported["shop.requests"].sum.is_monotonic
    assert sorted(p.as_double for p in exported["shop.requests"].sum.data_points) == [1, 6]
    assert exported["shop.latency"].exponential_histogram.data_points[0].count == 3
    assert exported["shop.temperature"].gauge.data_points[0].as_double == 21.5
    assert exported["shop.active"].sum.data_points[0].as_double == 3 and not exported["shop.active"].sum.is_monotonic
    [sized_point] = exported["shop.size"].histogram.data_points  # the advisory's bounds: explicit buckets
    assert list(sized_point.explicit_bounds) == [10, 100] and list(sized_point.bucket_counts) == [0, 1, 0]


def test_the_global_api_reaches_the_provider():
    script = textwrap.dedent("""
        from opentelemetry import metrics
        import pyveda.otel
        from pyveda.telemetry import REGISTRY
        metrics.set_meter_provider(pyveda.otel.MeterProvider())
        metrics.get_meter("app").create_counter("jobs.done").add(3, {"queue": "q1"})
        print(REGISTRY.get_sample_value("jobs.done_total", {"queue": "q1"}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "3.0"


def test_attributes_become_labels_by_the_documented_rules(provider, meter, caplog):
    counter = meter.create_counter("calls")
    counter.add(1, {"b": "x", "a": "y"})  # label names: the first measurement's keys, sorted
    counter.add(1, {"a": "y"})  # b left out: ""
    counter.add(1, {"a": True, "b": 3})
    counter.add(1, {"a": 1.5, "b": ["p", 2]})
    with caplog.at_level(logging.WARNING, logger="pyveda.otel"):
        counter.add(1, {"a": "y", "b": "x", "c": "new"})
        counter.add(1, {"a": "y", "b": "x", "d": "again"})  # warned once per instrument
    assert counter._metric.labelnames == ("a", "b")
    assert value(provider, "calls_total", {"a": "y", "b": "x"}) == 3
    assert value(provider, "calls_total", {"a": "y", "b": ""}) == 1
    assert value(provider, "calls_total", {"a": "true", "b": "3"}) == 1
    assert value(provider, "calls_total", {"a": "1.5", "b": '["p", 2]'}) == 1
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "records with the label names ['a', 'b']" in warnings[0] and "['c'] are left out" in warnings[0]


def test_bad_measurements_are_logged_and_dropped_never_raised(provider, meter, caplog):
    counter = meter.create_counter("drops")
    histogram = meter.create_histogram("sizes")
    up_down = meter.create_up_down_counter("level")
    with caplog.at_level(logging.WARNING, logger="pyveda.otel"):
        counter.add(1)
        counter.add(-1)
        counter.add(float("nan"))
        counter.add("3")
        histogram.record(-0.5)
        up_down.add(float("inf"))
        up_down.add(-4)
    assert value(provider, "drops_total") == 1
    assert value(provider, "sizes_count") is None or value(provider, "sizes_count") == 0
    assert value(provider, "level") == -4
    messages = [r.getMessage() for r in caplog.records]
    assert "Counter 'drops' dropped a measurement of -1 (a counter takes finite amounts >= 0)" in messages[0]
    assert "dropped a measurement of nan" in messages[1] and "dropped a measurement of '3'" in messages[2]
    assert "Histogram 'sizes' dropped a measurement of -0.5 (a histogram takes finite values >= 0)" in messages[3]
    assert "UpDownCounter 'level' dropped a measurement of inf" in messages[4]
    with pytest.raises(TypeError, match=r"unexpected or repeated keyword argument 'colour'"):
        counter.add(1, colour="red")
    with pytest.raises(TypeError, match=r"missing the amount"):
        counter.add(attributes={})


def test_bad_definitions_say_what_is_allowed(provider, meter, caplog):
    with pytest.raises(ValueError, match=r"instrument name '1st' is invalid: it must be a letter followed by up "
                                         r"to 254 letters, digits, '_', '.', '-' or '/'"):
        meter.create_counter("1st")
    with pytest.raises(ValueError, match=r"instrument 'x': unit must be an ASCII str of at most 63 characters"):
        meter.create_counter("x", unit="µs")
    with pytest.raises(ValueError, match=r"explicit_bucket_boundaries_advisory must be finite and strictly "
                                         r"increasing, got \[5, 1\]"):
        meter.create_histogram("h", explicit_bucket_boundaries_advisory=[5, 1])
    with pytest.raises(ValueError, match=r"must be a sequence of numbers, got 'abc'"):
        meter.create_histogram("h", explicit_bucket_boundaries_advisory="abc")
    with pytest.raises(TypeError, match=r"registry must be a pyveda.telemetry.CollectorRegistry, got dict"):
        pyveda.otel.MeterProvider(registry={})
    with pytest.raises(TypeError, match=r"callbacks must be callables or generators, got int"):
        meter.create_observable_gauge("g", callbacks=[3])

    first = meter.create_counter("Orders")
    assert provider.get_meter("other").create_counter("orders") is first  # names are case-insensitive
    with caplog.at_level(logging.WARNING, logger="pyveda.otel"):
        assert meter.create_counter("orders", description="different") is first
    assert "keeping the first" in caplog.records[-1].getMessage()
    with pytest.raises(ValueError, match=r"instrument 'orders' is already a Counter of this MeterProvider; "
                                         r"it cannot also be a Histogram"):
        meter.create_histogram("orders")


def test_observable_instruments_read_their_callbacks_at_each_collection(provider, meter, caplog):
    reads = []

    def cpu(options):
        reads.append(options)
        return [api.Observation(10 * len(reads), {"cpu": "0"}), api.Observation(5, {"cpu": 1})]

    def queue_depth():
        depth = 3
        while True:
            yield [api.Observation(depth, {"queue": "jobs"})]
            depth -= 1

    def broken(options):
        raise RuntimeError("sensor offline")

    meter.create_observable_counter("cpu.time", callbacks=[cpu])
    meter.create_observable_up_down_counter("queue.depth", callbacks=[queue_depth()])
    meter.create_observable_gauge("temperature", callbacks=[broken, lambda options: [api.Observation(7.5)]])

    def collect():  # one collection: every callback runs once
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in provider.registry.collect() for s in family.samples}

    with caplog.at_level(logging.ERROR, logger="pyveda.otel"):
        first = collect()
    assert first[("cpu.time_total", (("cpu", "0"),))] == 10
    assert first[("cpu.time_total", (("cpu", "1"),))] == 5
    assert first[("queue.depth", (("queue", "jobs"),))] == 3
    assert first[("temperature", ())] == 7.5  # the broken callback is logged; the other still ran
    assert "a callback of ObservableGauge 'temperature' raised" in caplog.records[0].getMessage()
    second = collect()
    assert second[("cpu.time_total", (("cpu", "0"),))] == 20  # a total: each read sets it
    assert second[("queue.depth", (("queue", "jobs"),))] == 2  # the generator was sent the options
    assert len(reads) == 2 and isinstance(reads[0], api.CallbackOptions)
    exported = otlp_metrics(provider)  # the OTLP export reads them too
    assert exported["queue.depth"].sum.data_points[0].as_double == 1  # an up-down counter: a Sum
    assert not exported["queue.depth"].sum.is_monotonic
    assert exported["cpu.time"].sum.is_monotonic
    assert sorted(p.as_double for p in exported["cpu.time"].sum.data_points) == [5, 30]


def test_an_observable_counter_that_goes_down_restarts(provider, meter):
    totals = iter([100, 150, 20])
    meter.create_observable_counter("bytes.sent", callbacks=[lambda options: [api.Observation(next(totals))]])
    assert [value(provider, "bytes.sent_total") for _ in range(3)] == [100, 150, 20]


def test_a_counter_add_inside_a_span_carries_its_exemplar(provider, meter):
    tracing = pytest.importorskip("pyveda.telemetry.tracing").TracingSystem()
    counter = meter.create_counter("traced")
    with tracing.span("work") as span:
        counter.add(1, {"k": "v"})
    assert f'trace_id="{span.trace_id}"' in provider.registry.generate_openmetrics()


def test_contrib_wsgi_metrics_land_in_the_registry(provider):
    requests = pytest.importorskip("requests")
    wsgi = pytest.importorskip("opentelemetry.instrumentation.wsgi")

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    quiet = type("Quiet", (wsgiref.simple_server.WSGIRequestHandler,), {"log_message": lambda *a: None})
    middleware = wsgi.OpenTelemetryMiddleware(app, meter_provider=provider)
    server = wsgiref.simple_server.make_server("127.0.0.1", 0, middleware, handler_class=quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        for _ in range(4):
            assert requests.get(f"http://127.0.0.1:{server.server_port}/hello", timeout=10).status_code == 200
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    samples = {s.name: s for family in provider.registry.collect() for s in family.samples}
    duration = [n for n in samples if n in ("http.server.duration_count", "http.server.request.duration_count")]
    assert duration, sorted(samples)
    assert samples[duration[0]].value == 4
    labels = samples[duration[0]].labels
    assert labels.get("http.method", labels.get("http.request.method")) == "GET"
    assert "http.server.active_requests" in samples
