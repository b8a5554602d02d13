"""prometheus_client 0.26's serving and pushing, as a drop-in: make_wsgi_app in a
real Flask app, make_asgi_app in a real Starlette app under uvicorn (each scraped
by the Debian Prometheus), start_wsgi_server, MetricsHandler, start_http_server's
(server, thread) and mutual TLS, and push_to_gateway and its handlers against
the real Pushgateway and a recording server.

Everything listens on 127.0.0.1 and is stopped by the test that started it.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import http.client
import http.server
import json
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request

import pytest

from pyveda.telemetry import (
    CONTENT_TYPE_OPENMETRICS,
    CONTENT_TYPE_PLAIN_0_0_4,
    CONTENT_TYPE_PROTOBUF,
    CollectorRegistry,
    Counter,
    Gauge,
    GaugeMetricFamily,
    Histogram,
    start_http_server,
)
from pyveda.telemetry import push
from pyveda.telemetry.asgi import make_asgi_app
from pyveda.telemetry.push import (
    basic_auth_handler,
    default_handler,
    delete_from_gateway,
    instance_ip_grouping_key,
    passthrough_redirect_handler,
    push_to_gateway,
    pushadd_to_gateway,
    tls_auth_handler,
)
from pyveda.telemetry.wsgi import MetricsHandler, make_wsgi_app, start_wsgi_server

from servers import binary, fetch, start_prometheus, start_server, stop_server, values, wait_until

PROMETHEUS_ACCEPT = (  # what Prometheus 2.x sends when it scrapes
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
NATIVE_ACCEPT = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"
# What prometheus_client 0.26 answers to that Accept: OpenMetrics 1.0.0, names escaped with underscores.
OM_FOR_PROMETHEUS = CONTENT_TYPE_OPENMETRICS + "; escaping=underscores"

needs_restricted = pytest.mark.xfail(
    not hasattr(CollectorRegistry, "restricted_registry"),
    reason="CollectorRegistry.restricted_registry() has not landed yet", strict=True,
)


# --- helpers ---------------------------------------------------------------------------


def samples(text):
    """{(name, sorted labels): value} of a text exposition (0.0.4 or OpenMetrics)."""
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def shop_registry():
    """A registry and prometheus_client-style instrumentation of one web app."""
    registry = CollectorRegistry()
    metrics = {
        "requests": Counter("shop_requests", "Requests by route", ["route"], registry=registry),
        "latency": Histogram("shop_request_seconds", "Time per request", ["route"], registry=registry),
        "cart": Gauge("shop_cart_items", "Items in the last cart", registry=registry),
    }
    return registry, metrics


def handle_cart(metrics, n):
    metrics["requests"].labels(route="/cart").inc()
    metrics["latency"].labels(route="/cart").observe(0.25)  # exact in binary: the sum is exact too
    metrics["cart"].set(n)


def handle_ping(metrics):
    metrics["requests"].labels(route="/ping").inc()
    metrics["latency"].labels(route="/ping").observe(0.5)


def drive(base, carts, pings):
    for n in range(1, carts + 1):
        status, _, body = fetch(f"{base}/cart/{n}")
        assert status == 200 and json.loads(body) == {"items": n}
    for _ in range(pings):
        assert fetch(f"{base}/ping")[0] == 200


def check_shop(text, carts, pings):
    got = samples(text)
    assert got[("shop_requests_total", (("route", "/cart"),))] == carts
    assert got[("shop_requests_total", (("route", "/ping"),))] == pings
    assert got[("shop_request_seconds_count", (("route", "/cart"),))] == carts
    assert got[("shop_request_seconds_sum", (("route", "/cart"),))] == 0.25 * carts
    assert got[("shop_request_seconds_count", (("route", "/ping"),))] == pings
    assert got[("shop_cart_items", ())] == carts


def check_prometheus(prom, job, carts, pings):
    wait_until(lambda: values(prom, f'shop_requests_total{{job="{job}",route="/cart"}}') == [carts], 30,
               f"Prometheus to see {carts} /cart requests")
    assert values(prom, f'shop_requests_total{{job="{job}",route="/ping"}}') == [pings]
    assert values(prom, f'shop_request_seconds_count{{job="{job}",route="/cart"}}') == [carts]
    assert values(prom, f'shop_request_seconds_sum{{job="{job}",route="/cart"}}') == [0.25 * carts]
    assert values(prom, f'shop_cart_items{{job="{job}"}}') == [carts]
    assert values(prom, f'up{{job="{job}"}}') == [1]
    targets = json.loads(fetch(prom + "/api/v1/targets")[2])["data"]["activeTargets"]
    assert [t["lastError"] for t in targets if t["labels"]["job"] == job] == [""]


def wsgi_call(app, method="GET", path="/", query="", headers=None):
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query}
    for key, value in (headers or {}).items():
        environ["HTTP_" + key.upper().replace("-", "_")] = value
    started = {}

    def start_response(status, response_headers):
        started["status"], started["headers"] = status, dict(response_headers)

    body = b"".join(app(environ, start_response))
    return started["status"], started["headers"], body


def asgi_call(app, method="GET", path="/", query=b"", headers=(), root_path="", messages=None):
    sent = []
    incoming = list(messages or [{"type": "http.request", "body": b"", "more_body": False}])

    async def receive():
        return incoming.pop(0)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "root_path": root_path, "query_string": query,
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers]}
    asyncio.run(app(scope, receive, send))
    return sent


class ThreadRecorder:
    """A collector recording the thread each collect() runs on."""

    def __init__(self):
        self.threads = []

    def collect(self):
        self.threads.append(threading.get_ident())
        yield GaugeMetricFamily("recorder_value", "A constant", value=1)


# --- make_wsgi_app, MetricsHandler and the shared negotiation -------------------------


def test_wsgi_app_negotiates_like_the_threaded_server():
    registry = CollectorRegistry()
    Counter("wsgi_jobs", "Jobs", registry=registry).inc(3)
    app = make_wsgi_app(registry)

    status, headers, body = wsgi_call(app)
    assert status == "200 OK" and headers["Content-Type"] == CONTENT_TYPE_PLAIN_0_0_4
    assert body == registry.generate_prometheus().encode() and headers["Content-Length"] == str(len(body))
    assert "Content-Encoding" not in headers
    status, headers, body = wsgi_call(app, headers={"Accept": PROMETHEUS_ACCEPT})
    assert headers["Content-Type"] == OM_FOR_PROMETHEUS and body.endswith(b"# EOF\n")
    status, headers, body = wsgi_call(app, headers={"Accept": NATIVE_ACCEPT})
    assert headers["Content-Type"] == CONTENT_TYPE_PROTOBUF and body == registry.generate_protobuf()

    # gzip when accepted (q > 0), small bodies too, as prometheus_client; never with disable_compression.
    status, headers, body = wsgi_call(app, headers={"Accept-Encoding": "gzip"})
    assert headers["Content-Encoding"] == "gzip" and gzip.decompress(body) == registry.generate_prometheus().encode()
    assert "Content-Encoding" not in wsgi_call(app, headers={"Accept-Encoding": "gzip;q=0"})[1]
    plain = make_wsgi_app(registry, disable_compression=True)
    status, headers, body = wsgi_call(plain, headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in headers and body.startswith(b"# HELP wsgi_jobs_total")

    # Any path serves the metrics (the app is mounted somewhere); /favicon.ico is empty.
    assert wsgi_call(app, path="/anything/below")[2] == registry.generate_prometheus().encode()
    assert wsgi_call(app, path="/favicon.ico")[::2] == ("200 OK", b"")
    status, headers, body = wsgi_call(app, method="HEAD")
    assert status == "200 OK" and body == b"" and int(headers["Content-Length"]) > 0
    status, headers, body = wsgi_call(app, method="OPTIONS")
    assert (status, headers["Allow"], body) == ("200 OK", "OPTIONS, GET, HEAD", b"")
    status, headers, body = wsgi_call(app, method="POST")
    assert status == "405 Method Not Allowed" and headers["Allow"] == "OPTIONS, GET, HEAD"
    assert body == b"# HTTP 405 Method Not Allowed: POST; use OPTIONS, GET, HEAD\n"


@needs_restricted
def test_name_parameters_restrict_every_server_and_app():
    registry = CollectorRegistry()
    Counter("keep_jobs", "Jobs", registry=registry).inc(2)
    Gauge("keep_level", "Level", registry=registry).set(5)
    Gauge("drop_level", "Level", registry=registry).set(9)
    query = "name[]=keep_jobs_total&name[]=keep_level&other=1"
    expected = registry.restricted_registry(["keep_jobs_total", "keep_level"]).generate_prometheus()
    assert "keep_jobs_total 2" in expected and "drop_level" not in expected

    assert wsgi_call(make_wsgi_app(registry), query=query)[2].decode() == expected
    sent = asgi_call(make_asgi_app(registry), query=query.encode())
    assert sent[1]["body"].decode() == expected
    with start_http_server(0, registry=registry) as server:
        assert fetch(f"{server.url}?{query}")[2].decode() == expected
        assert fetch(server.url)[2].decode() == registry.generate_prometheus()
    server, thread = start_wsgi_server(0, registry=registry)
    try:
        assert fetch(f"http://127.0.0.1:{server.server_port}/metrics?{query}")[2].decode() == expected
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_metrics_handler_and_its_factory():
    registry = CollectorRegistry()
    Gauge("handler_level", "Level", registry=registry).set(4)
    handler = MetricsHandler.factory(registry)
    assert issubclass(handler, MetricsHandler) and issubclass(handler, http.server.BaseHTTPRequestHandler)
    assert handler.registry is registry and handler.__name__ == "MetricsHandler"
    from pyveda.telemetry import REGISTRY

    assert MetricsHandler.registry is REGISTRY
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        status, headers, body = fetch(base + "/any/path")
        assert status == 200 and headers["Content-Type"] == CONTENT_TYPE_PLAIN_0_0_4
        assert body == registry.generate_prometheus().encode()
        status, headers, body = fetch(base + "/", {"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"})
        assert headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(body).decode() == registry.generate_openmetrics()
        status, headers, body = fetch(base + "/", method="HEAD")
        assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    assert not thread.is_alive()


# --- make_asgi_app ---------------------------------------------------------------------


def test_asgi_app_renders_off_the_event_loop():
    registry = CollectorRegistry()
    recorder = ThreadRecorder()
    registry.register(recorder)
    recorder.threads.clear()  # register() may collect once to check names
    app = make_asgi_app(registry)
    loop_threads = []

    async def run():
        loop_threads.append(threading.get_ident())
        sent = []
        incoming = [{"type": "http.request", "body": b"x", "more_body": True},
                    {"type": "http.request", "body": b"y", "more_body": False}]

        async def receive():
            return incoming.pop(0)

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": "/metrics/", "root_path": "/metrics",
                 "query_string": b"", "headers": [(b"accept", PROMETHEUS_ACCEPT.encode())]}
        await app(scope, receive, send)
        return sent

    sent = asyncio.run(run())
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 200
    assert dict(sent[0]["headers"])[b"content-type"] == OM_FOR_PROMETHEUS.encode()
    assert b"recorder_value 1" in sent[1]["body"]
    assert recorder.threads and loop_threads[0] not in recorder.threads  # rendered in the executor


def test_asgi_app_paths_methods_lifespan_and_disconnect():
    registry = CollectorRegistry()
    Counter("asgi_jobs", "Jobs", registry=registry).inc()
    app = make_asgi_app(registry)
    start, body = asgi_call(app, headers=[("Accept-Encoding", "gzip")])
    assert dict(start["headers"])[b"content-encoding"] == b"gzip"
    assert gzip.decompress(body["body"]) == registry.generate_prometheus().encode()
    start, body = asgi_call(make_asgi_app(registry, disable_compression=True), headers=[("Accept-Encoding", "gzip")])
    assert b"content-encoding" not in dict(start["headers"]) and body["body"].startswith(b"# HELP asgi_jobs_total")
    # Mounted at /metrics: /metrics/favicon.ico is the favicon (below root_path).
    start, body = asgi_call(app, path="/metrics/favicon.ico", root_path="/metrics")
    assert (start["status"], body["body"]) == (200, b"")
    start, body = asgi_call(app, method="HEAD")
    assert start["status"] == 200 and body["body"] == b"" and int(dict(start["headers"])[b"content-length"]) > 0
    start, body = asgi_call(app, method="DELETE")
    assert start["status"] == 405 and dict(start["headers"])[b"allow"] == b"OPTIONS, GET, HEAD"
    assert asgi_call(app, messages=[{"type": "http.disconnect"}]) == []  # the client left: nothing sent

    sent = []
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

    async def receive():
        return incoming.pop(0)

    async def send(message):
        sent.append(message)

    asyncio.run(app({"type": "lifespan"}, receive, send))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    with pytest.raises(ValueError, match=r"^make_asgi_app: the app serves 'http' \(and 'lifespan'\) scopes, "
                                         r"got 'websocket'$"):
        asyncio.run(app({"type": "websocket"}, receive, send))


# --- real web applications, scraped by the real Prometheus ------------------------------


def test_flask_app_with_make_wsgi_app_scraped_by_prometheus(tmp_path):
    flask = pytest.importorskip("flask")
    from werkzeug.middleware.dispatcher import DispatcherMiddleware
    from werkzeug.serving import make_server

    binary("prometheus", "prometheus")
    registry, metrics = shop_registry()
    app = flask.Flask("shop")

    @app.route("/cart/<int:n>")
    def cart(n):
        handle_cart(metrics, n)
        return {"items": n}

    @app.route("/ping")
    def ping():
        handle_ping(metrics)
        return "pong"

    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/metrics": make_wsgi_app(registry)})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    prom = None
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        drive(base, carts=7, pings=3)
        status, headers, body = fetch(base + "/metrics")
        assert status == 200 and headers["Content-Type"] == CONTENT_TYPE_PLAIN_0_0_4
        check_shop(body.decode(), 7, 3)
        status, headers, body = fetch(base + "/metrics", {"Accept": PROMETHEUS_ACCEPT})
        assert headers["Content-Type"] == OM_FOR_PROMETHEUS
        check_shop(body.decode(), 7, 3)
        assert fetch(base + "/ping")[0] == 200  # the app still serves its own routes
        prom = start_prometheus(tmp_path, {"flask": (server.server_port, ())})
        check_prometheus(prom[2], "flask", 7, 4)
    finally:
        if prom is not None:
            stop_server(prom[0], prom[1])
        server.shutdown()
        server.server_close()
        thread.join(10)
    assert not thread.is_alive()


def test_starlette_app_with_make_asgi_app_under_uvicorn_scraped_by_prometheus(tmp_path):
    pytest.importorskip("starlette")
    uvicorn = pytest.importorskip("uvicorn")
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Mount, Route

    binary("prometheus", "prometheus")
    registry, metrics = shop_registry()

    async def cart(request):
        n = request.path_params["n"]
        handle_cart(metrics, n)
        return JSONResponse({"items": n})

    async def ping(request):
        handle_ping(metrics)
        return PlainTextResponse("pong")

    app = Starlette(routes=[
        Route("/cart/{n:int}", cart),
        Route("/ping", ping),
        Mount("/metrics", app=make_asgi_app(registry)),
    ])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    prom = None
    try:
        wait_until(lambda: server.started, 30, "uvicorn to start")
        base = f"http://127.0.0.1:{port}"
        drive(base, carts=5, pings=2)
        status, headers, body = fetch(base + "/metrics/")
        assert status == 200 and headers["Content-Type"] == CONTENT_TYPE_PLAIN_0_0_4
        check_shop(body.decode(), 5, 2)
        # Starlette redirects /metrics to the mount's /metrics/; clients (and Prometheus) follow.
        status, headers, body = fetch(base + "/metrics", {"Accept": PROMETHEUS_ACCEPT})
        assert status == 200 and headers["Content-Type"] == OM_FOR_PROMETHEUS
        check_shop(body.decode(), 5, 2)
        assert fetch(base + "/metrics/favicon.ico")[::2] == (200, b"")
        prom = start_prometheus(tmp_path, {"starlette": (port, ())})
        check_prometheus(prom[2], "starlette", 5, 2)
    finally:
        if prom is not None:
            stop_server(prom[0], prom[1])
        server.should_exit = True
        thread.join(30)
        sock.close()
    assert not thread.is_alive()


# --- start_wsgi_server and start_http_server as prometheus_client's -------------------


def test_start_wsgi_server_returns_server_and_thread():
    registry = CollectorRegistry()
    Gauge("wsgi_server_level", "Level", registry=registry).set(8)
    server, thread = start_wsgi_server(0, registry=registry)
    try:
        assert server.server_address[0] == "127.0.0.1" and thread.daemon and thread.is_alive()
        base = f"http://127.0.0.1:{server.server_port}"
        status, headers, body = fetch(base + "/metrics")
        assert status == 200 and samples(body.decode())[("wsgi_server_level", ())] == 8
        assert fetch(base + "/", {"Accept": PROMETHEUS_ACCEPT})[1]["Content-Type"] == OM_FOR_PROMETHEUS
        assert fetch(base + "/favicon.ico")[::2] == (200, b"")
        assert fetch(base + "/metrics", method="POST", data=b"")[0] == 405
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    assert not thread.is_alive()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics", timeout=5)


def test_start_http_server_unpacks_as_server_and_thread():
    server, thread = start_http_server(0)
    assert thread is server.thread and thread.is_alive() and thread.daemon
    assert server.server_address == ("127.0.0.1", server.port) and server.server_port == server.port
    assert fetch(f"http://127.0.0.1:{server.port}/healthz")[0] == 200
    assert server.shutdown() is True
    thread.join(10)
    assert not thread.is_alive()
    server.server_close()  # prometheus_client's second step: a no-op once shut down
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=5)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1 and a client certificate signed by it, and a stranger's client cert."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl not installed (needed to make certificates)")
    tmp = tmp_path_factory.mktemp("certs")

    def run(*args):
        subprocess.run([openssl, *map(str, args)], check=True, capture_output=True, timeout=60, cwd=tmp)

    def ca(name):
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem",
            "-days", "1", "-subj", f"/CN={name}")

    def leaf(name, issuer, serial, extensions):
        (tmp / f"{name}.ext").write_text(
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
            "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n" + extensions)
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={name}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", f"{issuer}.pem", "-CAkey", f"{issuer}.key",
            "-set_serial", str(serial), "-days", "1", "-out", f"{name}.pem",
            "-extfile", f"{name}.ext")

    ca("ca")
    ca("stranger-ca")
    leaf("server", "ca", 1001, "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    leaf("client", "ca", 1002, "extendedKeyUsage=clientAuth\n")
    leaf("stranger", "stranger-ca", 1003, "extendedKeyUsage=clientAuth\n")
    return {name: str(tmp / name) for name in ("ca", "server", "client", "stranger")}


def client_context(certs, who=None):
    context = ssl.create_default_context(cafile=certs["ca"] + ".pem")
    if who is not None:
        context.load_cert_chain(certs[who] + ".pem", certs[who] + ".key")
    return context


TLS_REFUSED = (ssl.SSLError, ConnectionError, urllib.error.URLError, http.client.HTTPException, OSError)


def test_start_http_server_mutual_tls_refuses_a_client_without_a_certificate(certs):
    registry = CollectorRegistry()
    Gauge("mtls_level", "Level", registry=registry).set(6)
    server, thread = start_http_server(
        0, registry=registry, certfile=certs["server"] + ".pem", keyfile=certs["server"] + ".key",
        client_cafile=certs["ca"] + ".pem", client_auth_required=True,
    )
    try:
        assert server.url == f"https://127.0.0.1:{server.port}/metrics"
        status, _, body = fetch(server.url, context=client_context(certs, "client"))
        assert status == 200 and samples(body.decode())[("mtls_level", ())] == 6
        for who in (None, "stranger"):  # no certificate; one from a CA the server does not trust
            with pytest.raises(TLS_REFUSED):
                fetch(server.url, context=client_context(certs, who))
        # The refused handshakes left the server serving.
        assert fetch(server.url, context=client_context(certs, "client"))[0] == 200
    finally:
        server.shutdown()
        thread.join(10)
    assert not thread.is_alive()


def test_start_wsgi_server_mutual_tls(certs):
    registry = CollectorRegistry()
    Gauge("wsgi_mtls_level", "Level", registry=registry).set(2)
    server, thread = start_wsgi_server(
        0, "127.0.0.1", registry, certs["server"] + ".pem", certs["server"] + ".key",
        client_cafile=certs["ca"] + ".pem", client_auth_required=True,
    )
    try:
        url = f"https://127.0.0.1:{server.server_port}/metrics"
        status, _, body = fetch(url, context=client_context(certs, "client"))
        assert status == 200 and samples(body.decode())[("wsgi_mtls_level", ())] == 2
        with pytest.raises(TLS_REFUSED):
            fetch(url, context=client_context(certs))
        assert fetch(url, context=client_context(certs, "client"))[0] == 200
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


# --- the Pushgateway ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def pushgateway(tmp_path_factory):
    gateway = binary("prometheus-pushgateway", "prometheus-pushgateway")
    tmp = tmp_path_factory.mktemp("pushgateway")
    process, log, url = start_server(
        lambda port: [gateway, f"--web.listen-address=127.0.0.1:{port}"], "/-/ready", tmp / "gw.log"
    )
    yield url
    stop_server(process, log)


def gateway_samples(gw, job):
    """{(name, labels without job and instance): value} of what the gateway holds for ``job``."""
    got = {}
    for (name, labels), value in samples(fetch(gw + "/metrics")[2].decode()).items():
        labels = dict(labels)
        if labels.pop("job", None) == job and name not in ("push_time_seconds", "push_failure_time_seconds"):
            labels.pop("instance", None)
            got[(name, tuple(sorted(labels.items())))] = value
    return got


def test_push_pushadd_delete_with_basic_auth_and_gzip(pushgateway, monkeypatch):
    gw = pushgateway
    sent = []
    original = push.default_handler

    def recording(url, method, timeout, headers, data):  # wraps default_handler: sees what goes on the wire
        sent.append({"url": url, "method": method, "timeout": timeout, "headers": dict(headers), "data": data})
        return original(url, method, timeout, headers, data)

    monkeypatch.setattr(push, "default_handler", recording)

    def auth(url, method, timeout, headers, data):
        return basic_auth_handler(url, method, timeout, headers, data, "batch", "s3cret")

    job = "nightly etl"  # a space: the job travels in base64, as prometheus_client sends it
    grouping = {"shard": "eu/west", "attempt": 2}
    key = (("attempt", "2"), ("shard", "eu/west"))
    batch = CollectorRegistry()
    Counter("batch_rows", "Rows written", registry=batch).inc(42)
    Gauge("batch_last_success", "When it last finished", registry=batch).set(1700000000)
    assert push_to_gateway(gw, job, batch, grouping, handler=auth, compression="gzip") == 200

    (put,) = sent
    assert put["method"] == "PUT" and put["timeout"] == 30
    assert put["url"] == f"{gw}/metrics/job@base64/bmlnaHRseSBldGw=/attempt/2/shard@base64/ZXUvd2VzdA=="
    assert put["headers"] == {
        "Content-Type": CONTENT_TYPE_PLAIN_0_0_4,
        "Content-Encoding": "gzip",
        "Authorization": "Basic " + base64.b64encode(b"batch:s3cret").decode(),
    }
    assert gzip.decompress(put["data"]) == batch.generate_prometheus().encode()
    assert gateway_samples(gw, job) == {("batch_rows_total", key): 42, ("batch_last_success", key): 1700000000}

    # POST replaces only the names pushed: the counter stays.
    later = CollectorRegistry()
    Gauge("batch_last_success", "When it last finished", registry=later).set(1700000600)
    assert pushadd_to_gateway(gw, job, later, grouping, handler=auth, compression="GZIP") == 200
    assert sent[-1]["method"] == "POST" and sent[-1]["headers"]["Content-Encoding"] == "gzip"
    assert gateway_samples(gw, job) == {("batch_rows_total", key): 42, ("batch_last_success", key): 1700000600}

    # PUT replaces the whole group; uncompressed and without auth this time.
    replaced = CollectorRegistry()
    Counter("batch_rows", "Rows written", registry=replaced).inc(43)
    assert push_to_gateway(gw, job, replaced, grouping_key=grouping, handler=recording) == 200
    assert "Authorization" not in sent[-1]["headers"]
    assert "Content-Encoding" not in sent[-1]["headers"] and sent[-1]["data"] == replaced.generate_prometheus().encode()
    assert gateway_samples(gw, job) == {("batch_rows_total", key): 43}

    assert delete_from_gateway(gw, job, grouping, handler=auth) == 202
    assert sent[-1]["method"] == "DELETE" and sent[-1]["data"] == b""
    assert sent[-1]["headers"]["Authorization"].startswith("Basic ")
    assert gateway_samples(gw, job) == {}


def test_push_requests_match_prometheus_client():
    exposition = pytest.importorskip("prometheus_client.exposition")

    def recorder(into):
        def handler(url, method, timeout, headers, data):
            into.append((url, method, timeout, list(headers)))
            return lambda: None
        return handler

    keys = [None, {}, {"b": "2", "a": "x y"}, {"instance": "", "path": "/var/x", "n": 7, "u": "ü+&?"}]
    for gateway in ("localhost:9091", "http://gw.example:9091/", "https://gw.example/prefix"):
        for key in keys:
            ours, theirs = [], []
            push_to_gateway(gateway, "job", CollectorRegistry(), key, 12, recorder(ours))
            pushadd_to_gateway(gateway, "job", CollectorRegistry(), key, handler=recorder(ours), compression="gzip")
            delete_from_gateway(gateway, "job", key, 5, recorder(ours))
            exposition.push_to_gateway(gateway, "job", exposition.REGISTRY.__class__(), key, 12, recorder(theirs))
            exposition.pushadd_to_gateway(gateway, "job", exposition.REGISTRY.__class__(), key,
                                          handler=recorder(theirs), compression="gzip")
            exposition.delete_from_gateway(gateway, "job", key, 5, recorder(theirs))
            assert ours == theirs, (gateway, key)
    assert instance_ip_grouping_key() == exposition.instance_ip_grouping_key()


# --- the handlers on the wire: a recording server ---------------------------------------


class Recorder(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, context=None):
        self.requests = []
        super().__init__(("127.0.0.1", 0), RecordingHandler)
        self.context = context

    def finish_request(self, request, client_address):
        if self.context is not None:
            try:
                request = self.context.wrap_socket(request, server_side=True)
            except (OSError, ValueError):
                return
        super().finish_request(request, client_address)

    def __enter__(self):
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()
        self.thread.join(10)


class RecordingHandler(http.server.BaseHTTPRequestHandler):
    """Records each request; /moved/... answers 307 to the same path without /moved."""

    def log_message(self, *args):
        pass

    def _record(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                     "body": body})
        if self.path.startswith("/moved/"):
            self.send_response(307)
            self.send_header("Location", self.path[len("/moved"):])
        else:
            self.send_response(202 if self.command == "DELETE" else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_PUT = do_POST = do_DELETE = _record


def test_basic_auth_handler_sends_the_header():
    registry = CollectorRegistry()
    Gauge("wire_level", "Level", registry=registry).set(1)
    with Recorder() as recorder:
        gw = f"127.0.0.1:{recorder.server_port}"

        def auth(url, method, timeout, headers, data):
            return basic_auth_handler(url, method, timeout, headers, data, "ü", "p:w")

        push_to_gateway(gw, "j", registry, handler=auth)
        push_to_gateway(gw, "j", registry, handler=lambda **kw: basic_auth_handler(**kw, username="only"))
        (with_auth, without) = recorder.requests
    assert with_auth["headers"]["Authorization"] == "Basic " + base64.b64encode("ü:p:w".encode()).decode()
    assert with_auth["path"] == "/metrics/job/j" and with_auth["body"] == registry.generate_prometheus().encode()
    assert "Authorization" not in without["headers"]  # no password: no header, as prometheus_client


def test_passthrough_redirect_handler_repeats_the_put():
    registry = CollectorRegistry()
    Counter("moved_jobs", "Jobs", registry=registry).inc(5)
    with Recorder() as recorder:
        gw = f"http://127.0.0.1:{recorder.server_port}/moved"
        assert push_to_gateway(gw, "j", registry, {"k": "v"}, handler=passthrough_redirect_handler) == 200
        first, second = recorder.requests
        assert (first["path"], second["path"]) == ("/moved/metrics/job/j/k/v", "/metrics/job/j/k/v")
        assert second["method"] == "PUT" and second["body"] == first["body"] == registry.generate_prometheus().encode()
        assert second["headers"]["Content-Type"] == CONTENT_TYPE_PLAIN_0_0_4
        assert delete_from_gateway(gw, "j", handler=passthrough_redirect_handler) == 202
        assert [r["method"] for r in recorder.requests[2:]] == ["DELETE", "DELETE"]
        # urllib alone does not redirect a PUT.
        with pytest.raises(urllib.error.HTTPError) as refused:
            push_to_gateway(gw, "j", registry, handler=default_handler)
        assert refused.value.code == 307


def test_tls_auth_handler_presents_the_client_certificate(certs):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs["server"] + ".pem", certs["server"] + ".key")
    context.load_verify_locations(certs["ca"] + ".pem")
    context.verify_mode = ssl.CERT_REQUIRED
    registry = CollectorRegistry()
    Gauge("tls_level", "Level", registry=registry).set(3)
    with Recorder(context) as recorder:
        gw = f"https://127.0.0.1:{recorder.server_port}"

        def tls(url, method, timeout, headers, data):
            return tls_auth_handler(url, method, timeout, headers, data, certs["client"] + ".pem",
                                    certs["client"] + ".key", cafile=certs["ca"] + ".pem")

        assert push_to_gateway(gw, "tls", registry, handler=tls) == 200
        assert recorder.requests[0]["body"] == registry.generate_prometheus().encode()
        with pytest.raises(TLS_REFUSED):  # the default handler has no client certificate
            push_to_gateway(gw, "tls", registry, timeout=10)


# --- bad input: each says what was wrong and what is allowed ---------------------------


def _returns_nothing(url, method, timeout, headers, data):
    return None


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: push_to_gateway("gw:1", "j", {"shard": "3"}), TypeError,
         r"^push_to_gateway: registry \(the 3rd argument, as in prometheus_client\) must be a pyveda\.telemetry\."
         r"CollectorRegistry, its restricted_registry\(\) or None for REGISTRY, got dict; grouping_key is the 4th "
         r"argument \(pass it as grouping_key=\)$"),
        (lambda: pushadd_to_gateway("gw:1", "j", "registry"), TypeError,
         r"^pushadd_to_gateway: registry \(the 3rd argument.*got str$"),
        (lambda: push_to_gateway("", "j", None), TypeError,
         r"^push_to_gateway: gateway must be a URL or host:port str such as 'localhost:9091', got ''$"),
        (lambda: push_to_gateway("ftp://gw", "j", None), ValueError,
         r"^push_to_gateway: the gateway URL must be http:// or https:// \(or host:port\), got 'ftp://gw'$"),
        (lambda: push_to_gateway("gw:1", "", None), ValueError,
         r"^push_to_gateway: job must be a non-empty str, got ''$"),
        (lambda: delete_from_gateway("gw:1", 7), TypeError,
         r"^delete_from_gateway: job must be a non-empty str, got int \(7\)$"),
        (lambda: push_to_gateway("gw:1", "j", None, [("a", "1")]), TypeError,
         r"^push_to_gateway: grouping_key must be a dict of label name to value, got list$"),
        (lambda: push_to_gateway("gw:1", "j", None, {"a/b": 1}), ValueError,
         r"^push_to_gateway: a grouping_key label name must be non-empty and without '/', got 'a/b'$"),
        (lambda: delete_from_gateway("gw:1", "j", {"": 1}), ValueError,
         r"^delete_from_gateway: a grouping_key label name must be non-empty and without '/', got ''$"),
        (lambda: push_to_gateway("gw:1", "j", None, timeout=-1), ValueError,
         r"^push_to_gateway: timeout must be a number of seconds > 0 or None, got -1$"),
        (lambda: delete_from_gateway("gw:1", "j", timeout="30"), ValueError,
         r"^delete_from_gateway: timeout must be a number of seconds > 0 or None, got '30'$"),
        (lambda: push_to_gateway("gw:1", "j", CollectorRegistry(), compression="zstd"), ValueError,
         r"^Unsupported compression type: 'zstd' \(push_to_gateway takes None, 'gzip' or 'snappy'\)$"),
        (lambda: pushadd_to_gateway("gw:1", "j", CollectorRegistry(), compression=True), TypeError,
         r"^pushadd_to_gateway: compression must be None, 'gzip' or 'snappy', got bool \(True\)$"),
        (lambda: push_to_gateway("gw:1", "j", CollectorRegistry(), handler="default"), TypeError,
         r"^push_to_gateway: handler must be a function like default_handler\(url, method, timeout, headers, data\) "
         r"returning the function that sends the request, got str$"),
        (lambda: push_to_gateway("gw:1", "j", CollectorRegistry(), handler=_returns_nothing), TypeError,
         r"^push_to_gateway: the handler returned NoneType, not a function that sends the request"),
        (lambda: basic_auth_handler("http://gw/", "PUT", 1, [], b"", "a:b", "pw"), ValueError,
         r"^basic_auth_handler: a basic-auth user name cannot contain ':'$"),
        (lambda: basic_auth_handler("http://gw/", "PUT", 1, [], b"", "a", 5), TypeError,
         r"^basic_auth_handler: password must be a str or None, got int$"),
        (lambda: make_wsgi_app(object()), TypeError,
         r"^make_wsgi_app: registry must be a pyveda\.telemetry\.CollectorRegistry, got object$"),
        (lambda: make_wsgi_app(CollectorRegistry(), "yes"), TypeError,
         r"^make_wsgi_app: disable_compression must be True or False, got str \('yes'\)$"),
        (lambda: make_asgi_app({}), TypeError,
         r"^make_asgi_app: registry must be a pyveda\.telemetry\.CollectorRegistry, got dict$"),
        (lambda: make_asgi_app(disable_compression=1), TypeError,
         r"^make_asgi_app: disable_compression must be True or False, got int \(1\)$"),
        (lambda: MetricsHandler.factory("registry"), TypeError,
         r"^MetricsHandler\.factory: registry must be a pyveda\.telemetry\.CollectorRegistry, got str$"),
        (lambda: start_wsgi_server("8000"), TypeError,
         r"^start_wsgi_server: port must be an int in \[0, 65535\], got str \('8000'\)$"),
        (lambda: start_wsgi_server(70000), ValueError,
         r"^start_wsgi_server: port must be in \[0, 65535\] \(0 picks a free one\), got 70000$"),
        (lambda: start_wsgi_server(0, registry=object()), TypeError,
         r"^start_wsgi_server: registry must be a pyveda\.telemetry\.CollectorRegistry, got object$"),
        (lambda: start_http_server(0, client_cafile="ca.pem", client_auth_required=True), ValueError,
         r"^start_http_server: client_cafile, client_auth_required=True given without certfile and keyfile "
         r"\(they only apply with TLS\)$"),
        (lambda: start_wsgi_server(0, keyfile="k.pem"), ValueError,
         r"^start_wsgi_server: TLS needs both certfile and keyfile$"),
        (lambda: start_http_server(0, client_auth_required="yes"), TypeError,
         r"^start_http_server: client_auth_required must be True or False, got str \('yes'\)$"),
        (lambda: start_http_server(0, "127.0.0.1", None, "cert.pem"), TypeError,
         r"^start_http_server: runtime must be a pyveda\.Runtime \(the 4th argument\), got str; "
         r"pass certfile= and keyfile= by keyword$"),
        (lambda: start_http_server(0, certfile=3, keyfile="k.pem"), TypeError,
         r"^start_http_server: certfile must be a file path \(str or os\.PathLike\), got int$"),
    ],
)
def test_bad_input_says_what_is_allowed(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_snappy_without_python_snappy(monkeypatch):
    monkeypatch.setitem(sys.modules, "snappy", None)
    with pytest.raises(RuntimeError, match=r"^push_to_gateway: snappy compression needs the python-snappy package "
                                           r"\(pip install python-snappy\)$"):
        push_to_gateway("gw:1", "j", CollectorRegistry(), compression="snappy")


def test_tls_arguments_are_checked(certs, tmp_path):
    cert, key = certs["server"] + ".pem", certs["server"] + ".key"
    with pytest.raises(ValueError, match=r"^start_http_server: protocol must be a server protocol such as "
                                         r"ssl\.PROTOCOL_TLS_SERVER, not ssl\.PROTOCOL_TLS_CLIENT$"):
        start_http_server(0, certfile=cert, keyfile=key, protocol=ssl.PROTOCOL_TLS_CLIENT)
    missing = str(tmp_path / "missing.pem")
    with pytest.raises(FileNotFoundError, match=r"^start_wsgi_server: cannot load the server certificate "
                                                r"certfile='.*missing\.pem' or its key keyfile="):
        start_wsgi_server(0, certfile=missing, keyfile=key)
    with pytest.raises(FileNotFoundError, match=r"^start_http_server: cannot load the client CA certificates from "
                                                r"client_cafile='.*missing\.pem'"):
        start_http_server(0, certfile=cert, keyfile=key, client_cafile=missing, client_auth_required=True)


def test_public_names_come_from_pyveda_telemetry():
    import pyveda.telemetry as telemetry
    from pyveda.telemetry import asgi, wsgi

    expected = {
        "make_wsgi_app": wsgi, "start_wsgi_server": wsgi, "MetricsHandler": wsgi, "make_asgi_app": asgi,
        "default_handler": push, "basic_auth_handler": push, "tls_auth_handler": push,
        "passthrough_redirect_handler": push, "instance_ip_grouping_key": push,
    }
    missing = [name for name in expected if name not in telemetry.__all__]
    assert not missing, f"pyveda.telemetry._EXPORTS lacks {missing}"
    for name, module in expected.items():
        assert getattr(telemetry, name) is getattr(module, name)
