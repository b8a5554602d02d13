"""OTLP encoding of metrics: a snapshot or a registry -> protobuf bytes, message or OTLP/JSON dict.

Transport lives in :mod:`pyveda.telemetry.transport`; this module only
encodes (the split opentelemetry-python makes between ``otlp-proto-common``
and its HTTP sender). The bytes come from the core's one encoder
(``veda::encode_otlp_metrics``) over the same families every text format
renders; the message and the OTLP/JSON dict are read back from them
(:mod:`pyveda.telemetry.otlp_json`), so protobuf is imported only by those.

Mapping (specs §1): task counts are monotonic cumulative Sums whose start time
is the runtime's start; pending/running, throughput, CPU, memory, RSS and the
GPU readings are Gauges; latency is both a Summary (0.5/0.9/0.95/0.99) and an
ExponentialHistogram copied bucket for bucket from the core's histogram.
Names, descriptions and units come from the core's catalogue
(``_core.RUNTIME_METRICS``), as the Prometheus help texts do.
"""

from __future__ import annotations

import os
import re
import warnings
from typing import Any, Dict, Mapping, Optional
from urllib.parse import unquote_to_bytes

__all__ = [
    "SCOPE_NAME",
    "SCOPE_VERSION",
    "process_identity",
    "registry_request_bytes",
    "registry_request_dict",
    "metrics_request_bytes",
    "metrics_request_dict",
    "metrics_request_message",
    "parse_key_values",
    "resource_attributes",
]

from pyveda._version import __version__

#: The instrumentation scope of everything PyVeda encodes (OTLP metrics and
#: traces, Jaeger's otel.scope.* tags): one name and version for all of them.
SCOPE_NAME = "pyveda"
SCOPE_VERSION = __version__

CUMULATIVE = 2

_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _decode(text: str) -> str:
    """Strict percent-decoding: a lone ``%`` or invalid UTF-8 raises ValueError."""
    if _BAD_ESCAPE.search(text):
        raise ValueError(f"invalid percent-encoding in {text!r}")
    try:
        return unquote_to_bytes(text).decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"invalid UTF-8 after percent-decoding {text!r}") from e


def parse_key_values(text: str, what: str) -> Dict[str, str]:
    """Parses ``k1=v1,k2=v2`` (W3C-baggage style, percent-decoded).

    Empty members are ignored. Raises ValueError naming ``what`` for a member
    without ``=``, an empty key, or a bad percent-escape.
    """
    result: Dict[str, str] = {}
    for member in text.split(","):
        if not member.strip():
            continue
        key, sep, value = member.partition("=")
        if not sep:
            raise ValueError(f"{what}: {member.strip()!r} is not key=value (expected 'k1=v1,k2=v2')")
        key = _decode(key.strip())
        if not key:
            raise ValueError(f"{what}: empty key in {member.strip()!r} (expected 'k1=v1,k2=v2')")
        result[key] = _decode(value.strip())
    return result


_identity: Dict[str, Any] = {}  # this process's, made on first use and again in a fork()ed child


def process_identity() -> Dict[str, Any]:
    """What tells this process apart from the service's others, as resource attributes.

    ``service.instance.id`` is a random UUID (version 4) made once per
    process, so a fork()ed child gets its own; ``process.pid`` and
    ``host.name`` (the node name) come from the OS. A collector or backend
    uses them to keep the series and spans of worker processes apart.
    """
    pid = os.getpid()
    if _identity.get("process.pid") != pid:
        raw = bytearray(os.urandom(16))
        raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
        raw[8] = (raw[8] & 0x3F) | 0x80  # the RFC 4122 variant
        h = raw.hex()
        _identity.clear()
        _identity.update(
            {
                "service.instance.id": f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}",
                "process.pid": pid,
                "host.name": os.uname().nodename if hasattr(os, "uname") else os.environ.get("COMPUTERNAME", ""),
            }
        )
    return dict(_identity)


def resource_attributes(extra: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The resource: telemetry.sdk.* and the process identity, then OTEL_RESOURCE_ATTRIBUTES, then OTEL_SERVICE_NAME, then ``extra``.

    Later sources win (specs §8). A value of OTEL_RESOURCE_ATTRIBUTES that
    does not decode is discarded whole, with a warning. ``service.name``
    defaults to ``"pyveda"``; ``service.instance.id``, ``process.pid`` and
    ``host.name`` to this process's (see :func:`process_identity`).
    """
    attrs: Dict[str, Any] = {
        "service.name": "pyveda",
        "telemetry.sdk.name": "pyveda",
        "telemetry.sdk.language": "python",
        "telemetry.sdk.version": SCOPE_VERSION,
    }
    attrs.update(process_identity())
    env = os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    if env.strip():
        try:
            attrs.update(parse_key_values(env, "OTEL_RESOURCE_ATTRIBUTES"))
        except ValueError as e:
            warnings.warn(f"pyveda: ignoring OTEL_RESOURCE_ATTRIBUTES: {e}", RuntimeWarning, stacklevel=2)
    service = os.environ.get("OTEL_SERVICE_NAME", "").strip()
    if service:
        attrs["service.name"] = service
    if extra:
        attrs.update(extra)
    return attrs


# --- a snapshot's families, encoded in the core ---------------------------------------------


def _core_snapshot(snapshot: Any) -> Any:
    from pyveda import _core

    core = snapshot if isinstance(snapshot, _core.MetricsSnapshot) else getattr(snapshot, "_s", None)
    if not isinstance(core, _core.MetricsSnapshot):
        raise TypeError(f"expected a pyveda MetricsSnapshot, got {type(snapshot).__name__}")
    return core


def metrics_request_bytes(snapshot: Any, resource: Optional[Mapping[str, Any]] = None) -> bytes:
    """The snapshot as a binary OTLP ExportMetricsServiceRequest (post it to ``/v1/metrics``).

    Encoded natively from the same families ``export_prometheus()`` renders
    (``veda::to_families`` then ``veda::encode_otlp_metrics``), stamped with
    the snapshot's time: task counts as cumulative monotonic Sums (as_int)
    from the runtime's start, pending/running, throughput, CPU, memory, RSS
    and the GPU readings as Gauges (one point per device, ``gpu`` an int
    attribute), latency as a Summary ``pyveda.task.latency.summary`` with the
    quantiles of the text formats and, when the snapshot carries the buckets
    (``snapshot.latency_histogram``; None for collected history snapshots),
    as an ExponentialHistogram ``pyveda.task.latency`` copied bucket for
    bucket. ``resource`` defaults to :func:`resource_attributes`; its values
    follow the span-attribute rule (TypeError naming the key otherwise).
    """
    attrs = resource_attributes() if resource is None else resource
    return _core_snapshot(snapshot).encode_otlp(attrs, SCOPE_NAME, SCOPE_VERSION)


def metrics_request_message(snapshot: Any, resource: Optional[Mapping[str, Any]] = None) -> Any:
    """The same request as an ``ExportMetricsServiceRequest`` protobuf message."""
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    return ExportMetricsServiceRequest.FromString(metrics_request_bytes(snapshot, resource))


def metrics_request_dict(snapshot: Any, resource: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The same request as OTLP/JSON, read back from the native message (see :mod:`pyveda.telemetry.otlp_json`)."""
    from pyveda.telemetry.otlp_json import request_dict

    return request_dict(metrics_request_bytes(snapshot, resource), "metrics")


# --- a registry's families, encoded in the core ----------------------------------------------


def registry_request_bytes(registry: Any, resource: Optional[Mapping[str, Any]] = None) -> bytes:
    """Every family of a :class:`~pyveda.telemetry.CollectorRegistry` as a binary OTLP request.

    Encoded natively (``veda::encode_otlp_metrics``) with the GIL released:
    counters as cumulative monotonic Sums, gauges as Gauges (up-down sums, the
    families of ``pyveda.otel`` UpDownCounters, as non-monotonic Sums),
    histograms as ExponentialHistograms copied bucket for bucket (those with
    classic buckets as explicit-bucket Histograms), labels as attributes.
    The runtime's ``pyveda_*`` families carry their catalogue OTLP names and
    units, as in :func:`metrics_request_bytes`.
    """
    import time

    from pyveda.telemetry.registry import _metrics_hooks

    _metrics_hooks.before_collect(registry)  # set_function gauges and observable instruments read now
    attrs = resource_attributes() if resource is None else dict(resource)
    return registry._core.encode_otlp(attrs, SCOPE_NAME, SCOPE_VERSION, time.time_ns())


def registry_request_dict(registry: Any, resource: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The same request as OTLP/JSON, derived from the native bytes (see :mod:`pyveda.telemetry.otlp_json`)."""
    from pyveda.telemetry.otlp_json import request_dict

    return request_dict(registry_request_bytes(registry, resource), "metrics")
