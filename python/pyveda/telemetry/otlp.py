"""OTLP encoding of a metrics snapshot: snapshot -> OTLP/JSON dict or protobuf bytes.

Transport lives in :mod:`pyveda.telemetry.transport`; this module only encodes
(the split opentelemetry-python makes between ``otlp-proto-common`` and its
HTTP sender). Protobuf is imported lazily, only by :func:`metrics_request_bytes`
and :func:`metrics_request_message`.

Mapping (specs §1): task counts are monotonic cumulative Sums whose start time
is the runtime's start; pending/running, throughput, CPU, memory, RSS and the
GPU readings are Gauges; latency is both a Summary (0.5/0.9/0.95/0.99) and an
ExponentialHistogram copied bucket for bucket from the core's histogram.
Names, descriptions and units come from the core's catalogue
(``_core.RUNTIME_METRICS``), as the Prometheus help texts do.
"""

from __future__ import annotations

import functools
import math
import os
import re
import warnings
from typing import Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import unquote_to_bytes

__all__ = [
    "SCOPE_NAME",
    "SCOPE_VERSION",
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


def resource_attributes(extra: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The resource: telemetry.sdk.*, then OTEL_RESOURCE_ATTRIBUTES, then OTEL_SERVICE_NAME, then ``extra``.

    Later sources win (specs §8). A value of OTEL_RESOURCE_ATTRIBUTES that
    does not decode is discarded whole, with a warning. ``service.name``
    defaults to ``"pyveda"``.
    """
    attrs: Dict[str, Any] = {
        "service.name": "pyveda",
        "telemetry.sdk.name": "pyveda",
        "telemetry.sdk.language": "python",
        "telemetry.sdk.version": SCOPE_VERSION,
    }
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


# --- OTLP/JSON building blocks (specs §6) -----------------------------------


def _double(x: float) -> Any:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return float(x)


def _any_value(v: Any) -> Dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": _double(v)}
    if isinstance(v, (list, tuple)):
        return {"arrayValue": {"values": [_any_value(x) for x in v]}}
    return {"stringValue": str(v)}


def _attributes(attrs: Mapping[str, Any]) -> List[Dict[str, Any]]:
    return [{"key": k, "value": _any_value(v)} for k, v in attrs.items()]


def _ns(seconds: float) -> int:
    return int(round(seconds * 1e9))


def _number_point(
    value: Any, time_ns: int, start_ns: Optional[int] = None, attrs: Optional[Mapping[str, Any]] = None
) -> Dict[str, Any]:
    point: Dict[str, Any] = {}
    if attrs:
        point["attributes"] = _attributes(attrs)
    if start_ns is not None:
        point["startTimeUnixNano"] = str(start_ns)
    point["timeUnixNano"] = str(time_ns)
    if isinstance(value, int) and not isinstance(value, bool):
        point["asInt"] = str(value)
    else:
        point["asDouble"] = _double(float(value))
    return point


def _sum(name: str, description: str, unit: str, value: int, start_ns: int, time_ns: int) -> Dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "unit": unit,
        "sum": {
            "aggregationTemporality": CUMULATIVE,
            "isMonotonic": True,
            "dataPoints": [_number_point(value, time_ns, start_ns)],
        },
    }


def _gauge(name: str, description: str, unit: str, points: List[Dict[str, Any]]) -> Dict[str, Any]:
    return {"name": name, "description": description, "unit": unit, "gauge": {"dataPoints": points}}


def _trimmed(counts: List[int], offset: int) -> Tuple[List[int], int]:
    """Drops zero buckets at both ends (lossless: the offset moves with them)."""
    first = next((i for i, c in enumerate(counts) if c), None)
    if first is None:
        return [], 0
    last = max(i for i, c in enumerate(counts) if c)
    return list(counts[first : last + 1]), offset + first


def _exponential_histogram(h: Any, time_ns: int, name: str, description: str, unit: str) -> Dict[str, Any]:
    counts, offset = _trimmed(list(h.counts), int(h.offset))
    point: Dict[str, Any] = {
        "startTimeUnixNano": str(int(h.start_unix_nano)),
        "timeUnixNano": str(time_ns),
        "count": str(int(h.count)),
        "sum": _double(h.sum),
        "scale": int(h.scale),
        "zeroCount": str(int(h.zero_count)),
        "zeroThreshold": _double(h.zero_threshold),
    }
    if counts:
        point["positive"] = {"offset": offset, "bucketCounts": [str(c) for c in counts]}
    if h.count > 0:
        point["min"] = _double(h.min)
        point["max"] = _double(h.max)
    return {
        "name": name,
        "description": description,
        "unit": unit,
        "exponentialHistogram": {"aggregationTemporality": CUMULATIVE, "dataPoints": [point]},
    }


@functools.lru_cache(maxsize=1)
def _catalogue() -> Dict[str, Tuple[str, str, str]]:
    """Family name -> (OTLP name, description, unit), from the core's one table of runtime metrics."""
    from pyveda import _core

    return {name: (otlp_name, help_text, unit) for name, help_text, unit, _kind, otlp_name in _core.RUNTIME_METRICS}


# (snapshot attribute, catalogue family, as int?): one Gauge point each.
_HOST_GAUGES = (
    ("tasks_pending", "pyveda_tasks_pending", True),
    ("tasks_running", "pyveda_tasks_running", True),
    ("throughput_tasks_per_sec", "pyveda_throughput_tasks_per_sec", False),
    ("cpu_utilization_percent", "pyveda_cpu_utilization_percent", False),
    ("memory_used_mb", "pyveda_memory_used_mb", False),
    ("process_rss_mb", "pyveda_process_rss_mb", False),
)

# (GpuSample field, snapshot aggregate or None, catalogue family): one point per device.
_GPU_GAUGES = (
    ("utilization_percent", "gpu_utilization_percent", "pyveda_gpu_utilization_percent"),
    ("memory_used_mb", "gpu_memory_used_mb", "pyveda_gpu_memory_used_mb"),
    ("memory_total_mb", None, "pyveda_gpu_memory_total_mb"),
    ("temperature_c", None, "pyveda_gpu_temperature_celsius"),
    ("power_w", None, "pyveda_gpu_power_watts"),
)

def _metrics(snapshot: Any) -> List[Dict[str, Any]]:
    catalogue = _catalogue()
    time_ns = _ns(snapshot.timestamp)
    start_ns = int(getattr(snapshot, "start_unix_nano", 0) or 0) or time_ns
    metrics = [
        _sum(*catalogue["pyveda_tasks_executed"], int(snapshot.tasks_executed), start_ns, time_ns),
        _sum(*catalogue["pyveda_tasks_failed"], int(snapshot.tasks_failed), start_ns, time_ns),
    ]
    for attr, family, as_int in _HOST_GAUGES:
        value = int(getattr(snapshot, attr)) if as_int else float(getattr(snapshot, attr))
        metrics.append(_gauge(*catalogue[family], [_number_point(value, time_ns)]))

    gpus = list(snapshot.gpus)
    for field, aggregate, family in _GPU_GAUGES:
        if gpus:  # one series per device, labelled as in the Prometheus exposition
            points = [
                _number_point(float(getattr(g, field)), time_ns, attrs={"gpu": int(g.index), "name": g.name})
                for g in gpus
                if getattr(g, field) is not None
            ]
        elif aggregate is not None and getattr(snapshot, aggregate) is not None:
            points = [_number_point(float(getattr(snapshot, aggregate)), time_ns)]
        else:
            points = []
        if points:  # a missing reading is no series, never 0
            metrics.append(_gauge(*catalogue[family], points))

    latency_name, latency_help, latency_unit = catalogue["pyveda_latency_ms"]
    count = int(getattr(snapshot, "latency_count", 0))
    summary_point: Dict[str, Any] = {
        "startTimeUnixNano": str(start_ns),
        "timeUnixNano": str(time_ns),
        "count": str(count),
        "sum": _double(float(getattr(snapshot, "latency_sum_ms", 0.0))),
    }
    if count > 0:  # the quantile set every export uses, with the snapshot's figure for each
        from pyveda import _core

        p90 = getattr(snapshot, "p90_latency_ms", math.nan)  # duck-typed snapshots may lack it
        figures = (snapshot.p50_latency_ms, p90, snapshot.p95_latency_ms, snapshot.p99_latency_ms)
        if len(_core.SUMMARY_QUANTILES) != len(figures):  # as catalogue.cpp's static_assert
            raise RuntimeError(f"the core exposes quantiles {_core.SUMMARY_QUANTILES}; a snapshot has 4 figures")
        summary_point["quantileValues"] = [
            {"quantile": q, "value": _double(v)} for q, v in zip(_core.SUMMARY_QUANTILES, figures)
        ]
    metrics.append(
        {
            "name": latency_name + ".summary",
            "description": latency_help,
            "unit": latency_unit,
            "summary": {"dataPoints": [summary_point]},
        }
    )
    hist = getattr(snapshot, "latency_histogram", None)
    if hist is not None:
        metrics.append(_exponential_histogram(hist, time_ns, latency_name, latency_help, latency_unit))
    return metrics


def metrics_request_dict(snapshot: Any, resource: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The snapshot as an OTLP/JSON ExportMetricsServiceRequest (post it to ``/v1/metrics``).

    ``resource`` defaults to :func:`resource_attributes`. The exponential
    histogram is present only when the snapshot carries the latency buckets
    (``snapshot.latency_histogram``; None for collected history snapshots).
    """
    attrs = resource_attributes() if resource is None else resource
    return {
        "resourceMetrics": [
            {
                "resource": {"attributes": _attributes(attrs)},
                "scopeMetrics": [
                    {"scope": {"name": SCOPE_NAME, "version": SCOPE_VERSION}, "metrics": _metrics(snapshot)}
                ],
            }
        ]
    }


def metrics_request_message(snapshot: Any, resource: Optional[Mapping[str, Any]] = None) -> Any:
    """The same request as an ``ExportMetricsServiceRequest`` protobuf message."""
    from google.protobuf import json_format
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    return json_format.ParseDict(metrics_request_dict(snapshot, resource), ExportMetricsServiceRequest())


def metrics_request_bytes(snapshot: Any, resource: Optional[Mapping[str, Any]] = None) -> bytes:
    """The same request serialised as binary protobuf (``application/x-protobuf``)."""
    return bytes(metrics_request_message(snapshot, resource).SerializeToString())


# --- a registry's families, encoded in the core ----------------------------------------------


def registry_request_bytes(registry: Any, resource: Optional[Mapping[str, Any]] = None) -> bytes:
    """Every family of a :class:`~pyveda.telemetry.CollectorRegistry` as a binary OTLP request.

    Encoded natively (``veda::encode_otlp_metrics``) with the GIL released:
    counters as cumulative monotonic Sums, gauges as Gauges, histograms as
    ExponentialHistograms copied bucket for bucket, labels as attributes.
    The runtime's ``pyveda_*`` families carry their catalogue OTLP names and
    units, as in :func:`metrics_request_bytes`.
    """
    import time

    attrs = resource_attributes() if resource is None else dict(resource)
    return registry._core.encode_otlp(attrs, SCOPE_NAME, SCOPE_VERSION, time.time_ns())


def registry_request_dict(registry: Any, resource: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The same request as OTLP/JSON, read back from the native message (enums as integers)."""
    from google.protobuf import json_format
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    message = ExportMetricsServiceRequest()
    message.ParseFromString(registry_request_bytes(registry, resource))
    return json_format.MessageToDict(message, use_integers_for_enums=True)
