#include "veda/tracing/span.hpp"

#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "veda/tracing/span_store.hpp"

namespace veda {
namespace {

// The byte length of the first `max_chars` code points of UTF-8 `text`.
std::size_t utf8_prefix(const std::string& text, std::size_t max_chars) noexcept {
  std::size_t chars = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if ((byte & 0xC0u) != 0x80u && chars++ == max_chars) return i;  // a lead byte past the limit
  }
  return text.size();
}

void truncate_string(std::string& text, std::size_t max_chars) {
  if (text.size() > max_chars) text.resize(utf8_prefix(text, max_chars));
}

bool has_repeated_key(const Attributes& attributes) noexcept {
  for (std::size_t i = 1; i < attributes.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (attributes[i].key == attributes[j].key) return true;
    }
  }
  return false;
}

}  // namespace

void truncate_strings(AttributeValue& value, std::size_t max_chars) {
  if (max_chars == SpanLimits::kUnlimited) return;
  if (auto* text = std::get_if<std::string>(&value)) {
    truncate_string(*text, max_chars);
  } else if (auto* texts = std::get_if<std::vector<std::string>>(&value)) {
    for (auto& t : *texts) truncate_string(t, max_chars);
  }
}

Span::Span(std::shared_ptr<SpanData> live, std::shared_ptr<SpanStore> store, const SpanLimits& limits) noexcept
    : live_(live.get()), store_(std::move(store)), limits_(limits) {
  data_ = std::move(live);
}

Span::Span(std::shared_ptr<const SpanData> finished) noexcept : data_(std::move(finished)) {}

Span Span::start(std::string name, SpanKind kind, const SpanParent* parent, std::int64_t start_time_unix_nano,
                 std::shared_ptr<SpanStore> store, const SpanLimits& limits, bool sampled, const TraceId* trace_id) {
  auto data = std::make_shared<SpanData>();
  const std::uint32_t sampled_flag = sampled ? kSpanFlagsSampled : 0u;
  if (parent != nullptr) {
    data->trace_id = parent->trace_id;
    data->parent_span_id = parent->span_id;
    data->trace_state = parent->trace_state;
    data->flags = (parent->trace_flags & 0xFEu) | sampled_flag | kSpanFlagsHasIsRemote |
                  (parent->is_remote ? kSpanFlagsIsRemote : 0u);
  } else {
    data->trace_id = trace_id != nullptr ? *trace_id : generate_trace_id();
    data->flags = sampled_flag | kSpanFlagsHasIsRemote;
  }
  data->span_id = generate_span_id();
  data->name = std::move(name);
  data->kind = kind;
  data->start_time_unix_nano = start_time_unix_nano;
  if (!sampled) return Span(std::shared_ptr<const SpanData>(std::move(data)));  // ids only: never recording
  return Span(std::move(data), std::move(store), limits);
}

bool Span::set_attribute(std::string key, AttributeValue value) {
  if (live_ == nullptr) return false;
  truncate_strings(value, limits_.max_attribute_length);
  for (auto& a : live_->attributes) {
    if (a.key == key) {
      a.value = std::move(value);
      return true;
    }
  }
  if (live_->attributes.size() < limits_.max_attributes) {
    live_->attributes.push_back({std::move(key), std::move(value)});
  } else {
    ++live_->dropped_attributes_count;
  }
  return true;
}

bool Span::set_attributes(Attributes attributes) {
  if (live_ == nullptr) return false;
  if (live_->attributes.empty() && attributes.size() <= limits_.max_attributes &&
      limits_.max_attribute_length == SpanLimits::kUnlimited && !has_repeated_key(attributes)) {
    live_->attributes = std::move(attributes);  // the common case: attributes given at start
    return true;
  }
  for (auto& a : attributes) set_attribute(std::move(a.key), std::move(a.value));
  return true;
}

bool Span::add_event(SpanEvent event) {
  if (live_ == nullptr) return false;
  if (live_->events.size() >= limits_.max_events) {
    ++live_->dropped_events_count;
    return true;
  }
  if (event.attributes.size() > limits_.max_event_attributes) {
    event.dropped_attributes_count +=
        static_cast<std::uint32_t>(event.attributes.size() - limits_.max_event_attributes);
    event.attributes.resize(limits_.max_event_attributes);
  }
  for (auto& a : event.attributes) truncate_strings(a.value, limits_.max_attribute_length);
  live_->events.push_back(std::move(event));
  return true;
}

bool Span::add_link(SpanLink link) {
  if (live_ == nullptr) return false;
  if (live_->links.size() >= limits_.max_links) {
    ++live_->dropped_links_count;
    return true;
  }
  if (link.attributes.size() > limits_.max_link_attributes) {
    link.dropped_attributes_count += static_cast<std::uint32_t>(link.attributes.size() - limits_.max_link_attributes);
    link.attributes.resize(limits_.max_link_attributes);
  }
  for (auto& a : link.attributes) truncate_strings(a.value, limits_.max_attribute_length);
  live_->links.push_back(std::move(link));
  return true;
}

bool Span::update_name(std::string name) {
  if (live_ == nullptr) return false;
  live_->name = std::move(name);
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
  // An end before the start (a clock step, a wrong explicit time) is clamped
  // to the start: a span never has a negative duration.
  live_->end_time_unix_nano =
      end_time_unix_nano < live_->start_time_unix_nano ? live_->start_time_unix_nano : end_time_unix_nano;
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
