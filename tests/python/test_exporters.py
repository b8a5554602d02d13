"""Exporters: OTLP encoding checked against the official classes and the OTel SDK,
OTLP/HTTP transport against a real receiver (oteltap) and a scripted local server,
environment configuration, bad input, and the background pusher."""

import asyncio
import gzip
import json
import http.server
import os
import socket
import threading
import time
import warnings

import pytest

import pyveda as veda
from pyveda.telemetry import create_exporter
from pyveda.telemetry.exporters import ExportResult, OTLPExporter

pb_metrics = pytest.importorskip("opentelemetry.proto.collector.metrics.v1.metrics_service_pb2")
json_format = pytest.importorskip("google.protobuf.json_format")

OTEL_VARS = [
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    *(
        f"OTEL_EXPORTER_OTLP_{sig}{name}"
        for sig in ("", "TRACES_", "METRICS_")
        for name in ("ENDPOINT", "HEADERS", "TIMEOUT", "COMPRESSION", "PROTOCOL")
    ),
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in OTEL_VARS:
        monkeypatch.delenv(name, raising=False)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def square(x):
    time.sleep(0.001 * (x % 3))
    return x * x


@pytest.fixture(scope="module")
def snapshot():
    """A live snapshot of a runtime that ran 200 tasks (with the latency buckets)."""
    runtime = veda.Runtime(veda.Config.builder().threads(2).telemetry(True).build())
    try:
        for f in [runtime.spawn(square, i) for i in range(200)]:
            f.result(timeout=30)
        runtime.shutdown()
        yield runtime.telemetry.snapshot()
    finally:
        runtime.shutdown(wait=False)


def encoded(item):
    """The protobuf request ``create_exporter('otlp')`` makes for ``item``, decoded."""
    raw = create_exporter("otlp").export(item, encoding="protobuf")
    return pb_metrics.ExportMetricsServiceRequest.FromString(raw)


def by_name(request):
    return {m.name: m for m in request.resource_metrics[0].scope_metrics[0].metrics}


# --- encoding -------------------------------------------------------------------


def test_json_dict_and_protobuf_bytes_are_the_same_request(snapshot):
    exporter = create_exporter("otlp", endpoint="http://localhost:4318")
    data = exporter.export(snapshot)
    raw = exporter.export(snapshot, encoding="protobuf")
    assert isinstance(data, dict) and isinstance(raw, bytes)
    from_bytes = pb_metrics.ExportMetricsServiceRequest.FromString(raw)
    from_json = json_format.ParseDict(data, pb_metrics.ExportMetricsServiceRequest())
    assert from_bytes == from_json
    assert json.loads(json.dumps(data)) == data  # the guide posts it with json=
    assert create_exporter("otlp", encoding="protobuf").export(snapshot) == raw

    # OTLP/JSON conventions (specs §6): integer enums, 64-bit ints as strings.
    metrics = {m["name"]: m for m in data["resourceMetrics"][0]["scopeMetrics"][0]["metrics"]}
    executed = metrics["pyveda.tasks.executed"]["sum"]
    assert executed["aggregationTemporality"] == 2 and executed["isMonotonic"] is True
    point = executed["dataPoints"][0]
    assert point["asInt"] == "200"
    assert point["startTimeUnixNano"] == str(snapshot.start_unix_nano)
    assert point["timeUnixNano"] == str(round(snapshot.timestamp * 1e9))
    scope = data["resourceMetrics"][0]["scopeMetrics"][0]["scope"]
    assert scope == {"name": "pyveda", "version": veda.__version__}


def test_metric_kinds_and_values(snapshot):
    metrics = by_name(encoded(snapshot))
    kinds = {name: m.WhichOneof("data") for name, m in metrics.items()}
    assert kinds == {
        "pyveda.tasks.executed": "sum",
        "pyveda.tasks.failed": "sum",
        "pyveda.tasks.pending": "gauge",
        "pyveda.tasks.running": "gauge",
        "pyveda.throughput": "gauge",
        "pyveda.cpu.utilization": "gauge",
        "pyveda.memory.used": "gauge",
        "pyveda.process.rss": "gauge",
        "pyveda.task.latency.summary": "summary",
        "pyveda.task.latency": "exponential_histogram",
    }  # no GPU telemetry in this runtime: no GPU gauges
    assert metrics["pyveda.tasks.failed"].sum.data_points[0].as_int == 0
    assert metrics["pyveda.process.rss"].gauge.data_points[0].as_double == snapshot.process_rss_mb
    summary = metrics["pyveda.task.latency.summary"].summary.data_points[0]
    assert summary.count == 200 and summary.sum == pytest.approx(snapshot.latency_sum_ms)
    assert [(q.quantile, q.value) for q in summary.quantile_values] == [
        (0.5, snapshot.p50_latency_ms),
        (0.9, snapshot.p90_latency_ms),
        (0.95, snapshot.p95_latency_ms),
        (0.99, snapshot.p99_latency_ms),
    ]


def test_exponential_histogram_reproduces_the_core_buckets(snapshot):
    core = snapshot.latency_histogram
    assert core is not None and core.count == 200
    request = encoded(snapshot)
    exp = by_name(request)["pyveda.task.latency"].exponential_histogram
    assert exp.aggregation_temporality == 2
    point = exp.data_points[0]
    assert point.scale == core.scale and point.zero_count == core.zero_count
    assert point.count == core.count and point.sum == core.sum
    assert point.min == core.min and point.max == core.max
    assert point.start_time_unix_nano == core.start_unix_nano
    exported = {point.positive.offset + i: c for i, c in enumerate(point.positive.bucket_counts) if c}
    expected = {core.offset + i: c for i, c in enumerate(core.counts) if c}
    assert exported == expected
    assert point.zero_count + sum(point.positive.bucket_counts) == point.count


def test_history_snapshots_carry_no_buckets_and_start_time_is_constant():
    runtime = veda.Runtime(veda.Config.builder().threads(1).telemetry(True).collect_interval(0.05).build())
    try:
        runtime.spawn(square, 3).result(timeout=10)
        telemetry = runtime.telemetry
        telemetry.start()
        deadline = time.monotonic() + 5
        while len(telemetry.get_snapshots()) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        telemetry.stop()
        history = telemetry.get_snapshots()
        assert len(history) >= 2 and all(s.latency_histogram is None for s in history)
        exporter = create_exporter("otlp")
        starts = set()
        for s in [*history, telemetry.snapshot()]:
            metrics = {m["name"]: m for m in exporter.export(s)["resourceMetrics"][0]["scopeMetrics"][0]["metrics"]}
            starts.add(metrics["pyveda.tasks.executed"]["sum"]["dataPoints"][0]["startTimeUnixNano"])
            assert ("pyveda.task.latency" in metrics) == (s.latency_histogram is not None)
        assert len(starts) == 1
    finally:
        runtime.shutdown(wait=False)


def test_matches_what_the_opentelemetry_sdk_produces(snapshot):
    encoder = pytest.importorskip("opentelemetry.exporter.otlp.proto.common.metrics_encoder")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("pyveda", veda.__version__)
    meter.create_counter("pyveda.tasks.executed", unit="{task}").add(snapshot.tasks_executed)
    meter.create_counter("pyveda.tasks.failed", unit="{task}").add(snapshot.tasks_failed)
    meter.create_gauge("pyveda.tasks.pending", unit="{task}").set(snapshot.tasks_pending)
    meter.create_gauge("pyveda.tasks.running", unit="{task}").set(snapshot.tasks_running)
    meter.create_gauge("pyveda.cpu.utilization", unit="%").set(snapshot.cpu_utilization_percent)
    meter.create_gauge("pyveda.process.rss", unit="MiBy").set(snapshot.process_rss_mb)
    sdk = by_name(encoder.encode_metrics(reader.get_metrics_data()))
    ours = by_name(encoded(snapshot))

    assert set(sdk) <= set(ours)
    for name, expected in sdk.items():
        got = ours[name]
        kind = expected.WhichOneof("data")
        assert got.WhichOneof("data") == kind, name
        assert got.unit == expected.unit, name
        e_point, g_point = getattr(expected, kind).data_points[0], getattr(got, kind).data_points[0]
        if kind == "sum":
            assert got.sum.aggregation_temporality == expected.sum.aggregation_temporality == 2
            assert got.sum.is_monotonic and expected.sum.is_monotonic
        assert g_point.WhichOneof("value") == e_point.WhichOneof("value"), name
        assert getattr(g_point, g_point.WhichOneof("value")) == getattr(e_point, e_point.WhichOneof("value")), name


def test_resource_from_the_environment(snapshot, monkeypatch):
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=ignored,deployment.environment=prod,team=a%2Cb%3Dc")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "etl")
    request = encoded(snapshot)
    attrs = {a.key: a.value.string_value for a in request.resource_metrics[0].resource.attributes}
    assert attrs["service.name"] == "etl"
    assert attrs["deployment.environment"] == "prod"
    assert attrs["team"] == "a,b=c"
    assert attrs["telemetry.sdk.name"] == "pyveda" and attrs["telemetry.sdk.language"] == "python"
    assert attrs["telemetry.sdk.version"] == veda.__version__
    exporter = create_exporter("otlp", resource_attributes={"service.name": "mine"})
    assert exporter.resource["service.name"] == "mine"  # user-supplied wins

    monkeypatch.delenv("OTEL_SERVICE_NAME")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "team=ok,bad=%zz")
    with pytest.warns(RuntimeWarning, match="ignoring OTEL_RESOURCE_ATTRIBUTES: invalid percent-encoding"):
        exporter = create_exporter("otlp")
    assert "team" not in exporter.resource and exporter.resource["service.name"] == "pyveda"


def test_a_bad_resource_value_is_refused_by_the_exporter_with_the_span_attribute_message(snapshot):
    message = r"^attribute 'owner': value must be str, bool, int, float or a list of one of them, got NoneType \(None\)$"
    with pytest.raises(TypeError, match=message):
        create_exporter("otlp", resource_attributes={"service.name": "svc", "owner": None})
    with pytest.raises(TypeError, match=r"^attribute 'ids': list items must all have one type, got int and str$"):
        OTLPExporter(resource_attributes={"ids": [1, "a"]})
    exporter = create_exporter("otlp", resource_attributes={"ids": (1, 2)})  # converted as for spans, not str()'d
    assert exporter.resource["ids"] == [1, 2]
    request = pb_metrics.ExportMetricsServiceRequest.FromString(exporter.export(snapshot, encoding="protobuf"))
    (ids,) = [a.value for a in request.resource_metrics[0].resource.attributes if a.key == "ids"]
    assert [v.int_value for v in ids.array_value.values] == [1, 2]


def test_other_exporters(snapshot):
    assert create_exporter("prometheus").export(snapshot) == snapshot.export_prometheus()
    assert create_exporter("json").export(snapshot) == snapshot.export_json()
    try:
        import pyveda.telemetry.tracing as tracing
    except ImportError:
        with pytest.raises(RuntimeError, match=r"needs pyveda.telemetry.tracing"):
            create_exporter("jaeger")
    else:
        system = tracing.TracingSystem()
        with system.span("work"):
            pass
        assert create_exporter("jaeger").export(system) == system.export_jaeger()


# --- bad input ------------------------------------------------------------------


def test_unknown_exporter_name():
    with pytest.raises(ValueError, match=r"unknown exporter 'zipkin'; valid exporters: jaeger, json, otlp, prometheus"):
        create_exporter("zipkin")


@pytest.mark.parametrize(
    "endpoint, message",
    [
        ("localhost:4318", r"'localhost:4318' is not an absolute URL"),
        ("//localhost:4318", r"is not an absolute URL"),
        ("http://", r"is not an absolute URL"),
        ("ftp://collector:4318", r"unsupported scheme 'ftp'"),
        ("http://:4318", r"has no host"),
        ("http://collector:port", r"bad port"),
    ],
)
def test_malformed_endpoint(endpoint, message):
    with pytest.raises(ValueError, match=message):
        create_exporter("otlp", endpoint=endpoint)


def test_malformed_endpoint_from_env(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "collector/v1/metrics")
    message = r"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'collector/v1/metrics' is not an absolute URL"
    with pytest.raises(ValueError, match=message):
        create_exporter("otlp")


def test_headers_that_do_not_parse(monkeypatch):
    with pytest.raises(ValueError, match=r"headers: 'api-key' is not key=value"):
        create_exporter("otlp", headers="a=1,api-key")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "=x")
    with pytest.raises(ValueError, match=r"OTEL_EXPORTER_OTLP_HEADERS: empty key in '=x'"):
        create_exporter("otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "k=%E2%28")
    with pytest.raises(ValueError, match=r"invalid UTF-8"):
        create_exporter("otlp")


def test_bad_timeout_and_compression_env_warn_and_default(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2.5s")
    message = r"OTEL_EXPORTER_OTLP_TIMEOUT='2.5s' is not a non-negative integer of milliseconds; using 10000"
    with pytest.warns(RuntimeWarning, match=message):
        exporter = create_exporter("otlp")
    assert exporter.metrics.timeout == 10.0
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "-5")
    with pytest.warns(RuntimeWarning, match="using 10000"):
        assert create_exporter("otlp").metrics.timeout == 10.0
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TIMEOUT")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "brotli")
    message = r"OTEL_EXPORTER_OTLP_METRICS_COMPRESSION='brotli' is not 'gzip' or 'none'; sending uncompressed"
    with pytest.warns(RuntimeWarning, match=message):
        exporter = create_exporter("otlp")
    assert exporter.metrics.compression is None
    with pytest.raises(ValueError, match=r"compression must be 'gzip' or 'none', got 'zstd'"):
        create_exporter("otlp", compression="zstd")
    with pytest.raises(ValueError, match=r"timeout must be a number of seconds >= 0"):
        create_exporter("otlp", timeout=-1)


def test_environment_precedence(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/base/")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2500")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "700")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "none")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "a=1,b=2")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "b=3")
    exporter = create_exporter("otlp")
    assert exporter.metrics.url == "http://c:4318/base/v1/metrics"
    assert exporter.traces.url == "http://c:4318/base/v1/traces"
    assert (exporter.metrics.timeout, exporter.traces.timeout) == (0.7, 2.5)
    assert (exporter.metrics.compression, exporter.traces.compression) == ("gzip", None)
    assert exporter.metrics.headers == {"a": "1", "b": "3"} and exporter.traces.headers == {"a": "1", "b": "2"}
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m:9/custom")
    exporter = create_exporter("otlp")
    assert exporter.traces.url == "http://c:4318/"  # as-is: nothing appended
    assert exporter.metrics.url == "http://m:9/custom"
    assert create_exporter("otlp", endpoint="http://x:1").metrics.url == "http://x:1/v1/metrics"  # argument wins


# --- a real OTLP/HTTP receiver ------------------------------------------------------


def test_send_to_a_real_otlp_receiver(snapshot):
    oteltap = pytest.importorskip(
        "oteltap", reason="oteltap (OTLP/HTTP receiver from PyPI) not installed: pip install -e .[test]"
    )
    port = free_port()
    exporter = create_exporter("otlp", endpoint=f"http://127.0.0.1:{port}", timeout=5)
    try:
        import pyveda.telemetry.tracing as tracing
    except ImportError:
        tracing = None

    async def main():
        settings = oteltap.OtelTapHttpProtobufReceiverSettings(http_port=port)
        async with oteltap.OtelTapHttpProtobufReceiver(settings) as receiver:
            metrics, spans = [], []

            async def collect(stream, into, n):
                async for item in stream:
                    into.append(item)
                    if len(into) >= n:
                        return

            tasks = [asyncio.create_task(collect(receiver.stream_metrics(), metrics, 10))]
            system = None
            if tracing is not None:
                system = tracing.TracingSystem()
                with system.span("parent"):
                    with system.span("child"):
                        pass
                tasks.append(asyncio.create_task(collect(receiver.stream_traces(), spans, 2)))
            await asyncio.sleep(0.05)
            result = await asyncio.to_thread(exporter.send, snapshot)
            trace_result = await asyncio.to_thread(exporter.send, system) if system is not None else None
            await asyncio.wait_for(asyncio.gather(*tasks), 5)
            return result, trace_result, metrics, spans

    result, trace_result, metrics, spans = asyncio.run(main())
    assert result.success and result.status_code == 200 and result.attempts == 1
    received = {m.name: m for m in metrics}
    assert received["pyveda.tasks.executed"].sum.data_points[0].as_int == 200
    assert received["pyveda.tasks.executed"].sum.is_monotonic
    assert received["pyveda.task.latency"].exponential_histogram.data_points[0].count == 200
    assert received["pyveda.task.latency.summary"].summary.data_points[0].count == 200
    assert (trace_result is None) == (tracing is None)
    if trace_result is not None:
        assert trace_result.success
        assert sorted(s.name for s in spans) == ["child", "parent"]


def test_send_a_list_of_spans_to_a_real_otlp_receiver():
    oteltap = pytest.importorskip(
        "oteltap", reason="oteltap (OTLP/HTTP receiver from PyPI) not installed: pip install -e .[test]"
    )
    tracing = pytest.importorskip("pyveda.telemetry.tracing")
    port = free_port()
    exporter = create_exporter("otlp", endpoint=f"http://127.0.0.1:{port}", timeout=5)
    system = tracing.TracingSystem()
    with system.span("not-sent"):
        pass
    with system.span("parent", attributes={"batch": 7}) as parent:
        with system.span("child") as child:
            pass

    async def main():
        settings = oteltap.OtelTapHttpProtobufReceiverSettings(http_port=port)
        async with oteltap.OtelTapHttpProtobufReceiver(settings) as receiver:
            spans = []

            async def collect():
                async for item in receiver.stream_traces():
                    spans.append(item)
                    if len(spans) >= 2:
                        return

            task = asyncio.create_task(collect())
            await asyncio.sleep(0.05)
            result = await asyncio.to_thread(exporter.send, [child, parent])  # kept from the with blocks
            await asyncio.wait_for(task, 5)
            return result, spans

    result, spans = asyncio.run(main())
    assert result == ExportResult(True, 200, 1)
    received = {s.name: s for s in spans}
    assert sorted(received) == ["child", "parent"]  # only the listed spans, not the whole system
    assert received["parent"].trace_id.hex() == parent.trace_id == child.trace_id
    assert received["child"].parent_span_id.hex() == parent.span_id
    assert received["child"].span_id.hex() == child.span_id
    assert {a.key: a.value.int_value for a in received["parent"].attributes} == {"batch": 7}
    assert received["parent"].end_time_unix_nano == parent.end_time


# --- a scripted local server: retries, failures, gzip, headers, partial success -------


class Scripted(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, responses):
        self.responses = list(responses)  # (status, headers, body); the last repeats
        self.requests = []
        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.server_address[1]}"

    def close(self):
        self.shutdown()
        self.server_close()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.requests.append((self.path, dict(self.headers), body))
        responses = self.server.responses
        status, headers, reply = responses.pop(0) if len(responses) > 1 else responses[0]
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    servers = []

    def make(*responses):
        s = Scripted(responses)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def decode(body):
    return pb_metrics.ExportMetricsServiceRequest.FromString(body)


def test_retries_503_then_succeeds(server, snapshot):
    srv = server((503, {"Retry-After": "0"}, b""), (200, {"Content-Type": "application/x-protobuf"}, b""))
    result = create_exporter("otlp", endpoint=srv.endpoint, timeout=5).send(snapshot)
    assert result == ExportResult(True, 200, 2)
    assert len(srv.requests) == 2
    path, headers, body = srv.requests[1]
    assert path == "/v1/metrics"
    assert headers["Content-Type"] == "application/x-protobuf"
    assert headers["User-Agent"] == f"PyVeda/{veda.__version__}"
    assert by_name(decode(body))["pyveda.tasks.executed"].sum.data_points[0].as_int == 200


def test_retry_after_seconds_or_http_date():
    import email.utils

    from pyveda.telemetry.transport import _retry_after

    assert _retry_after("0") == 0.0 and _retry_after(" 120 ") == 120.0
    assert _retry_after(email.utils.formatdate(time.time() - 60, usegmt=True)) == 0.0
    assert 25 < _retry_after(email.utils.formatdate(time.time() + 30, usegmt=True)) <= 30
    assert _retry_after("soon") is None and _retry_after(None) is None


def test_400_is_not_retried(server, snapshot):
    srv = server((400, {}, b"bad data"))
    result = create_exporter("otlp", endpoint=srv.endpoint, timeout=5).send(snapshot)
    assert not result and result.status_code == 400 and result.attempts == 1
    assert result.error == "HTTP 400: bad data"
    assert len(srv.requests) == 1


def test_down_receiver_returns_within_the_timeout(snapshot):
    exporter = create_exporter("otlp", endpoint=f"http://127.0.0.1:{free_port()}", timeout=1.5)
    start = time.monotonic()
    result = exporter.send(snapshot)
    elapsed = time.monotonic() - start
    assert not result.success and result.status_code is None and result.attempts >= 1
    assert "ConnectionRefusedError" in result.error
    assert elapsed < 1.5 + 0.5


def test_silent_receiver_returns_within_the_timeout(snapshot):
    with socket.socket() as listener:  # accepts connections (backlog) and never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        exporter = create_exporter("otlp", endpoint=f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=0.8)
        start = time.monotonic()
        result = exporter.send(snapshot)
        elapsed = time.monotonic() - start
    assert not result.success and result.status_code is None
    assert "timed out" in result.error
    assert elapsed < 0.8 + 0.3


def test_retries_stop_at_the_timeout(server, snapshot):
    srv = server((503, {"Retry-After": "5"}, b""))
    start = time.monotonic()
    result = create_exporter("otlp", endpoint=srv.endpoint, timeout=1).send(snapshot)
    assert time.monotonic() - start < 1.5
    assert not result and result.status_code == 503 and result.attempts == 1
    assert "next retry would pass the timeout" in result.error


def test_gzip_and_headers_from_env(server, snapshot, monkeypatch):
    srv = server((200, {}, b""))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "api-key=s%3Dcret,x-team=data")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "gzip")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.endpoint + "/otlp")
    result = create_exporter("otlp").send(snapshot)
    assert result.success
    path, headers, body = srv.requests[0]
    assert path == "/otlp/v1/metrics"
    assert headers["Content-Encoding"] == "gzip"
    assert headers["api-key"] == "s=cret" and headers["x-team"] == "data"
    assert by_name(decode(gzip.decompress(body)))["pyveda.tasks.executed"].sum.data_points[0].as_int == 200


def test_partial_success_is_parsed(server, snapshot):
    response = pb_metrics.ExportMetricsServiceResponse()
    response.partial_success.rejected_data_points = 3
    response.partial_success.error_message = "3 points too old"
    srv = server((200, {"Content-Type": "application/x-protobuf"}, response.SerializeToString()))
    with pytest.warns(RuntimeWarning, match="3 rejected: 3 points too old"):
        result = create_exporter("otlp", endpoint=srv.endpoint, timeout=5).send(snapshot)
    assert result.success and result.rejected == 3 and result.error_message == "3 points too old"
    assert len(srv.requests) == 1  # never retried


# --- background pushing ---------------------------------------------------------


def test_background_export_and_bounded_queue(server, snapshot):
    srv = server((200, {}, b""))
    runtime = veda.Runtime(veda.Config.builder().threads(1).telemetry(True).build())
    try:
        exporter = create_exporter("otlp", endpoint=srv.endpoint, timeout=5, max_queue_size=2)
        assert isinstance(exporter, OTLPExporter)
        for _ in range(5):  # nobody drains yet: the queue keeps the newest 2
            exporter.submit(snapshot)
        assert exporter.dropped == 3
        exporter.start(0.05, runtime.telemetry)
        deadline = time.monotonic() + 5
        while len(srv.requests) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        exporter.shutdown()
        sent = len(srv.requests)
        assert sent >= 4  # the 2 queued, then snapshots taken by the thread, then the final one
        assert exporter.last_result.success
        time.sleep(0.15)
        assert len(srv.requests) == sent  # stopped
    finally:
        runtime.shutdown(wait=False)


def test_gpu_readings_become_per_device_gauges(snapshot):
    from pyveda.telemetry import GpuSample, MetricsSnapshot

    def device(index, util, used):
        return GpuSample(
            index, f"H100-{index}", f"GPU-{index}", util, None, used, None, 81559.0, None, 40.0, None, None, None, None
        )

    fields = ("timestamp", "start_unix_nano", "tasks_executed", "tasks_failed", "tasks_pending", "tasks_running",
              "throughput_tasks_per_sec", "cpu_utilization_percent", "memory_used_mb", "process_rss_mb",
              "latency_count", "latency_sum_ms", "p50_latency_ms", "p95_latency_ms", "p99_latency_ms")
    # A snapshot built by hand (no latency buckets), as from_json() or a user would.
    given = dict({f: getattr(snapshot, f) for f in fields}, gpu_utilization_percent=75.0, gpu_memory_used_mb=3072.0)
    fake = MetricsSnapshot(**given, gpus=[device(0, 75.0, 1024.0), device(1, None, 2048.0)])
    metrics = by_name(encoded(fake))
    util = metrics["pyveda.gpu.utilization"].gauge.data_points
    assert [(p.as_double, {a.key: a.value for a in p.attributes}["gpu"].int_value) for p in util] == [(75.0, 0)]
    used = metrics["pyveda.gpu.memory.used"].gauge.data_points
    assert sorted(p.as_double for p in used) == [1024.0, 2048.0]
    assert "pyveda.gpu.power" not in metrics  # no device reported it: no series, never 0

    aggregate_only = MetricsSnapshot(**given, gpus=[])  # GPU figures without per-device samples
    metrics = by_name(encoded(aggregate_only))
    assert [p.as_double for p in metrics["pyveda.gpu.utilization"].gauge.data_points] == [75.0]
    assert [p.as_double for p in metrics["pyveda.gpu.memory.used"].gauge.data_points] == [3072.0]
    assert "pyveda.gpu.memory.total" not in metrics
    assert "pyveda.task.latency" not in metrics and "pyveda.task.latency.summary" in metrics


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_background_thread_restarts_in_a_forked_child(server, snapshot):
    srv = server((200, {}, b""))
    exporter = create_exporter("otlp", endpoint=srv.endpoint, timeout=2)
    exporter.start(60, lambda: snapshot)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
            pid = os.fork()
        if pid == 0:  # child: the parent's thread is gone, a fresh one runs
            code = 0 if exporter.running else 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        exporter.shutdown(timeout=2)
    assert len(srv.requests) == 1  # the parent's final flush


def test_traces_go_to_v1_traces_and_empty_ones_are_not_sent(server):
    tracing = pytest.importorskip("pyveda.telemetry.tracing")
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    srv = server((200, {}, b""))
    exporter = create_exporter("otlp", endpoint=srv.endpoint, timeout=5)
    system = tracing.TracingSystem()
    assert exporter.send(system) == ExportResult(True) and srv.requests == []
    with system.span("load", attributes={"batch": 1}):
        pass
    assert exporter.export(system) == system.export_otlp()
    result = exporter.send(system)
    assert result == ExportResult(True, 200, 1)
    path, headers, body = srv.requests[0]
    assert path == "/v1/traces" and headers["Content-Type"] == "application/x-protobuf"
    spans = ExportTraceServiceRequest.FromString(body).resource_spans[0].scope_spans[0].spans
    assert [s.name for s in spans] == ["load"]


# --- lists of spans -------------------------------------------------------------------


def traces_request(body):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    return ExportTraceServiceRequest.FromString(body)


def parse_otlp_json(body, message):
    """``json_format.Parse`` of an OTLP/JSON body: OTLP/JSON writes trace and span ids as hex
    (specs §6) where the proto3 JSON mapping expects base64, so those are converted first."""
    import base64

    def fix(node):
        if isinstance(node, dict):
            return {
                k: base64.b64encode(bytes.fromhex(v)).decode() if k in ("traceId", "spanId", "parentSpanId") else fix(v)
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [fix(v) for v in node]
        return node

    return json_format.ParseDict(fix(json.loads(body)), message)


def test_send_a_list_or_tuple_of_spans_uses_the_exporter_resource(server):
    tracing = pytest.importorskip("pyveda.telemetry.tracing")
    srv = server((200, {}, b""))
    exporter = create_exporter("otlp", endpoint=srv.endpoint, timeout=5, resource_attributes={"service.name": "svc"})
    system = tracing.TracingSystem()
    with system.span("load") as load:
        pass
    with system.span("save") as save:
        pass
    spans = system.get_spans()
    assert [s.name for s in spans] == ["load", "save"]

    assert exporter.send(spans) == ExportResult(True, 200, 1)
    assert exporter.send((save,)) == ExportResult(True, 200, 1)
    assert [path for path, _, _ in srv.requests] == ["/v1/traces", "/v1/traces"]
    first = traces_request(srv.requests[0][2])
    assert [s.name for s in first.resource_spans[0].scope_spans[0].spans] == ["load", "save"]
    resource = {a.key: a.value.string_value for a in first.resource_spans[0].resource.attributes}
    assert resource["service.name"] == "svc"  # the exporter's resource, not the tracing system's
    second = traces_request(srv.requests[1][2])
    assert [s.span_id.hex() for s in second.resource_spans[0].scope_spans[0].spans] == [save.span_id]
    assert srv.requests[1][1]["Content-Type"] == "application/x-protobuf"

    # export() takes the list too and gives the same request encode_spans does
    assert exporter.export([load, save]) == tracing.encode_spans([load, save], exporter.resource, "json")
    assert traces_request(exporter.export([load, save], encoding="protobuf")) == first


def test_an_empty_span_list_sends_nothing(server):
    srv = server((200, {}, b""))
    exporter = create_exporter("otlp", endpoint=srv.endpoint, timeout=5)
    assert exporter.send([]) == ExportResult(True)
    assert exporter.send(()) == ExportResult(True)
    assert create_exporter("otlp", endpoint=srv.endpoint, protocol="http/json").send([]) == ExportResult(True)
    assert srv.requests == []


def test_bad_span_lists_raise_the_encode_spans_error(server):
    tracing = pytest.importorskip("pyveda.telemetry.tracing")
    srv = server((200, {}, b""))
    exporter = create_exporter("otlp", endpoint=srv.endpoint, timeout=5)
    system = tracing.TracingSystem()
    with system.span("done") as done:
        pass
    live = system.span("live")
    with live:
        for protocol in ("http/protobuf", "http/json"):
            exporter = create_exporter("otlp", endpoint=srv.endpoint, timeout=5, protocol=protocol)
            with pytest.raises(TypeError, match=r"^spans\[1\] must be a pyveda Span, got dict$") as raised:
                exporter.send([done, {"name": "x"}])
            with pytest.raises(TypeError) as expected:
                tracing.encode_spans([done, {"name": "x"}])
            assert str(raised.value) == str(expected.value)
            message = r"^spans\[1\] \('live'\) has not ended; only finished spans can be exported$"
            with pytest.raises(ValueError, match=message):
                exporter.send((done, live))
            with pytest.raises(ValueError, match=message):
                exporter.export([done, live])
            with pytest.raises(TypeError, match=r"spans\[0\] must be a pyveda Span, got str"):
                exporter.export(["done"], encoding="protobuf")
    message = r"send\(\) takes a MetricsSnapshot, a CollectorRegistry, a TracingSystem or a list of Spans, got generator"
    with pytest.raises(TypeError, match=message):
        exporter.send(s for s in [done])
    with pytest.raises(TypeError, match=r"got str"):
        exporter.send("load")
    assert srv.requests == []  # nothing was sent for any of them


# --- OTEL_EXPORTER_OTLP_PROTOCOL / protocol= ---------------------------------------------


def test_http_json_from_the_environment_posts_otlp_json(server, snapshot, monkeypatch):
    tracing = pytest.importorskip("pyveda.telemetry.tracing")
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    srv = server((200, {}, b""))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    exporter = create_exporter("otlp", endpoint=srv.endpoint, timeout=5)
    assert (exporter.metrics.protocol, exporter.traces.protocol) == ("http/json", "http/json")
    system = tracing.TracingSystem()
    with system.span("parent", attributes={"rows": 3, "ratio": float("nan")}) as parent:
        with system.span("child"):
            pass
    assert exporter.send(snapshot) == ExportResult(True, 200, 1)
    assert exporter.send(system.get_spans()) == ExportResult(True, 200, 1)
    assert exporter.send(system) == ExportResult(True, 200, 1)

    (m_path, m_headers, m_body), (t_path, t_headers, t_body), (s_path, s_headers, s_body) = srv.requests
    assert (m_path, t_path, s_path) == ("/v1/metrics", "/v1/traces", "/v1/traces")
    assert m_headers["Content-Type"] == t_headers["Content-Type"] == s_headers["Content-Type"] == "application/json"
    assert b'", "' not in m_body and b'": ' not in m_body  # compact separators
    metrics = json_format.Parse(m_body, pb_metrics.ExportMetricsServiceRequest())
    assert metrics == decode(exporter.export(snapshot, encoding="protobuf"))
    assert by_name(metrics)["pyveda.tasks.executed"].sum.data_points[0].as_int == 200
    for body in (t_body, s_body):
        request = parse_otlp_json(body, ExportTraceServiceRequest())
        spans = {s.name: s for s in request.resource_spans[0].scope_spans[0].spans}
        assert sorted(spans) == ["child", "parent"]
        assert spans["child"].parent_span_id.hex() == parent.span_id
        attrs = {a.key: a.value for a in spans["parent"].attributes}
        assert attrs["rows"].int_value == 3 and attrs["ratio"].double_value != attrs["ratio"].double_value  # NaN
    assert parse_otlp_json(t_body, ExportTraceServiceRequest()) == traces_request(
        exporter.export(system.get_spans(), encoding="protobuf")
    )


def test_protocol_argument_beats_the_environment_and_gzip_still_applies(server, snapshot, monkeypatch):
    tracing = pytest.importorskip("pyveda.telemetry.tracing")
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    srv = server((200, {}, b""))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    exporter = create_exporter("otlp", endpoint=srv.endpoint, timeout=5, protocol="http/protobuf")
    assert exporter.send(snapshot).success
    path, headers, body = srv.requests[-1]
    assert headers["Content-Type"] == "application/x-protobuf"
    assert by_name(decode(body))["pyveda.tasks.executed"].sum.data_points[0].as_int == 200

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    exporter = OTLPExporter(srv.endpoint, timeout=5, protocol="http/json", compression="gzip")
    system = tracing.TracingSystem()
    with system.span("zipped") as span:
        pass
    assert exporter.send([span]).success
    path, headers, body = srv.requests[-1]
    assert path == "/v1/traces" and headers["Content-Type"] == "application/json"
    assert headers["Content-Encoding"] == "gzip"
    request = parse_otlp_json(gzip.decompress(body), ExportTraceServiceRequest())
    assert [(s.name, s.span_id.hex()) for s in request.resource_spans[0].scope_spans[0].spans] == [
        ("zipped", span.span_id)
    ]


def test_per_signal_protocol_beats_the_generic_one(server, snapshot, monkeypatch):
    srv = server((200, {}, b""))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
    exporter = create_exporter("otlp", endpoint=srv.endpoint, timeout=5)
    assert (exporter.metrics.protocol, exporter.traces.protocol) == ("http/json", "http/protobuf")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/json")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
    exporter = create_exporter("otlp", endpoint=srv.endpoint, timeout=5)
    assert (exporter.metrics.protocol, exporter.traces.protocol) == ("http/json", "http/protobuf")
    assert exporter.send(snapshot).success
    assert srv.requests[0][1]["Content-Type"] == "application/json"
    parsed = json_format.Parse(srv.requests[0][2], pb_metrics.ExportMetricsServiceRequest())
    assert by_name(parsed)["pyveda.tasks.executed"].sum.data_points[0].as_int == 200
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_PROTOCOL")
    exporter = create_exporter("otlp")
    assert (exporter.metrics.protocol, exporter.traces.protocol) == ("http/protobuf", "http/protobuf")  # default


ALLOWED = r"supported values: 'http/protobuf' \(the default\), 'http/json', 'grpc'"


def test_grpc_and_unknown_protocols_are_a_value_error(monkeypatch):
    # 'grpc' is a protocol now (tests/python/test_otlp_grpc.py); without grpcio it is an ImportError.
    import importlib.util

    if importlib.util.find_spec("grpc") is None:
        with pytest.raises(ImportError, match=r"pip install pyveda\[grpc\]$"):
            create_exporter("otlp", protocol="grpc")
    else:
        grpc_exporter = create_exporter("otlp", protocol="grpc")
        assert (grpc_exporter.traces.protocol, grpc_exporter.traces.url) == ("grpc", "http://localhost:4317")
    with pytest.raises(ValueError, match=r"^protocol: 'json' is not a supported OTLP protocol; " + ALLOWED + "$"):
        OTLPExporter(protocol="json")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc/json")
    with pytest.raises(ValueError, match=r"^OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc/json' is not a supported OTLP "
                       r"protocol; " + ALLOWED + "$"):
        create_exporter("otlp")
    assert create_exporter("otlp", protocol="http/json").metrics.protocol == "http/json"  # the argument wins
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/thrift")
    message = r"^OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/thrift' is not a supported OTLP protocol; " + ALLOWED + "$"
    with pytest.raises(ValueError, match=message):
        create_exporter("otlp")


def test_json_replies_partial_success_errors_and_retries(server, snapshot):
    tracing = pytest.importorskip("pyveda.telemetry.tracing")
    system = tracing.TracingSystem()
    with system.span("a"):
        pass
    json_type = {"Content-Type": "application/json"}
    partial = json.dumps({"partialSuccess": {"rejectedSpans": "2", "errorMessage": "2 spans too old"}}).encode()
    srv = server((503, {"Retry-After": "0", **json_type}, b'{"code":14,"message":"busy"}'), (200, json_type, partial))
    exporter = create_exporter("otlp", endpoint=srv.endpoint, timeout=5, protocol="http/json")
    with pytest.warns(RuntimeWarning, match="traces partial success: 2 rejected: 2 spans too old"):
        result = exporter.send(system.get_spans())
    assert result == ExportResult(True, 200, 2, 2, "2 spans too old")
    assert [h["Content-Type"] for _, h, _ in srv.requests] == ["application/json"] * 2
    assert srv.requests[0][2] == srv.requests[1][2]

    # a JSON reply without a Content-Type is read as JSON because the request was; int64 as a number too
    partial = json.dumps({"partialSuccess": {"rejectedDataPoints": 3, "errorMessage": "3 points too old"}}).encode()
    srv = server((200, {}, partial))
    exporter = create_exporter("otlp", endpoint=srv.endpoint, timeout=5, protocol="http/json")
    with pytest.warns(RuntimeWarning, match="metrics partial success: 3 rejected: 3 points too old"):
        result = exporter.send(snapshot)
    assert result.success and result.rejected == 3 and result.error_message == "3 points too old"

    srv = server((400, json_type, b'{"code":3,"message":"invalid trace id"}'))
    result = create_exporter("otlp", endpoint=srv.endpoint, timeout=5, protocol="http/json").send(system)
    assert not result and result.status_code == 400 and result.attempts == 1
    assert result.error == "HTTP 400: invalid trace id"

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an empty JSON object is a plain success: no warning
        srv = server((200, json_type, b"{}"))
        assert create_exporter("otlp", endpoint=srv.endpoint, timeout=5, protocol="http/json").send(system) == (
            ExportResult(True, 200, 1)
        )


# --- the pusher: each span once, bounded shutdown and send, flush at exit ----------------


def span_ids(requests):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    ids = []
    for path, _, body in requests:
        assert path == "/v1/traces"
        request = ExportTraceServiceRequest.FromString(body)
        ids += [s.span_id.hex() for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    return ids


def test_started_exporter_sends_each_finished_span_once(server):
    from pyveda.telemetry import TracingSystem

    srv = server((200, {}, b""))
    tracing = TracingSystem()
    with tracing.span("before-start"):
        pass
    exporter = create_exporter("otlp", endpoint=srv.endpoint, timeout=5)
    exporter.start(0.05, tracing)
    try:
        made = []
        for i in range(15):
            with tracing.span(f"s{i}") as span:
                made.append(span.span_id)
            time.sleep(0.02)
        deadline = time.monotonic() + 10
        while len(span_ids(srv.requests)) < 16 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # a few more intervals: nothing is sent again
    finally:
        assert exporter.shutdown(timeout=5)
    ids = span_ids(srv.requests)
    assert len(ids) == len(set(ids)) == 16  # 15 + the one finished before start(), no copies
    assert set(made) <= set(ids)
    assert len(tracing.get_spans()) == 16  # the store stays readable


def test_span_exporter_shutdown_sends_the_spans_of_the_last_interval(server):
    from pyveda.telemetry import TracingSystem

    srv = server((200, {}, b""))
    tracing = TracingSystem()
    exporter = create_exporter("otlp", endpoint=srv.endpoint, timeout=5)
    exporter.start(3600, tracing)
    for i in range(3):
        with tracing.span(f"late{i}"):
            pass
    assert exporter.shutdown(timeout=5)
    assert len(span_ids(srv.requests)) == 3
    assert not exporter.running


class Trickle:
    """A TCP server that answers every request with a valid reply, one byte every ``gap`` seconds."""

    def __init__(self, gap=0.2):
        self.gap = gap
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self):
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn):
        reply = b"HTTP/1.1 200 OK\r\nContent-Length: 400\r\n\r\n" + b"x" * 400
        with conn:
            conn.settimeout(0.5)
            try:
                conn.recv(65536)
                for i in range(len(reply)):
                    if self.stop.is_set():
                        return
                    conn.sendall(reply[i : i + 1])
                    time.sleep(self.gap)
            except OSError:
                return

    def close(self):
        self.stop.set()
        self.sock.close()


def test_send_timeout_is_a_deadline_for_the_whole_send(snapshot):
    trickle = Trickle(gap=0.2)  # the whole reply would take 90 s; each byte comes well within 1 s
    try:
        exporter = create_exporter("otlp", endpoint=trickle.endpoint, timeout=1)
        began = time.monotonic()
        result = exporter.send(snapshot)
        took = time.monotonic() - began
    finally:
        trickle.close()
    assert not result.success
    assert "timed out after 1 s" in result.error
    assert took < 5  # about 1 s; without the deadline it would take 90 s


def test_shutdown_returns_within_its_timeout_while_a_send_hangs(snapshot):
    trickle = Trickle(gap=0.3)
    try:
        exporter = create_exporter("otlp", endpoint=trickle.endpoint, timeout=60)
        exporter.start(0.05, lambda: snapshot)
        time.sleep(0.3)  # the first send is under way, stuck on the trickle
        began = time.monotonic()
        done = exporter.shutdown(timeout=1)
        took = time.monotonic() - began
    finally:
        trickle.close()
    assert done is False  # the send had not finished: said so, not waited for
    assert took < 3
    deadline = time.monotonic() + 5  # the send in flight is cut off, not left to run for 60 s
    while exporter.last_result is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert exporter.last_result is not None and "cancelled" in exporter.last_result.error


def test_bad_flush_and_shutdown_timeouts_are_refused():
    exporter = create_exporter("otlp")
    with pytest.raises(ValueError, match=r"timeout must be a number of seconds >= 0 or None, got -1"):
        exporter.shutdown(timeout=-1)
    with pytest.raises(ValueError, match=r"timeout must be a number of seconds >= 0 or None, got 'x'"):
        exporter.force_flush(timeout="x")
    with pytest.raises(ValueError, match=r"exit_timeout must be a number of seconds >= 0, got -2"):
        create_exporter("otlp", exit_timeout=-2)


def test_started_exporter_flushes_at_interpreter_exit(server, tmp_path):
    import subprocess
    import sys

    srv = server((200, {}, b""))
    script = tmp_path / "exits.py"
    script.write_text(
        "from pyveda.telemetry import TracingSystem, create_exporter\n"
        "tracing = TracingSystem()\n"
        f"exporter = create_exporter('otlp', endpoint={srv.endpoint!r}, timeout=5)\n"
        "exporter.start(3600, tracing)\n"
        "for i in range(4):\n"
        "    with tracing.span(f'work{i}'):\n"
        "        pass\n"
        "# no shutdown(): the exit flush sends the four spans\n"
    )
    out = subprocess.run([sys.executable, str(script)], check=True, timeout=60, capture_output=True, text=True)
    assert len(span_ids(srv.requests)) == 4
    assert "leaked" not in out.stderr  # the exit flush lets go of the tracing system


def test_import_pyveda_does_not_load_http_tls_or_the_exporters():
    import subprocess
    import sys

    code = (
        "import sys, pyveda\n"
        "heavy = ['http.client', 'ssl', 'email.utils', 'pyveda.telemetry.exporters', 'pyveda.telemetry.http']\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
        "from pyveda.telemetry import OTLPExporter, Counter, start_http_server\n"
        "print('pyveda.telemetry.http' in sys.modules, 'pyveda.telemetry.exporters' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60)
    loaded, after = out.stdout.splitlines()
    assert loaded == ""
    assert after == "True True"  # loaded on first use of their names
    import pyveda.telemetry as telemetry

    with pytest.raises(AttributeError, match="has no attribute 'NoSuchThing'"):
        telemetry.NoSuchThing
    assert set(telemetry.__all__) <= set(dir(telemetry))


def test_a_gzip_reply_is_inflated_within_a_bound():
    from pyveda.telemetry.transport import MAX_RESPONSE_BYTES, _gunzip

    small = gzip.compress(b'{"partialSuccess": {}}')
    assert _gunzip(small, MAX_RESPONSE_BYTES) == b'{"partialSuccess": {}}'
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024))  # ~64 KiB on the wire, 64 MiB inflated
    assert len(bomb) < 128 * 1024
    assert _gunzip(bomb, MAX_RESPONSE_BYTES) == b""  # refused at the bound, not inflated whole
    assert _gunzip(b"not gzip", MAX_RESPONSE_BYTES) == b""
    assert _gunzip(small[:-4], MAX_RESPONSE_BYTES) == b""  # cut short


def test_a_gzip_bomb_reply_still_counts_as_success(server, snapshot):
    bomb = gzip.compress(b"\0" * (32 * 1024 * 1024))
    srv = server((200, {"Content-Encoding": "gzip", "Content-Type": "application/x-protobuf"}, bomb))
    result = create_exporter("otlp", endpoint=srv.endpoint, timeout=5).send(snapshot)
    assert result == ExportResult(True, 200, 1)


def test_after_a_shutdown_that_gave_up_sends_are_refused_until_start(snapshot, server):
    trickle = Trickle(gap=0.3)
    try:
        exporter = create_exporter("otlp", endpoint=trickle.endpoint, timeout=60)
        exporter.start(0.05, lambda: snapshot)
        time.sleep(0.3)
        assert exporter.shutdown(timeout=0.5) is False
    finally:
        trickle.close()
    result = exporter.send(snapshot)
    assert not result.success and result.error == "cancelled before the first attempt"
    srv = server((200, {}, b""))
    exporter.metrics = exporter.metrics._replace(url=srv.endpoint + "/v1/metrics")
    exporter.start(3600)  # a new start clears it
    assert exporter.send(snapshot) == ExportResult(True, 200, 1)
    assert exporter.shutdown(timeout=5)


# --- user registries over OTLP (encoded in the core) ------------------------------------------


def test_a_user_registry_exports_as_sums_gauges_and_exponential_histograms():
    from google.protobuf import json_format

    from pyveda.telemetry import CollectorRegistry, Counter, Gauge, Histogram

    registry = CollectorRegistry()
    requests = Counter("http_requests_total", "Requests served", ["method", "code"], registry=registry)
    requests.labels("GET", "200").inc(3)
    requests.labels(method="POST", code="500").inc()
    temperature = Gauge("room_temperature", "Degrees", registry=registry)
    temperature.set(-4.5)
    latency = Histogram("op_seconds", "Op time", ["op"], registry=registry, scale=3)
    for v in (0.0, 0.001, 0.25, 0.5, 2.0, 2.0, 30.0):
        latency.labels("read").observe(v)
    Counter("never_used", "Labelled, no series yet", ["x"], registry=registry)

    before = time.time_ns()
    request = encoded(registry)
    after = time.time_ns()
    resource = {kv.key: kv.value.string_value for kv in request.resource_metrics[0].resource.attributes}
    assert resource["service.name"] == "pyveda" and resource["telemetry.sdk.language"] == "python"
    scope = request.resource_metrics[0].scope_metrics[0].scope
    assert (scope.name, scope.version) == ("pyveda", veda.__version__)
    metrics = by_name(request)
    assert list(metrics) == ["http_requests", "room_temperature", "op_seconds"]  # families without series left out

    total = metrics["http_requests"]
    assert (total.description, total.unit) == ("Requests served", "")
    assert total.WhichOneof("data") == "sum"
    assert total.sum.is_monotonic and total.sum.aggregation_temporality == 2  # CUMULATIVE
    points = {tuple((a.key, a.value.string_value) for a in p.attributes): p for p in total.sum.data_points}
    get = points[(("method", "GET"), ("code", "200"))]
    assert get.as_double == 3.0 and before <= get.time_unix_nano <= after
    assert 0 < get.start_time_unix_nano <= get.time_unix_nano
    assert points[(("method", "POST"), ("code", "500"))].as_double == 1.0

    gauge = metrics["room_temperature"].gauge.data_points
    assert len(gauge) == 1 and gauge[0].as_double == -4.5 and not gauge[0].attributes

    [point] = metrics["op_seconds"].exponential_histogram.data_points
    assert metrics["op_seconds"].exponential_histogram.aggregation_temporality == 2
    core = latency.labels("read").snapshot()
    assert [(a.key, a.value.string_value) for a in point.attributes] == [("op", "read")]
    assert (point.count, point.sum, point.scale, point.zero_count) == (7, pytest.approx(34.751), 3, 1)
    assert (point.min, point.max) == (0.0, 30.0)
    # Bucket for bucket: the core's counts with the empty ends trimmed, at the same indexes.
    first = next(i for i, c in enumerate(core.counts) if c)
    last = max(i for i, c in enumerate(core.counts) if c)
    assert point.positive.offset == core.offset + first
    assert list(point.positive.bucket_counts) == list(core.counts[first:last + 1])
    assert sum(point.positive.bucket_counts) + point.zero_count == point.count

    # OTLP/JSON is the same message.
    as_json = create_exporter("otlp").export(registry, encoding="json")
    again = json_format.ParseDict(as_json, pb_metrics.ExportMetricsServiceRequest())
    assert [m.name for m in again.resource_metrics[0].scope_metrics[0].metrics] == list(metrics)
    assert as_json["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["sum"]["aggregationTemporality"] == 2


def test_the_default_registry_carries_the_runtime_families_with_catalogue_names():
    from pyveda import _core
    from pyveda.telemetry import REGISTRY

    runtime = veda.Runtime(veda.Config.builder().threads(2).telemetry(True).build())  # the newest owns pyveda_*
    try:
        for f in [runtime.spawn(int, i) for i in range(200)]:
            f.result()
        metrics = by_name(encoded(REGISTRY))
    finally:
        runtime.shutdown()
    units = {otlp_name: unit for _n, _h, unit, _k, otlp_name in _core.RUNTIME_METRICS}
    for name in ("pyveda.tasks.executed", "pyveda.task.latency", "pyveda.task.queue_wait", "pyveda.tasks.pending"):
        assert name in metrics, sorted(metrics)
        assert metrics[name].unit == units[name]
    # Task counts are whole numbers in every OTLP export, snapshot or registry.
    assert metrics["pyveda.tasks.executed"].sum.data_points[0].WhichOneof("value") == "as_int"
    assert metrics["pyveda.tasks.executed"].sum.data_points[0].as_int >= 200
    assert metrics["pyveda.task.latency"].WhichOneof("data") == "exponential_histogram"
    summary = metrics["pyveda.task.latency.summary"].summary.data_points[0]
    assert [q.quantile for q in summary.quantile_values] == list(_core.SUMMARY_QUANTILES)
    assert summary.count == metrics["pyveda.task.latency"].exponential_histogram.data_points[0].count >= 200


def test_send_posts_a_registry_to_v1_metrics(server):
    from pyveda.telemetry import CollectorRegistry, Counter

    registry = CollectorRegistry()
    srv = server((200, {"Content-Type": "application/x-protobuf"}, b""))
    exporter = create_exporter("otlp", endpoint=srv.endpoint, timeout=5)
    assert exporter.send(registry) == ExportResult(True)  # empty: nothing sent
    assert srv.requests == []
    Counter("jobs_total", "Jobs", registry=registry).inc(2)
    assert exporter.send(registry) == ExportResult(True, 200, 1)
    path, _headers, body = srv.requests[0]
    assert path == "/v1/metrics"
    assert by_name(decode(body))["jobs"].sum.data_points[0].as_double == 2.0


def test_export_names_the_types_it_takes():
    with pytest.raises(TypeError, match=r"^export\(\) takes a MetricsSnapshot, a CollectorRegistry, a TracingSystem "
                       r"or a list of Spans, got int$"):
        create_exporter("otlp").export(3)
    with pytest.raises(TypeError, match=r"^send\(\) takes a MetricsSnapshot, a CollectorRegistry"):
        create_exporter("otlp").send(3)


def test_start_pushes_a_registry_every_interval(server):
    from pyveda.telemetry import CollectorRegistry, Counter

    registry = CollectorRegistry()
    jobs = Counter("jobs_total", "Jobs", registry=registry)
    jobs.inc()
    srv = server(*[(200, {"Content-Type": "application/x-protobuf"}, b"")] * 20)
    exporter = create_exporter("otlp", endpoint=srv.endpoint, timeout=5)
    exporter.start(0.1, registry)
    try:
        deadline = time.monotonic() + 10
        while len(srv.requests) < 2:
            assert time.monotonic() < deadline, "no pushes"
            time.sleep(0.02)
        jobs.inc(4)
    finally:
        assert exporter.shutdown(timeout=5)
    values = [by_name(decode(body))["jobs"].sum.data_points[0].as_double for _p, _h, body in srv.requests]
    assert values[0] == 1.0 and values[-1] == 5.0  # the last push (at shutdown) saw the later increment
    with pytest.raises(TypeError, match=r"^source must be a TelemetrySystem, a TracingSystem, a CollectorRegistry "
                       r"or a callable, got int$"):
        exporter.start(1.0, 7)


def test_snapshot_encoding_takes_only_snapshots():
    from pyveda.telemetry import otlp

    with pytest.raises(TypeError, match="expected a pyveda MetricsSnapshot, got SimpleNamespace"):
        otlp.metrics_request_bytes(__import__("types").SimpleNamespace(tasks_executed=1))
