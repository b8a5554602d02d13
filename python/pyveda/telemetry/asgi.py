"""prometheus_client's ASGI app: ``make_asgi_app``.

>>> from starlette.applications import Starlette
>>> from starlette.routing import Mount
>>> from pyveda.telemetry import make_asgi_app
>>> app = Starlette(routes=[Mount("/metrics", app=make_asgi_app())])

Answers as :func:`pyveda.telemetry.make_wsgi_app` does (the same code:
:func:`pyveda.telemetry.http.app_reply`). The exposition is rendered on the
event loop's default executor, never on the loop itself, so a large
registry does not stall the other requests of the application. A
``lifespan`` scope (the app served on its own by uvicorn, say) is
acknowledged; any other scope but ``http`` is a ValueError.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Awaitable, Callable, Dict, Iterable, Optional, Tuple

from pyveda.telemetry.http import app_reply, check_flag, check_registry
from pyveda.telemetry.registry import REGISTRY, CollectorRegistry

__all__ = ["make_asgi_app"]

Receive = Callable[[], Awaitable[Dict[str, Any]]]
Send = Callable[[Dict[str, Any]], Awaitable[None]]


def _header(headers: Iterable[Tuple[bytes, bytes]], name: bytes) -> Optional[str]:
    """The values of one request header joined with commas (as HTTP allows), or None when absent."""
    values = [value.decode("latin-1") for key, value in headers if key.lower() == name]
    return ",".join(values) if values else None


def _app_path(scope: Dict[str, Any]) -> str:
    """The path below the app's mount point (Starlette's Mount keeps the full path and sets root_path)."""
    path = scope.get("path") or ""
    root = scope.get("root_path") or ""
    if root and path.startswith(root):
        path = path[len(root):]
    return path


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def make_asgi_app(registry: CollectorRegistry = REGISTRY, disable_compression: bool = False) -> Callable:
    """An ASGI app serving ``registry`` (prometheus_client's function).

    GET on any path below the mount point serves the metrics in the format
    the Accept header ranks highest, restricted by ``name[]`` parameters,
    gzipped when accepted unless ``disable_compression``; ``/favicon.ico``
    gets an empty 200, HEAD the headers only, OPTIONS 200 with ``Allow`` and
    other methods 405. Rendering runs in the loop's default executor.
    """
    registry = check_registry(registry, "make_asgi_app")
    check_flag(disable_compression, "make_asgi_app: disable_compression")

    async def prometheus_app(scope: Dict[str, Any], receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind == "lifespan":
            await _lifespan(receive, send)
            return
        if kind != "http":
            raise ValueError(f"make_asgi_app: the app serves 'http' (and 'lifespan') scopes, got {kind!r}")
        while True:  # the request body, if any: read and dropped
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client went away: nothing to answer
            if message["type"] == "http.request" and not message.get("more_body", False):
                break
        method = scope.get("method", "GET")
        headers = scope.get("headers") or []
        query = scope.get("query_string") or b""
        render = functools.partial(
            app_reply, registry, method, _app_path(scope), _header(headers, b"accept"),
            _header(headers, b"accept-encoding"), query.decode("latin-1"), disable_compression,
        )
        status, _, reply_headers, body = await asyncio.get_running_loop().run_in_executor(None, render)
        await send({
            "type": "http.response.start",
            "status": status,
            "headers": [(key.lower().encode("latin-1"), value.encode("latin-1")) for key, value in reply_headers],
        })
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})

    return prometheus_app
