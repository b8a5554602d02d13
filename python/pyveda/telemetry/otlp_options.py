"""OTLP exporter options: explicit arguments, else ``OTEL_EXPORTER_OTLP_*``, else the defaults.

:meth:`OTLPOptions.from_env` is the only reader of the ``OTEL_EXPORTER_OTLP_*``
variables (the role of opentelemetry-cpp's ``otlp_environment.h``). For each
setting the signal-specific variable (``OTEL_EXPORTER_OTLP_TRACES_TIMEOUT``)
beats the generic one (``OTEL_EXPORTER_OTLP_TIMEOUT``), and an explicit
argument beats both:

- ``ENDPOINT``: for OTLP/HTTP the generic one gets ``/v1/<signal>`` appended;
  the signal-specific one is used as-is. For ``grpc`` either is the server's
  ``host:port`` (a path is ignored): ``http://`` means a plaintext channel,
  ``https://`` TLS, and without a scheme ``INSECURE`` decides.
- ``INSECURE`` (``grpc`` only, consulted only for an endpoint without a
  scheme): ``true`` for a plaintext channel, ``false`` (the default) for TLS.
- ``HEADERS``: ``k=v,k2=v2``, percent-decoded; generic and specific merge.
- ``TIMEOUT``: integer milliseconds, as the OTel spec says (opentelemetry-python
  reads seconds); 0 means no limit. The argument is in seconds.
- ``COMPRESSION``: ``gzip`` or ``none``.
- ``PROTOCOL``: ``http/protobuf`` (the default), ``http/json`` or ``grpc``
  (OTLP/gRPC, default endpoint ``http://localhost:4317``; needs the ``grpc``
  extra, ``pip install pyveda[grpc]``, checked when the exporter is made);
  anything else raises ValueError.

A bad argument raises ValueError; a bad environment value warns and falls back
to the default (a bad ``PROTOCOL`` raises, since sending the wrong body is worse).
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Dict, Mapping, NamedTuple, Optional, Tuple, Union
from urllib.parse import urlsplit

from pyveda._checks import seconds
from pyveda.telemetry.otlp import parse_key_values

__all__ = [
    "CONTENT_TYPES",
    "DEFAULT_ENDPOINT",
    "DEFAULT_GRPC_ENDPOINT",
    "DEFAULT_TIMEOUT_S",
    "PROTOCOLS",
    "SIGNALS",
    "OTLPOptions",
]

DEFAULT_ENDPOINT = "http://localhost:4318"
DEFAULT_GRPC_ENDPOINT = "http://localhost:4317"
DEFAULT_TIMEOUT_S = 10.0
SIGNALS = ("metrics", "traces")
PROTOCOLS = ("http/protobuf", "http/json", "grpc")
#: The request body's Content-Type for each protocol.
CONTENT_TYPES = {
    "http/protobuf": "application/x-protobuf",
    "http/json": "application/json",
    "grpc": "application/grpc",
}


class OTLPOptions(NamedTuple):
    """Where and how one signal is sent. Build with :meth:`from_env`."""

    signal: str
    url: str  # OTLP/HTTP: the URL posted to; grpc: 'http://host:port' (plaintext) or 'https://host:port' (TLS)
    timeout: Optional[float]  # seconds for the whole send, retries included; None: no limit
    compression: Optional[str]  # 'gzip' or None
    headers: Dict[str, str]
    protocol: str  # 'http/protobuf', 'http/json' or 'grpc'

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.protocol]

    @property
    def encoding(self) -> str:
        """What the body is: ``'protobuf'`` or ``'json'``."""
        return "json" if self.protocol == "http/json" else "protobuf"

    @classmethod
    def from_env(
        cls,
        signal: str,
        *,
        endpoint: Optional[str] = None,
        timeout: Optional[float] = None,
        compression: Optional[str] = None,
        headers: Union[None, str, Mapping[str, str]] = None,
        protocol: Optional[str] = None,
    ) -> "OTLPOptions":
        """The options for ``signal`` (``'metrics'`` or ``'traces'``): arguments, else the environment."""
        if signal not in SIGNALS:
            raise ValueError(f"signal must be one of {SIGNALS}, got {signal!r}")
        chosen = _protocol(signal, protocol)
        return cls(
            signal,
            _grpc_url(signal, endpoint) if chosen == "grpc" else _signal_url(signal, endpoint),
            _timeout(signal, timeout),
            _compression(signal, compression),
            _headers(signal, headers),
            chosen,
        )


def _env(signal: str, name: str) -> Tuple[Optional[str], str]:
    """(value, variable name): the signal-specific variable, else the generic one."""
    specific = f"OTEL_EXPORTER_OTLP_{signal.upper()}_{name}"
    value = os.environ.get(specific)
    if value is not None and value.strip():
        return value.strip(), specific
    generic = f"OTEL_EXPORTER_OTLP_{name}"
    value = os.environ.get(generic)
    if value is not None and value.strip():
        return value.strip(), generic
    return None, generic


def _check_url(url: str, what: str) -> str:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        raise ValueError(f"{what}: {url!r} is not an absolute URL (expected e.g. 'http://localhost:4318')")
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{what}: unsupported scheme {parts.scheme!r} in {url!r} (use http or https)")
    if not parts.hostname:
        raise ValueError(f"{what}: {url!r} has no host (expected e.g. 'http://localhost:4318')")
    try:
        parts.port
    except ValueError as e:
        raise ValueError(f"{what}: bad port in {url!r}") from e
    return url


def _join(base: str, path: str) -> str:
    return base.rstrip("/") + "/" + path


def _signal_url(signal: str, endpoint: Optional[str]) -> str:
    path = f"v1/{signal}"
    if endpoint is not None:
        return _join(_check_url(endpoint, "endpoint"), path)
    value, name = _env(signal, "ENDPOINT")
    if value is not None and name.endswith(f"_{signal.upper()}_ENDPOINT"):
        _check_url(value, name)
        return value if urlsplit(value).path else value + "/"  # used as-is
    if value is not None:
        return _join(_check_url(value, name), path)
    return _join(DEFAULT_ENDPOINT, path)


def _grpc_url(signal: str, endpoint: Optional[str]) -> str:
    """``'http://host:port'`` (plaintext) or ``'https://host:port'`` (TLS) for an OTLP/gRPC endpoint.

    The generic and the signal-specific variable mean the same here (gRPC has
    no per-signal path). Without a scheme, ``INSECURE`` picks the channel.
    """
    if endpoint is not None:
        what, value = "endpoint", endpoint
    else:
        env, name = _env(signal, "ENDPOINT")
        if env is None:
            return DEFAULT_GRPC_ENDPOINT
        what, value = name, env
    if not isinstance(value, str):
        raise ValueError(f"{what}: {value!r} is not a string (expected e.g. 'http://localhost:4317')")
    if "://" in value:
        parts = urlsplit(_check_url(value, what))
        scheme = parts.scheme
    else:
        parts = urlsplit("//" + value)
        if not parts.hostname:
            raise ValueError(f"{what}: {value!r} has no host (expected e.g. 'localhost:4317')")
        scheme = "http" if _insecure(signal) else "https"
    try:
        port = parts.port
    except ValueError as e:
        raise ValueError(f"{what}: bad port in {value!r}") from e
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # IPv6
    return f"{scheme}://{host}:{port if port is not None else (443 if scheme == 'https' else 80)}"


def _insecure(signal: str) -> bool:
    """``OTEL_EXPORTER_OTLP_{SIGNAL_,}INSECURE``: True for a plaintext channel; a bad value warns, False."""
    value, name = _env(signal, "INSECURE")
    if value is None:
        return False
    if value.lower() not in ("true", "false"):
        warnings.warn(
            f"pyveda: {name}={value!r} is not 'true' or 'false'; using false (a TLS channel)",
            RuntimeWarning,
            stacklevel=5,
        )
        return False
    return value.lower() == "true"


def _timeout(signal: str, timeout: Optional[float]) -> Optional[float]:
    """Seconds (None = no limit) from the argument or the env (ms)."""
    if timeout is not None:
        value = seconds(timeout, "timeout")
        return None if value == 0 else value
    value, name = _env(signal, "TIMEOUT")
    if value is None:
        return DEFAULT_TIMEOUT_S
    try:
        ms = int(value)
    except ValueError:
        ms = -1
    if ms < 0:
        warnings.warn(
            f"pyveda: {name}={value!r} is not a non-negative integer of milliseconds; "
            f"using {int(DEFAULT_TIMEOUT_S * 1000)}",
            RuntimeWarning,
            stacklevel=4,
        )
        return DEFAULT_TIMEOUT_S
    return None if ms == 0 else ms / 1000.0


def _compression(signal: str, compression: Optional[str]) -> Optional[str]:
    if compression is not None:
        if compression not in ("gzip", "none"):
            raise ValueError(f"compression must be 'gzip' or 'none', got {compression!r}")
        return None if compression == "none" else "gzip"
    value, name = _env(signal, "COMPRESSION")
    if value is None:
        return None
    if value.lower() not in ("gzip", "none"):
        warnings.warn(
            f"pyveda: {name}={value!r} is not 'gzip' or 'none'; sending uncompressed", RuntimeWarning, stacklevel=4
        )
        return None
    return None if value.lower() == "none" else "gzip"


def _protocol(signal: str, protocol: Optional[str]) -> str:
    """``'http/protobuf'``, ``'http/json'`` or ``'grpc'`` from the argument or the env; ValueError otherwise."""
    allowed = "supported values: 'http/protobuf' (the default), 'http/json', 'grpc'"
    if protocol is not None:
        what, value = "protocol", protocol
    else:
        env, name = _env(signal, "PROTOCOL")
        if env is None:
            return "http/protobuf"
        what, value = name, env
        if env.lower() in PROTOCOLS:
            return env.lower()
    if value in PROTOCOLS:
        return str(value)
    raise ValueError(f"{what}: {value!r} is not a supported OTLP protocol; {allowed}")


def _headers(signal: str, headers: Union[None, str, Mapping[str, Any]]) -> Dict[str, str]:
    if isinstance(headers, Mapping):
        return {str(k): str(v) for k, v in headers.items()}
    if isinstance(headers, str):
        return parse_key_values(headers, "headers")
    result: Dict[str, str] = {}
    for name in ("OTEL_EXPORTER_OTLP_HEADERS", f"OTEL_EXPORTER_OTLP_{signal.upper()}_HEADERS"):
        value = os.environ.get(name, "")
        if value.strip():
            result.update(parse_key_values(value, name))
    return result
