"""OTLP/JSON, derived from the protobuf encoding: serialised OTLP request bytes -> the OTLP/JSON dict.

PyVeda encodes each OTLP request once, natively, as protobuf. The JSON form
is that message read back with protobuf's JSON mapping
(``google.protobuf.json_format.MessageToDict``), which already gives what the
OTLP specification's "JSON Protobuf Encoding" asks for: lowerCamelCase field
names, enums as integers (``use_integers_for_enums``), 64-bit integers as
decimal strings, non-finite doubles as ``"NaN"``, ``"Infinity"`` and
``"-Infinity"``, and proto3 default values left out. The one OTLP-specific
difference is applied afterwards: ``trace_id``, ``span_id`` and
``parent_span_id`` (in spans, links and exemplars alike) are lowercase hex,
not base64. Which fields those are is read from the message descriptors, so
the same function serves every request kind.

>>> request_dict(data, "traces")  # doctest: +SKIP  (data: ExportTraceServiceRequest bytes)
{'resourceSpans': [{'resource': {...}, 'scopeSpans': [...]}]}

Protobuf and ``opentelemetry-proto`` (runtime dependencies) are imported on
the first call only, so ``import pyveda`` does not load them.
"""

from __future__ import annotations

import base64
import importlib
from typing import Any, Dict, Tuple

__all__ = ["request_dict"]

# request kind -> (module, message class) of its opentelemetry-proto collector request
_KINDS: Dict[str, Tuple[str, str]] = {
    "traces": ("opentelemetry.proto.collector.trace.v1.trace_service_pb2", "ExportTraceServiceRequest"),
    "metrics": ("opentelemetry.proto.collector.metrics.v1.metrics_service_pb2", "ExportMetricsServiceRequest"),
}

# bytes fields OTLP/JSON writes as hex (OTLP specification, "JSON Protobuf Encoding")
_HEX_ID_FIELDS = frozenset({"trace_id", "span_id", "parent_span_id"})

# A path tree: (JSON name, None) for an id field, (JSON name, subtree) for a message field
# whose type holds id fields somewhere below it.
_IdPaths = Tuple[Tuple[str, Any], ...]

_paths_by_kind: Dict[str, _IdPaths] = {}


def request_dict(data: bytes, kind: str) -> Dict[str, Any]:
    """The OTLP/JSON dict of a serialised OTLP request.

    ``data``: the protobuf bytes of an ``ExportTraceServiceRequest``
    (``kind="traces"``) or ``ExportMetricsServiceRequest`` (``"metrics"``).
    Bytes that do not parse as that message raise
    ``google.protobuf.message.DecodeError``; an unknown ``kind`` is a ValueError.
    """
    spec = _KINDS.get(kind) if isinstance(kind, str) else None
    if spec is None:
        raise ValueError(f"kind must be one of {', '.join(map(repr, _KINDS))}, got {kind!r}")
    from google.protobuf import json_format

    message_class = getattr(importlib.import_module(spec[0]), spec[1])
    message = message_class.FromString(data)
    result = json_format.MessageToDict(message, use_integers_for_enums=True, preserving_proto_field_name=False)
    paths = _paths_by_kind.get(kind)
    if paths is None:
        paths = _paths_by_kind[kind] = _id_paths(message_class.DESCRIPTOR, frozenset())
    _hex_ids(result, paths)
    return result


def _id_paths(descriptor: Any, outer: frozenset) -> _IdPaths:
    """The fields of ``descriptor`` that are, or lead to, id fields (recursive types cut at the repeat)."""
    from google.protobuf.descriptor import FieldDescriptor

    outer = outer | {descriptor.full_name}
    paths = []
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_BYTES and field.name in _HEX_ID_FIELDS:
            paths.append((field.json_name, None))
        elif field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.full_name not in outer:
            below = _id_paths(field.message_type, outer)
            if below:
                paths.append((field.json_name, below))
    return tuple(paths)


def _hex_ids(node: Dict[str, Any], paths: _IdPaths) -> None:
    """Rewrites, in place, the base64 id fields MessageToDict wrote into ``node`` as lowercase hex."""
    for name, below in paths:
        value = node.get(name)
        if value is None:  # unset (proto3 default): left out
            continue
        if below is None:
            node[name] = base64.b64decode(value).hex()
        elif isinstance(value, list):  # a repeated message field
            for item in value:
                _hex_ids(item, below)
        else:
            _hex_ids(value, below)
