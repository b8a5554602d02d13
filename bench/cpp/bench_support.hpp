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

// Runs one iteration of the spawn-from-a-task case: a root task spawns a
// batch into its worker's own deque and runs it (help_until) while this
// thread waits for the root, helping when `help` (wait_until otherwise).
inline void spawn_batch_from_a_task(Scheduler& s, bool help) {
  std::atomic<int> children{0};
  std::atomic<bool> root_done{false};
  s.submit([&s, &children, &root_done] {
    submit_counting_batch(s, children);
    s.help_until([&children] { return batch_done(children); });
    root_done.store(true, std::memory_order_release);
    return true;
  });
  auto root_finished = [&root_done] { return root_done.load(std::memory_order_acquire); };
  if (help) {
    s.help_until(root_finished);
  } else {
    s.wait_until(root_finished);
  }
}

// items_processed plus time_per_task: wall time per task (an inverted rate counter), printed in ns.
inline void set_time_per_task(benchmark::State& state, std::int64_t tasks_per_iteration) {
  const std::int64_t tasks = state.iterations() * tasks_per_iteration;
  state.SetItemsProcessed(tasks);
  state.counters["time_per_task"] =
      benchmark::Counter(static_cast<double>(tasks), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

}  // namespace veda::bench
