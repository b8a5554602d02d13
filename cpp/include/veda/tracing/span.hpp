// veda::SpanData: one finished span, with the fields of an OTLP Span.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "veda/tracing/ids.hpp"

namespace veda {

// An attribute value: a scalar or a homogeneous array (OTLP AnyValue subset).
using AttributeValue =
    std::variant<std::string, bool, std::int64_t, double, std::vector<std::string>, std::vector<bool>,
                 std::vector<std::int64_t>, std::vector<double>>;

struct Attribute {
  std::string key;
  AttributeValue value;
};

using Attributes = std::vector<Attribute>;

// OTLP Span.SpanKind values.
enum class SpanKind : std::uint8_t {
  kUnspecified = 0,
  kInternal = 1,
  kServer = 2,
  kClient = 3,
  kProducer = 4,
  kConsumer = 5,
};

// OTLP Status.StatusCode values.
enum class StatusCode : std::uint8_t { kUnset = 0, kOk = 1, kError = 2 };

// OTLP Span.flags bits besides the W3C trace flags in the low byte.
inline constexpr std::uint32_t kSpanFlagsSampled = 0x01;
inline constexpr std::uint32_t kSpanFlagsHasIsRemote = 0x100;
inline constexpr std::uint32_t kSpanFlagsIsRemote = 0x200;

struct SpanEvent {
  std::int64_t time_unix_nano = 0;
  std::string name;
  Attributes attributes;
  std::uint32_t dropped_attributes_count = 0;
};

// A finished span. Plain data: no invariants beyond those of its members.
struct SpanData {
  TraceId trace_id{};
  SpanId span_id{};
  std::optional<SpanId> parent_span_id;  // empty for a root span
  std::string trace_state;
  std::uint32_t flags = kSpanFlagsSampled | kSpanFlagsHasIsRemote;
  std::string name;
  SpanKind kind = SpanKind::kInternal;
  std::int64_t start_time_unix_nano = 0;
  std::int64_t end_time_unix_nano = 0;
  Attributes attributes;
  std::vector<SpanEvent> events;
  StatusCode status_code = StatusCode::kUnset;
  std::string status_message;
  std::uint32_t dropped_attributes_count = 0;
  std::uint32_t dropped_events_count = 0;
  std::uint32_t dropped_links_count = 0;
};

// Wall-clock time in ns since the Unix epoch.
std::int64_t unix_nano_now() noexcept;

}  // namespace veda
