"""prometheus_client's WSGI serving: ``make_wsgi_app``, ``start_wsgi_server`` and ``MetricsHandler``.

>>> from werkzeug.middleware.dispatcher import DispatcherMiddleware
>>> from pyveda.telemetry import make_wsgi_app
>>> app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/metrics": make_wsgi_app()})  # a Flask app

Every reply comes from :func:`pyveda.telemetry.http.app_reply`, the code
behind :func:`~pyveda.telemetry.start_http_server` and
:func:`~pyveda.telemetry.make_asgi_app` too: the format the ``Accept``
header ranks highest (protobuf with native histograms, OpenMetrics 1.0.0 or
text 0.0.4), ``name[]`` query parameters restricting the families, gzip
when ``Accept-Encoding`` allows it. As in prometheus_client, GET on any
path serves the metrics (the app answers wherever it is mounted),
``/favicon.ico`` gets an empty 200, OPTIONS gets 200 with ``Allow`` and
other methods 405; unlike it, HEAD gets GET's headers without the body.

This module imports ``http.server``; it loads on the first use of one of its names.
"""

from __future__ import annotations

import http.server
import socket
import socketserver
import threading
from typing import Any, Callable, Iterable, Optional, Tuple

from pyveda.telemetry.http import _REQUEST_TIMEOUT_S, app_reply, check_flag, check_registry, ssl_server_context
from pyveda.telemetry.registry import REGISTRY, CollectorRegistry

__all__ = ["MetricsHandler", "make_wsgi_app", "start_wsgi_server"]


def make_wsgi_app(registry: CollectorRegistry = REGISTRY, disable_compression: bool = False) -> Callable:
    """A WSGI app serving ``registry`` (prometheus_client's function; see the module doc for what it answers).

    ``disable_compression=True`` never gzips. Thread-safe: one app may serve
    any number of requests at once.
    """
    registry = check_registry(registry, "make_wsgi_app")
    check_flag(disable_compression, "make_wsgi_app: disable_compression")

    def prometheus_app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        status, reason, headers, body = app_reply(
            registry, method, environ.get("PATH_INFO", ""), environ.get("HTTP_ACCEPT"),
            environ.get("HTTP_ACCEPT_ENCODING"), environ.get("QUERY_STRING", ""), disable_compression,
        )
        start_response(f"{status} {reason}", headers)
        return [] if method == "HEAD" else [body]

    return prometheus_app


class MetricsHandler(http.server.BaseHTTPRequestHandler):
    """A ``BaseHTTPRequestHandler`` serving :attr:`registry` (:data:`REGISTRY`), as prometheus_client's.

    For your own ``http.server`` server:
    ``HTTPServer(("127.0.0.1", 8000), MetricsHandler.factory(registry))``.
    GET and HEAD on any path serve the metrics; OPTIONS and ``/favicon.ico``
    as :func:`make_wsgi_app` answers them; no request is logged.
    """

    registry: CollectorRegistry = REGISTRY

    def _reply(self) -> None:
        path, _, query = self.path.partition("?")
        status, _, headers, body = app_reply(
            self.registry, self.command, path, self.headers.get("Accept"), self.headers.get("Accept-Encoding"), query
        )
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_OPTIONS = _reply

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's signature
        pass

    @classmethod
    def factory(cls, registry: CollectorRegistry) -> type:
        """A subclass of this handler serving ``registry`` (prometheus_client's classmethod)."""
        registry = check_registry(registry, "MetricsHandler.factory")
        return type(cls.__name__, (cls,), {"registry": registry})


_classes: Optional[Tuple[type, type]] = None
_classes_lock = threading.Lock()


def _wsgi_classes() -> Tuple[type, type]:
    """(server class, handler class) for start_wsgi_server, made once (wsgiref loads on first use)."""
    global _classes
    with _classes_lock:
        if _classes is None:
            from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

            class Handler(WSGIRequestHandler):
                timeout = _REQUEST_TIMEOUT_S  # per recv/send: a silent client cannot hold its thread for ever

                def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                    pass

            class Server(socketserver.ThreadingMixIn, WSGIServer):
                daemon_threads = True
                ssl_context: Any = None

                # The TLS handshake runs on the request's own thread, so a client
                # that connects and stays silent cannot stall the accept loop.
                def finish_request(self, request: Any, client_address: Any) -> None:
                    if self.ssl_context is None:
                        super().finish_request(request, client_address)
                        return
                    request.settimeout(_REQUEST_TIMEOUT_S)
                    try:
                        wrapped = self.ssl_context.wrap_socket(request, server_side=True)
                    except (OSError, ValueError):
                        return  # a failed handshake (no client certificate, plain HTTP) just drops the connection
                    try:
                        super().finish_request(wrapped, client_address)
                    finally:
                        self.shutdown_request(wrapped)

                def handle_error(self, request: Any, client_address: Any) -> None:
                    pass  # a client hanging up mid-reply

            _classes = (Server, Handler)
        return _classes


def start_wsgi_server(
    port: int,
    addr: str = "127.0.0.1",
    registry: CollectorRegistry = REGISTRY,
    certfile: Optional[str] = None,
    keyfile: Optional[str] = None,
    client_cafile: Optional[str] = None,
    client_capath: Optional[str] = None,
    protocol: Optional[int] = None,
    client_auth_required: bool = False,
    tls_min_version: Any = None,
    tls_max_version: Any = None,
) -> Tuple[Any, threading.Thread]:
    """:func:`make_wsgi_app` on a threaded ``wsgiref`` server on a daemon thread; returns ``(server, thread)``.

    prometheus_client's function and arguments, except that ``addr``
    defaults to loopback (``127.0.0.1``), as :func:`start_http_server` does:
    pass ``addr="0.0.0.0"`` (or ``"::"``) to be scraped from other hosts.
    ``port=0`` picks a free port (``server.server_port``). TLS with
    ``certfile`` and ``keyfile``; ``client_cafile``/``client_capath`` and
    ``client_auth_required=True`` ask for a client certificate (mutual
    TLS); ``protocol`` defaults to ``ssl.PROTOCOL_TLS_SERVER``. The
    handshake runs on each request's thread. ``server.shutdown()`` stops
    the thread (within 0.5 s) and ``server.server_close()`` frees the port.
    """
    if not isinstance(port, int) or isinstance(port, bool):
        raise TypeError(f"start_wsgi_server: port must be an int in [0, 65535], got {type(port).__name__} ({port!r})")
    if not 0 <= port <= 65535:
        raise ValueError(f"start_wsgi_server: port must be in [0, 65535] (0 picks a free one), got {port}")
    if not isinstance(addr, str):
        raise TypeError(f"start_wsgi_server: addr must be a str such as '127.0.0.1', got {type(addr).__name__}")
    registry = check_registry(registry, "start_wsgi_server")
    context = ssl_server_context(
        "start_wsgi_server", certfile, keyfile, protocol, client_cafile, client_capath, client_auth_required,
        tls_min_version, tls_max_version,
    )
    from wsgiref.simple_server import make_server

    server_class, handler_class = _wsgi_classes()
    # The address family of the address (IPv6 for "::1"), as prometheus_client picks it.
    family, _, _, _, sockaddr = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    bound_class = type("WSGIMetricsServer", (server_class,), {"address_family": family, "ssl_context": context})
    server = make_server(sockaddr[0], port, make_wsgi_app(registry), bound_class, handler_class=handler_class)
    thread = threading.Thread(target=server.serve_forever, name=f"pyveda-wsgi-{server.server_port}", daemon=True)
    thread.start()
    return server, thread
