// Pieces shared by the scheduler and runtime benchmarks.
#pragma once

#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>

#include "veda/runtime/scheduler.hpp"

namespace veda::bench {

// Tasks per batch in the batch benchmarks.
inline constexpr int kBatch = 1000;

// Submits kBatch trivial tasks that each add one to `done`.
inline void submit_counting_batch(Scheduler& s, std::atomic<int>& done) {
  for (int i = 0; i < kBatch; ++i) {
    s.submit([&done] {
      done.fetch_add(1, std::memory_order_release);
      return true;
    });
  }
}

inline bool batch_done(const std::atomic<int>& done) { return done.load(std::memory_order_acquire) == kBatch; }

// items_processed plus time_per_task: wall time per task (an inverted rate counter), printed in ns.
inline void set_time_per_task(benchmark::State& state, std::int64_t tasks_per_iteration) {
  const std::int64_t tasks = state.iterations() * tasks_per_iteration;
  state.SetItemsProcessed(tasks);
  state.counters["time_per_task"] =
      benchmark::Counter(static_cast<double>(tasks), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

}  // namespace veda::bench
