#include "veda/tracing/otlp.hpp"

#include <cstdint>
#include <cstring>
#include <type_traits>
#include <variant>

namespace veda {
namespace {

// Wire types.
constexpr std::uint32_t kVarint = 0;
constexpr std::uint32_t kFixed64 = 1;
constexpr std::uint32_t kLen = 2;
constexpr std::uint32_t kFixed32 = 5;

void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void put_tag(std::string& out, std::uint32_t field, std::uint32_t wire_type) {
  put_varint(out, (static_cast<std::uint64_t>(field) << 3) | wire_type);
}

void put_fixed(std::string& out, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

void put_bytes(std::string& out, std::uint32_t field, const void* data, std::size_t size) {
  put_tag(out, field, kLen);
  put_varint(out, size);
  out.append(static_cast<const char*>(data), size);
}

void put_string(std::string& out, std::uint32_t field, std::string_view s) {
  put_bytes(out, field, s.data(), s.size());
}

// A proto3 scalar field: left out when it holds the default.
void put_nonempty(std::string& out, std::uint32_t field, std::string_view s) {
  if (!s.empty()) put_string(out, field, s);
}

void put_uint(std::string& out, std::uint32_t field, std::uint64_t v) {
  if (v == 0) return;
  put_tag(out, field, kVarint);
  put_varint(out, v);
}

void put_fixed64(std::string& out, std::uint32_t field, std::int64_t v) {
  if (v == 0) return;
  put_tag(out, field, kFixed64);
  put_fixed(out, static_cast<std::uint64_t>(v), 8);
}

void put_message(std::string& out, std::uint32_t field, const std::string& body) {
  put_bytes(out, field, body.data(), body.size());
}

// AnyValue scalars live in a oneof, so they are written even when zero.
void any_string(std::string& out, std::string_view v) { put_string(out, 1, v); }
void any_bool(std::string& out, bool v) {
  put_tag(out, 2, kVarint);
  out.push_back(v ? 1 : 0);
}
void any_int(std::string& out, std::int64_t v) {
  put_tag(out, 3, kVarint);
  put_varint(out, static_cast<std::uint64_t>(v));
}
void any_double(std::string& out, double v) {
  std::uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof bits);
  put_tag(out, 4, kFixed64);
  put_fixed(out, bits, 8);
}

template <class T>
void any_scalar(std::string& out, const T& v) {
  if constexpr (std::is_same_v<T, std::string>) {
    any_string(out, v);
  } else if constexpr (std::is_same_v<T, bool>) {
    any_bool(out, v);
  } else if constexpr (std::is_same_v<T, std::int64_t>) {
    any_int(out, v);
  } else {
    any_double(out, v);
  }
}

// AnyValue body for `value`.
std::string any_value(const AttributeValue& value) {
  std::string out;
  std::visit(
      [&out](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, bool> ||
                      std::is_same_v<T, std::int64_t> || std::is_same_v<T, double>) {
          any_scalar(out, v);
        } else {
          std::string array;  // ArrayValue: repeated AnyValue values = 1
          std::string item;
          for (const auto& x : v) {
            item.clear();
            any_scalar(item, static_cast<typename T::value_type>(x));
            put_message(array, 1, item);
          }
          put_message(out, 5, array);
        }
      },
      value);
  return out;
}

// Repeated KeyValue `field`.
void put_attributes(std::string& out, std::uint32_t field, const Attributes& attributes) {
  std::string kv;
  for (const auto& a : attributes) {
    kv.clear();
    put_nonempty(kv, 1, a.key);
    put_message(kv, 2, any_value(a.value));
    put_message(out, field, kv);
  }
}

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

// The request around the ScopeSpans' span list, which `put_spans(scope_spans)` writes.
template <class PutSpans>
std::string encode_request(const Attributes& resource, std::string_view scope_name,
                           std::string_view scope_version, PutSpans put_spans) {
  std::string scope_spans;  // ScopeSpans
  {
    std::string scope;  // InstrumentationScope
    put_nonempty(scope, 1, scope_name);
    put_nonempty(scope, 2, scope_version);
    put_message(scope_spans, 1, scope);
    put_spans(scope_spans);
  }
  std::string resource_spans;  // ResourceSpans
  {
    std::string res;  // Resource
    put_attributes(res, 1, resource);
    put_message(resource_spans, 1, res);
    put_message(resource_spans, 2, scope_spans);
  }
  std::string request;  // ExportTraceServiceRequest
  put_message(request, 1, resource_spans);
  return request;
}

void put_span_message(std::string& scope_spans, std::string& buffer, const SpanData& s) {
  buffer.clear();
  put_span(buffer, s);
  put_message(scope_spans, 2, buffer);
}

}  // namespace

std::string encode_otlp_traces(const Attributes& resource, std::string_view scope_name,
                               std::string_view scope_version, const std::vector<SpanData>& spans) {
  return encode_request(resource, scope_name, scope_version, [&](std::string& out) {
    std::string buffer;
    for (const auto& s : spans) put_span_message(out, buffer, s);
  });
}

std::string encode_otlp_trace_records(const Attributes& resource, std::string_view scope_name,
                               std::string_view scope_version,
                               const std::vector<std::shared_ptr<const SpanData>>& spans) {
  return encode_request(resource, scope_name, scope_version, [&](std::string& out) {
    std::string buffer;
    for (const auto& s : spans) {
      if (s) put_span_message(out, buffer, *s);
    }
  });
}

}  // namespace veda
