// veda::Tracer: starts spans, chooses their parents and keeps the finished ones.
//
// The tracer owns what every span of it shares: the SpanStore its spans end
// into, the SpanLimits they record under, and the rule that picks a new
// span's parent (choose_parent). Which span is "current" belongs to the
// caller's context, so the tracer asks a SpanAncestry for it: C++ code uses
// the thread's SpanScope chain (the default), the Python binding its
// ContextVar, which follows asyncio tasks as a thread-local cannot.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "veda/tracing/ids.hpp"
#include "veda/tracing/sampler.hpp"
#include "veda/tracing/span.hpp"
#include "veda/tracing/span_store.hpp"

namespace veda {

// How to start a span. The parent is chosen from `context`,
// `parent_span_id`, `trace_id` and the caller's current span; see
// choose_parent().
struct SpanStartOptions {
  SpanKind kind = SpanKind::kInternal;
  std::optional<std::int64_t> start_time_unix_nano;  // empty: now
  Attributes attributes;                             // set in order, under the tracer's limits
  std::vector<SpanLink> links;                       // added in order, under the tracer's limits
  std::optional<SpanParent> context;                 // a parent from another process (propagation)
  std::optional<SpanId> parent_span_id;              // an explicit parent
  std::optional<TraceId> trace_id;                   // the trace of that parent, or of a new root
};

// The spans current in the caller's context. A span is reachable while it
// records or while a span started under it (directly or not) is reachable.
class SpanAncestry {
 public:
  virtual ~SpanAncestry() = default;
  // The current span, or null.
  virtual const Span* current() const noexcept = 0;
  // The nearest span with id `id` among the current span and the spans that
  // were current when each of them started; null if none.
  virtual const Span* find(const SpanId& id) const noexcept = 0;
};

// The parent of a new span, first rule that applies:
// 1. `context` given: that (remote) parent;
// 2. `parent_span_id` given: with `trace_id`, that span in that trace;
//    otherwise the span with that id found in `ancestry` (its trace, flags
//    and state); otherwise that id in the current span's trace, or in a new
//    trace when no span is current;
// 3. a current span: it;
// 4. `trace_id` given: none, but the span joins that trace (a root in it);
// 5. otherwise empty: the span starts a new trace.
std::optional<SpanParent> choose_parent(const SpanStartOptions& options, const SpanAncestry& ancestry);

// Makes `span` the current span of this thread until the scope ends, then
// restores the span that was current before. Scopes nest (construct and
// destroy them in stack order, as automatic variables do); the span must
// outlive its scope.
class SpanScope {
 public:
  explicit SpanScope(const Span& span) noexcept;
  ~SpanScope();
  SpanScope(const SpanScope&) = delete;
  SpanScope& operator=(const SpanScope&) = delete;

  // This thread's current span, or null.
  static const Span* current() noexcept;
  // The scopes of this thread as a SpanAncestry.
  static const SpanAncestry& thread_ancestry() noexcept;

 private:
  friend class ThreadAncestry;
  const Span* span_;
  const SpanScope* previous_;
};

// Thread-safety: start_span() may be called from any thread at once; the
// store is thread-safe and the limits never change.
class Tracer {
 public:
  // A tracer with its own store of `capacity` spans (std::invalid_argument for 0).
  explicit Tracer(std::size_t capacity = SpanStore::kDefaultCapacity, SpanLimits limits = {},
                  Sampler sampler = Sampler());
  // A tracer ending its spans into `store` (std::invalid_argument for null).
  Tracer(std::shared_ptr<SpanStore> store, SpanLimits limits, Sampler sampler = Sampler());

  // A started span whose parent choose_parent(options, ancestry) picks:
  // recording, with options.attributes set, when the sampler samples it;
  // else one that only carries its ids (Span::start). End it with Span::end().
  Span start_span(std::string name, SpanStartOptions options, const SpanAncestry& ancestry) const;
  // The same with this thread's SpanScope chain as the ancestry.
  Span start_span(std::string name, SpanStartOptions options = {}) const;

  const std::shared_ptr<SpanStore>& store() const noexcept { return store_; }
  const SpanLimits& limits() const noexcept { return limits_; }
  const Sampler& sampler() const noexcept { return sampler_; }

 private:
  std::shared_ptr<SpanStore> store_;
  SpanLimits limits_;
  Sampler sampler_;
};

// An exception, as OpenTelemetry's semantic conventions record it.
struct ExceptionInfo {
  std::string type;     // the exception's type name
  std::optional<std::string> message;  // empty when it could not be turned into text
  std::string stacktrace;
};

// The `exception` event: exception.type, exception.message (the message, or
// "<exception str() failed>" when there is none) and exception.stacktrace,
// then `extra` (a key of `extra` replaces the conventional one, in place).
SpanEvent exception_event(const ExceptionInfo& exception, std::int64_t time_unix_nano, Attributes extra = {});

// The status description of a span ended by `exception`: "Type: message",
// or "Type" when there is no message.
std::string exception_description(const ExceptionInfo& exception);

}  // namespace veda
