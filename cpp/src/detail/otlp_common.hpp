// veda::detail::otlp: the pieces every OTLP encoder of the core shares:
// AnyValue and KeyValue attributes, the Resource and the InstrumentationScope
// (opentelemetry/proto/common/v1 and resource/v1).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>

#include "detail/protobuf.hpp"
#include "veda/tracing/span.hpp"

namespace veda::detail::otlp {

using namespace veda::detail::pb;

// AnyValue scalars live in a oneof, so they are written even when zero.
inline void any_string(std::string& out, std::string_view v) { put_string(out, 1, v); }
inline void any_bool(std::string& out, bool v) {
  put_tag(out, 2, kVarint);
  out.push_back(v ? 1 : 0);
}
inline void any_int(std::string& out, std::int64_t v) {
  put_tag(out, 3, kVarint);
  put_varint(out, static_cast<std::uint64_t>(v));
}
inline void any_double(std::string& out, double v) {
  std::uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof bits);
  put_tag(out, 4, kFixed64);
  put_fixed(out, bits, 8);
}

template <class T>
inline void any_scalar(std::string& out, const T& v) {
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
inline std::string any_value(const AttributeValue& value) {
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

// One KeyValue as field `field`: `key` and an AnyValue message body.
inline void put_key_value(std::string& out, std::uint32_t field, std::string_view key, const std::string& any) {
  std::string kv;
  put_nonempty(kv, 1, key);
  put_message(kv, 2, any);
  put_message(out, field, kv);
}

// Repeated KeyValue `field`.
inline void put_attributes(std::string& out, std::uint32_t field, const Attributes& attributes) {
  for (const auto& a : attributes) put_key_value(out, field, a.key, any_value(a.value));
}

// A Resource message with `attributes`.
inline std::string resource_message(const Attributes& attributes) {
  std::string res;
  put_attributes(res, 1, attributes);
  return res;
}

// An InstrumentationScope message.
inline std::string scope_message(std::string_view name, std::string_view version) {
  std::string scope;
  put_nonempty(scope, 1, name);
  put_nonempty(scope, 2, version);
  return scope;
}

// An Export{Trace,Metrics}ServiceRequest: both have the same envelope,
// request{1: resource_X{1: resource, 2: scope_X{1: scope, 2..: items}}}.
// `put_items(scope_x)` appends the items (field 2 of ScopeSpans/ScopeMetrics).
template <class PutItems>
std::string export_request(const Attributes& resource, std::string_view scope_name, std::string_view scope_version,
                           PutItems put_items) {
  std::string scope_items;
  put_message(scope_items, 1, scope_message(scope_name, scope_version));
  put_items(scope_items);
  std::string resource_items;
  put_message(resource_items, 1, resource_message(resource));
  put_message(resource_items, 2, scope_items);
  std::string request;
  put_message(request, 1, resource_items);
  return request;
}

}  // namespace veda::detail::otlp
