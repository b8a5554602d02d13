// veda::Tracer, its parent rule, the thread's span scopes and the exception event.
#include "veda/tracing/tracer.hpp"

#include <stdexcept>
#include <utility>

namespace veda {

std::optional<SpanParent> choose_parent(const SpanStartOptions& options, const SpanAncestry& ancestry) {
  if (options.context) return options.context;
  const Span* current = ancestry.current();
  if (options.parent_span_id) {
    const SpanId& id = *options.parent_span_id;
    if (!options.trace_id) {
      if (const Span* ancestor = ancestry.find(id)) return ancestor->as_parent();
    }
    SpanParent parent;
    parent.span_id = id;
    parent.trace_id = options.trace_id   ? *options.trace_id
                      : current != nullptr ? current->data().trace_id
                                           : generate_trace_id();
    return parent;
  }
  if (current != nullptr) return current->as_parent();
  if (options.trace_id) {
    SpanParent root;  // no parent span: a root of that trace
    root.trace_id = *options.trace_id;
    return root;
  }
  return std::nullopt;
}

// --- the thread's scopes ------------------------------------------------------------------------

namespace {
thread_local const SpanScope* top_scope = nullptr;
}  // namespace

class ThreadAncestry final : public SpanAncestry {
 public:
  const Span* current() const noexcept override { return top_scope != nullptr ? top_scope->span_ : nullptr; }
  const Span* find(const SpanId& id) const noexcept override {
    for (const SpanScope* s = top_scope; s != nullptr; s = s->previous_) {
      if (s->span_->data().span_id == id) return s->span_;
    }
    return nullptr;
  }
};

SpanScope::SpanScope(const Span& span) noexcept : span_(&span), previous_(top_scope) { top_scope = this; }

SpanScope::~SpanScope() { top_scope = previous_; }

const Span* SpanScope::current() noexcept { return top_scope != nullptr ? top_scope->span_ : nullptr; }

const SpanAncestry& SpanScope::thread_ancestry() noexcept {
  static const ThreadAncestry ancestry;
  return ancestry;
}

// --- the tracer ---------------------------------------------------------------------------------

Tracer::Tracer(std::size_t capacity, SpanLimits limits, Sampler sampler)
    : Tracer(std::make_shared<SpanStore>(capacity), limits, sampler) {}

Tracer::Tracer(std::shared_ptr<SpanStore> store, SpanLimits limits, Sampler sampler)
    : store_(std::move(store)), limits_(limits), sampler_(sampler) {
  if (!store_) throw std::invalid_argument("Tracer: the span store must not be null");
}

Span Tracer::start_span(std::string name, SpanStartOptions options, const SpanAncestry& ancestry) const {
  const std::optional<SpanParent> parent = choose_parent(options, ancestry);
  const std::int64_t start = options.start_time_unix_nano ? *options.start_time_unix_nano : unix_nano_now();
  const SpanParent* p = parent ? &*parent : nullptr;
  const TraceId trace_id = p != nullptr ? p->trace_id : generate_trace_id();
  const bool sampled = sampler_.should_sample(trace_id, p);
  Span span = Span::start(std::move(name), options.kind, p, start, store_, limits_, sampled, &trace_id);
  if (sampled && !options.attributes.empty()) span.set_attributes(std::move(options.attributes));
  if (sampled) {
    for (SpanLink& link : options.links) span.add_link(std::move(link));
  }
  return span;
}

Span Tracer::start_span(std::string name, SpanStartOptions options) const {
  return start_span(std::move(name), std::move(options), SpanScope::thread_ancestry());
}

// --- exceptions ---------------------------------------------------------------------------------

SpanEvent exception_event(const ExceptionInfo& exception, std::int64_t time_unix_nano, Attributes extra) {
  SpanEvent event;
  event.time_unix_nano = time_unix_nano;
  event.name = "exception";
  event.attributes.reserve(3 + extra.size());
  event.attributes.push_back({"exception.type", exception.type});
  event.attributes.push_back({"exception.message", exception.message ? *exception.message
                                                                     : std::string("<exception str() failed>")});
  event.attributes.push_back({"exception.stacktrace", exception.stacktrace});
  for (Attribute& a : extra) {
    bool replaced = false;
    for (Attribute& existing : event.attributes) {
      if (existing.key == a.key) {
        existing.value = std::move(a.value);
        replaced = true;
        break;
      }
    }
    if (!replaced) event.attributes.push_back(std::move(a));
  }
  return event;
}

std::string exception_description(const ExceptionInfo& exception) {
  if (!exception.message) return exception.type;
  return exception.type + ": " + *exception.message;
}

}  // namespace veda
