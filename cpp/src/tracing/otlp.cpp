#include "veda/tracing/otlp.hpp"

#include <cstdint>

#include "detail/otlp_common.hpp"

namespace veda {
namespace {

using namespace detail::otlp;

void put_span(std::string& out, const SpanData& s) {
  put_bytes(out, 1, s.trace_id.data(), s.trace_id.size());
  put_bytes(out, 2, s.span_id.data(), s.span_id.size());
  put_nonempty(out, 3, s.trace_state);
  if (s.parent_span_id) put_bytes(out, 4, s.parent_span_id->data(), s.parent_span_id->size());
  put_nonempty(out, 5, s.name);
  put_uint(out, 6, static_cast<std::uint64_t>(s.kind));
  put_fixed64(out, 7, s.start_time_unix_nano);
  put_fixed64(out, 8, s.end_time_unix_nano);
  put_attributes(out, 9, s.attributes);
  put_uint(out, 10, s.dropped_attributes_count);
  std::string event;
  for (const auto& e : s.events) {
    event.clear();
    put_fixed64(event, 1, e.time_unix_nano);
    put_nonempty(event, 2, e.name);
    put_attributes(event, 3, e.attributes);
    put_uint(event, 4, e.dropped_attributes_count);
    put_message(out, 11, event);
  }
  put_uint(out, 12, s.dropped_events_count);
  std::string link;
  for (const auto& l : s.links) {
    link.clear();
    put_bytes(link, 1, l.trace_id.data(), l.trace_id.size());
    put_bytes(link, 2, l.span_id.data(), l.span_id.size());
    put_nonempty(link, 3, l.trace_state);
    put_attributes(link, 4, l.attributes);
    put_uint(link, 5, l.dropped_attributes_count);
    if (l.flags != 0) {
      put_tag(link, 6, kFixed32);
      put_fixed(link, l.flags, 4);
    }
    put_message(out, 13, link);
  }
  put_uint(out, 14, s.dropped_links_count);
  if (s.status_code != StatusCode::kUnset || !s.status_message.empty()) {
    std::string status;
    put_nonempty(status, 2, s.status_message);
    put_uint(status, 3, static_cast<std::uint64_t>(s.status_code));
    put_message(out, 15, status);
  }
  if (s.flags != 0) {
    put_tag(out, 16, kFixed32);
    put_fixed(out, s.flags, 4);
  }
}

void put_span_message(std::string& scope_spans, std::string& buffer, const SpanData& s) {
  buffer.clear();
  put_span(buffer, s);
  put_message(scope_spans, 2, buffer);
}

}  // namespace

std::string encode_otlp_traces(const Attributes& resource, std::string_view scope_name,
                               std::string_view scope_version, const std::vector<SpanData>& spans) {
  return export_request(resource, scope_name, scope_version, [&](std::string& out) {
    std::string buffer;
    for (const auto& s : spans) put_span_message(out, buffer, s);
  });
}

std::string encode_otlp_trace_records(const Attributes& resource, std::string_view scope_name,
                               std::string_view scope_version,
                               const std::vector<std::shared_ptr<const SpanData>>& spans) {
  return export_request(resource, scope_name, scope_version, [&](std::string& out) {
    std::string buffer;
    for (const auto& s : spans) {
      if (s) put_span_message(out, buffer, *s);
    }
  });
}

}  // namespace veda
