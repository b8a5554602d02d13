// Span ids and the span store: BM_<Component>_<Operation>.
#include <benchmark/benchmark.h>

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

}  // namespace
