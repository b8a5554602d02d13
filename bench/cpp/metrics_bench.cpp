// google-benchmark suite for the metric registry: record paths under 1 and 2
// threads next to a mutex and a single-atomic baseline, label lookup and
// exposition rendering.
#include <benchmark/benchmark.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "veda/metrics.hpp"

namespace {

// ---------------------------------------------------------------- baselines

// A counter guarded by a mutex: what a naive implementation does.
struct MutexCounter {
  std::mutex mutex;
  double value = 0.0;
  void inc(double amount = 1.0) {
    std::lock_guard<std::mutex> lock(mutex);
    value += amount;
  }
};

// A single std::atomic<double> updated by compare-exchange: no sharding.
struct AtomicCounter {
  std::atomic<double> value{0.0};
  void inc(double amount = 1.0) {
    double current = value.load(std::memory_order_relaxed);
    while (!value.compare_exchange_weak(current, current + amount, std::memory_order_relaxed)) {
    }
  }
};

// Objects shared by all threads of one benchmark run live at namespace scope,
// as google-benchmark runs the same function body in every thread.
MutexCounter g_mutex_counter;
AtomicCounter g_atomic_counter;
veda::Counter g_counter;
veda::Gauge g_gauge;
veda::Histogram g_histogram;

void BM_Baseline_MutexCounter_Inc(benchmark::State& state) {
  for (auto _ : state) g_mutex_counter.inc();
  benchmark::DoNotOptimize(g_mutex_counter.value);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Baseline_MutexCounter_Inc)->Threads(1)->Threads(2);

void BM_Baseline_AtomicCounter_Inc(benchmark::State& state) {
  for (auto _ : state) g_atomic_counter.inc();
  double v = g_atomic_counter.value.load();
  benchmark::DoNotOptimize(v);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Baseline_AtomicCounter_Inc)->Threads(1)->Threads(2);

// ---------------------------------------------------------------- record paths

void BM_Counter_Inc(benchmark::State& state) {
  for (auto _ : state) g_counter.inc();
  double v = g_counter.get();
  benchmark::DoNotOptimize(v);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Counter_Inc)->Threads(1)->Threads(2);

void BM_Gauge_Set(benchmark::State& state) {
  double x = static_cast<double>(state.thread_index());
  for (auto _ : state) {
    g_gauge.set(x);
    x += 1.0;
    benchmark::DoNotOptimize(x);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Gauge_Set)->Threads(1)->Threads(2);

void BM_Gauge_Inc(benchmark::State& state) {
  for (auto _ : state) g_gauge.inc();
  double v = g_gauge.get();
  benchmark::DoNotOptimize(v);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Gauge_Inc)->Threads(1)->Threads(2);

void BM_Histogram_Observe(benchmark::State& state) {
  // Cycle through values spread over several octaves so different buckets are hit.
  std::vector<double> values(1024);
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = 1e-3 * static_cast<double>(i * 37 % 1000 + 1);
  std::size_t i = static_cast<std::size_t>(state.thread_index()) * 17;
  for (auto _ : state) {
    double v = values[i++ & 1023];
    benchmark::DoNotOptimize(v);
    g_histogram.observe(v);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Histogram_Observe)->Threads(1)->Threads(2);

// ---------------------------------------------------------------- lookup

std::shared_ptr<veda::CounterFamily> labelled_family() {
  static std::shared_ptr<veda::CounterFamily> family = [] {
    veda::FamilyInfo info;
    info.name = "bench_requests";
    info.help = "Requests.";
    info.label_names = {"method", "code"};
    info.type = veda::MetricType::counter;
    auto f = std::make_shared<veda::CounterFamily>(std::move(info));
    for (int i = 0; i < 100; ++i) f->labels({"GET", std::to_string(i)});
    return f;
  }();
  return family;
}

void BM_Family_Labels(benchmark::State& state) {
  auto family = labelled_family();
  const std::vector<std::string> values{"GET", "42"};
  for (auto _ : state) {
    auto series = family->labels(values);
    benchmark::DoNotOptimize(series.get());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Family_Labels)->Threads(1)->Threads(2);

// ---------------------------------------------------------------- exposition

// The whole registry in one format: 0 = text 0.0.4, 1 = OpenMetrics, 2 = protobuf.
void BM_Registry_Render(benchmark::State& state) {
  const auto series = static_cast<int>(state.range(0));
  const auto format = state.range(1);
  veda::Registry registry;
  auto family = registry.counter("bench_render", "Render benchmark.", {"shard", "kind"});
  for (int i = 0; i < series; ++i) family->labels({std::to_string(i), "worker"})->inc(i * 0.5);
  std::size_t bytes = 0;
  for (auto _ : state) {
    std::string text = format == 0   ? registry.render_prometheus()
                       : format == 1 ? registry.render_openmetrics()
                                     : registry.encode_protobuf();
    bytes = text.size();
    benchmark::DoNotOptimize(text.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(bytes));
  // Time per series (kIsIterationInvariantRate | kInvert: seconds per series per iteration).
  state.counters["per_series"] = benchmark::Counter(
      static_cast<double>(series), benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_Registry_Render)
    ->ArgNames({"series", "format"})
    ->ArgsProduct({{1000, 10000}, {0, 1, 2}})
    ->Unit(benchmark::kMicrosecond);

}  // namespace
