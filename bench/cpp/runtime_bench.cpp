// Benchmarks for veda::Runtime and veda::TelemetrySystem: what telemetry adds
// to a submitted task, the observer hook alone, and taking a snapshot.
//
// time_per_task is wall time divided by the tasks of all benchmark threads
// (submit, run and wait included). BM_Runtime_Submit with telemetry=0 is the
// baseline for telemetry=1.
#include "veda/runtime/runtime.hpp"

#include "bench_support.hpp"

#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>

#include "veda/metrics/registry.hpp"
#include "veda/telemetry/telemetry.hpp"

namespace {

using namespace veda::bench;


// A registry of its own, so the benchmarks leave the default one alone.
veda::Registry& bench_registry() {
  static veda::Registry registry;
  return registry;
}


// Submit a batch of trivial native tasks from this (non-worker) thread, then
// help until all of them have run. One worker per hardware thread.
void BM_Runtime_Submit(benchmark::State& state) {
  veda::RuntimeOptions options;
  options.enable_telemetry = state.range(0) != 0;
  veda::Runtime runtime(options, bench_registry());
  veda::Scheduler& s = runtime.scheduler();
  std::atomic<int> done{0};
  for (auto _ : state) {
    done.store(0, std::memory_order_relaxed);
    submit_counting_batch(s, done);
    s.help_until([&done] { return batch_done(done); });
  }
  set_time_per_task(state, kBatch);
  if (runtime.telemetry() != nullptr) {
    // Wait for the last hooks so the counts are exact, then check nothing was lost.
    const double expected = static_cast<double>(state.iterations()) * kBatch;
    s.help_until([&] { return runtime.telemetry()->executed().get() >= expected; });
    if (runtime.telemetry()->executed().get() != expected) state.SkipWithError("telemetry lost tasks");
  }
}
BENCHMARK(BM_Runtime_Submit)->ArgName("telemetry")->Arg(0)->Arg(1)->UseRealTime();

// What telemetry adds to one task, free of cross-core effects: one worker, a
// root task that spawns a batch into its own deque and runs it (help_until),
// while this thread sleeps. The telemetry:1 - telemetry:0 difference is the
// clock reads and the observer hooks, all on the task's own thread.
void BM_Runtime_SpawnOneWorker(benchmark::State& state) {
  veda::RuntimeOptions options;
  options.num_threads = 1;
  options.enable_telemetry = state.range(0) != 0;
  veda::Runtime runtime(options, bench_registry());
  for (auto _ : state) spawn_batch_from_a_task(runtime.scheduler(), false);
  set_time_per_task(state, kBatch);
}
BENCHMARK(BM_Runtime_SpawnOneWorker)->ArgName("telemetry")->Arg(0)->Arg(1)->UseRealTime();

// The observer hook alone: three histogram observations and one or two counter
// increments, from 1, 2 and 4 threads on one shared TelemetrySystem.
void BM_Telemetry_OnTaskEnd(benchmark::State& state) {
  static veda::TelemetrySystem telemetry(veda::TelemetryOptions{}, bench_registry());
  std::int64_t i = 0;
  for (auto _ : state) {
    ++i;
    telemetry.on_task_end(1000 + (i & 1023), 5000 + (i & 4095), (i & 15) != 0);
  }
  state.SetItemsProcessed(state.iterations());
  benchmark::DoNotOptimize(telemetry.executed().get());
}
BENCHMARK(BM_Telemetry_OnTaskEnd)->Threads(1)->Threads(2)->Threads(4)->UseRealTime();

// One snapshot: reads the metrics, the latency percentiles and the system
// probe (four pread calls on /proc).
void BM_Telemetry_Snapshot(benchmark::State& state) {
  veda::TelemetrySystem telemetry(veda::TelemetryOptions{}, bench_registry());
  for (int i = 0; i < 10000; ++i) telemetry.on_task_end(1000 + i, 5000 + 7 * i, true);
  for (auto _ : state) {
    veda::MetricsSnapshot s = telemetry.snapshot();
    benchmark::DoNotOptimize(s);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Telemetry_Snapshot);

// Baseline for the snapshot: the throughput alone, no probe and no percentiles.
void BM_Telemetry_Throughput(benchmark::State& state) {
  veda::TelemetrySystem telemetry(veda::TelemetryOptions{}, bench_registry());
  telemetry.on_task_end(1000, 5000, true);
  for (auto _ : state) benchmark::DoNotOptimize(telemetry.throughput());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Telemetry_Throughput);

}  // namespace
