#include "veda/tracing/span.hpp"

#include <utility>

#include "veda/tracing/span_store.hpp"

namespace veda {
namespace {

bool has_repeated_key(const Attributes& attributes) noexcept {
  for (std::size_t i = 1; i < attributes.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (attributes[i].key == attributes[j].key) return true;
    }
  }
  return false;
}

}  // namespace

Span::Span(std::shared_ptr<SpanData> live, std::shared_ptr<SpanStore> store) noexcept
    : live_(live.get()), store_(std::move(store)) {
  data_ = std::move(live);
}

Span::Span(std::shared_ptr<const SpanData> finished) noexcept : data_(std::move(finished)) {}

Span Span::start(std::string name, SpanKind kind, const SpanParent* parent, std::int64_t start_time_unix_nano,
                 std::shared_ptr<SpanStore> store) {
  auto data = std::make_shared<SpanData>();
  if (parent != nullptr) {
    data->trace_id = parent->trace_id;
    data->parent_span_id = parent->span_id;
    data->trace_state = parent->trace_state;
    data->flags = (parent->trace_flags & 0xFFu) | kSpanFlagsHasIsRemote | (parent->is_remote ? kSpanFlagsIsRemote : 0u);
  } else {
    data->trace_id = generate_trace_id();
    data->flags = kSpanFlagsSampled | kSpanFlagsHasIsRemote;
  }
  data->span_id = generate_span_id();
  data->name = std::move(name);
  data->kind = kind;
  data->start_time_unix_nano = start_time_unix_nano;
  return Span(std::move(data), std::move(store));
}

bool Span::set_attribute(std::string key, AttributeValue value) {
  if (live_ == nullptr) return false;
  for (auto& a : live_->attributes) {
    if (a.key == key) {
      a.value = std::move(value);
      return true;
    }
  }
  live_->attributes.push_back({std::move(key), std::move(value)});
  return true;
}

bool Span::set_attributes(Attributes attributes) {
  if (live_ == nullptr) return false;
  if (live_->attributes.empty() && !has_repeated_key(attributes)) {
    live_->attributes = std::move(attributes);  // the common case: attributes given at start
    return true;
  }
  for (auto& a : attributes) set_attribute(std::move(a.key), std::move(a.value));
  return true;
}

bool Span::add_event(SpanEvent event) {
  if (live_ == nullptr) return false;
  live_->events.push_back(std::move(event));
  return true;
}

bool Span::set_status(StatusCode code, std::string description) {
  if (live_ == nullptr || live_->status_code == StatusCode::kOk) return false;
  live_->status_code = code;
  if (code == StatusCode::kError) {
    live_->status_message = std::move(description);
  } else {
    live_->status_message.clear();
  }
  return true;
}

bool Span::end(std::int64_t end_time_unix_nano) noexcept {
  if (live_ == nullptr) return false;
  live_->end_time_unix_nano = end_time_unix_nano;
  live_ = nullptr;
  if (store_) {
    store_->add(data_);
    store_.reset();
  }
  return true;
}

SpanParent Span::as_parent() const {
  const SpanData& d = *data_;
  return SpanParent{d.trace_id, d.span_id, d.flags & 0xFFu, d.trace_state, false};
}

}  // namespace veda
