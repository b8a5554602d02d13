"""A Prometheus scrape endpoint: ``start_http_server``, and the exposition
every PyVeda server and app shares.

>>> from pyveda.telemetry import start_http_server
>>> with start_http_server(port=0) as server:      # 0: any free port
...     print(server.url)                           # http://127.0.0.1:<port>/metrics
>>> server, thread = start_http_server(port=0)      # prometheus_client's form works too
>>> server.shutdown(); thread.join()

Endpoints (GET and HEAD; other methods get 405):

* ``/metrics``: the whole registry, live (runtime ``pyveda_*`` families,
  custom metrics, GPU gauges), in the format the ``Accept`` header ranks
  highest: the protobuf exposition with native histograms
  (``application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily;
  encoding=delimited``, what Prometheus asks for with
  ``--enable-feature=native-histograms``), OpenMetrics 1.0.0
  (``application/openmetrics-text``, Prometheus' default), else text format
  0.0.4 (also for a missing or unknown Accept); gzip when
  ``Accept-Encoding`` allows it. ``?name[]=a&name[]=b`` limits the reply
  to those families (``registry.restricted_registry``), as in prometheus_client.
* ``/metrics.json``: the runtime's current snapshot (``export_json()``), or
  503 with a JSON error when there is no runtime or its telemetry is off. In
  multi-process mode, the snapshot of every process's runtime summed (the
  percentiles from the merged lifetime histogram).
* ``/healthz``: ``ok``.
* anything else: 404.

Each request runs on its own daemon thread (``ThreadingHTTPServer``); the
listening thread is a daemon too, and :meth:`MetricsServer.shutdown` stops
and joins it. Each connection has one deadline for its whole request and
reply (``request_timeout``, 30 s), and at most ``max_connections`` (64) are
served at once; one more gets 503 on the spot. Optional HTTP basic auth (``basic_auth=(user, password)``,
every path, 401 otherwise) and TLS (``certfile``/``keyfile``; the handshake
runs on the request thread, never on the accept loop), with client
certificates (mutual TLS) through prometheus_client's ``client_cafile``,
``client_capath`` and ``client_auth_required``.

:func:`metrics_reply` is the one implementation of Accept negotiation,
``name[]`` restriction and gzip: this server, :func:`pyveda.telemetry.make_wsgi_app`,
:func:`pyveda.telemetry.make_asgi_app`, ``start_wsgi_server`` and
``MetricsHandler`` all answer through it.

The server modules (``http.server``, ``ssl``, ``gzip``) are imported when the
first server starts, so ``import pyveda`` stays fast.
"""

from __future__ import annotations

import base64
import functools
import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Tuple

from pyveda import _core
from pyveda._checks import seconds
from pyveda.telemetry.registry import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CONTENT_TYPE_PLAIN_1_0_0,
    CONTENT_TYPE_PROTOBUF,
    ESCAPING_SCHEMES,
    REGISTRY,
    CollectorRegistry,
)
from pyveda.telemetry.openmetrics import CONTENT_TYPE_OPENMETRICS

if TYPE_CHECKING:  # pragma: no cover
    from pyveda.runtime import Runtime

__all__ = ["MetricsServer", "choose_encoder", "choose_exposition", "metrics_reply", "negotiate", "start_http_server"]

_REQUEST_TIMEOUT_S = 30.0  # default whole-request deadline: a slower client loses its connection (and thread)
_MAX_CONNECTIONS = 64  # default cap on connections served at once
_MAX_REFUSED = 256  # refused connections held open for their 503 to be read; more are just closed


class _Connection:
    """One accepted connection: when it must be done, its socket (the TLS one once
    wrapped) and the thread serving it."""

    __slots__ = ("deadline", "sock", "thread")

    def __init__(self, deadline: float, sock: Any) -> None:
        self.deadline = deadline
        self.sock = sock
        self.thread: Optional[threading.Thread] = None

    def cut(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed


def _header_items(header: Optional[str]) -> List[Tuple[str, Dict[str, str], float]]:
    """An Accept or Accept-Encoding header as (token, parameters, q): the token
    lower-cased, q 1 when absent and 0 when not a number."""
    items = []
    for item in (header or "").split(","):
        parts = [p.strip() for p in item.split(";")]
        params: Dict[str, str] = {}
        for param in parts[1:]:
            key, _, value = param.partition("=")
            params[key.strip().lower()] = value.strip().strip('"')
        try:
            quality = float(params.get("q", "1"))
        except ValueError:
            quality = 0.0
        items.append((parts[0].lower(), params, quality))
    return items


def _accepts(header: Optional[str], wanted: str) -> bool:
    """Whether an Accept/Accept-Encoding header lists ``wanted`` with q > 0."""
    return any(token == wanted and quality > 0 for token, _, quality in _header_items(header))


_PROTOBUF_TYPE = "application/vnd.google.protobuf"
_OPENMETRICS_TYPE = "application/openmetrics-text"


def _version_at_least_1(params: Dict[str, str]) -> bool:
    """Whether the media type's ``version`` parameter is 1.0.0 or later (a missing or odd one is not)."""
    try:
        return tuple(int(part) for part in params.get("version", "").split(".")) >= (1, 0, 0)
    except ValueError:
        return False


def _escaping(params: Dict[str, str]) -> str:
    """The ``escaping`` parameter if it names a scheme, else ``underscores`` (prometheus_client's rule)."""
    escaping = params.get("escaping", "underscores")
    return escaping if escaping in ESCAPING_SCHEMES else "underscores"


def negotiate(accept: Optional[str]) -> Tuple[str, str, str]:
    """(exposition, escaping, Content-Type) for a scraper's Accept header.

    The exposition is "protobuf", "openmetrics" or "text", whichever media
    type ranks highest by q (1 when absent; q=0 refuses), the earlier one
    winning a tie; protobuf counts only with
    ``proto=io.prometheus.client.MetricFamily`` and ``encoding=delimited``;
    ``text/plain``, ``*/*``, an unknown type or no header at all give text.
    Names outside the legacy character set are escaped as the chosen type's
    ``escaping=`` parameter says (underscores, dots, values, allow-utf-8)
    when it also has ``version=1.0.0`` or later (text, OpenMetrics) or
    always (protobuf), as prometheus_client 0.26 and Prometheus 3 do; the
    Content-Type then names the escaping (and text says version 1.0.0).
    Otherwise names are escaped with underscores and the Content-Type is
    text 0.0.4's, OpenMetrics 1.0.0's or protobuf's plain one.
    """
    best: Tuple[str, Dict[str, str]] = ("text", {})
    best_q = 0.0
    for media, params, quality in _header_items(accept):
        if media == _PROTOBUF_TYPE:
            if params.get("proto") != "io.prometheus.client.MetricFamily" or params.get("encoding") != "delimited":
                continue
            kind = "protobuf"
        elif media == _OPENMETRICS_TYPE:
            kind = "openmetrics"
        elif media in ("text/plain", "*/*", "text/*"):
            kind = "text" if media == "text/plain" else "any"
        else:
            continue
        if quality > best_q:
            best, best_q = (kind, params), quality
    kind, params = best
    if kind == "protobuf":
        if "escaping" in params:
            escaping = _escaping(params)
            return kind, escaping, f"{CONTENT_TYPE_PROTOBUF}; escaping={escaping}"
        return kind, "underscores", CONTENT_TYPE_PROTOBUF
    if kind == "openmetrics":
        if _version_at_least_1(params):
            escaping = _escaping(params)
            return kind, escaping, f"{_OPENMETRICS_TYPE}; version={params['version']}; charset=utf-8; escaping={escaping}"
        return kind, "underscores", CONTENT_TYPE_OPENMETRICS
    if kind == "text" and _version_at_least_1(params):
        escaping = _escaping(params)
        return "text", escaping, f"{CONTENT_TYPE_PLAIN_1_0_0}; escaping={escaping}"
    return "text", "underscores", CONTENT_TYPE_PLAIN_0_0_4


def choose_exposition(accept: Optional[str]) -> str:
    """The exposition a scraper's Accept header ranks highest: "protobuf", "openmetrics" or "text" (see :func:`negotiate`)."""
    return negotiate(accept)[0]


def choose_encoder(accept_header: Optional[str]) -> Tuple[Callable[[Any], bytes], str]:
    """prometheus_client's ``choose_encoder``: (encoder, Content-Type) for an Accept header.

    ``encoder(registry)`` renders the negotiated exposition (see
    :func:`negotiate`) as bytes.
    """
    kind, escaping, content_type = negotiate(accept_header)

    def encoder(registry: Any) -> bytes:
        return _render(registry, kind, escaping)

    return encoder, content_type


def _render(source: Any, kind: str, escaping: str) -> bytes:
    if kind == "protobuf":
        return source.generate_protobuf(escaping)
    if kind == "openmetrics":
        return source.generate_openmetrics(escaping).encode("utf-8")
    return source.generate_prometheus(escaping).encode("utf-8")


Headers = List[Tuple[str, str]]

#: What the WSGI/ASGI apps and MetricsHandler answer to (prometheus_client: OPTIONS and GET; HEAD added).
_APP_METHODS = "OPTIONS, GET, HEAD"
_REASONS = {200: "OK", 405: "Method Not Allowed"}


def check_registry(registry: Any, owner: str) -> CollectorRegistry:
    """``registry`` for a server or app: None gives :data:`REGISTRY`; not a CollectorRegistry: TypeError."""
    if registry is None:
        return REGISTRY
    if not isinstance(registry, CollectorRegistry):
        raise TypeError(
            f"{owner}: registry must be a pyveda.telemetry.CollectorRegistry, got {type(registry).__name__}"
        )
    return registry


def check_flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{what} must be True or False, got {type(value).__name__} ({value!r})")
    return value


def query_names(query: Optional[str]) -> Optional[List[str]]:
    """The ``name[]`` values of a URL query string (``a=1&name[]=x&name[]=y`` -> ['x', 'y']), None without any."""
    if not query or "name" not in query:
        return None
    from urllib.parse import parse_qs

    return parse_qs(query).get("name[]") or None


def metrics_reply(
    registry: CollectorRegistry,
    accept: Optional[str],
    accept_encoding: Optional[str],
    names: Optional[List[str]] = None,
    disable_compression: bool = False,
) -> Tuple[Headers, bytes]:
    """The headers and body of a ``/metrics`` reply; every PyVeda server and app answers through this.

    The format and name escaping are the ones :func:`negotiate` picks from ``accept``;
    ``names`` (from ``name[]``) limits it to ``registry.restricted_registry(names)``;
    the body is gzipped when ``accept_encoding`` lists gzip with q > 0, unless
    ``disable_compression``. The headers hold Content-Type, Vary,
    Content-Encoding (with gzip) and Content-Length.
    """
    source: Any = registry if not names else registry.restricted_registry(names)
    exposition, escaping, content_type = negotiate(accept)
    body = _render(source, exposition, escaping)
    headers = [("Content-Type", content_type), ("Vary", "Accept, Accept-Encoding")]
    if not disable_compression and _accepts(accept_encoding, "gzip"):
        import gzip

        body = gzip.compress(body, compresslevel=5)
        headers.append(("Content-Encoding", "gzip"))
    headers.append(("Content-Length", str(len(body))))
    return headers, body


def app_reply(
    registry: CollectorRegistry,
    method: str,
    path: str,
    accept: Optional[str],
    accept_encoding: Optional[str],
    query: Optional[str],
    disable_compression: bool = False,
) -> Tuple[int, str, Headers, bytes]:
    """(status, reason, headers, body) of the WSGI/ASGI apps and MetricsHandler, as prometheus_client answers.

    GET on any path serves the metrics (the app is mounted somewhere: its
    path is whatever follows), except ``/favicon.ico``: 200 and empty, for
    browsers. HEAD gets GET's headers (the caller sends no body). OPTIONS
    gets 200 and ``Allow``; any other method 405.
    """
    if method == "OPTIONS":
        return 200, "OK", [("Allow", _APP_METHODS), ("Content-Length", "0")], b""
    if method not in ("GET", "HEAD"):
        body = f"# HTTP 405 Method Not Allowed: {method}; use {_APP_METHODS}\n".encode("utf-8", "replace")
        headers = [("Allow", _APP_METHODS), ("Content-Type", "text/plain; charset=utf-8"),
                   ("Content-Length", str(len(body)))]
        return 405, _REASONS[405], headers, body
    if path == "/favicon.ico":
        return 200, "OK", [("Content-Length", "0")], b""
    headers, body = metrics_reply(registry, accept, accept_encoding, query_names(query), disable_compression)
    return 200, "OK", headers, body


def ssl_server_context(
    owner: str,
    certfile: Any,
    keyfile: Any,
    protocol: Optional[int] = None,
    client_cafile: Any = None,
    client_capath: Any = None,
    client_auth_required: bool = False,
    tls_min_version: Any = None,
    tls_max_version: Any = None,
) -> Any:
    """The server-side ``ssl.SSLContext`` for these arguments, or None when there is no certfile/keyfile.

    As prometheus_client: client certificates are checked against
    ``client_cafile``/``client_capath`` (the system CAs when neither is
    given) and required (``ssl.CERT_REQUIRED``) with ``client_auth_required``.
    TLS 1.2 is the minimum unless ``tls_min_version`` says otherwise. Every
    other TLS argument without certfile and keyfile is a ValueError (it would
    do nothing); a file that cannot be loaded raises its OSError, naming it.
    """
    check_flag(client_auth_required, f"{owner}: client_auth_required")
    for name, value in (("certfile", certfile), ("keyfile", keyfile), ("client_cafile", client_cafile),
                        ("client_capath", client_capath)):
        if value is not None and not isinstance(value, (str, bytes, os.PathLike)):
            raise TypeError(f"{owner}: {name} must be a file path (str or os.PathLike), got {type(value).__name__}")
    if (certfile is None) != (keyfile is None):
        raise ValueError(f"{owner}: TLS needs both certfile and keyfile")
    if certfile is None:
        useless = [name for name, value in (("client_cafile", client_cafile), ("client_capath", client_capath),
                                            ("tls_min_version", tls_min_version), ("tls_max_version", tls_max_version))
                   if value is not None]
        if client_auth_required:
            useless.append("client_auth_required=True")
        if useless:
            raise ValueError(f"{owner}: {', '.join(useless)} given without certfile and keyfile "
                             "(they only apply with TLS)")
        return None
    import ssl

    if protocol is None:
        protocol = ssl.PROTOCOL_TLS_SERVER
    if protocol == ssl.PROTOCOL_TLS_CLIENT:
        raise ValueError(f"{owner}: protocol must be a server protocol such as ssl.PROTOCOL_TLS_SERVER, "
                         "not ssl.PROTOCOL_TLS_CLIENT")
    try:
        context = ssl.SSLContext(protocol)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{owner}: protocol must be an ssl.PROTOCOL_* constant such as ssl.PROTOCOL_TLS_SERVER, "
                         f"got {protocol!r} ({error})") from None
    if client_cafile is not None or client_capath is not None:
        try:
            context.load_verify_locations(client_cafile, client_capath)
        except OSError as error:
            raise type(error)(f"{owner}: cannot load the client CA certificates from client_cafile={client_cafile!r} "
                              f"or client_capath={client_capath!r}: {error}") from error
    else:
        context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
    if client_auth_required:
        context.verify_mode = ssl.CERT_REQUIRED
    try:
        context.load_cert_chain(certfile, keyfile)
    except OSError as error:
        raise type(error)(f"{owner}: cannot load the server certificate certfile={certfile!r} "
                          f"or its key keyfile={keyfile!r}: {error}") from error
    context.minimum_version = ssl.TLSVersion.TLSv1_2 if tls_min_version is None else tls_min_version
    if tls_max_version is not None:
        context.maximum_version = tls_max_version
    return context


class _App:
    """What the handler serves; shared by the request threads (read-only after start)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        runtime: Optional["Runtime"],
        auth: Optional[bytes],
        request_timeout: float = _REQUEST_TIMEOUT_S,
        max_connections: int = _MAX_CONNECTIONS,
    ) -> None:
        self.registry = registry
        self.runtime = runtime
        self.auth = auth  # the expected basic-auth token (base64 of user:password), or None
        self.request_timeout = request_timeout
        self.max_connections = max_connections

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
        timeout = None  # set per connection in Server.finish_request

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
            path, _, query = self.path.partition("?")
            app = self.server.app
            if path == "/metrics":
                headers, body = metrics_reply(
                    app.registry, self.headers.get("Accept"), self.headers.get("Accept-Encoding"), query_names(query)
                )
                self.send_response(200)
                for key, value in headers:
                    self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
            elif path == "/metrics.json" and _multiprocess_directory(app.registry):
                # Every process's runtime, summed (multi-process mode), even if this one has none.
                from pyveda.telemetry.system import MetricsSnapshot

                snapshot = MetricsSnapshot._wrap(_core.runtime_snapshot_of(app.registry._core))
                self._send(200, json.dumps(snapshot.export_json()).encode("utf-8"), "application/json")
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
            self.active: Dict[Any, _Connection] = {}  # accepted socket -> its connection
            self.active_lock = threading.Lock()
            self.refused: List[Tuple[float, Any]] = []  # (close at, socket), accept loop only
            if ":" in address[0]:
                self.address_family = socket.AF_INET6
            super().__init__(address, Handler)

        # Runs on the accept loop: a connection past the cap is refused at once
        # (503 without TLS, a close with it), without a thread.
        def process_request(self, request: Any, client_address: Any) -> None:
            connection = _Connection(time.monotonic() + self.app.request_timeout, request)
            with self.active_lock:
                full = len(self.active) >= self.app.max_connections
                if not full:
                    self.active[request] = connection
            if full:
                self._refuse(request)
                return
            super().process_request(request, client_address)

        def _refuse(self, request: Any) -> None:
            if self.ssl_context is not None or len(self.refused) >= _MAX_REFUSED:
                self.shutdown_request(request)
                return
            try:
                request.setblocking(False)
                request.send(
                    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
                    b"Content-Length: 21\r\nRetry-After: 1\r\nConnection: close\r\n\r\ntoo many connections\n"
                )
                request.shutdown(socket.SHUT_WR)
            except OSError:
                self.shutdown_request(request)  # a full send buffer: the client just sees the close
                return
            # Closed a moment later, after reading what the client sent: closing
            # with its request unread would reset the connection, and a reset
            # can destroy the 503 before the client reads it.
            self.refused.append((time.monotonic() + 1.0, request))

        # Runs on the accept loop every poll (0.1 s): a connection past its
        # deadline (a client sending or reading one byte at a time, say) is
        # cut, and refused connections are closed once their second is up.
        def service_actions(self) -> None:
            now = time.monotonic()
            with self.active_lock:
                late = [c for c in self.active.values() if c.deadline <= now]
            for connection in late:
                connection.cut()
            while self.refused and self.refused[0][0] <= now:
                self._close_refused(self.refused.pop(0)[1])

        def _close_refused(self, request: Any) -> None:
            try:
                while request.recv(65536):
                    pass
            except OSError:
                pass  # nothing more to read (EAGAIN) or the client is gone
            request.close()

        def server_close(self) -> None:
            super().server_close()
            while self.refused:
                self._close_refused(self.refused.pop(0)[1])

        def process_request_thread(self, request: Any, client_address: Any) -> None:
            with self.active_lock:
                connection = self.active.get(request)
                if connection is not None:
                    connection.thread = threading.current_thread()
            try:
                super().process_request_thread(request, client_address)
            finally:
                with self.active_lock:
                    self.active.pop(request, None)

        def finish_request(self, request: Any, client_address: Any) -> None:
            timeout = self.app.request_timeout
            request.settimeout(timeout)  # per recv/send; the deadline above bounds the whole
            if self.ssl_context is not None:
                try:
                    wrapped = self.ssl_context.wrap_socket(request, server_side=True)
                except (OSError, ValueError):
                    return  # a failed handshake (plain HTTP on a TLS port, a timeout) just drops the connection
                with self.active_lock:
                    connection = self.active.get(request)
                    if connection is not None:
                        connection.sock = wrapped  # the plain socket is detached now
                request = wrapped
            super().finish_request(request, client_address)

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a client that hangs up mid-response is not the server's problem

    return Handler, Server


class MetricsServer:
    """A running endpoint (from :func:`start_http_server`); a context manager.

    ``port`` is the bound port (useful with ``port=0``), ``url`` the
    ``/metrics`` address, ``thread`` the serving thread. Thread-safe;
    :meth:`shutdown` may be called twice.

    prometheus_client's ``start_http_server`` returns ``(server, thread)``;
    this one unpacks the same way (``server, thread = start_http_server(...)``
    gives this object and its thread), and has ``server_address``,
    ``server_port`` and ``server_close()`` as that server has.

    After ``fork()`` the server goes on serving in the parent only (its
    thread is not in the child): in the child, :meth:`shutdown` closes the
    child's copy of the listening socket and returns at once, and the
    parent's endpoint is unaffected.
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
        self._pid = os.getpid()  # the process whose thread serves
        self._thread.start()

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Stops accepting and waits up to ``timeout`` seconds in all for the requests in flight.

        Returns within about ``timeout`` seconds: a request still running then
        (a client that stopped reading, say) has its connection shut down.
        True if every request had finished in time. A second call returns True
        at once. ``timeout`` must be a number of seconds >= 0.
        """
        deadline = time.monotonic() + seconds(timeout, "timeout")
        if os.getpid() != self._pid:
            # A forked child: the serving thread stayed in the parent, so
            # socketserver's shutdown() would wait for it forever.
            if not self._closed:
                self._closed = True
                self._server.socket.close()  # the child's copy; the parent keeps serving
            return True
        with self._lock:
            if self._closed:
                return True
            self._closed = True
        self._server.shutdown()  # returns within one poll interval (0.1 s)
        self._thread.join(max(0.0, deadline - time.monotonic()))
        self._server.server_close()
        with self._server.active_lock:
            in_flight = [c.thread for c in self._server.active.values() if c.thread is not None]
        for thread in in_flight:  # one deadline for all of them, not timeout each
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._server.active_lock:
            late = list(self._server.active.values())
        for connection in late:
            connection.cut()
        return not late

    close = shutdown
    server_close = shutdown  # prometheus_client's server: shutdown() stops serving, server_close() frees the port

    @property
    def thread(self) -> threading.Thread:
        """The thread running the accept loop (a daemon; ended by :meth:`shutdown`)."""
        return self._thread

    @property
    def server_address(self) -> Tuple[str, int]:
        """``(addr, port)``, as socketserver servers have it."""
        return (self.addr, self.port)

    @property
    def server_port(self) -> int:
        return self.port

    def __iter__(self) -> Iterator[Any]:
        """``server, thread = start_http_server(...)``: prometheus_client's (server, thread) pair."""
        yield self
        yield self._thread

    def __enter__(self) -> "MetricsServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return f"<MetricsServer {self.url}{' (shut down)' if self._closed else ''}>"


def _multiprocess_directory(registry: Any) -> str:
    """The multi-process directory ``registry`` renders the aggregate of ('' when none)."""
    return str(registry._core.multiprocess_directory())


def start_http_server(
    port: int = 9090,
    addr: str = "127.0.0.1",
    registry: Optional[CollectorRegistry] = None,
    runtime: Optional["Runtime"] = None,
    *,
    basic_auth: Optional[Tuple[str, str]] = None,
    certfile: Optional[str] = None,
    keyfile: Optional[str] = None,
    client_cafile: Optional[str] = None,
    client_capath: Optional[str] = None,
    protocol: Optional[int] = None,
    client_auth_required: bool = False,
    tls_min_version: Any = None,
    tls_max_version: Any = None,
    request_timeout: float = _REQUEST_TIMEOUT_S,
    max_connections: int = _MAX_CONNECTIONS,
) -> MetricsServer:
    """Serves ``/metrics``, ``/metrics.json`` and ``/healthz`` on a background thread.

    ``registry`` defaults to :data:`~pyveda.telemetry.REGISTRY` (which holds
    the runtime's families); ``runtime`` (for ``/metrics.json``) defaults to
    the process-wide runtime of :func:`pyveda.init`, looked up per request.
    ``port=0`` picks a free port (see ``.port``). The default address is
    loopback: pass ``addr="0.0.0.0"`` to be reachable from other hosts.
    Each connection has ``request_timeout`` seconds in all (default 30) to
    send its request and read the reply, then it is cut; at most
    ``max_connections`` (default 64) are served at once, and one more is
    answered 503 with ``Retry-After: 1`` (closed, with TLS) on the spot.

    TLS with ``certfile`` and ``keyfile``; prometheus_client's other TLS
    arguments work as there: ``client_cafile``/``client_capath`` (the CAs a
    client certificate must chain to; the system's when neither is given),
    ``client_auth_required=True`` (mutual TLS: a client without a valid
    certificate fails the handshake and is dropped), ``protocol`` (default
    ``ssl.PROTOCOL_TLS_SERVER``), ``tls_min_version`` (default TLS 1.2) and
    ``tls_max_version``.

    The result is a :class:`MetricsServer`, which also unpacks as
    prometheus_client's ``(server, thread)``. Raises TypeError/ValueError for
    bad arguments and OSError when the port cannot be bound or a certificate
    file cannot be loaded.
    """
    if not isinstance(port, int) or isinstance(port, bool):
        raise TypeError(f"start_http_server: port must be an int in [0, 65535], got {type(port).__name__} ({port!r})")
    if not 0 <= port <= 65535:
        raise ValueError(f"start_http_server: port must be in [0, 65535] (0 picks a free one), got {port}")
    if not isinstance(addr, str):
        raise TypeError(f"start_http_server: addr must be a str such as '127.0.0.1', got {type(addr).__name__}")
    registry = check_registry(registry, "start_http_server")
    if runtime is not None:
        from pyveda.runtime import Runtime

        if not isinstance(runtime, Runtime):
            hint = ""
            if isinstance(runtime, (str, os.PathLike)):  # prometheus_client's 4th positional argument is certfile
                hint = "; pass certfile= and keyfile= by keyword"
            raise TypeError(
                "start_http_server: runtime must be a pyveda.Runtime (the 4th argument), "
                f"got {type(runtime).__name__}{hint}"
            )
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
    request_timeout = seconds(request_timeout, "start_http_server: request_timeout", positive=True)
    if not isinstance(max_connections, int) or isinstance(max_connections, bool):
        raise TypeError(f"start_http_server: max_connections must be an int >= 1, got {max_connections!r}")
    if max_connections < 1:
        raise ValueError(f"start_http_server: max_connections must be an int >= 1, got {max_connections!r}")
    ssl_context = ssl_server_context(
        "start_http_server", certfile, keyfile, protocol, client_cafile, client_capath, client_auth_required,
        tls_min_version, tls_max_version,
    )
    _, server_class = _server_classes()
    app = _App(registry, runtime, auth, request_timeout, max_connections)
    server = server_class((addr, port), app, ssl_context)
    return MetricsServer(server, "https" if ssl_context is not None else "http")
