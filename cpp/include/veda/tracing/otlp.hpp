// OTLP protobuf encoding of finished spans (opentelemetry/proto/collector/trace/v1).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "veda/tracing/span.hpp"

namespace veda {

// The serialised ExportTraceServiceRequest: one ResourceSpans with `resource`,
// one ScopeSpans with the scope (`scope_name`, `scope_version`) and `spans` in
// order. Fields are written in field-number order and proto3 defaults are
// left out, as the protobuf runtime does; an empty list attribute is an
// AnyValue with an empty array_value. Never throws but std::bad_alloc.
std::string encode_otlp_traces(const Attributes& resource, std::string_view scope_name,
                               std::string_view scope_version, const std::vector<SpanData>& spans);
// The same for shared records (SpanStore::records()); null entries are skipped.
std::string encode_otlp_trace_records(const Attributes& resource, std::string_view scope_name,
                               std::string_view scope_version,
                               const std::vector<std::shared_ptr<const SpanData>>& spans);

}  // namespace veda
