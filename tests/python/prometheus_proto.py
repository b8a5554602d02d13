"""Message classes for Prometheus' io.prometheus.client exposition schema
(prometheus/client_model, io/prometheus/client/metrics.proto), built at run
time from a descriptor so the tests need no protoc: only the fields PyVeda
writes or Prometheus reads for them, with their numbers and types."""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, timestamp_pb2
from google.protobuf.internal.decoder import _DecodeVarint

try:
    from google.protobuf.message_factory import GetMessageClass
except ImportError:  # protobuf < 4.21
    from google.protobuf.message_factory import MessageFactory

    GetMessageClass = MessageFactory().GetPrototype

_F = descriptor_pb2.FieldDescriptorProto
_OPTIONAL, _REPEATED = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
_TYPES = {
    "double": _F.TYPE_DOUBLE, "uint64": _F.TYPE_UINT64, "int64": _F.TYPE_INT64, "uint32": _F.TYPE_UINT32,
    "sint32": _F.TYPE_SINT32, "sint64": _F.TYPE_SINT64, "string": _F.TYPE_STRING,
}

# message -> [(field name, number, type or message name, repeated?)]
_SCHEMA = {
    "LabelPair": [("name", 1, "string", False), ("value", 2, "string", False)],
    "Gauge": [("value", 1, "double", False)],
    "Counter": [("value", 1, "double", False), ("exemplar", 2, ".io.prometheus.client.Exemplar", False),
                ("created_timestamp", 3, ".google.protobuf.Timestamp", False)],
    "Quantile": [("quantile", 1, "double", False), ("value", 2, "double", False)],
    "Summary": [("sample_count", 1, "uint64", False), ("sample_sum", 2, "double", False),
                ("quantile", 3, ".io.prometheus.client.Quantile", True),
                ("created_timestamp", 4, ".google.protobuf.Timestamp", False)],
    "Untyped": [("value", 1, "double", False)],
    "Histogram": [("sample_count", 1, "uint64", False), ("sample_count_float", 4, "double", False),
                  ("sample_sum", 2, "double", False), ("bucket", 3, ".io.prometheus.client.Bucket", True),
                  ("created_timestamp", 15, ".google.protobuf.Timestamp", False),
                  ("schema", 5, "sint32", False), ("zero_threshold", 6, "double", False),
                  ("zero_count", 7, "uint64", False), ("zero_count_float", 8, "double", False),
                  ("negative_span", 9, ".io.prometheus.client.BucketSpan", True),
                  ("negative_delta", 10, "sint64", True), ("negative_count", 11, "double", True),
                  ("positive_span", 12, ".io.prometheus.client.BucketSpan", True),
                  ("positive_delta", 13, "sint64", True), ("positive_count", 14, "double", True),
                  ("exemplars", 16, ".io.prometheus.client.Exemplar", True)],
    "Bucket": [("cumulative_count", 1, "uint64", False), ("cumulative_count_float", 4, "double", False),
               ("upper_bound", 2, "double", False), ("exemplar", 3, ".io.prometheus.client.Exemplar", False)],
    "BucketSpan": [("offset", 1, "sint32", False), ("length", 2, "uint32", False)],
    "Exemplar": [("label", 1, ".io.prometheus.client.LabelPair", True), ("value", 2, "double", False),
                 ("timestamp", 3, ".google.protobuf.Timestamp", False)],
    "Metric": [("label", 1, ".io.prometheus.client.LabelPair", True),
               ("gauge", 2, ".io.prometheus.client.Gauge", False),
               ("counter", 3, ".io.prometheus.client.Counter", False),
               ("summary", 4, ".io.prometheus.client.Summary", False),
               ("untyped", 5, ".io.prometheus.client.Untyped", False),
               ("histogram", 7, ".io.prometheus.client.Histogram", False),
               ("timestamp_ms", 6, "int64", False)],
    "MetricFamily": [("name", 1, "string", False), ("help", 2, "string", False),
                     ("type", 3, ".io.prometheus.client.MetricType", False),
                     ("metric", 4, ".io.prometheus.client.Metric", True), ("unit", 5, "string", False)],
}
METRIC_TYPES = {"COUNTER": 0, "GAUGE": 1, "SUMMARY": 2, "UNTYPED": 3, "HISTOGRAM": 4, "GAUGE_HISTOGRAM": 5}


def _build():
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    file = descriptor_pb2.FileDescriptorProto(
        name="io/prometheus/client/metrics.proto", package="io.prometheus.client", syntax="proto2",
        dependency=["google/protobuf/timestamp.proto"],
    )
    enum = file.enum_type.add(name="MetricType")
    for name, number in METRIC_TYPES.items():
        enum.value.add(name=name, number=number)
    for message, fields in _SCHEMA.items():
        proto = file.message_type.add(name=message)
        for name, number, kind, repeated in fields:
            field = proto.field.add(name=name, number=number, label=_REPEATED if repeated else _OPTIONAL)
            if kind in _TYPES:
                field.type = _TYPES[kind]
            elif kind.endswith("MetricType"):
                field.type, field.type_name = _F.TYPE_ENUM, kind
            else:
                field.type, field.type_name = _F.TYPE_MESSAGE, kind
    pool.Add(file)
    return GetMessageClass(pool.FindMessageTypeByName("io.prometheus.client.MetricFamily"))


MetricFamily = _build()


def parse_delimited(data: bytes) -> list:
    """The MetricFamily messages of a length-delimited body."""
    families, pos = [], 0
    while pos < len(data):
        size, pos = _DecodeVarint(data, pos)
        family = MetricFamily()
        family.ParseFromString(data[pos:pos + size])
        families.append(family)
        pos += size
    return families


def native_buckets(histogram) -> dict:
    """{Prometheus bucket index: count} from a native histogram's positive spans and deltas."""
    out, index, count, deltas = {}, 0, 0, iter(histogram.positive_delta)
    for n, span in enumerate(histogram.positive_span):
        index = span.offset if n == 0 else index + span.offset
        for _ in range(span.length):
            count += next(deltas)
            out[index] = count
            index += 1
    return out
