// veda::SpanData: one finished span, with the fields of an OTLP Span.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
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

// A link from a span to another span (of this trace or another), as OTLP's
// Span.Link: the linked span's identity, then attributes of the link itself.
struct SpanLink {
  TraceId trace_id{};
  SpanId span_id{};
  std::string trace_state;
  // The linked span's W3C trace flags in the low byte, plus the
  // "is-remote known" and "is remote" bits (kSpanFlagsHasIsRemote, kSpanFlagsIsRemote).
  std::uint32_t flags = kSpanFlagsSampled | kSpanFlagsHasIsRemote;
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
  std::vector<SpanLink> links;
  StatusCode status_code = StatusCode::kUnset;
  std::string status_message;
  std::uint32_t dropped_attributes_count = 0;
  std::uint32_t dropped_events_count = 0;
  std::uint32_t dropped_links_count = 0;
};

// Wall-clock time in ns since the Unix epoch.
std::int64_t unix_nano_now() noexcept;

// What a new span inherits: the trace it joins and, unless it is the root of
// that trace, its parent span.
struct SpanParent {
  TraceId trace_id{};
  std::optional<SpanId> span_id;  // empty: a root span of trace_id
  std::uint32_t trace_flags = kSpanFlagsSampled;  // W3C trace flags; only the low byte is used
  std::string trace_state;
  bool is_remote = false;  // the parent lives in another process
};

// Per-span bounds, as OpenTelemetry's span limits (same defaults): past them,
// new attributes, events and links are dropped and counted in the record's
// dropped_attributes_count / dropped_events_count / dropped_links_count (an
// event's or a link's own attributes in its dropped_attributes_count), and
// longer string values are cut.
struct SpanLimits {
  static constexpr std::size_t kUnlimited = std::numeric_limits<std::size_t>::max();
  std::size_t max_attributes = 128;
  std::size_t max_events = 128;
  std::size_t max_event_attributes = 128;
  std::size_t max_links = 128;
  std::size_t max_link_attributes = 128;
  // Characters (UTF-8 code points) kept of a string value, in lists too.
  std::size_t max_attribute_length = kUnlimited;
};

class SpanStore;

// A span while it records, then a read-only view of its finished record.
//
// start() gives the span a fresh span id (and trace id for a new trace).
// While recording, the setters change the record; once end() has run they do
// nothing and return false, and the record is shared, unchanged, with the
// store it was handed to.
//
// Thread-safety: a recording span is used by one thread at a time (as in
// OpenTelemetry). A finished span may be read from any thread.
class Span {
 public:
  // Starts a span at start_time_unix_nano. parent == nullptr starts a new
  // trace (in `trace_id` when given). `store` receives the record at end();
  // null keeps it only here. Span.flags: the W3C sampled flag as `sampled`
  // says, the parent's other trace flags, plus "is-remote known" and, for a
  // remote parent, "is remote". An unsampled span never records: it has its
  // ids and flags (for propagation), is_recording() is false from the
  // start, and nothing reaches the store.
  static Span start(std::string name, SpanKind kind, const SpanParent* parent, std::int64_t start_time_unix_nano,
                    std::shared_ptr<SpanStore> store, const SpanLimits& limits = {}, bool sampled = true,
                    const TraceId* trace_id = nullptr);

  // A read-only view of a finished record (as SpanStore::records() gives them).
  explicit Span(std::shared_ptr<const SpanData> finished) noexcept;

  const SpanData& data() const noexcept { return *data_; }
  // The record; shared with the store once the span has ended.
  const std::shared_ptr<const SpanData>& record() const noexcept { return data_; }
  bool is_recording() const noexcept { return live_ != nullptr; }

  // The setters return false, doing nothing, once the span has ended; past
  // the span's limits they drop and count (see SpanLimits) and return true.
  //
  // Sets `key`, replacing an earlier value in place (its position is kept).
  bool set_attribute(std::string key, AttributeValue value);
  // Sets each attribute in order, as set_attribute does.
  bool set_attributes(Attributes attributes);
  bool add_event(SpanEvent event);
  bool add_link(SpanLink link);
  // Renames the span (samplers have already decided on the first name).
  bool update_name(std::string name);
  // As in OpenTelemetry: OK is final, and the description is kept only with ERROR.
  bool set_status(StatusCode code, std::string description);

  // Ends the span and hands its record to the store. False (nothing done) if
  // it had already ended. An end before the start is clamped to the start.
  bool end(std::int64_t end_time_unix_nano) noexcept;

  // The identity a child of this span inherits.
  SpanParent as_parent() const;

 private:
  Span(std::shared_ptr<SpanData> live, std::shared_ptr<SpanStore> store, const SpanLimits& limits) noexcept;

  std::shared_ptr<const SpanData> data_;
  SpanData* live_ = nullptr;  // the record while recording, else null
  std::shared_ptr<SpanStore> store_;
  SpanLimits limits_;
};

// Cuts string values (also inside string lists) to `max_chars` UTF-8 code points.
void truncate_strings(AttributeValue& value, std::size_t max_chars);

}  // namespace veda
