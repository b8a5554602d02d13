"""A Prometheus scrape endpoint: ``start_http_server``.

>>> from pyveda.telemetry import start_http_server
>>> with start_http_server(port=0) as server:      # 0: any free port
...     print(server.url)                           # http://127.0.0.1:<port>/metrics

Endpoints (GET and HEAD; other methods get 405):

* ``/metrics``: the whole registry, live (runtime ``pyveda_*`` families,
  custom metrics, GPU gauges) in text format 0.0.4; OpenMetrics 1.0.0 when
  the ``Accept`` header lists ``application/openmetrics-text`` (Prometheus
  does); gzip when ``Accept-Encoding`` allows it.
* ``/metrics.json``: the runtime's current snapshot (``export_json()``), or
  503 with a JSON error when there is no runtime or its telemetry is off.
* ``/healthz``: ``ok``.
* anything else: 404.

Each request runs on its own daemon thread (``ThreadingHTTPServer``); the
listening thread is a daemon too, and :meth:`MetricsServer.shutdown` stops
and joins it. Optional HTTP basic auth (``basic_auth=(user, password)``,
every path, 401 otherwise) and TLS (``certfile``/``keyfile``; the handshake
runs on the request thread, never on the accept loop).

The server modules (``http.server``, ``ssl``, ``gzip``) are imported when the
first server starts, so ``import pyveda`` stays fast.
"""

from __future__ import annotations

import base64
import functools
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

from pyveda._checks import seconds
from pyveda.telemetry.metrics import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry
from pyveda.telemetry.openmetrics import CONTENT_TYPE_OPENMETRICS

if TYPE_CHECKING:  # pragma: no cover
    from pyveda.runtime import Runtime

__all__ = ["MetricsServer", "start_http_server"]

_REQUEST_TIMEOUT_S = 30.0  # a client that stalls longer loses its connection (and thread)


def _accepts(header: Optional[str], wanted: str) -> bool:
    """Whether an Accept/Accept-Encoding header lists ``wanted`` (or ``*``) with q > 0."""
    if not header:
        return False
    for item in header.split(","):
        parts = [p.strip() for p in item.split(";")]
        token = parts[0].lower()
        if token not in (wanted, "*"):
            continue
        quality = 1.0
        for param in parts[1:]:
            key, _, val = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(val)
                except ValueError:
                    quality = 0.0
        if quality > 0 and token == wanted:
            return True
    return False


def _wants_openmetrics(accept: Optional[str]) -> bool:
    if not accept:
        return False
    for item in accept.split(","):
        if item.split(";")[0].strip().lower() == "application/openmetrics-text":
            return _accepts(item, "application/openmetrics-text")
    return False


class _App:
    """What the handler serves; shared by the request threads (read-only after start)."""

    def __init__(self, registry: CollectorRegistry, runtime: Optional["Runtime"], auth: Optional[bytes]) -> None:
        self.registry = registry
        self.runtime = runtime
        self.auth = auth  # the expected basic-auth token (base64 of user:password), or None

    def current_runtime(self) -> Optional["Runtime"]:
        if self.runtime is not None:
            return self.runtime
        from pyveda import runtime as runtime_module

        current = runtime_module._runtime  # never start one just to answer a scrape
        return current if current is not None and not current.is_shutdown else None


@functools.lru_cache(maxsize=None)
def _server_classes() -> Tuple[type, type]:
    import gzip
    import hmac
    import http.server
    import json
    import socket

    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "pyveda"
        timeout = _REQUEST_TIMEOUT_S

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
            pass  # scrapes every few seconds would flood stderr

        def _send(self, status: int, body: bytes, content_type: str, extra: Tuple[Tuple[str, str], ...] = ()) -> None:
            if len(body) > 512 and _accepts(self.headers.get("Accept-Encoding"), "gzip"):
                body = gzip.compress(body, compresslevel=5)
                extra = extra + (("Content-Encoding", "gzip"),)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Vary", "Accept, Accept-Encoding")
            for key, value in extra:
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _send_text(self, status: int, text: str, extra: Tuple[Tuple[str, str], ...] = ()) -> None:
            self._send(status, text.encode("utf-8"), "text/plain; charset=utf-8", extra)

        def _authorized(self) -> bool:
            expected = self.server.app.auth
            if expected is None:
                return True
            # "<scheme> <token>": the scheme is case-insensitive (RFC 7235 section 2.1).
            scheme, _, token = self.headers.get("Authorization", "").strip().partition(" ")
            given = token.strip().encode("latin-1", "replace")
            if scheme.lower() == "basic" and hmac.compare_digest(given, expected):
                return True
            self._send_text(401, "unauthorized\n", (("WWW-Authenticate", 'Basic realm="pyveda", charset="UTF-8"'),))
            return False

        def _route(self) -> None:
            if not self._authorized():
                return
            if self.command not in ("GET", "HEAD"):
                self._send_text(405, "method not allowed\n", (("Allow", "GET, HEAD"),))
                return
            path = self.path.split("?", 1)[0]
            app = self.server.app
            if path == "/metrics":
                if _wants_openmetrics(self.headers.get("Accept")):
                    self._send(200, app.registry.generate_openmetrics().encode("utf-8"), CONTENT_TYPE_OPENMETRICS)
                else:
                    self._send(200, app.registry.generate_prometheus().encode("utf-8"), CONTENT_TYPE_LATEST)
            elif path == "/metrics.json":
                runtime = app.current_runtime()
                if runtime is None or runtime.telemetry is None:
                    reason = "no pyveda runtime is running" if runtime is None else "telemetry is disabled"
                    body = json.dumps({"error": reason}).encode("utf-8")
                    self._send(503, body, "application/json")
                    return
                body = json.dumps(runtime.telemetry.snapshot().export_json()).encode("utf-8")
                self._send(200, body, "application/json")
            elif path == "/healthz":
                self._send_text(200, "ok\n")
            else:
                self._send_text(404, "not found\n")

        do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _route

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 128  # the listen backlog: the default 5 stalls bursts of connects

        def __init__(self, address: Tuple[str, int], app: _App, ssl_context: Any) -> None:
            self.app = app
            self.ssl_context = ssl_context
            self.active: Dict[threading.Thread, Any] = {}  # request thread -> its socket
            self.active_lock = threading.Lock()
            if ":" in address[0]:
                self.address_family = socket.AF_INET6
            super().__init__(address, Handler)

        def process_request_thread(self, request: Any, client_address: Any) -> None:
            with self.active_lock:
                self.active[threading.current_thread()] = request
            try:
                super().process_request_thread(request, client_address)
            finally:
                with self.active_lock:
                    self.active.pop(threading.current_thread(), None)

        def finish_request(self, request: Any, client_address: Any) -> None:
            if self.ssl_context is not None:
                request.settimeout(_REQUEST_TIMEOUT_S)
                try:
                    request = self.ssl_context.wrap_socket(request, server_side=True)
                except (OSError, ValueError):
                    return  # a failed handshake (plain HTTP on a TLS port, a timeout) just drops the connection
            super().finish_request(request, client_address)

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a client that hangs up mid-response is not the server's problem

    return Handler, Server


class MetricsServer:
    """A running endpoint (from :func:`start_http_server`); a context manager.

    ``port`` is the bound port (useful with ``port=0``), ``url`` the
    ``/metrics`` address. Thread-safe; :meth:`shutdown` may be called twice.
    """

    def __init__(self, server: Any, scheme: str) -> None:
        self._server = server
        host, port = server.server_address[:2]
        self.port: int = port
        self.addr: str = host
        shown = f"[{host}]" if ":" in host else host
        self.url: str = f"{scheme}://{shown}:{port}/metrics"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=f"pyveda-http-{port}", daemon=True
        )
        self._closed = False
        self._lock = threading.Lock()
        self._thread.start()

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Stops accepting and waits up to ``timeout`` seconds in all for the requests in flight.

        Returns within about ``timeout`` seconds: a request still running then
        (a client that stopped reading, say) has its connection shut down.
        True if every request had finished in time. A second call returns True
        at once. ``timeout`` must be a number of seconds >= 0.
        """
        deadline = time.monotonic() + seconds(timeout, "timeout")
        with self._lock:
            if self._closed:
                return True
            self._closed = True
        self._server.shutdown()  # returns within one poll interval (0.1 s)
        self._thread.join(max(0.0, deadline - time.monotonic()))
        self._server.server_close()
        with self._server.active_lock:
            in_flight = list(self._server.active)
        for thread in in_flight:  # one deadline for all of them, not timeout each
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._server.active_lock:
            late = list(self._server.active.values())
        for request in late:
            try:
                request.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed
        return not late

    close = shutdown

    def __enter__(self) -> "MetricsServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return f"<MetricsServer {self.url}{' (shut down)' if self._closed else ''}>"


def start_http_server(
    port: int = 9090,
    addr: str = "127.0.0.1",
    registry: Optional[CollectorRegistry] = None,
    runtime: Optional["Runtime"] = None,
    *,
    basic_auth: Optional[Tuple[str, str]] = None,
    certfile: Optional[str] = None,
    keyfile: Optional[str] = None,
) -> MetricsServer:
    """Serves ``/metrics``, ``/metrics.json`` and ``/healthz`` on a background thread.

    ``registry`` defaults to :data:`~pyveda.telemetry.REGISTRY` (which holds
    the runtime's families); ``runtime`` (for ``/metrics.json``) defaults to
    the process-wide runtime of :func:`pyveda.init`, looked up per request.
    ``port=0`` picks a free port (see ``.port``). The default address is
    loopback: pass ``addr="0.0.0.0"`` to be reachable from other hosts.
    Raises TypeError/ValueError for bad arguments and OSError when the port
    cannot be bound.
    """
    if not isinstance(port, int) or isinstance(port, bool):
        raise TypeError(f"start_http_server: port must be an int in [0, 65535], got {type(port).__name__} ({port!r})")
    if not 0 <= port <= 65535:
        raise ValueError(f"start_http_server: port must be in [0, 65535] (0 picks a free one), got {port}")
    if not isinstance(addr, str):
        raise TypeError(f"start_http_server: addr must be a str such as '127.0.0.1', got {type(addr).__name__}")
    if registry is None:
        registry = REGISTRY
    elif not isinstance(registry, CollectorRegistry):
        raise TypeError(
            f"start_http_server: registry must be a pyveda.telemetry.CollectorRegistry, got {type(registry).__name__}"
        )
    if runtime is not None:
        from pyveda.runtime import Runtime

        if not isinstance(runtime, Runtime):
            raise TypeError(f"start_http_server: runtime must be a pyveda.Runtime, got {type(runtime).__name__}")
    auth = None
    if basic_auth is not None:
        if (
            not isinstance(basic_auth, (tuple, list))
            or len(basic_auth) != 2
            or not all(isinstance(x, str) for x in basic_auth)
        ):
            raise TypeError("start_http_server: basic_auth must be a (user, password) tuple of str")
        user, password = basic_auth
        if ":" in user:
            raise ValueError("start_http_server: a basic-auth user name cannot contain ':'")
        auth = base64.b64encode(f"{user}:{password}".encode("utf-8"))  # the token after "Basic "
    if (certfile is None) != (keyfile is None):
        raise ValueError("start_http_server: TLS needs both certfile and keyfile")
    ssl_context = None
    if certfile is not None:
        import ssl

        ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_context.minimum_version = ssl.TLSVersion.TLSv1_2
        ssl_context.load_cert_chain(certfile, keyfile)
    _, server_class = _server_classes()
    server = server_class((addr, port), _App(registry, runtime, auth), ssl_context)
    return MetricsServer(server, "https" if ssl_context is not None else "http")
