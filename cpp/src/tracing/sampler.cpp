#include "veda/tracing/sampler.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace veda {
namespace {

constexpr const char* kNames[] = {"always_on", "always_off", "traceidratio", "parentbased_always_on",
                                  "parentbased_always_off", "parentbased_traceidratio"};

bool uses_ratio(Sampler::Kind kind) {
  return kind == Sampler::Kind::traceidratio || kind == Sampler::Kind::parentbased_traceidratio;
}

std::string number_text(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", v);
  return text;
}

}  // namespace

Sampler::Sampler(Kind kind, double ratio) : kind_(kind), ratio_(ratio), bound_(0) {
  if (!(ratio >= 0.0 && ratio <= 1.0)) {
    throw std::invalid_argument("a trace id ratio sampler's ratio must be a number in [0, 1], got " +
                                number_text(ratio));
  }
  // OpenTelemetry's bound: round(ratio * 2^64), all traces at 1.
  const long double scaled = std::round(static_cast<long double>(ratio) * 18446744073709551616.0L);
  bound_ = scaled >= 18446744073709551615.0L ? ~0ull : static_cast<unsigned long long>(scaled);
}

Sampler Sampler::from_name(std::string_view name, std::string_view arg) {
  for (int i = 0; i < 6; ++i) {
    if (name != kNames[i]) continue;
    const auto kind = static_cast<Kind>(i);
    double ratio = 1.0;
    if (uses_ratio(kind) && !arg.empty()) {
      const std::string text(arg);
      char* end = nullptr;
      ratio = std::strtod(text.c_str(), &end);
      if (end == text.c_str() || *end != '\0') {
        throw std::invalid_argument("the sampler argument must be a ratio in [0, 1], got '" + text + "'");
      }
    }
    return Sampler(kind, ratio);
  }
  std::string known;
  for (const char* n : kNames) known += (known.empty() ? "" : ", ") + std::string(n);
  throw std::invalid_argument("unknown sampler '" + std::string(name) + "'; expected one of: " + known);
}

bool Sampler::root_decision(const TraceId& trace_id) const noexcept {
  switch (kind_) {
    case Kind::always_on:
    case Kind::parentbased_always_on:
      return true;
    case Kind::always_off:
    case Kind::parentbased_always_off:
      return false;
    case Kind::traceidratio:
    case Kind::parentbased_traceidratio: {
      if (bound_ == ~0ull) return true;
      unsigned long long low = 0;
      for (int i = 8; i < 16; ++i) low = (low << 8) | trace_id[static_cast<std::size_t>(i)];
      return low < bound_;
    }
  }
  return true;
}

bool Sampler::should_sample(const TraceId& trace_id, const SpanParent* parent) const noexcept {
  const bool parent_based = kind_ == Kind::parentbased_always_on || kind_ == Kind::parentbased_always_off ||
                            kind_ == Kind::parentbased_traceidratio;
  if (parent_based && parent != nullptr && parent->span_id) return (parent->trace_flags & kSpanFlagsSampled) != 0;
  return root_decision(trace_id);
}

std::string Sampler::description() const {
  const std::string ratio = "TraceIdRatioBased{" + number_text(ratio_) + "}";
  switch (kind_) {
    case Kind::always_on: return "AlwaysOnSampler";
    case Kind::always_off: return "AlwaysOffSampler";
    case Kind::traceidratio: return ratio;
    case Kind::parentbased_always_on: return "ParentBased{root:AlwaysOnSampler}";
    case Kind::parentbased_always_off: return "ParentBased{root:AlwaysOffSampler}";
    case Kind::parentbased_traceidratio: return "ParentBased{root:" + ratio + "}";
  }
  return "";
}

}  // namespace veda
