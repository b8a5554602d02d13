"""OTLP/gRPC transport: one unary ``Export`` call with retries, inside one deadline.

:func:`send_grpc` is what :meth:`~pyveda.telemetry.exporters.OTLPExporter.send`
calls for ``protocol='grpc'``, with the request already encoded as protobuf
(PyVeda encodes it natively; nothing here re-encodes it). It needs grpcio, the
``grpc`` extra (``pip install pyveda[grpc]``), imported here on first use, not
with ``pyveda``. The call goes to
``/opentelemetry.proto.collector.{trace,metrics}.v1.{Trace,Metrics}Service/Export``
as a generic unary call whose request and reply are raw bytes.

The semantics are those of :func:`pyveda.telemetry.transport.post`:
``options.timeout`` bounds the whole send, retries included; the codes the
OTLP specification calls retryable (CANCELLED, DEADLINE_EXCEEDED, ABORTED,
OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS, and RESOURCE_EXHAUSTED only when the
server sends a ``google.rpc.RetryInfo``) are retried with exponential back-off
(1, 2, 4, ... s, +-20% jitter) or the RetryInfo delay, at most
:data:`~pyveda.telemetry.transport.MAX_ATTEMPTS` calls and never past the
deadline; setting ``cancel`` cancels the call under way. Headers go as
metadata (keys lowercased), gzip as gRPC's gzip compression. The outcome is an
:class:`~pyveda.telemetry.transport.ExportResult` whose ``status_code`` is the
gRPC status code as an int (0 for OK, 14 for UNAVAILABLE, ...; None when no
call was made).

Channels are kept per (target, TLS or not) and reused; they are closed at
interpreter exit or by :func:`close_channels`. A forked child never uses a
channel its parent made: it opens its own.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

from pyveda._version import __version__
from pyveda.telemetry.otlp_options import OTLPOptions
from pyveda.telemetry.transport import (
    MAX_ATTEMPTS,
    MAX_REQUEST_BYTES,
    MAX_RESPONSE_BYTES,
    ExportResult,
    _partial_success,
    wait_before_retry,
    warn_partial_success,
)

__all__ = ["METHODS", "RETRYABLE_CODES", "close_channels", "require_grpc", "send_grpc"]

#: The Export method of each signal's OTLP service.
METHODS = {
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
}
#: Retried always (RESOURCE_EXHAUSTED only with a RetryInfo), by status code name.
RETRYABLE_CODES = frozenset({"CANCELLED", "DEADLINE_EXCEEDED", "ABORTED", "OUT_OF_RANGE", "UNAVAILABLE", "DATA_LOSS"})
_RETRY_INFO_TYPE = "type.googleapis.com/google.rpc.RetryInfo"
_POLL_S = 0.05  # how often a call under way looks at `cancel`


def require_grpc() -> Any:
    """The ``grpc`` module; ImportError telling how to install it when grpcio is missing."""
    try:
        import grpc
    except ImportError as e:
        raise ImportError(
            "OTLP protocol 'grpc' needs grpcio, which is not installed: pip install pyveda[grpc]"
        ) from e
    return grpc


# --- channels ---------------------------------------------------------------------

_lock = threading.Lock()
_channels: Dict[Tuple[str, bool], Any] = {}
_pid = os.getpid()
_inherited: List[Any] = []  # a parent's channels, seen in a forked child: kept, never used or closed


def _channel(grpc: Any, target: str, secure: bool) -> Any:
    global _pid
    with _lock:
        if os.getpid() != _pid:  # forked: the parent's channels must not be touched here
            _inherited.extend(_channels.values())
            _channels.clear()
            _pid = os.getpid()
        channel = _channels.get((target, secure))
        if channel is None:
            options = [
                ("grpc.primary_user_agent", f"PyVeda/{__version__}"),
                ("grpc.max_receive_message_length", MAX_RESPONSE_BYTES),
                # Its own connections: gRPC's global pool would hand a forked child the parent's.
                ("grpc.use_local_subchannel_pool", 1),
            ]
            if secure:
                channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(), options=options)
            else:
                channel = grpc.insecure_channel(target, options=options)
            _channels[(target, secure)] = channel
        return channel


def close_channels() -> None:
    """Closes every channel this process opened (later sends open new ones)."""
    with _lock:
        channels = list(_channels.values()) if os.getpid() == _pid else []
        _channels.clear()
    for channel in channels:
        try:
            channel.close()
        except Exception:
            pass


def _close_at_exit() -> None:
    # Registered after the pushers' exit flush, so it runs first (atexit is last in, first out): the
    # started exporters are flushed here, while the channels are open, then the channels are closed.
    from pyveda.telemetry.pusher import _LIVE

    _LIVE._flush_at_exit()
    close_channels()


atexit.register(_close_at_exit)


# --- sending ----------------------------------------------------------------------


def send_grpc(options: OTLPOptions, body: bytes, cancel: Optional[threading.Event] = None) -> ExportResult:
    """Sends ``body`` (an encoded Export*ServiceRequest) to ``options.url`` over gRPC.

    Setting ``cancel`` ends the send early: the call under way is cancelled and
    no retry follows (the result says "cancelled"). Raises ImportError only
    when grpcio is missing; network and server trouble is returned.
    """
    grpc = require_grpc()
    deadline = None if options.timeout is None else time.monotonic() + options.timeout
    if len(body) > MAX_REQUEST_BYTES:
        return ExportResult(False, error=f"request of {len(body)} bytes exceeds {MAX_REQUEST_BYTES}")
    parts = urlsplit(options.url)
    metadata = [(str(k).lower(), str(v)) for k, v in options.headers.items()]
    compression = grpc.Compression.Gzip if options.compression == "gzip" else None
    try:
        channel = _channel(grpc, parts.netloc, parts.scheme == "https")
        export = channel.unary_unary(METHODS[options.signal], request_serializer=None, response_deserializer=None)
    except Exception as e:
        return ExportResult(False, error=f"could not open a gRPC channel to {parts.netloc}: {type(e).__name__}: {e}")
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
        try:
            future = export.future(body, timeout=remaining, metadata=metadata, compression=compression)
        except Exception as e:  # e.g. metadata gRPC refuses
            return ExportResult(False, status, attempt, error=f"could not start the gRPC call: {type(e).__name__}: {e}")
        reply, code, details, trailers = _wait(grpc, future, cancel)
        if code is None:  # cancelled by `cancel`
            error = f"cancelled ({error})" if attempt > 1 else "cancelled"
            break
        status = code.value[0]
        if code == grpc.StatusCode.OK:
            rejected, message = _partial_success(options.signal, reply or b"")
            warn_partial_success(options.signal, rejected, message, stacklevel=3)
            return ExportResult(True, status, attempt, rejected, message)
        error = f"gRPC {code.name}: {details or '(no details)'}"
        retry_delay = _retry_delay(trailers)
        if code.name not in RETRYABLE_CODES and not (code.name == "RESOURCE_EXHAUSTED" and retry_delay is not None):
            return ExportResult(False, status, attempt, error=error)
        if cancel is not None and cancel.is_set():
            error = f"cancelled ({error})"
            break
        # The call's own deadline is ours: DEADLINE_EXCEEDED close to it is the timeout, not the server's.
        if deadline is not None and (
            time.monotonic() >= deadline or (code.name == "DEADLINE_EXCEEDED" and time.monotonic() >= deadline - 0.1)
        ):
            error = f"timed out after {options.timeout:g} s ({error})"
            break
        if attempt >= MAX_ATTEMPTS:
            break
        stopped = wait_before_retry(attempt, retry_delay, deadline, cancel, error)
        if stopped is not None:
            error = stopped
            break
    return ExportResult(False, status, attempt, error=error)


def _wait(grpc: Any, future: Any, cancel: Optional[threading.Event]) -> Tuple[Optional[bytes], Any, str, Any]:
    """(reply, status code, details, trailing metadata) of a call; code None when ``cancel`` cut it off.

    The call's own deadline (its ``timeout``) ends a call the server never
    answers; ``cancel`` is looked at every :data:`_POLL_S` seconds.
    """
    if cancel is not None:
        done = threading.Event()
        future.add_done_callback(lambda _f: done.set())
        while not done.wait(_POLL_S):
            if cancel.is_set():
                future.cancel()
                break
    try:
        reply = future.result()
    except grpc.FutureCancelledError:
        return None, None, "", None
    except grpc.RpcError as e:
        if cancel is not None and cancel.is_set() and e.code() == grpc.StatusCode.CANCELLED:
            return None, None, "", None
        return None, e.code(), e.details() or "", e.trailing_metadata()
    return reply, grpc.StatusCode.OK, "", None


def _retry_delay(trailers: Any) -> Optional[float]:
    """The RetryInfo delay (seconds) in ``grpc-status-details-bin``, or None when there is none."""
    for key, value in trailers or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            try:
                return _retry_info_delay(value)
            except (ValueError, IndexError):
                return None  # not a google.rpc.Status we can read
    return None


def _retry_info_delay(status: bytes) -> Optional[float]:
    """Reads a serialized google.rpc.Status by hand (no googleapis-common-protos needed).

    Status: 3 = repeated google.protobuf.Any details; Any: 1 = type_url,
    2 = value; RetryInfo: 1 = retry_delay (google.protobuf.Duration: 1 =
    seconds, 2 = nanos).
    """
    for field, value in _fields(status):
        if field != 3 or not isinstance(value, bytes):
            continue
        any_fields = dict((f, v) for f, v in _fields(value) if isinstance(v, bytes))
        if any_fields.get(1, b"").decode("utf-8", "replace") != _RETRY_INFO_TYPE:
            continue
        for f, duration in _fields(any_fields.get(2, b"")):
            if f == 1 and isinstance(duration, bytes):
                parts = dict(_fields(duration))
                seconds, nanos = _signed(parts.get(1, 0)), _signed(parts.get(2, 0))
                if not isinstance(seconds, int) or not isinstance(nanos, int):
                    raise ValueError("bad Duration")
                return max(0.0, seconds + nanos / 1e9)
        return 0.0  # a RetryInfo without a delay: retry with no wait
    return None


def _signed(value: Any) -> Any:
    return value - (1 << 64) if isinstance(value, int) and value >= 1 << 63 else value


def _fields(data: bytes) -> List[Tuple[int, Any]]:
    """(field number, int or bytes) for each field of a protobuf message; ValueError when malformed."""
    out: List[Tuple[int, Any]] = []
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        field, kind = key >> 3, key & 7
        if kind == 0:
            value, i = _varint(data, i)
        elif kind == 2:
            size, i = _varint(data, i)
            if i + size > len(data):
                raise ValueError("truncated")
            value, i = data[i : i + size], i + size
        elif kind == 1:
            value, i = int.from_bytes(data[i : i + 8], "little"), i + 8
        elif kind == 5:
            value, i = int.from_bytes(data[i : i + 4], "little"), i + 4
        else:
            raise ValueError(f"wire type {kind}")
        if i > len(data):
            raise ValueError("truncated")
        out.append((field, value))
    return out


def _varint(data: bytes, i: int) -> Tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[i]  # IndexError when truncated
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")
