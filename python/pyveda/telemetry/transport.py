"""OTLP/HTTP transport: POST one encoded request, with retries, inside one deadline.

:func:`post` is what :class:`~pyveda.telemetry.exporters.OTLPExporter.send`
calls once the body is encoded. ``options.timeout`` bounds the whole send:
connecting, writing, waiting for and reading the reply, and every retry. A
server that trickles its reply a byte at a time cannot stretch it: a watchdog
shuts the socket down at the deadline. 429, 502, 503, 504 and connection
errors are retried with exponential back-off (1, 2, 4, ... s, +-20% jitter) or
the server's ``Retry-After``, at most :data:`MAX_ATTEMPTS` requests, and never
past the deadline. Nothing here raises for network or server trouble: the
outcome is an :class:`ExportResult`.

The standard library's HTTP, TLS and gzip modules are imported on the first
send, not with ``pyveda``.
"""

from __future__ import annotations

import random
import threading
import time
import warnings
from typing import Any, Mapping, NamedTuple, Optional, Tuple

from pyveda._version import __version__
from pyveda.telemetry.otlp_options import OTLPOptions

__all__ = ["MAX_ATTEMPTS", "MAX_REQUEST_BYTES", "MAX_RESPONSE_BYTES", "RETRYABLE_STATUS", "ExportResult", "post"]

MAX_REQUEST_BYTES = 64 * 1024 * 1024
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
MAX_ATTEMPTS = 6
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
USER_AGENT = f"PyVeda/{__version__}"


class ExportResult(NamedTuple):
    """What one send did. ``send`` never raises for network or server trouble; read this instead.

    ``success`` is True for a 2xx answer, or an OK status over gRPC (even
    with a partial success, whose ``rejected`` count and ``error_message``
    are set then). ``status_code`` is the last HTTP status, or over gRPC the
    last gRPC status code as an int (0 OK, 14 UNAVAILABLE, ...; None if no
    answer came), ``attempts`` the requests made, ``error`` a description of
    the failure (None on success).
    Truthiness is ``success``.
    """

    success: bool
    status_code: Optional[int] = None
    attempts: int = 0
    rejected: int = 0
    error_message: str = ""
    error: Optional[str] = None

    def __bool__(self) -> bool:
        return self.success


def post(options: OTLPOptions, body: bytes, cancel: Optional[threading.Event] = None) -> ExportResult:
    """POSTs ``body`` (already encoded as ``options.protocol`` says) to ``options.url``.

    Setting ``cancel`` ends the send early: the request under way is cut off
    and no retry follows (the result says "cancelled").
    """
    import gzip
    import http.client
    from urllib.parse import urlsplit

    deadline = None if options.timeout is None else time.monotonic() + options.timeout
    headers = dict(options.headers)
    headers.update({"Content-Type": options.content_type, "User-Agent": USER_AGENT})
    if options.compression == "gzip":
        body = gzip.compress(body, compresslevel=6)
        headers["Content-Encoding"] = "gzip"
    if len(body) > MAX_REQUEST_BYTES:
        return ExportResult(False, error=f"request of {len(body)} bytes exceeds {MAX_REQUEST_BYTES}")
    parts = urlsplit(options.url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    status: Optional[int] = None
    error = "timed out before the first attempt"
    attempt = 0
    while attempt < MAX_ATTEMPTS:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            break
        if cancel is not None and cancel.is_set():
            error = f"cancelled ({error})" if attempt else "cancelled before the first attempt"
            break
        attempt += 1
        retry_after: Optional[float] = None
        try:
            status, reply_headers, reply = _request(parts, target, body, headers, remaining, cancel)
        except (OSError, http.client.HTTPException) as e:
            status, error = None, f"{type(e).__name__}: {e}"
            if cancel is not None and cancel.is_set():
                error = f"cancelled ({error})"
                break
            if deadline is not None and time.monotonic() >= deadline:
                error = f"timed out after {options.timeout:g} s ({error})"
                break
        else:
            as_json = _is_json_reply(reply_headers.get("content-type"), options.protocol)
            if 200 <= status < 300:
                rejected, message = _partial_success(options.signal, reply, as_json)
                warn_partial_success(options.signal, rejected, message, stacklevel=4)
                return ExportResult(True, status, attempt, rejected, message)
            error = f"HTTP {status}: {_status_message(reply, as_json)}"
            if status not in RETRYABLE_STATUS:
                return ExportResult(False, status, attempt, error=error)
            retry_after = _retry_after(reply_headers.get("retry-after"))
        if attempt >= MAX_ATTEMPTS:
            break
        stopped = wait_before_retry(attempt, retry_after, deadline, cancel, error)
        if stopped is not None:
            error = stopped
            break
    return ExportResult(False, status, attempt, error=error)


def warn_partial_success(signal: str, rejected: int, message: str, stacklevel: int) -> None:
    """Warns of an accepted export the receiver rejected part of (OTLP partial success)."""
    if message or rejected:
        warnings.warn(f"pyveda: OTLP {signal} partial success: {rejected} rejected: {message}", RuntimeWarning,
                      stacklevel=stacklevel + 1)


def wait_before_retry(attempt: int, server_delay: Optional[float], deadline: Optional[float],
                      cancel: Optional[threading.Event], error: str) -> Optional[str]:
    """Waits out the back-off after failed attempt number ``attempt``: the server's
    delay when it named one, else 1, 2, 4, ... s with +-20% jitter.

    None when the next attempt may go; otherwise the send's final error (``error``
    extended) because the wait would pass ``deadline`` or ``cancel`` was set.
    Shared by the HTTP and gRPC transports.
    """
    delay = server_delay if server_delay is not None else (2 ** (attempt - 1)) * random.uniform(0.8, 1.2)
    if deadline is not None and time.monotonic() + delay >= deadline:
        return error + " (gave up: the next retry would pass the timeout)"
    if cancel is not None:
        if cancel.wait(delay):
            return f"cancelled ({error})"
    else:
        time.sleep(delay)
    return None


def _request(
    parts: Any,
    target: str,
    body: bytes,
    headers: Mapping[str, str],
    timeout: Optional[float],
    cancel: Optional[threading.Event] = None,
) -> Tuple[int, Mapping[str, str], bytes]:
    """One POST. ``timeout`` bounds the whole exchange, not each socket operation."""
    import http.client

    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname, parts.port, timeout=timeout)
    finished = threading.Event()
    if timeout is not None or cancel is not None:
        # The socket timeout applies per operation; a reply trickled a byte at a
        # time would pass it forever. At the deadline (or on cancel) the socket
        # is shut down, which ends any blocked read or write with an error.
        deadline = None if timeout is None else time.monotonic() + timeout
        threading.Thread(
            target=_watch, args=(conn, finished, deadline, cancel), name="pyveda-send-deadline", daemon=True
        ).start()
    try:
        conn.request("POST", target, body=body, headers=dict(headers))
        response = conn.getresponse()
        reply = response.read(MAX_RESPONSE_BYTES)
        if response.getheader("Content-Encoding", "").lower() == "gzip":
            reply = _gunzip(reply, MAX_RESPONSE_BYTES)
        return response.status, {k.lower(): v for k, v in response.getheaders()}, reply
    finally:
        finished.set()
        conn.close()


def _gunzip(data: bytes, limit: int) -> bytes:
    """Inflates a gzip body, keeping at most ``limit`` bytes: a small reply cannot grow without bound.

    A body that is not valid gzip, or inflates past ``limit``, gives b"" (a
    reply body is only read for partial-success details and error messages).
    """
    import zlib

    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit)
    except zlib.error:
        return b""
    if inflater.unconsumed_tail or not inflater.eof:
        return b""  # more than `limit` bytes, or cut short
    return out


def _watch(conn: Any, finished: threading.Event, deadline: Optional[float], cancel: Optional[threading.Event]) -> None:
    """Shuts ``conn``'s socket down at ``deadline`` or when ``cancel`` is set, unless ``finished`` comes first."""
    while True:
        wait = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
        if finished.wait(max(0.0, wait)):
            return
        if (cancel is not None and cancel.is_set()) or (deadline is not None and time.monotonic() >= deadline):
            break
    import socket

    sock = getattr(conn, "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed


def _retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds to wait from a Retry-After header (delay-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    import email.utils

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _is_json_reply(content_type: Optional[str], protocol: str) -> bool:
    """Whether a reply body is OTLP/JSON: by its Content-Type, else by what was sent."""
    if content_type:
        return content_type.split(";")[0].strip().lower() == "application/json"
    return protocol == "http/json"


def _partial_success(signal: str, reply: bytes, as_json: bool = False) -> Tuple[int, str]:
    if not reply:
        return 0, ""
    if as_json:  # {"partialSuccess": {"rejectedDataPoints"|"rejectedSpans": "3", "errorMessage": "..."}}
        import json

        try:
            partial = json.loads(reply.decode("utf-8")).get("partialSuccess") or {}
            field = "rejectedDataPoints" if signal == "metrics" else "rejectedSpans"
            rejected = int(partial.get(field) or 0)  # int64: a JSON string or number
            message = partial.get("errorMessage") or ""
            return rejected, message if isinstance(message, str) else str(message)
        except Exception:
            return 0, ""  # an unparsable 2xx body is still a success
    try:
        if signal == "metrics":
            from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse

            msg = ExportMetricsServiceResponse.FromString(reply)
            return int(msg.partial_success.rejected_data_points), msg.partial_success.error_message
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

        msg = ExportTraceServiceResponse.FromString(reply)
        return int(msg.partial_success.rejected_spans), msg.partial_success.error_message
    except Exception:
        return 0, ""  # an unparsable 2xx body is still a success


def _status_message(reply: bytes, as_json: bool = False) -> str:
    if not reply:
        return "(no body)"
    if as_json:  # a google.rpc.Status in JSON: {"code": 3, "message": "..."}
        import json

        try:
            message = json.loads(reply.decode("utf-8")).get("message")
            if isinstance(message, str) and message:
                return message
        except Exception:
            pass
        return reply[:200].decode("utf-8", "replace")
    try:
        from google.rpc import status_pb2  # type: ignore[import-not-found]

        return status_pb2.Status.FromString(reply).message or "(no message)"
    except Exception:
        return reply[:200].decode("utf-8", "replace")
