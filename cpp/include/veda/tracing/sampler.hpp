// veda::Sampler: which new spans are recorded, as OpenTelemetry's samplers
// decide it (always_on, always_off, traceidratio and their parentbased_ forms).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "veda/tracing/ids.hpp"
#include "veda/tracing/span.hpp"

namespace veda {

// Decides at a span's start whether it is sampled: a sampled span records
// and reaches the store; an unsampled one keeps its ids (so its context
// still propagates, with the sampled flag clear) and records nothing.
//
// - always_on / always_off: every span / none;
// - traceidratio: a span whose trace id's lower 8 bytes, read as a
//   big-endian integer, are below ratio * 2^64 (the same traces in every
//   process and in OpenTelemetry's SDKs);
// - parentbased_X: a span with a parent follows the parent's sampled flag
//   (remote or local); a root span is decided by X. The default,
//   parentbased_always_on, is OpenTelemetry's.
//
// Thread-safety: immutable; should_sample() may run on any thread.
class Sampler {
 public:
  enum class Kind { always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off,
                    parentbased_traceidratio };

  // Throws std::invalid_argument, saying what is allowed, for a ratio that is
  // not a number in [0, 1] (only the traceidratio kinds use it).
  explicit Sampler(Kind kind = Kind::parentbased_always_on, double ratio = 1.0);

  // The sampler OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG name: `name`
  // one of the kinds above, `arg` the ratio text (empty: 1.0). Throws
  // std::invalid_argument naming the allowed names, or the ratio rule.
  static Sampler from_name(std::string_view name, std::string_view arg = {});

  bool should_sample(const TraceId& trace_id, const SpanParent* parent) const noexcept;

  Kind kind() const noexcept { return kind_; }
  double ratio() const noexcept { return ratio_; }
  // "ParentBased{root=TraceIdRatioBased{0.25}}", "AlwaysOnSampler", ... as the SDK describes them.
  std::string description() const;

 private:
  bool root_decision(const TraceId& trace_id) const noexcept;

  Kind kind_;
  double ratio_;
  unsigned long long bound_;  // traceidratio: the lower 8 bytes must be below it
};

}  // namespace veda
