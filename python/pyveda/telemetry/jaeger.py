"""The Jaeger JSON model: finished span records + a resource -> the ``/api/traces`` envelope.

:meth:`TracingSystem.export_jaeger <pyveda.telemetry.tracing.TracingSystem.export_jaeger>`
calls :func:`jaeger_json` on one snapshot of its span store. Mapping (as in
OpenTelemetry's Jaeger translation, with the ``otel.*`` tag names):

- one trace per trace id, each with one process ``p1``: ``serviceName`` from
  the resource's ``service.name``, the other resource attributes as tags;
- ids as hex, times in microseconds, the parent as a ``CHILD_OF`` reference;
- attributes as typed tags (``bool``, ``int64``, ``float64``, ``string``; a
  list as its JSON text; an int beyond 2**53 as a decimal string, so
  JavaScript readers keep every digit), plus ``otel.scope.name`` /
  ``otel.scope.version``, ``span.kind``, ``otel.status_code`` (and
  ``otel.status_description``, ``error=true`` for ERROR) and the non-zero
  ``otel.dropped_*_count`` tags;
- events as logs, with an ``event`` field carrying the event name.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Iterable, List, Mapping

from pyveda import _core
from pyveda.telemetry.otlp import SCOPE_NAME, SCOPE_VERSION

__all__ = ["jaeger_json"]

_JAEGER_KIND = {2: "server", 3: "client", 4: "producer", 5: "consumer"}
_JS_SAFE = 2**53 - 1


def jaeger_json(spans: Iterable[Any], resource: Mapping[str, Any]) -> Dict[str, Any]:
    """The Jaeger JSON envelope of ``spans`` (span records from ``SpanStore.snapshot()``) in ``resource``.

    ``resource`` holds checked attribute values (as
    :meth:`TracingSystem.resource_attributes <pyveda.telemetry.tracing.TracingSystem.resource_attributes>`
    gives them); any other value raises the attribute checker's TypeError naming its key.
    """
    process = {
        "serviceName": str(resource["service.name"]),
        "tags": [_jaeger_tag(k, v) for k, v in resource.items() if k != "service.name"],
    }
    traces: Dict[str, List[Dict[str, Any]]] = {}
    for record in spans:
        traces.setdefault(record.trace_id, []).append(_jaeger_span(record))
    return {
        "data": [
            {"traceID": tid, "spans": trace_spans, "processes": {"p1": dict(process)}, "warnings": None}
            for tid, trace_spans in traces.items()
        ],
        "total": 0,
        "limit": 0,
        "offset": 0,
        "errors": None,
    }


def _jaeger_tag(key: str, value: Any) -> Dict[str, Any]:
    t = type(value)
    if t is str:
        return {"key": key, "type": "string", "value": value}
    if t is bool:
        return {"key": key, "type": "bool", "value": value}
    if t is int:
        return {"key": key, "type": "int64", "value": value if -_JS_SAFE <= value <= _JS_SAFE else str(value)}
    if t is float:
        return {"key": key, "type": "float64", "value": value}
    if t is list:
        return {"key": key, "type": "string", "value": json.dumps(value)}
    # Not an exact attribute type: the one attribute rule converts it (tuple -> list, IntEnum -> int)
    # or raises its TypeError naming the key.
    return _jaeger_tag(key, _core.check_attributes({key: value})[key])


def _jaeger_span(d: Any) -> Dict[str, Any]:
    tags = [_jaeger_tag(k, v) for k, v in d.attributes.items()]
    tags.append({"key": "otel.scope.name", "type": "string", "value": SCOPE_NAME})
    tags.append({"key": "otel.scope.version", "type": "string", "value": SCOPE_VERSION})
    kind = _JAEGER_KIND.get(d.kind)
    if kind:
        tags.append({"key": "span.kind", "type": "string", "value": kind})
    if d.status_code == 1:
        tags.append({"key": "otel.status_code", "type": "string", "value": "OK"})
    elif d.status_code == 2:
        tags.append({"key": "otel.status_code", "type": "string", "value": "ERROR"})
        if d.status_message:
            tags.append({"key": "otel.status_description", "type": "string", "value": d.status_message})
        tags.append({"key": "error", "type": "bool", "value": True})
    for key, count in (
        ("otel.dropped_attributes_count", d.dropped_attributes_count),
        ("otel.dropped_events_count", d.dropped_events_count),
        ("otel.dropped_links_count", d.dropped_links_count),
    ):
        if count:
            tags.append({"key": key, "type": "int64", "value": count})
    logs = []
    for t, name, attrs, _dropped in d.events:
        fields = [] if "event" in attrs else [{"key": "event", "type": "string", "value": name}]
        fields.extend(_jaeger_tag(k, v) for k, v in attrs.items())
        logs.append({"timestamp": t // 1000, "fields": fields})
    parent = d.parent_span_id
    references = [{"refType": "CHILD_OF", "traceID": d.trace_id, "spanID": parent}] if parent else []
    # Links are Jaeger's FOLLOWS_FROM references (as OpenTelemetry's Jaeger translation maps them).
    references.extend({"refType": "FOLLOWS_FROM", "traceID": trace_id, "spanID": span_id}
                      for trace_id, span_id, *_ in d.links)
    start_us = d.start_time_unix_nano // 1000
    return {
        "traceID": d.trace_id,
        "spanID": d.span_id,
        "flags": d.flags & 0xFF,
        "operationName": d.name,
        "references": references,
        "startTime": start_us,
        "duration": max(0, d.end_time_unix_nano // 1000 - start_us),
        "tags": tags,
        "logs": logs,
        "processID": "p1",
        "warnings": None,
    }
