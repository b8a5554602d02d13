"""What OpenTelemetry-API code records on PyVeda, as real OTLP receivers see it.

The producers are not ours: the contrib WSGI middleware and requests
instrumentation (spans and HTTP metrics) and plain API instruments, all on
pyveda.otel's TracerProvider and MeterProvider. The receivers are not ours
either: oteltap (an OTLP/HTTP protobuf receiver from PyPI) and a gRPC server
made of opentelemetry-proto's generated service stubs. Everything listens on
127.0.0.1 and is stopped before the test ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import wsgiref.simple_server

import pytest

INSTALL = "not installed: pip install -e .[test]"
trace = pytest.importorskip("opentelemetry.trace", reason=f"opentelemetry-api {INSTALL}")
from opentelemetry.metrics import Observation  # noqa: E402

import pyveda.otel  # noqa: E402
from pyveda.telemetry import CollectorRegistry, create_exporter  # noqa: E402
from servers import free_port  # noqa: E402

N = 5
SERVER, CLIENT = 2, 3  # opentelemetry.proto.trace.v1.Span.SpanKind


def need(module, what):
    return pytest.importorskip(module, reason=f"{what} {INSTALL}")


def attributes(key_values):
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in key_values}


def value(point):
    return getattr(point, point.WhichOneof("value"))


def hexid(number, width):
    return format(number, f"0{width}x")


@contextlib.contextmanager
def instrumented_server(tp, mp=None):
    """A wsgiref server on 127.0.0.1 behind OpenTelemetryMiddleware, with requests instrumented.

    Yields (base URL, the traceparent headers the app saw)."""
    wsgi = need("opentelemetry.instrumentation.wsgi", "opentelemetry-instrumentation-wsgi")
    instrumentation = need("opentelemetry.instrumentation.requests", "opentelemetry-instrumentation-requests")
    seen = []

    def app(environ, start_response):
        seen.append(environ.get("HTTP_TRACEPARENT"))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    quiet = type("Quiet", (wsgiref.simple_server.WSGIRequestHandler,), {"log_message": lambda *a: None})
    server = wsgiref.simple_server.make_server(
        "127.0.0.1", 0, wsgi.OpenTelemetryMiddleware(app, tracer_provider=tp, meter_provider=mp),
        handler_class=quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    instrumentor = instrumentation.RequestsInstrumentor()
    instrumentor.instrument(tracer_provider=tp)
    try:
        yield f"http://127.0.0.1:{server.server_port}", seen
    finally:
        instrumentor.uninstrument()
        server.shutdown()
        server.server_close()
        thread.join(10)


def api_instruments(mp):
    """A counter with attributes, an exponential and an explicit-bucket histogram, an observable gauge."""
    meter = mp.get_meter("shop", "1.0")
    orders = meter.create_counter("shop.orders", unit="{order}", description="Orders taken")
    orders.add(2, {"route": "/cart", "region": "eu"})
    orders.add(3, {"route": "/cart", "region": "eu"})
    orders.add(4, {"route": "/pay", "region": "us"})
    latency = meter.create_histogram("shop.latency", unit="s")
    for v in (0.1, 0.2, 0.4):
        latency.record(v)
    sizes = meter.create_histogram("shop.size", unit="By", explicit_bucket_boundaries_advisory=[10, 100, 1000])
    for v in (5, 50, 500, 5000):
        sizes.record(v)
    reading = {"value": 21.5}
    meter.create_observable_gauge(
        "shop.temperature", callbacks=[lambda options: [Observation(reading["value"], {"room": "a"})]])
    return reading


def assert_exponential(metric, values):
    """An ExponentialHistogram holding exactly ``values``, each in the bucket the OTLP spec puts it in."""
    assert metric.WhichOneof("data") == "exponential_histogram", metric
    [point] = metric.exponential_histogram.data_points
    assert point.count == len(values) and point.sum == pytest.approx(sum(values))
    assert point.min == min(values) and point.max == max(values)
    assert point.zero_count + sum(point.positive.bucket_counts) == len(values)
    # Bucket index i holds (base**i, base**(i+1)], base = 2**(2**-scale).
    expected = sorted(math.ceil(math.log2(v) * 2 ** point.scale) - 1 for v in values)
    got = [point.positive.offset + i for i, n in enumerate(point.positive.bucket_counts) for _ in range(n)]
    assert got == expected


def assert_orders(metric):
    assert metric.WhichOneof("data") == "sum" and metric.sum.is_monotonic
    assert metric.sum.aggregation_temporality == 2  # cumulative
    points = {tuple(sorted(attributes(p.attributes).items())): value(p) for p in metric.sum.data_points}
    assert points == {(("region", "eu"), ("route", "/cart")): 5, (("region", "us"), ("route", "/pay")): 4}


async def received_from_oteltap(port, send, spans_wanted, metrics_wanted, wait=10):
    """Runs oteltap on ``port``, calls ``send()`` in a thread; returns (send's result, spans, metrics).

    Waits up to ``wait`` seconds for the wanted counts, then returns what came."""
    oteltap = need("oteltap", "oteltap (an OTLP/HTTP receiver from PyPI)")
    settings = oteltap.OtelTapHttpProtobufReceiverSettings(http_port=port)
    async with oteltap.OtelTapHttpProtobufReceiver(settings) as receiver:
        spans, metrics = [], []

        async def take(stream, into, wanted):
            async for item in stream:
                into.append(item)
                if len(into) >= wanted:
                    return

        tasks = [asyncio.create_task(take(receiver.stream_traces(), spans, spans_wanted)),
                 asyncio.create_task(take(receiver.stream_metrics(), metrics, metrics_wanted))]
        await asyncio.sleep(0.1)  # both streams subscribed before anything is sent
        result = await asyncio.to_thread(send)
        try:
            await asyncio.wait_for(asyncio.gather(*tasks), wait)
        except asyncio.TimeoutError:
            pass  # the assertions say what is missing
        return result, spans, metrics


@pytest.fixture(scope="module")
def at_oteltap():
    """Five instrumented requests inside a client span, plus API instruments; one exporter sends both to oteltap."""
    requests = need("requests", "requests")
    tp = pyveda.otel.TracerProvider(service_name="receivers-test")
    mp = pyveda.otel.MeterProvider(registry=CollectorRegistry())
    with instrumented_server(tp, mp) as (url, _seen):
        with tp.get_tracer("t").start_as_current_span("client-batch") as batch:
            for i in range(N):
                response = requests.get(f"{url}/item?i={i}", timeout=10)
                assert response.status_code == 200 and response.text == "ok"
    reading = api_instruments(mp)
    port = free_port()
    exporter = create_exporter("otlp", endpoint=f"http://127.0.0.1:{port}", timeout=5)

    def send():
        return exporter.send(tp.tracing), exporter.send(mp.registry)

    results, spans, metrics = asyncio.run(received_from_oteltap(port, send, 1 + 2 * N, 6))
    return {"results": results, "spans": spans, "metrics": {m.name: m for m in metrics},
            "batch": batch.get_span_context(), "reading": reading["value"]}


def test_contrib_spans_and_api_metrics_reach_oteltap(at_oteltap):
    traces_result, metrics_result = at_oteltap["results"]
    assert traces_result.success and metrics_result.success, at_oteltap["results"]
    spans = at_oteltap["spans"]
    assert len(spans) == 1 + 2 * N, sorted((s.name, s.kind) for s in spans)
    [batch] = [s for s in spans if s.name == "client-batch"]
    context = at_oteltap["batch"]
    assert batch.trace_id.hex() == hexid(context.trace_id, 32) and batch.span_id.hex() == hexid(context.span_id, 16)
    assert batch.parent_span_id == b""
    clients = {s.span_id: s for s in spans if s.kind == CLIENT}
    servers = [s for s in spans if s.kind == SERVER]
    assert len(clients) == N and len(servers) == N
    for client in clients.values():
        assert client.parent_span_id == batch.span_id and client.trace_id == batch.trace_id
        attrs = attributes(client.attributes)
        assert attrs.get("http.request.method", attrs.get("http.method")) == "GET"
    assert {s.parent_span_id for s in servers} == set(clients)  # one server span under each client span
    targets = []
    for server in servers:
        assert server.trace_id == clients[server.parent_span_id].trace_id
        attrs = attributes(server.attributes)
        assert attrs.get("http.request.method", attrs.get("http.method")) == "GET"
        assert attrs.get("http.response.status_code", attrs.get("http.status_code")) == 200
        # Old (http.url) or new (url.path + url.query) names, whichever this contrib version sets.
        targets.append(attrs.get("http.url") or f"{attrs.get('url.path')}?{attrs.get('url.query')}")
    assert sorted(t.rsplit("/", 1)[1] for t in targets) == [f"item?i={i}" for i in range(N)]

    metrics = at_oteltap["metrics"]
    duration = metrics.get("http.server.duration") or metrics.get("http.server.request.duration")
    assert duration is not None, sorted(metrics)
    kind = duration.WhichOneof("data")
    assert kind in ("histogram", "exponential_histogram")
    assert sum(p.count for p in getattr(duration, kind).data_points) == N
    active = metrics["http.server.active_requests"]
    active_points = getattr(active, active.WhichOneof("data")).data_points
    assert [value(p) for p in active_points] == [0]  # every request has ended
    assert_orders(metrics["shop.orders"])
    assert_exponential(metrics["shop.latency"], [0.1, 0.2, 0.4])
    sizes = metrics["shop.size"]  # its kind: see test_an_advisory_bucket_histogram_arrives_as_an_explicit_histogram
    [point] = getattr(sizes, sizes.WhichOneof("data")).data_points
    assert point.count == 4 and point.sum == 5555
    temperature = metrics["shop.temperature"]
    assert temperature.WhichOneof("data") == "gauge"
    [point] = temperature.gauge.data_points
    assert value(point) == at_oteltap["reading"] and attributes(point.attributes) == {"room": "a"}


def test_an_advisory_bucket_histogram_arrives_as_an_explicit_histogram(at_oteltap):
    sizes = at_oteltap["metrics"]["shop.size"]
    assert sizes.WhichOneof("data") == "histogram", sizes.WhichOneof("data")
    [point] = sizes.histogram.data_points
    assert list(point.explicit_bounds) == [10, 100, 1000] and list(point.bucket_counts) == [1, 1, 1, 1]
    assert point.count == 4 and point.sum == 5555


def test_an_up_down_counter_arrives_as_a_non_monotonic_sum(at_oteltap):
    active = at_oteltap["metrics"]["http.server.active_requests"]
    assert active.WhichOneof("data") == "sum", active.WhichOneof("data")
    assert not active.sum.is_monotonic and active.sum.aggregation_temporality == 2


@contextlib.contextmanager
def grpc_receiver():
    need("grpc", "grpcio")
    from test_otlp_grpc import OK, Receiver  # the stub-built receiver of the gRPC transport tests
    from pyveda.telemetry import grpc_transport

    receiver = Receiver([OK])
    try:
        yield receiver
    finally:
        receiver.close()
        grpc_transport.close_channels()


def sent_spans(receiver):
    requests = [request for signal, request, _metadata in receiver.calls if signal == "traces"]
    return requests, [s for r in requests for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]


def test_the_same_over_grpc():
    tp = pyveda.otel.TracerProvider(service_name="receivers-test")
    mp = pyveda.otel.MeterProvider(registry=CollectorRegistry())
    tracer = tp.get_tracer("t")
    with tracer.start_as_current_span("checkout", kind=trace.SpanKind.SERVER) as outer:
        with tracer.start_as_current_span("charge", attributes={"amount": 12, "card": "visa"}) as inner:
            pass
    api_instruments(mp)
    with grpc_receiver() as receiver:
        exporter = create_exporter("otlp", endpoint=receiver.endpoint, protocol="grpc", timeout=5)
        assert exporter.send(tp.tracing).success and exporter.send(mp.registry).success
    assert [signal for signal, _r, _m in receiver.calls] == ["traces", "metrics"]
    _requests, spans = sent_spans(receiver)
    spans = {s.name: s for s in spans}
    assert sorted(spans) == ["charge", "checkout"]
    for name, api_span in (("checkout", outer), ("charge", inner)):
        context = api_span.get_span_context()
        assert spans[name].trace_id.hex() == hexid(context.trace_id, 32)
        assert spans[name].span_id.hex() == hexid(context.span_id, 16)
    assert spans["charge"].parent_span_id == spans["checkout"].span_id and spans["checkout"].parent_span_id == b""
    assert spans["checkout"].kind == SERVER
    assert attributes(spans["charge"].attributes) == {"amount": 12, "card": "visa"}
    metrics_request = receiver.calls[1][1]
    metrics = {m.name: m for rm in metrics_request.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert_orders(metrics["shop.orders"])
    assert_exponential(metrics["shop.latency"], [0.1, 0.2, 0.4])
    assert value(metrics["shop.temperature"].gauge.data_points[0]) == 21.5


def test_one_trace_across_the_hop_in_one_export():
    requests = need("requests", "requests")
    tp = pyveda.otel.TracerProvider(service_name="receivers-test")
    with instrumented_server(tp) as (url, seen):
        assert requests.get(f"{url}/hop", timeout=10).status_code == 200
    with grpc_receiver() as receiver:
        result = create_exporter("otlp", endpoint=receiver.endpoint, protocol="grpc", timeout=5).send(tp.tracing)
    assert result.success and result.attempts == 1
    export_requests, spans = sent_spans(receiver)
    assert len(export_requests) == 1  # one send, one ExportTraceServiceRequest, both sides of the hop in it
    [client] = [s for s in spans if s.kind == CLIENT]
    [server] = [s for s in spans if s.kind == SERVER]
    assert len(spans) == 2
    assert server.trace_id == client.trace_id and server.parent_span_id == client.span_id
    # The link came from the traceparent header the request carried.
    assert seen == [f"00-{client.trace_id.hex()}-{client.span_id.hex()}-01"]
    resource = attributes(export_requests[0].resource_spans[0].resource.attributes)
    assert resource["service.name"] == "receivers-test"
