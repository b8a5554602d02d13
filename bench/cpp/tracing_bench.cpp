// Span ids, spans and the span store: BM_<Component>_<Operation>.
#include <benchmark/benchmark.h>

#include <memory>

#include "veda/tracing/span.hpp"
#include "veda/tracing/span_store.hpp"

namespace {

void BM_TracingIds_SpanId(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(veda::generate_span_id());
}
BENCHMARK(BM_TracingIds_SpanId)->ThreadRange(1, 4);

void BM_SpanStore_Add(benchmark::State& state) {
  static veda::SpanStore store(4096);
  for (auto _ : state) {
    veda::SpanData span;
    span.trace_id = veda::generate_trace_id();
    span.span_id = veda::generate_span_id();
    span.name = "op";
    span.attributes.push_back({"k", veda::AttributeValue{std::int64_t{1}}});
    store.add(std::move(span));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SpanStore_Add)->ThreadRange(1, 4);

// What a Python `with tracing.span("op", attributes={...})` costs natively:
// start (ids, clock), one attribute, end (clock, hand-off to the store).
void BM_Span_StartAttributeEnd(benchmark::State& state) {
  static auto store = std::make_shared<veda::SpanStore>(4096);
  for (auto _ : state) {
    veda::Span span = veda::Span::start("op", veda::SpanKind::kInternal, nullptr, veda::unix_nano_now(), store);
    span.set_attribute("batch_id", std::int64_t{123});
    span.end(veda::unix_nano_now());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Span_StartAttributeEnd)->ThreadRange(1, 4);

}  // namespace
