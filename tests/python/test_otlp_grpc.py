"""OTLP/gRPC transport (protocol='grpc', the `grpc` extra) against a real gRPC OTLP receiver.

The receiver is built here from opentelemetry-proto's service stubs and
served by grpc.server on 127.0.0.1; each test scripts its replies (OK, a
status code, a status with RetryInfo, a partial success, or no answer).
"""

import datetime
import os
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest

grpc = pytest.importorskip("grpc", reason="grpcio (the `grpc` extra) not installed: pip install -e .[test]")
trace_grpc = pytest.importorskip("opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc")
metrics_grpc = pytest.importorskip("opentelemetry.proto.collector.metrics.v1.metrics_service_pb2_grpc")
from google.protobuf import duration_pb2  # noqa: E402
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as pb_metrics  # noqa: E402
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as pb_trace  # noqa: E402

import pyveda as veda  # noqa: E402
from pyveda.telemetry import create_exporter  # noqa: E402
from pyveda.telemetry.exporters import ExportResult, OTLPExporter  # noqa: E402
from pyveda.telemetry.otlp_options import OTLPOptions  # noqa: E402

tracing = pytest.importorskip("pyveda.telemetry.tracing")
from pyveda.telemetry import grpc_transport  # noqa: E402
from pyveda.telemetry import transport  # noqa: E402

OTEL_VARS = [
    f"OTEL_EXPORTER_OTLP_{sig}{name}"
    for sig in ("", "TRACES_", "METRICS_")
    for name in ("ENDPOINT", "HEADERS", "TIMEOUT", "COMPRESSION", "PROTOCOL", "INSECURE")
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in OTEL_VARS:
        monkeypatch.delenv(name, raising=False)


# --- a scripted OTLP/gRPC receiver -------------------------------------------------------

OK = "ok"
HANG = "hang"


def status_details(code, message, retry_delay_s=None):
    """A serialized google.rpc.Status (for grpc-status-details-bin), with a RetryInfo when a delay is given.

    Written field by field (googleapis-common-protos is not a dependency):
    Status{1: code, 2: message, 3: Any{1: type_url, 2: RetryInfo{1: Duration}}}.
    """

    def varint(n):
        out = b""
        while True:
            byte, n = n & 0x7F, n >> 7
            out += bytes([byte | (0x80 if n else 0)])
            if not n:
                return out

    def field(number, data):
        return varint(number << 3 | 2) + varint(len(data)) + data

    status = varint(1 << 3) + varint(code.value[0]) + field(2, message.encode())
    if retry_delay_s is not None:
        duration = duration_pb2.Duration()
        duration.FromTimedelta(datetime.timedelta(seconds=retry_delay_s))
        retry_info = field(1, duration.SerializeToString())
        status += field(3, field(1, b"type.googleapis.com/google.rpc.RetryInfo") + field(2, retry_info))
    return status


class Receiver:
    """Records each Export call (decoded request, metadata) and answers with the next scripted reply.

    A reply is OK, a response message (a partial success), HANG (no answer
    until the test ends), or (StatusCode, details[, RetryInfo delay]). The
    last one repeats.
    """

    def __init__(self, replies):
        self.replies = list(replies) or [OK]
        self.calls = []  # (signal, request, metadata dict)
        self.release = threading.Event()
        self.server = grpc.server(ThreadPoolExecutor(max_workers=8))
        receiver = self

        class Traces(trace_grpc.TraceServiceServicer):
            def Export(self, request, context):
                return receiver.answer("traces", request, context, pb_trace.ExportTraceServiceResponse)

        class Metrics(metrics_grpc.MetricsServiceServicer):
            def Export(self, request, context):
                return receiver.answer("metrics", request, context, pb_metrics.ExportMetricsServiceResponse)

        trace_grpc.add_TraceServiceServicer_to_server(Traces(), self.server)
        metrics_grpc.add_MetricsServiceServicer_to_server(Metrics(), self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def answer(self, signal, request, context, response_type):
        self.calls.append((signal, request, dict(context.invocation_metadata())))
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if reply is OK:
            return response_type()
        if reply is HANG:
            self.release.wait(30)
            return response_type()
        if not isinstance(reply, tuple):
            return reply  # a response message
        code, details, *delay = reply
        if delay:
            context.set_trailing_metadata((("grpc-status-details-bin", status_details(code, details, delay[0])),))
        context.abort(code, details)

    def close(self):
        self.release.set()
        self.server.stop(grace=0.5).wait(5)


@pytest.fixture
def receiver():
    receivers = []

    def make(*replies):
        r = Receiver(replies)
        receivers.append(r)
        return r

    yield make
    for r in receivers:
        r.close()
    grpc_transport.close_channels()


@pytest.fixture
def fast_backoff(monkeypatch):
    """Back-off factors made small (the 1, 2, 4 s doubling is kept); records each jitter call."""
    calls = []

    def uniform(low, high):
        calls.append((low, high))
        return 0.02

    monkeypatch.setattr(transport.random, "uniform", uniform)  # the back-off both transports share
    return calls


@pytest.fixture(scope="module")
def snapshot():
    runtime = veda.Runtime(veda.Config.builder().threads(2).telemetry(True).build())
    try:
        for f in [runtime.spawn(int, i) for i in range(100)]:
            f.result(timeout=30)
        runtime.shutdown()
        yield runtime.telemetry.snapshot()
    finally:
        runtime.shutdown(wait=False)


def two_spans():
    system = tracing.TracingSystem()
    with system.span("parent", attributes={"batch": 7}) as parent:
        with system.span("child") as child:
            pass
    return system, parent, child


def grpc_exporter(endpoint, **options):
    options.setdefault("timeout", 5)
    return create_exporter("otlp", endpoint=endpoint, protocol="grpc", **options)


def spans_of(request):
    return {s.name: s for s in request.resource_spans[0].scope_spans[0].spans}


def metrics_of(request):
    return {m.name: m for m in request.resource_metrics[0].scope_metrics[0].metrics}


# --- what arrives -----------------------------------------------------------------------


def test_spans_arrive_decoded_with_their_ids(receiver):
    srv = receiver(OK)
    system, parent, child = two_spans()
    result = grpc_exporter(srv.endpoint).send(system)
    assert result == ExportResult(True, 0, 1)
    [(signal, request, _metadata)] = srv.calls
    assert signal == "traces"
    spans = spans_of(request)
    assert sorted(spans) == ["child", "parent"]
    assert spans["parent"].trace_id.hex() == parent.trace_id == child.trace_id
    assert spans["parent"].span_id.hex() == parent.span_id
    assert spans["child"].span_id.hex() == child.span_id
    assert spans["child"].parent_span_id.hex() == parent.span_id
    assert spans["parent"].parent_span_id == b""
    assert {a.key: a.value.int_value for a in spans["parent"].attributes} == {"batch": 7}
    assert spans["parent"].end_time_unix_nano == parent.end_time
    resource = {a.key: a.value.string_value for a in request.resource_spans[0].resource.attributes}
    assert resource["service.name"] == "pyveda"


def test_a_span_list_snapshot_and_registry_arrive(receiver, snapshot):
    from pyveda.telemetry import CollectorRegistry, Counter

    srv = receiver(OK)
    exporter = grpc_exporter(srv.endpoint)
    _system, parent, child = two_spans()
    assert exporter.send([child]) == ExportResult(True, 0, 1)
    assert exporter.send(snapshot) == ExportResult(True, 0, 1)
    registry = CollectorRegistry()
    assert exporter.send(registry) == ExportResult(True)  # empty: nothing sent
    Counter("jobs_total", "Jobs", ["queue"], registry=registry).labels("fast").inc(3)
    assert exporter.send(registry) == ExportResult(True, 0, 1)
    assert [signal for signal, _r, _m in srv.calls] == ["traces", "metrics", "metrics"]

    assert list(spans_of(srv.calls[0][1])) == ["child"]
    assert spans_of(srv.calls[0][1])["child"].parent_span_id.hex() == parent.span_id
    metrics = metrics_of(srv.calls[1][1])
    assert metrics["pyveda.tasks.executed"].sum.data_points[0].as_int == snapshot.tasks_executed == 100
    assert metrics["pyveda.task.latency.summary"].summary.data_points[0].count == 100
    [point] = metrics_of(srv.calls[2][1])["jobs"].sum.data_points
    assert point.as_double == 3.0
    assert [(a.key, a.value.string_value) for a in point.attributes] == [("queue", "fast")]


def test_headers_arrive_as_lowercase_metadata_and_gzip_works(receiver):
    srv = receiver(OK)
    system, _parent, _child = two_spans()
    exporter = grpc_exporter(srv.endpoint, headers={"X-Tenant": "acme", "Authorization": "Bearer t0k"},
                             compression="gzip")
    assert exporter.traces.compression == "gzip"
    assert exporter.send(system) == ExportResult(True, 0, 1)
    _signal, request, metadata = srv.calls[0]
    assert metadata["x-tenant"] == "acme" and metadata["authorization"] == "Bearer t0k"
    assert metadata["user-agent"].startswith(f"PyVeda/{veda.__version__} ")
    assert sorted(spans_of(request)) == ["child", "parent"]  # the gzip body was inflated by the server


def test_headers_and_compression_from_the_environment(receiver, monkeypatch):
    srv = receiver(OK)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "Api-Key=s%20cret")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    system, _parent, _child = two_spans()
    assert grpc_exporter(srv.endpoint).send(system).success
    assert srv.calls[0][2]["api-key"] == "s cret"


def test_channels_are_reused_and_reopened_after_close(receiver):
    srv = receiver(OK)
    system, _parent, _child = two_spans()
    exporter = grpc_exporter(srv.endpoint)
    assert exporter.send(system).success and exporter.send(system).success
    target = f"127.0.0.1:{srv.port}"
    assert list(grpc_transport._channels) == [(target, False)]
    grpc_transport.close_channels()
    assert grpc_transport._channels == {}
    assert exporter.send(system).success  # a new channel
    assert len(srv.calls) == 3


def test_a_forked_child_opens_its_own_channel(receiver):
    if not hasattr(os, "fork"):
        pytest.skip("no fork() here")
    srv = receiver(OK)
    _system, parent, child = two_spans()
    exporter = grpc_exporter(srv.endpoint)
    assert exporter.send([parent, child]).success
    parent_channel = next(iter(grpc_transport._channels.values()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads (Python 3.12+)
        pid = os.fork()
    if pid == 0:  # the child: exit status 0 = sent at the first try, through a channel of its own
        try:
            result = exporter.send([parent, child])  # (a forked TracingSystem starts empty)
            fresh = next(iter(grpc_transport._channels.values())) is not parent_channel
            sys.stderr.write(f"child: {result} fresh={fresh}\n")
            os._exit(0 if result == ExportResult(True, 0, 1) and fresh else 1)  # no stale connection to retry past
        finally:
            os._exit(2)
    deadline = time.monotonic() + 20
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child's send did not return")
        time.sleep(0.05)
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(srv.calls) == 2


# --- retries, failures, timeouts, cancel ---------------------------------------------------


def test_unavailable_twice_then_ok_is_retried_with_backoff(receiver, fast_backoff):
    srv = receiver((grpc.StatusCode.UNAVAILABLE, "starting"), (grpc.StatusCode.UNAVAILABLE, "starting"), OK)
    system, _parent, _child = two_spans()
    result = grpc_exporter(srv.endpoint).send(system)
    assert result == ExportResult(True, 0, 3)
    assert fast_backoff == [(0.8, 1.2), (0.8, 1.2)]  # exponential back-off with +-20% jitter, twice
    assert len(srv.calls) == 3


def test_invalid_argument_is_not_retried(receiver):
    srv = receiver((grpc.StatusCode.INVALID_ARGUMENT, "span 3 has no name"))
    system, _parent, _child = two_spans()
    result = grpc_exporter(srv.endpoint).send(system)
    assert result == ExportResult(False, grpc.StatusCode.INVALID_ARGUMENT.value[0], 1,
                                  error="gRPC INVALID_ARGUMENT: span 3 has no name")
    assert len(srv.calls) == 1


def test_resource_exhausted_is_retried_only_with_retry_info(receiver, fast_backoff):
    system, _parent, _child = two_spans()
    plain = receiver((grpc.StatusCode.RESOURCE_EXHAUSTED, "quota"), OK)
    result = grpc_exporter(plain.endpoint).send(system)
    assert result == ExportResult(False, 8, 1, error="gRPC RESOURCE_EXHAUSTED: quota")
    assert len(plain.calls) == 1

    # Status details without a RetryInfo in them: not retried either.
    other = receiver((grpc.StatusCode.RESOURCE_EXHAUSTED, "quota", None), OK)
    result = grpc_exporter(other.endpoint).send(system)
    assert result == ExportResult(False, 8, 1, error="gRPC RESOURCE_EXHAUSTED: quota")
    assert len(other.calls) == 1

    throttled = receiver((grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down", 0.05), OK)
    result = grpc_exporter(throttled.endpoint).send(system)
    assert result == ExportResult(True, 0, 2)
    assert len(throttled.calls) == 2
    assert fast_backoff == []  # the RetryInfo delay was used, not the back-off


def test_retry_info_delay_is_read_from_the_status_details():
    read = grpc_transport._retry_info_delay
    assert read(status_details(grpc.StatusCode.UNAVAILABLE, "x", 1.5)) == pytest.approx(1.5)
    assert read(status_details(grpc.StatusCode.UNAVAILABLE, "x")) is None
    assert grpc_transport._retry_delay([("grpc-status-details-bin", b"\xff\xff")]) is None  # unreadable: none
    assert grpc_transport._retry_delay(None) is None


def test_a_retry_info_delay_past_the_timeout_gives_up(receiver):
    srv = receiver((grpc.StatusCode.UNAVAILABLE, "later", 60.0))
    system, _parent, _child = two_spans()
    began = time.monotonic()
    result = grpc_exporter(srv.endpoint, timeout=2).send(system)
    assert time.monotonic() - began < 2 + 3
    assert not result.success and result.attempts == 1
    assert result.error == "gRPC UNAVAILABLE: later (gave up: the next retry would pass the timeout)"


def test_a_receiver_that_never_answers_times_out(receiver):
    srv = receiver(HANG)
    system, _parent, _child = two_spans()
    began = time.monotonic()
    result = grpc_exporter(srv.endpoint, timeout=1).send(system)
    assert time.monotonic() - began < 1 + 3
    assert not result.success
    assert result.status_code == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
    assert result.error.startswith("timed out after 1 s (gRPC DEADLINE_EXCEEDED")


def test_a_down_receiver_returns_within_the_timeout(receiver):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    system, _parent, _child = two_spans()
    began = time.monotonic()
    result = grpc_exporter(f"http://127.0.0.1:{port}", timeout=1.5).send(system)
    assert time.monotonic() - began < 1.5 + 3
    assert not result.success and result.attempts >= 1
    assert "UNAVAILABLE" in result.error


def test_cancel_cuts_a_hanging_call_short(receiver):
    srv = receiver(HANG)
    system, _parent, _child = two_spans()
    options = OTLPOptions.from_env("traces", endpoint=srv.endpoint, protocol="grpc", timeout=30)
    body = bytes(system.export_otlp(encoding="protobuf"))
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    began = time.monotonic()
    result = grpc_transport.send_grpc(options, body, cancel)
    assert time.monotonic() - began < 0.3 + 3  # not the 30 s timeout
    assert result == ExportResult(False, None, 1, error="cancelled")
    assert grpc_transport.send_grpc(options, body, cancel) == ExportResult(
        False, None, 0, error="cancelled before the first attempt"
    )


def test_cancel_during_the_backoff_stops_the_retries(receiver):
    srv = receiver((grpc.StatusCode.UNAVAILABLE, "down"))
    system, _parent, _child = two_spans()
    options = OTLPOptions.from_env("traces", endpoint=srv.endpoint, protocol="grpc", timeout=30)
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()  # during the first (1 s) back-off
    result = grpc_transport.send_grpc(options, bytes(system.export_otlp(encoding="protobuf")), cancel)
    assert result == ExportResult(False, 14, 1, error="cancelled (gRPC UNAVAILABLE: down)")


def test_exporter_shutdown_cancels_a_hanging_background_send(receiver):
    srv = receiver(HANG)
    system, _parent, _child = two_spans()
    exporter = grpc_exporter(srv.endpoint, timeout=60)
    exporter.start(0.05, system)
    deadline = time.monotonic() + 5
    while not srv.calls and time.monotonic() < deadline:
        time.sleep(0.02)
    assert srv.calls  # the send is under way, and the receiver does not answer
    began = time.monotonic()
    assert exporter.shutdown(timeout=0.5) is False
    assert time.monotonic() - began < 0.5 + 3
    deadline = time.monotonic() + 5
    while exporter.last_result is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert exporter.last_result is not None and exporter.last_result.error.startswith("cancelled")


def test_partial_success_is_a_success_with_a_warning(receiver):
    response = pb_trace.ExportTraceServiceResponse()
    response.partial_success.rejected_spans = 2
    response.partial_success.error_message = "2 spans too old"
    srv = receiver(response)
    system, _parent, _child = two_spans()
    with pytest.warns(RuntimeWarning, match="^pyveda: OTLP traces partial success: 2 rejected: 2 spans too old$"):
        result = grpc_exporter(srv.endpoint).send(system)
    assert result == ExportResult(True, 0, 1, 2, "2 spans too old")
    assert len(srv.calls) == 1  # never retried


# --- configuration ---------------------------------------------------------------------


def test_protocol_and_endpoint_from_the_environment(receiver, monkeypatch):
    srv = receiver(OK)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", srv.endpoint)
    exporter = create_exporter("otlp")
    assert (exporter.traces.protocol, exporter.metrics.protocol) == ("grpc", "grpc")
    assert exporter.traces.url == srv.endpoint  # host:port, no /v1/traces
    assert exporter.metrics.url == "http://localhost:4317"  # the gRPC default
    system, _parent, _child = two_spans()
    assert exporter.send(system) == ExportResult(True, 0, 1)
    assert srv.calls[0][0] == "traces"


def test_per_signal_protocol_mixes_grpc_and_http(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "GRPC")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317/")
    exporter = create_exporter("otlp")
    assert exporter.traces == OTLPOptions("traces", "http://collector:4317", 10.0, None, {}, "grpc")
    assert (exporter.metrics.protocol, exporter.metrics.url) == ("http/protobuf", "http://collector:4317/v1/metrics")


@pytest.mark.parametrize(
    "endpoint, insecure, url",
    [
        ("http://collector:4317", "false", "http://collector:4317"),  # the scheme wins over INSECURE
        ("https://collector:4317/ignored/path", "true", "https://collector:4317"),
        ("https://collector", None, "https://collector:443"),
        ("http://[::1]:4317", None, "http://[::1]:4317"),
        ("collector:4317", None, "https://collector:4317"),  # no scheme: TLS unless INSECURE=true
        ("collector:4317", "true", "http://collector:4317"),
        ("collector:4317", "FALSE", "https://collector:4317"),
    ],
)
def test_scheme_and_insecure_pick_the_channel(monkeypatch, endpoint, insecure, url):
    if insecure is not None:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_INSECURE", insecure)
    assert OTLPOptions.from_env("traces", endpoint=endpoint, protocol="grpc").url == url
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", endpoint)
    assert OTLPOptions.from_env("metrics", protocol="grpc").url == url


def test_the_signal_specific_insecure_beats_the_generic_one_and_a_bad_value_warns(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_INSECURE", "false")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "true")
    assert OTLPOptions.from_env("traces", endpoint="collector:4317", protocol="grpc").url == "http://collector:4317"
    assert OTLPOptions.from_env("metrics", endpoint="collector:4317", protocol="grpc").url == "https://collector:4317"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "yes")
    with pytest.warns(RuntimeWarning, match=r"^pyveda: OTEL_EXPORTER_OTLP_TRACES_INSECURE='yes' is not 'true' or "
                      r"'false'; using false \(a TLS channel\)$"):
        options = OTLPOptions.from_env("traces", endpoint="collector:4317", protocol="grpc")
    assert options.url == "https://collector:4317"


@pytest.mark.parametrize(
    "endpoint, message",
    [
        (
            "ftp://collector:4317",
            r"^endpoint: unsupported scheme 'ftp' in 'ftp://collector:4317' \(use http or https\)$",
        ),
        ("http://collector:99999", r"^endpoint: bad port in 'http://collector:99999'$"),
        (":4317", r"^endpoint: ':4317' has no host \(expected e.g. 'localhost:4317'\)$"),
        ("collector:port", r"^endpoint: bad port in 'collector:port'$"),
    ],
)
def test_a_bad_grpc_endpoint_is_a_value_error(endpoint, message):
    with pytest.raises(ValueError, match=message):
        grpc_exporter(endpoint)


def test_a_bad_grpc_endpoint_in_the_environment_names_the_variable(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:port")
    with pytest.raises(ValueError, match=r"^OTEL_EXPORTER_OTLP_ENDPOINT: bad port in 'collector:port'$"):
        create_exporter("otlp")


def test_an_unknown_protocol_lists_grpc_among_the_allowed(monkeypatch):
    allowed = r"supported values: 'http/protobuf' \(the default\), 'http/json', 'grpc'$"
    with pytest.raises(ValueError, match=r"^protocol: 'grpc/json' is not a supported OTLP protocol; " + allowed):
        OTLPExporter(protocol="grpc/json")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "thrift")
    with pytest.raises(ValueError, match=r"^OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: 'thrift' is not a supported "
                       r"OTLP protocol; " + allowed):
        create_exporter("otlp")


def test_without_grpcio_asking_for_grpc_fails_when_the_exporter_is_made(monkeypatch):
    monkeypatch.setitem(sys.modules, "grpc", None)  # `import grpc` raises ImportError now
    message = r"^OTLP protocol 'grpc' needs grpcio, which is not installed: pip install pyveda\[grpc\]$"
    with pytest.raises(ImportError, match=message):
        create_exporter("otlp", protocol="grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
    with pytest.raises(ImportError, match=message):
        create_exporter("otlp")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
    assert create_exporter("otlp").traces.protocol == "http/protobuf"  # OTLP/HTTP needs no grpcio


def test_grpcio_is_not_imported_until_asked_for():
    import subprocess

    code = (
        "import sys\n"
        "from pyveda.telemetry import create_exporter\n"
        "create_exporter('otlp', protocol='http/protobuf')\n"
        "print('grpc' in sys.modules)\n"
        "create_exporter('otlp', protocol='grpc')\n"
        "print('grpc' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "True"]


def test_a_started_grpc_exporter_flushes_at_interpreter_exit(receiver, tmp_path):
    import subprocess

    srv = receiver(OK)
    script = tmp_path / "exits.py"
    script.write_text(
        "from pyveda.telemetry import TracingSystem, create_exporter\n"
        "tracing = TracingSystem()\n"
        f"exporter = create_exporter('otlp', endpoint={srv.endpoint!r}, protocol='grpc', timeout=5)\n"
        "exporter.start(3600, tracing)\n"
        "for i in range(3):\n"
        "    with tracing.span(f'work{i}'):\n"
        "        pass\n"
        "# no shutdown(): the exit flush sends the spans, then the channel is closed\n"
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert sorted(name for _s, request, _m in srv.calls for name in spans_of(request)) == ["work0", "work1", "work2"]
