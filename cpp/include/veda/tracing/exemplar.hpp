// The exemplar of a span: the trace and span ids under OpenMetrics' usual
// label names, so a metric sample links to the trace it happened in.
#pragma once

#include "veda/metrics/exemplar.hpp"
#include "veda/tracing/ids.hpp"
#include "veda/tracing/span.hpp"

namespace veda {

// Exposed as {trace_id: 32 hex characters, span_id: 16}; value and time are set when it is recorded.
inline Exemplar span_exemplar(const SpanData& span) {
  Exemplar e;
  e.has_span = true;
  e.trace_id = span.trace_id;
  e.span_id = span.span_id;
  return e;
}

}  // namespace veda
