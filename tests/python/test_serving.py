"""Serving: the /metrics endpoint, OpenMetrics, the prometheus_client bridge,
the Pushgateway, alerts and the shipped Prometheus/Grafana files.

Everything listens on 127.0.0.1. The end-to-end tests run a real Prometheus
server and Pushgateway (Debian packages ``prometheus`` and
``prometheus-pushgateway``; .ci/run installs them) and skip only when those
binaries are missing.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import importlib.resources
import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

import pyveda as veda
from pyveda import _core
from pyveda.telemetry import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CONTENT_TYPE_OPENMETRICS,
    Alert,
    AlertRule,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    alerts,
    delete_from_gateway,
    generate_openmetrics,
    generate_prometheus,
    push_to_gateway,
    register_prometheus_collector,
    start_http_server,
    to_openmetrics,
)
from pyveda.telemetry.push import _url as gateway_url

from conftest import UNIT_LINT
from servers import binary, fetch, free_port, query, start_prometheus, start_server, stop_server, values, wait_until

# What Prometheus 2.x sends when it scrapes.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
DATA = importlib.resources.files("pyveda") / "data"
# What prometheus_client 0.26 answers to that Accept: OpenMetrics 1.0.0, names escaped with underscores.
OM_FOR_PROMETHEUS = CONTENT_TYPE_OPENMETRICS + "; escaping=underscores"


# --- helpers ------------------------------------------------------------------


def base_url(server):
    return server.url[: -len("/metrics")]


def run_tasks(runtime, ok, failing=0):
    def fail():
        raise RuntimeError("planned failure")

    futures = [runtime.spawn(int) for _ in range(ok)] + [runtime.spawn(fail) for _ in range(failing)]
    for future in futures:
        future.exception(timeout=30)


def sample_lines(text, name):
    return [line for line in text.splitlines() if line.startswith(name + " ") or line.startswith(name + "{")]


@pytest.fixture
def runtime(make_runtime):
    """A runtime with telemetry; it owns the pyveda_* families of the default registry."""
    return make_runtime(threads=2, telemetry=True, collect_interval=0.1)


@pytest.fixture(scope="module")
def fake_nvml(tmp_path_factory):
    """The C++ tests' scripted fake NVML (tests/cpp/probes/fake_nvml.c), or None without a C compiler."""
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        return None
    source = Path(__file__).resolve().parents[1] / "cpp" / "probes" / "fake_nvml.c"
    target = tmp_path_factory.mktemp("fake_nvml") / "libfake_nvml.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-O1", "-o", str(target), str(source)],
                   check=True, capture_output=True, timeout=120)
    return str(target)


@pytest.fixture
def gpu_runtime(fake_nvml, monkeypatch, make_runtime, tmp_path):
    """Telemetry + GPU on the fake NVML (2 devices, 4096 + 5120 MiB used); without a C
    compiler, a runtime without GPU data (the GPU checks then expect none)."""
    if fake_nvml is None:
        return make_runtime(threads=2, telemetry=True, collect_interval=0.1)
    for name in list(os.environ):
        if name.startswith(("FAKE_NVML_", "FAKE_CUDA_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PYVEDA_NVML_LIBRARY", fake_nvml)
    monkeypatch.setenv("PYVEDA_CUDA_LIBRARY", str(tmp_path / "no-libcuda.so"))
    runtime = make_runtime(threads=2, telemetry=True, gpu=True, collect_interval=0.1)
    assert runtime.gpu.is_available(), runtime.gpu.unavailable_reason
    return runtime


def has_gpu(runtime):
    return runtime.gpu is not None and runtime.gpu.is_available()


@pytest.fixture
def server(runtime):
    with start_http_server(port=0, runtime=runtime) as srv:
        yield srv


# --- the endpoint -----------------------------------------------------------------


def test_metrics_text_format_is_live_and_passes_promtool(server, runtime, check_metrics):
    jobs = Counter("serving_text_jobs_total", "Jobs handled by the text-format test")
    before = jobs.get()
    run_tasks(runtime, 50, failing=2)
    jobs.inc(3)
    status, headers, body = fetch(server.url)
    assert status == 200
    assert headers["Content-Type"] == CONTENT_TYPE_PLAIN_0_0_4 == "text/plain; version=0.0.4; charset=utf-8"
    assert "Content-Encoding" not in headers
    text = body.decode()
    assert sample_lines(text, "pyveda_tasks_executed_total") == ["pyveda_tasks_executed_total 52"]
    assert sample_lines(text, "pyveda_tasks_failed_total") == ["pyveda_tasks_failed_total 2"]
    assert sample_lines(text, "serving_text_jobs_total") == [f"serving_text_jobs_total {before + 3:g}"]
    assert len(sample_lines(text, "pyveda_latency_ms")) == 4  # quantiles 0.5 0.9 0.95 0.99
    check_metrics(text, allow=[UNIT_LINT])

    run_tasks(runtime, 8)  # live: the next scrape sees the new count
    assert sample_lines(fetch(server.url)[2].decode(), "pyveda_tasks_executed_total") == [
        "pyveda_tasks_executed_total 60"
    ]


def test_gzip_only_when_accepted(server, runtime):
    run_tasks(runtime, 5)
    plain = fetch(server.url)[2].decode()
    status, headers, body = fetch(server.url, {"Accept-Encoding": "deflate, gzip;q=0.8"})
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert int(headers["Content-Length"]) == len(body)
    unzipped = gzip.decompress(body).decode()
    assert sample_lines(unzipped, "pyveda_tasks_executed_total") == sample_lines(plain, "pyveda_tasks_executed_total")
    for refused in ("gzip;q=0", "identity", "br"):
        _, headers, body = fetch(server.url, {"Accept-Encoding": refused})
        assert "Content-Encoding" not in headers, refused
        assert body.startswith(b"# HELP")


def test_openmetrics_negotiation_parses_with_client_python(server, runtime):
    parser = pytest.importorskip("prometheus_client.openmetrics.parser")
    Counter("serving_om_jobs_total", "Jobs, for the OpenMetrics test").inc(7)
    Histogram("serving_om_empty_ms", "Never observed")  # its quantiles must read NaN in OM
    run_tasks(runtime, 20, failing=1)
    status, headers, body = fetch(server.url, {"Accept": PROMETHEUS_ACCEPT})
    assert status == 200
    assert headers["Content-Type"] == OM_FOR_PROMETHEUS
    text = body.decode()
    assert text.endswith("\n# EOF\n")
    assert "# TYPE pyveda_tasks_executed counter" in text  # OM: family name without _total
    assert "# TYPE pyveda_tasks_executed_total" not in text
    families = {f.name: f for f in parser.text_string_to_metric_families(text)}
    executed = families["pyveda_tasks_executed"]
    assert executed.type == "counter"
    samples = {s.name: s.value for s in executed.samples}
    assert samples["pyveda_tasks_executed_total"] == 21
    # OpenMetrics' _created: the runtime's start, in seconds since the epoch.
    assert samples.keys() == {"pyveda_tasks_executed_total", "pyveda_tasks_executed_created"}
    assert abs(samples["pyveda_tasks_executed_created"] - time.time()) < 600
    assert [s.value for s in families["serving_om_jobs"].samples if s.name.endswith("_total")] == [7]
    latency = families["pyveda_latency_ms"]
    assert latency.type == "summary"
    assert {s.labels.get("quantile") for s in latency.samples} == {"0.5", "0.9", "0.95", "0.99", None}
    empty = families["serving_om_empty_ms"]
    assert all(s.value != s.value for s in empty.samples if "quantile" in s.labels)  # NaN

    # text/plain (or no Accept header) keeps 0.0.4; q=0 refuses OpenMetrics.
    for accept in ("text/plain;version=0.0.4", "application/openmetrics-text;q=0,text/plain;q=0.5"):
        assert fetch(server.url, {"Accept": accept})[1]["Content-Type"] == CONTENT_TYPE_PLAIN_0_0_4


def test_to_openmetrics_golden():
    text = (
        "# HELP jobs_total Jobs \"done\" \\\\ here\\nnext\n"
        "# TYPE jobs_total counter\n"
        'jobs_total{path="C:\\\\tmp",note="say \\"hi\\""} 3\n'
        "# TYPE temp untyped\n"
        "temp 21.5 1520879607789\n"
        "# a comment that OpenMetrics does not allow\n"
        "\n"
        "# HELP wait_seconds Wait.\n"
        "# TYPE wait_seconds summary\n"
        'wait_seconds{quantile="0.5"} 0\n'
        'wait_seconds{quantile="1"} 0\n'
        "wait_seconds_sum 0\n"
        "wait_seconds_count 0\n"
        "# TYPE size histogram\n"
        'size_bucket{le="1"} 1\n'
        'size_bucket{le="1000000"} 2\n'
        'size_bucket{le="+Inf"} 2\n'
        "size_sum 7\n"
        "size_count 2\n"
    )
    assert to_openmetrics(text) == (
        "# TYPE jobs counter\n"
        '# HELP jobs Jobs \\"done\\" \\\\ here\\nnext\n'
        'jobs_total{path="C:\\\\tmp",note="say \\"hi\\""} 3\n'
        "# TYPE temp unknown\n"
        "temp 21.5 1520879607.789\n"
        "# TYPE wait_seconds summary\n"
        "# HELP wait_seconds Wait.\n"
        'wait_seconds{quantile="0.5"} NaN\n'
        'wait_seconds{quantile="1.0"} NaN\n'
        "wait_seconds_sum 0\n"
        "wait_seconds_count 0\n"
        "# TYPE size histogram\n"
        'size_bucket{le="1.0"} 1\n'
        'size_bucket{le="1e+06"} 2\n'
        'size_bucket{le="+Inf"} 2\n'
        "size_sum 7\n"
        "size_count 2\n"
        "# EOF\n"
    )
    parser = pytest.importorskip("prometheus_client.openmetrics.parser")
    families = {f.name: f for f in parser.text_string_to_metric_families(to_openmetrics(text))}
    assert families["jobs"].documentation == 'Jobs "done" \\ here\nnext'
    assert families["jobs"].samples[0].labels == {"path": "C:\\tmp", "note": 'say "hi"'}
    assert float(families["temp"].samples[0].timestamp) == pytest.approx(1520879607.789)
    with pytest.raises(TypeError, match="str"):
        to_openmetrics(b"x 1\n")


def test_to_openmetrics_names_the_bad_line():
    with pytest.raises(ValueError, match=r"line 2: the value 'lots' is not a number: 'b lots'"):
        to_openmetrics("a 1\nb lots\n")
    with pytest.raises(ValueError, match=r"unknown metric type 'timer' \(allowed: counter, gauge, histogram"):
        to_openmetrics("# TYPE t timer\n")
    with pytest.raises(ValueError, match=r"invalid escape '\\t' in label 'k'"):
        to_openmetrics('x{k="\\t"} 1\n')


def test_native_openmetrics_equals_the_converted_text():
    registry = CollectorRegistry()
    jobs = Counter("om_jobs_total", 'Jobs "done" \\ here\nnext', ["path"], registry=registry)
    jobs.labels('C:\\tmp "x"\n').inc(3)
    jobs.labels("").inc(0.25)
    Gauge("om_temp", "", registry=registry).set(float("nan"))
    Gauge("om_big", "Big.", registry=registry).set(1e21)
    latency = Histogram("om_wait_seconds", "Wait.", ["op"], registry=registry)
    for i in range(1, 101):
        latency.labels("read").observe(i / 100)
    latency.labels("idle")  # never observed: NaN quantiles in OpenMetrics
    # The 0.0.4 text has no creation times, so the comparison leaves _created out.
    native = registry._core.render_openmetrics(False)
    assert native == to_openmetrics(generate_prometheus(registry))
    created = generate_openmetrics(registry)
    assert [line for line in created.splitlines() if "_created" not in line] == native.splitlines()
    assert sum("_created{" in line for line in created.splitlines()) == 2 + 2  # two counter, two summary series
    assert native.endswith("\n# EOF\n") and 'om_wait_seconds{op="idle",quantile="0.5"} NaN' in native
    parser = pytest.importorskip("prometheus_client.openmetrics.parser")
    families = {f.name: f for f in parser.text_string_to_metric_families(native)}
    assert families["om_jobs"].type == "counter" and families["om_wait_seconds"].type == "summary"
    assert families["om_jobs"].documentation == 'Jobs "done" \\ here\nnext'
    assert generate_openmetrics().endswith("# EOF\n") and CollectorRegistry().generate_openmetrics() == "# EOF\n"
    assert _core.OPENMETRICS_CONTENT_TYPE == CONTENT_TYPE_OPENMETRICS


def test_metrics_json_and_its_503(make_runtime, runtime, global_runtime):
    run_tasks(runtime, 12, failing=3)
    with start_http_server(port=0, runtime=runtime) as srv:
        status, headers, body = fetch(base_url(srv) + "/metrics.json")
        assert status == 200 and headers["Content-Type"] == "application/json"
        data = json.loads(body)
        assert data["tasks"] == {"executed": 15, "failed": 3, "pending": 0}
        assert set(data["latency"]) == {"avg_ms", "p50_ms", "p95_ms", "p99_ms"}

    quiet = make_runtime(threads=1, telemetry=False)
    with start_http_server(port=0, runtime=quiet) as srv:
        status, headers, body = fetch(base_url(srv) + "/metrics.json")
        assert (status, headers["Content-Type"]) == (503, "application/json")
        assert json.loads(body) == {"error": "telemetry is disabled"}

    # runtime=None follows the process-wide runtime (pyveda.init), request by request.
    with start_http_server(port=0) as srv:
        status, _, body = fetch(base_url(srv) + "/metrics.json")
        assert status == 503 and json.loads(body) == {"error": "no pyveda runtime is running"}
        global_runtime.init(veda.Config.builder().threads(1).telemetry(True).build())
        global_runtime.spawn(int).result(timeout=10)
        status, _, body = fetch(base_url(srv) + "/metrics.json")
        assert status == 200 and json.loads(body)["tasks"]["executed"] == 1


def test_healthz_404_405_head(server):
    root = base_url(server)
    status, headers, body = fetch(root + "/healthz")
    assert (status, body) == (200, b"ok\n") and headers["Content-Type"].startswith("text/plain")
    assert fetch(root + "/nope")[0] == 404
    assert fetch(root + "/metrics/extra")[0] == 404
    assert fetch(root + "/metrics?name[]=x")[0] == 200  # name[] restricts the families (none here)
    for method in ("POST", "PUT", "DELETE"):
        status, headers, _ = fetch(server.url, method=method, data=b"" if method != "DELETE" else None)
        assert status == 405 and headers["Allow"] == "GET, HEAD", method
    status, headers, body = fetch(server.url, method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0
    assert headers["Content-Type"] == CONTENT_TYPE_PLAIN_0_0_4


def test_basic_auth(runtime):
    with start_http_server(port=0, basic_auth=("prom", "s3cret:x")) as srv:
        status, headers, _ = fetch(srv.url)
        assert status == 401 and headers["WWW-Authenticate"].startswith('Basic realm="pyveda"')
        wrong = base64.b64encode(b"prom:nope").decode()
        assert fetch(srv.url, {"Authorization": f"Basic {wrong}"})[0] == 401
        assert fetch(base_url(srv) + "/healthz")[0] == 401  # every path
        right = base64.b64encode(b"prom:s3cret:x").decode()
        status, _, body = fetch(srv.url, {"Authorization": f"Basic {right}"})
        assert status == 200 and b"pyveda_tasks_executed_total" in body
        for scheme in ("basic", "BASIC", "bAsIc"):  # RFC 7235: the scheme is case-insensitive
            assert fetch(srv.url, {"Authorization": f"{scheme} {right}"})[0] == 200
        assert fetch(srv.url, {"Authorization": f"Bearer {right}"})[0] == 401  # another scheme
        assert fetch(srv.url, {"Authorization": right})[0] == 401  # no scheme


def test_a_burst_of_connections_is_not_stalled_by_the_listen_backlog():
    import socket

    with start_http_server(port=0) as srv:
        assert srv._server.request_queue_size >= 128
        socks = [socket.create_connection(("127.0.0.1", srv.port), timeout=5) for _ in range(40)]
        try:
            for sock in socks:
                sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
            for sock in socks:
                assert sock.recv(64).startswith(b"HTTP/1.0 200")
        finally:
            for sock in socks:
                sock.close()


def test_tls_with_a_self_signed_certificate(tmp_path, runtime):
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl not installed (needed to make a self-signed certificate)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )
    with start_http_server(port=0, certfile=str(cert), keyfile=str(key), basic_auth=("u", "p")) as srv:
        assert srv.url.startswith("https://127.0.0.1:")
        context = ssl.create_default_context(cafile=str(cert))
        auth = {"Authorization": "Basic " + base64.b64encode(b"u:p").decode()}
        status, headers, body = fetch(srv.url, auth, context=context)
        assert status == 200 and headers["Content-Type"] == CONTENT_TYPE_PLAIN_0_0_4
        assert b"pyveda_tasks_executed_total" in body
        # Plain HTTP on the TLS port is dropped without disturbing the server.
        with pytest.raises((urllib.error.URLError, http.client.HTTPException, ConnectionError)):
            urllib.request.urlopen(srv.url.replace("https", "http"), timeout=5).read()
        assert fetch(base_url(srv) + "/healthz", auth, context=context)[0] == 200


def test_port_zero_and_shutdown():
    srv = start_http_server(port=0)
    assert 0 < srv.port < 65536 and srv.url == f"http://127.0.0.1:{srv.port}/metrics"
    assert fetch(base_url(srv) + "/healthz")[0] == 200
    thread = srv._thread
    srv.shutdown()
    assert not thread.is_alive()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(base_url(srv) + "/healthz", timeout=2)
    srv.shutdown()  # idempotent
    with start_http_server(port=srv.port) as again:  # the port is free again
        assert fetch(base_url(again) + "/healthz")[0] == 200


def test_shutdown_timeout_bounds_the_whole_wait_for_stalled_requests():
    import socket
    import time

    srv = start_http_server(port=0)
    stalled = []
    for _ in range(4):  # each sends half a request and waits: its handler blocks reading
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        stalled.append(sock)
    wait_until(lambda: len(srv._server.active) == 4, 5, "four requests in flight")
    began = time.monotonic()
    done = srv.shutdown(timeout=1)
    took = time.monotonic() - began
    assert done is False  # they had not finished: said so
    assert took < 2.5  # one deadline for all four, not 1 s each
    for sock in stalled:  # their connections were shut down, not left for the 30 s request timeout
        assert sock.recv(1024) == b""
        sock.close()
    assert srv.shutdown() is True  # already shut down
    other = start_http_server(port=0)
    with pytest.raises(ValueError, match=r"timeout must be a number of seconds >= 0, got -1"):
        other.shutdown(timeout=-1)
    assert other.shutdown(timeout=2) is True  # the bad call changed nothing


def test_a_client_trickling_its_request_is_cut_at_the_request_timeout():
    import socket
    import time

    with start_http_server(port=0, request_timeout=1.0) as srv:
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        began = time.monotonic()
        cut = False
        # One header byte every 0.2 s: each recv succeeds well inside the socket
        # timeout, so only a deadline for the whole request ends this.
        for byte in b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                cut = True
                break
            time.sleep(0.2)
            if time.monotonic() - began > 20:
                break
        if not cut:
            sock.settimeout(10)
            try:
                cut = sock.recv(1024) == b""
            except OSError:
                cut = True
        took = time.monotonic() - began
        sock.close()
        assert cut, "the trickling connection was never cut"
        assert took < 10  # about the 1 s deadline, not the 40 s the trickle would take
        wait_until(lambda: not srv._server.active, 5, "the cut connection to be released")
        assert fetch(base_url(srv) + "/healthz")[0] == 200  # the server serves on


def test_connections_past_max_connections_get_503_at_once():
    import socket

    with start_http_server(port=0, max_connections=3) as srv:
        idle = []
        for _ in range(3):  # three half-sent requests hold every slot
            sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            sock.sendall(b"GET /metrics HTTP/1.1\r\n")
            idle.append(sock)
        wait_until(lambda: len(srv._server.active) == 3, 5, "three connections in flight")
        status, headers, body = fetch(base_url(srv) + "/metrics")
        assert status == 503 and body == b"too many connections\n"
        assert headers.get("Retry-After") == "1"
        assert len(srv._server.active) == 3  # the refused one took no slot
        for sock in idle:
            sock.close()
        wait_until(lambda: not srv._server.active, 5, "the idle connections to end")
        assert fetch(base_url(srv) + "/metrics")[0] == 200


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"request_timeout": 0}, ValueError,
         r"^start_http_server: request_timeout must be a number of seconds > 0, got 0$"),
        ({"request_timeout": "30"}, ValueError,
         r"^start_http_server: request_timeout must be a number of seconds > 0, got '30'$"),
        ({"max_connections": 0}, ValueError, r"^start_http_server: max_connections must be an int >= 1, got 0$"),
        ({"max_connections": 2.5}, TypeError, r"^start_http_server: max_connections must be an int >= 1, got 2\.5$"),
    ],
)
def test_request_timeout_and_max_connections_are_checked(kwargs, error, message):
    with pytest.raises(error, match=message):
        start_http_server(port=0, **kwargs)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"port": "9090"}, TypeError, "port must be an int"),
        ({"port": True}, TypeError, "port must be an int"),
        ({"port": 9090.0}, TypeError, "port must be an int"),
        ({"port": -1}, ValueError, r"port must be in \[0, 65535\]"),
        ({"port": 65536}, ValueError, r"port must be in \[0, 65535\]"),
        ({"port": 0, "addr": 127001}, TypeError, "addr must be a str"),
        ({"port": 0, "registry": object()}, TypeError, "registry must be a pyveda.telemetry.CollectorRegistry"),
        ({"port": 0, "runtime": "rt"}, TypeError, "runtime must be a pyveda.Runtime"),
        ({"port": 0, "basic_auth": "user:pw"}, TypeError, "basic_auth must be a"),
        ({"port": 0, "basic_auth": ("a:b", "pw")}, ValueError, "cannot contain ':'"),
        ({"port": 0, "certfile": "cert.pem"}, ValueError, "both certfile and keyfile"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        start_http_server(**kwargs)


def test_port_in_use_raises_oserror():
    with start_http_server(port=0) as srv:
        with pytest.raises(OSError):
            start_http_server(port=srv.port)


# --- prometheus_client bridge ----------------------------------------------------------


def test_register_prometheus_collector(runtime, registry):
    prometheus_client = pytest.importorskip("prometheus_client")
    app_registry = prometheus_client.CollectorRegistry()
    app_requests = prometheus_client.Counter("app_requests", "Requests the app served", registry=app_registry)
    app_requests.inc(2)
    Counter("bridge_jobs_total", "Jobs", registry=registry).inc(4)
    run_tasks(runtime, 9, failing=1)

    collector = register_prometheus_collector(app_registry)
    assert app_registry.get_sample_value("pyveda_tasks_executed_total") == 10
    assert app_registry.get_sample_value("pyveda_tasks_failed_total") == 1
    assert app_registry.get_sample_value("pyveda_latency_ms", {"quantile": "0.99"}) is not None
    assert app_registry.get_sample_value("app_requests_total") == 2
    text = prometheus_client.generate_latest(app_registry).decode()
    assert "# TYPE pyveda_tasks_executed_total counter" in text and "app_requests_total 2.0" in text
    run_tasks(runtime, 5)  # read live on each collect
    assert app_registry.get_sample_value("pyveda_tasks_executed_total") == 15

    app_registry.unregister(collector)
    assert app_registry.get_sample_value("pyveda_tasks_executed_total") is None

    # A PyVeda registry other than the default one, via source=.
    second = prometheus_client.CollectorRegistry()
    register_prometheus_collector(second, source=registry)
    assert second.get_sample_value("bridge_jobs_total") == 4
    assert second.get_sample_value("pyveda_tasks_executed_total") is None

    # A clash with a name the app already exposes is refused by prometheus_client.
    clashing = prometheus_client.CollectorRegistry()
    prometheus_client.Gauge("pyveda_tasks_pending", "mine", registry=clashing)
    with pytest.raises(ValueError, match="pyveda_tasks_pending"):
        register_prometheus_collector(clashing)
    with pytest.raises(TypeError, match="prometheus_client.CollectorRegistry"):
        register_prometheus_collector(registry)


def test_bridge_families_equal_the_parsed_exposition():
    prometheus_client = pytest.importorskip("prometheus_client")
    from prometheus_client.parser import text_string_to_metric_families
    from pyveda.telemetry.promclient import PyVedaCollector

    registry = CollectorRegistry()
    jobs = Counter("eq_jobs_total", 'Jobs "done" \\ here\nnext', ["path"], registry=registry)
    jobs.labels('C:\\tmp "x"\n').inc(3)
    jobs.labels("").inc(0.25)
    Gauge("eq_temp", "", registry=registry).set(-1e21)
    wait = Histogram("eq_wait_seconds", "Wait.", ["op"], registry=registry)
    for i in range(1, 101):
        wait.labels("read").observe(i / 100)
    ours = list(PyVedaCollector(registry).collect())
    parsed = list(text_string_to_metric_families(registry.generate_prometheus()))
    assert ours == parsed  # name, help, type and every sample (name, labels, value)
    assert [f.type for f in ours] == ["counter", "gauge", "summary"]
    app = prometheus_client.CollectorRegistry()
    app.register(PyVedaCollector(registry))
    assert app.get_sample_value("eq_jobs_total", {"path": 'C:\\tmp "x"\n'}) == 3
    assert app.get_sample_value("eq_wait_seconds_count", {"op": "read"}) == 100


def test_register_prometheus_collector_default_registry(runtime):
    prometheus_client = pytest.importorskip("prometheus_client")
    collector = register_prometheus_collector()
    try:
        run_tasks(runtime, 3)
        assert prometheus_client.REGISTRY.get_sample_value("pyveda_tasks_executed_total") == 3
    finally:
        prometheus_client.REGISTRY.unregister(collector)


def test_register_prometheus_collector_without_prometheus_client(monkeypatch):
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(ImportError, match="pip install prometheus-client"):
        register_prometheus_collector()


def test_gateway_urls():
    assert gateway_url("localhost:9091", "etl", None) == "http://localhost:9091/metrics/job/etl"
    # As prometheus_client: labels sorted, values str()-converted, base64 for '', '/' and ' ' (the job too).
    assert gateway_url("https://gw/", "a b", {"shard": "x/y", "empty": "", "k": "ü", "n": 1}) == (
        "https://gw/metrics/job@base64/YSBi/empty@base64/=/k/%C3%BC/n/1/shard@base64/eC95"
    )
    assert gateway_url("gw:1", "job/with/slash", None) == "http://gw:1/metrics/job@base64/am9iL3dpdGgvc2xhc2g="
    with pytest.raises(ValueError, match="job"):
        gateway_url("gw:1", "", None)
    with pytest.raises(TypeError, match="grouping_key"):
        gateway_url("gw:1", "j", [("a", "1")])


# --- a real Prometheus and Pushgateway ---------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Our endpoint (default registry), a Pushgateway and a Prometheus scraping both every second."""
    binary("prometheus", "prometheus")
    pushgateway = binary("prometheus-pushgateway", "prometheus-pushgateway")
    tmp = tmp_path_factory.mktemp("stack")
    endpoint = start_http_server(port=0)
    gw, gw_log, gw_url = start_server(
        lambda port: [pushgateway, f"--web.listen-address=127.0.0.1:{port}"], "/-/ready", tmp / "gw.log"
    )
    gw_port = urllib.parse.urlsplit(gw_url).port
    prom, prom_log, prom_url = start_prometheus(
        tmp, {"pyveda": (endpoint.port, ()), "pushgateway": (gw_port, ("honor_labels: true",))}
    )
    yield {"prometheus": prom_url, "pushgateway": gw_url, "endpoint": endpoint}
    stop_server(prom, prom_log)
    stop_server(gw, gw_log)
    endpoint.shutdown()


def test_prometheus_scrapes_the_endpoint(stack, gpu_runtime):
    runtime = gpu_runtime
    prom = stack["prometheus"]
    jobs = Counter("serving_e2e_jobs_total", "Jobs counted by the end-to-end test")
    start = jobs.get()
    runtime.telemetry.start()
    total_ok, total_failed = 0, 0
    deadline = time.monotonic() + 2.5  # a workload spread over several 1 s scrapes
    while time.monotonic() < deadline:
        futures = [runtime.spawn(jobs.inc) for _ in range(100)]
        for future in futures:
            future.result(timeout=10)
        total_ok += 100
        run_tasks(runtime, 0, failing=2)
        total_failed += 2
        time.sleep(0.05)
    executed = total_ok + total_failed
    final_jobs = start + total_ok

    wait_until(lambda: values(prom, 'pyveda_tasks_executed_total{job="pyveda"}') == [executed], 20,
               f"pyveda_tasks_executed_total == {executed}")
    wait_until(lambda: values(prom, 'serving_e2e_jobs_total{job="pyveda"}') == [final_jobs], 20,
               f"serving_e2e_jobs_total == {final_jobs}")
    assert values(prom, 'pyveda_tasks_failed_total{job="pyveda"}') == [total_failed]
    p99 = query(prom, 'pyveda_latency_ms{job="pyveda",quantile="0.99"}')
    assert len(p99) == 1 and float(p99[0]["value"][1]) > 0
    assert values(prom, 'up{job="pyveda"}') == [1]
    targets = json.loads(fetch(prom + "/api/v1/targets")[2])["data"]["activeTargets"]
    assert [t["lastError"] for t in targets if t["labels"]["job"] == "pyveda"] == [""]

    # Every PromQL expression of the shipped Grafana dashboard returns data.
    dashboard = json.loads((DATA / "grafana-dashboard.json").read_text())
    titles = {p["title"] for p in dashboard["panels"]}
    assert {"Throughput", "Task latency quantiles", "Failures", "CPU", "Memory", "GPU utilization",
            "GPU memory"} <= titles
    checked = 0
    for panel in dashboard["panels"]:
        if panel["title"].startswith("GPU") and not has_gpu(runtime):
            continue  # no pyveda_gpu_* series without a GPU (and GPU telemetry)
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", "1m")
            wait_until(lambda: query(prom, expr), 10, f"data for {panel['title']!r}: {expr}")
            checked += 1
    assert checked >= (13 if has_gpu(runtime) else 10)
    if has_gpu(runtime):
        assert values(prom, 'pyveda_gpu_memory_used_mb{job="pyveda"}') == [4096, 5120]


def test_pushgateway_push_read_back_and_delete(stack):
    prom, gw = stack["prometheus"], stack["pushgateway"]
    batch = CollectorRegistry()
    Counter("serving_batch_records_total", "Records a batch job wrote", registry=batch).inc(42)
    Gauge("serving_batch_last_success", "When the batch job last finished", registry=batch).set(1700000000)
    grouping = {"shard": "eu/west"}  # '/' travels in the gateway's base64 form
    job = f"serving_nightly_{os.getpid()}"
    assert push_to_gateway(gw, job=job, grouping_key=grouping, registry=batch) == 200

    series = wait_until(lambda: query(prom, f'serving_batch_records_total{{job="{job}"}}'), 20,
                        "the pushed counter in Prometheus")
    assert len(series) == 1
    assert series[0]["metric"]["shard"] == "eu/west" and float(series[0]["value"][1]) == 42
    assert values(prom, f'serving_batch_last_success{{job="{job}"}}') == [1700000000]

    # PUT replaces the whole group: a push without the gauge removes it.
    replaced = CollectorRegistry()
    Counter("serving_batch_records_total", "Records a batch job wrote", registry=replaced).inc(43)
    push_to_gateway(gw, job=job, grouping_key=grouping, registry=replaced)
    gateway_text = fetch(gw + "/metrics")[2].decode()
    assert f'serving_batch_records_total{{instance="",job="{job}",shard="eu/west"}} 43' in gateway_text
    assert "serving_batch_last_success{" not in gateway_text

    assert delete_from_gateway(gw, job=job, grouping_key=grouping) == 202
    assert "serving_batch_records_total{" not in fetch(gw + "/metrics")[2].decode()
    with pytest.raises(urllib.error.URLError):
        push_to_gateway(f"127.0.0.1:{free_port()}", job="nowhere", registry=batch, timeout=2)


# --- alerting -----------------------------------------------------------------------


def test_alert_rules_file_passes_promtool(promtool, tmp_path):
    rules = tmp_path / "alerts.yml"
    rules.write_text((DATA / "alerts.yml").read_text())
    result = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 4 rules found" in result.stdout

    # The rules fire on the series the endpoint exposes (promtool's rule unit tests).
    (tmp_path / "alerts_test.yml").write_text(
        "rule_files: [alerts.yml]\n"
        "evaluation_interval: 1m\n"
        "tests:\n"
        "  - interval: 1m\n"
        "    input_series:\n"
        "      - series: 'pyveda_tasks_executed_total{job=\"pyveda\",instance=\"a\"}'\n"
        "        values: '0+100x15'\n"
        "      - series: 'pyveda_tasks_failed_total{job=\"pyveda\",instance=\"a\"}'\n"
        "        values: '0+10x15'\n"
        "      - series: 'pyveda_latency_ms{job=\"pyveda\",instance=\"a\",quantile=\"0.99\"}'\n"
        "        values: '250x15'\n"
        "      - series: 'pyveda_cpu_utilization_percent{job=\"pyveda\",instance=\"a\"}'\n"
        "        values: '20x15'\n"
        "    alert_rule_test:\n"
        "      - eval_time: 10m\n"
        "        alertname: PyVedaHighFailureRate\n"
        "        exp_alerts:\n"
        "          - exp_labels: {severity: warning, job: pyveda, instance: a}\n"
        "            exp_annotations:\n"
        "              summary: High failure rate on a\n"
        "              description: 10% of PyVeda tasks failed over the last 5 minutes (threshold 5%).\n"
        "      - eval_time: 10m\n"
        "        alertname: PyVedaHighP99Latency\n"
        "        exp_alerts:\n"
        "          - exp_labels: {severity: warning, job: pyveda, instance: a}\n"
        "            exp_annotations:\n"
        "              summary: High P99 task latency on a\n"
        "              description: P99 task latency is 250.0 ms (threshold 100 ms).\n"
        "      - eval_time: 10m\n"
        "        alertname: PyVedaHighCpuUsage\n"
        "        exp_alerts: []\n"
        "      - eval_time: 10m\n"
        "        alertname: PyVedaHighGpuMemory\n"
        "        exp_alerts: []\n"
    )
    result = subprocess.run([promtool, "test", "rules", str(tmp_path / "alerts_test.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_example_prometheus_config_passes_promtool(promtool, tmp_path):
    for name in ("prometheus.yml", "alerts.yml"):
        (tmp_path / name).write_text((DATA / name).read_text())
    result = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_dashboard_shape():
    dashboard = json.loads((DATA / "grafana-dashboard.json").read_text())
    assert dashboard["uid"] and dashboard["title"] == "PyVeda"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"] and all(t["expr"] and t["refId"] for t in panel["targets"])


def test_alert_helpers_fire_on_a_workload_with_failures(gpu_runtime):
    runtime = gpu_runtime
    fired = []
    first = threading.Event()
    rules = [
        alerts.failure_rate(0.05),
        alerts.p99_latency(threshold_ms=0.0),  # any finished task is above 0 ms
        *alerts.resource_exhaustion(cpu_percent=-1.0, gpu_memory_mb=8000),  # CPU always fires; GPU only with data
    ]

    def on_alert(alert):
        fired.append(alert)
        if alert.name == "HighFailureRate":
            first.set()

    watch = alerts.watch(runtime.telemetry, rules=rules, on_alert=on_alert)
    run_tasks(runtime, 90, failing=10)
    runtime.telemetry.start()
    assert first.wait(10), f"no failure-rate alert; got {fired}"
    expected = {"HighFailureRate", "HighP99Latency", "HighCpuUsage"} | ({"HighGpuMemory"} if has_gpu(runtime) else set())
    wait_until(lambda: expected <= {a.name for a in fired}, 10, f"the alerts {sorted(expected)}")
    time.sleep(0.4)  # several more collections: firing rules do not call again (repeat=False)
    watch.stop()
    names = [a.name for a in fired]
    assert names.count("HighFailureRate") == 1 and names.count("HighP99Latency") == 1
    assert sorted(set(names)) == sorted(expected) and len(names) == len(expected)
    if has_gpu(runtime):  # the fake NVML's 4096 + 5120 MiB
        gpu_alert = next(a for a in fired if a.name == "HighGpuMemory")
        assert (gpu_alert.value, gpu_alert.message) == (9216.0, "High GPU memory: 9216MB > 8000MB")
    alert = next(a for a in fired if a.name == "HighFailureRate")
    assert isinstance(alert, Alert)
    assert alert.value == pytest.approx(0.10) and alert.threshold == 0.05
    assert alert.message == "High failure rate: 10.0% > 5.0%"
    assert watch.firing >= {"HighFailureRate", "HighP99Latency"}
    count = len(fired)
    time.sleep(0.3)
    assert len(fired) == count  # stopped: no more calls


def test_alert_rule_evaluate_repeat_and_errors(runtime):
    quiet = alerts.evaluate(runtime.telemetry.snapshot(), [alerts.failure_rate(), alerts.p99_latency(100)])
    assert quiet == []  # no finished task yet: nothing to judge
    run_tasks(runtime, 10, failing=10)
    snapshot = runtime.telemetry.snapshot()
    [alert] = alerts.evaluate(snapshot, [alerts.failure_rate(0.05), alerts.p99_latency(1e9)])
    assert (alert.name, alert.value, alert.timestamp) == ("HighFailureRate", 0.5, snapshot.timestamp)

    custom = AlertRule("Backlog", lambda s: s.tasks_pending + 5, 3, "{name}: {value:.0f} queued")
    calls = []
    watch = alerts.watch(runtime.telemetry, [custom], calls.append, repeat=True)
    try:
        watch.check(snapshot)
        watch.check(snapshot)
        assert [a.message for a in calls] == ["Backlog: 5 queued", "Backlog: 5 queued"]
    finally:
        watch.stop()
        watch.stop()

    with pytest.raises(TypeError, match="TelemetrySystem"):
        alerts.watch(None, [], print)
    with pytest.raises(TypeError, match="AlertRule"):
        alerts.watch(runtime.telemetry, ["rule"], print)
    with pytest.raises(TypeError, match="threshold must be a number"):
        AlertRule("x", lambda s: 1.0, "high")


def test_alert_watch_runs_the_other_rules_when_one_breaks(runtime, caplog):
    run_tasks(runtime, 10, failing=10)
    snapshot = runtime.telemetry.snapshot()

    def explode(_snapshot):
        raise ZeroDivisionError("no data")

    rules = [
        AlertRule("Explodes", explode, 0),
        AlertRule("NotANumber", lambda s: "high", 0),
        alerts.failure_rate(0.05),
    ]
    fired = []
    watch = alerts.watch(runtime.telemetry, rules, fired.append)
    try:
        with caplog.at_level("ERROR", logger="pyveda"):
            raised = watch.check(snapshot)
        assert [a.name for a in raised] == ["HighFailureRate"] == [a.name for a in fired]
        assert watch.errors == {
            "Explodes": "ZeroDivisionError: no data",
            "NotANumber": "TypeError: alert rule 'NotANumber': value() must return a number or None, got 'high'",
        }
        logged = [r.getMessage() for r in caplog.records]
        assert any("Explodes failed; the other rules still run" in m for m in logged), logged
        assert watch.firing == {"HighFailureRate"}
    finally:
        watch.stop()


def test_alert_rule_refuses_a_broken_template():
    with pytest.raises(ValueError, match=r"AlertRule 'x': message '\{valu\}' is not a valid template "
                       r"\(KeyError: 'valu'\); it may use \{name\}, \{value\} and \{threshold\}"):
        AlertRule("x", lambda s: 1.0, 0, "{valu}")
    with pytest.raises(ValueError, match=r"is not a valid template \(ValueError"):
        AlertRule("x", lambda s: 1.0, 0, "{value:.1z}")
    assert AlertRule("x", lambda s: 1.0, 0, "{value:.1f} of {threshold}").message == "{value:.1f} of {threshold}"


# --- load -------------------------------------------------------------------------------


def _paced_workload(runtime, seconds, rate=1000.0):
    """Spawns ``rate`` small tasks per second for ``seconds``; returns tasks completed per second."""
    def task():
        return sum(range(100))

    futures = []
    start = time.perf_counter()
    sent = 0
    while True:
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
        due = int(elapsed * rate) + 1
        while sent < due:
            futures.append(runtime.spawn(task))
            sent += 1
        time.sleep(0.001)
    for future in futures:
        future.result(timeout=30)
    return len(futures) / (time.perf_counter() - start)


LOAD_SECONDS = 10.0


@pytest.mark.slow
def test_eight_scrapers_against_a_busy_runtime(runtime, server):
    baseline = _paced_workload(runtime, 2.0)

    latencies, errors = [], []
    lock = threading.Lock()
    stop = threading.Event()

    def scraper():
        mine = []
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
                conn.request("GET", "/metrics", headers={"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"})
                response = conn.getresponse()
                body = gzip.decompress(response.read())
                conn.close()
                if response.status != 200 or not body.endswith(b"# EOF\n"):
                    raise AssertionError(f"status {response.status}")
            except Exception as error:  # noqa: BLE001 - collected and asserted below
                with lock:
                    errors.append(repr(error))
                continue
            mine.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=scraper) for _ in range(8)]
    for thread in threads:
        thread.start()
    try:
        loaded = _paced_workload(runtime, LOAD_SECONDS)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert not errors, errors[:5]
    assert latencies
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    drop = (1 - loaded / baseline) * 100
    print(
        f"\n[serving load] {len(latencies)} scrapes by 8 threads in {LOAD_SECONDS:.0f} s "
        f"({len(latencies) / LOAD_SECONDS:.0f}/s): "
        f"p50 {p50:.2f} ms, p99 {p99:.2f} ms; workload {baseline:.0f} tasks/s alone, "
        f"{loaded:.0f} tasks/s while scraped (drop {drop:.1f}%)"
    )
