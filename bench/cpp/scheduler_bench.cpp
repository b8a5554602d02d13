// Benchmarks for veda::Scheduler: submit + execute of trivial native tasks.
//
// time_per_task is wall time divided by the tasks of all benchmark threads
// (submit, run and wait included); with threads:2 both threads submit at once.
// Baselines: calling a Task inline (lower bound) and a mutex + condition
// variable pool of std::function (what a naive pool costs).
#include "veda/runtime/scheduler.hpp"

#include "bench_support.hpp"

#include <benchmark/benchmark.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace {

using namespace veda::bench;


// The cheapest possible observer: measures the cost of the clock reads and
// the virtual calls the scheduler adds when telemetry is attached.
class TrivialObserver : public veda::SchedulerObserver {
 public:
  void on_task_start(std::int64_t queue_wait_ns) noexcept override {
    benchmark::DoNotOptimize(queue_wait_ns);
  }
  void on_task_end(std::int64_t queue_wait_ns, std::int64_t run_ns, bool ok) noexcept override {
    benchmark::DoNotOptimize(queue_wait_ns);
    benchmark::DoNotOptimize(run_ns);
    benchmark::DoNotOptimize(ok);
  }
};

veda::SchedulerOptions options_with(veda::SchedulerObserver* observer) {
  veda::SchedulerOptions options;  // one worker per hardware thread
  options.observer = observer;
  return options;
}

// Shared by all benchmark threads of a case, created on first use.
veda::Scheduler& scheduler(bool observed) {
  static TrivialObserver observer;
  static veda::Scheduler plain(options_with(nullptr));
  static veda::Scheduler watched(options_with(&observer));
  return observed ? watched : plain;
}


// Submit a batch from this (non-worker) thread, then help until it is done.
void BM_Scheduler_SubmitBatch(benchmark::State& state) {
  veda::Scheduler& s = scheduler(state.range(0) != 0);
  std::atomic<int> done{0};
  for (auto _ : state) {
    done.store(0, std::memory_order_relaxed);
    submit_counting_batch(s, done);
    s.help_until([&done] { return batch_done(done); });
  }
  set_time_per_task(state, kBatch);
}
BENCHMARK(BM_Scheduler_SubmitBatch)->ArgName("observer")->Arg(0)->Arg(1)->Threads(1)->Threads(2)->UseRealTime();

// Same, but the submitting thread only waits: every task runs on a worker.
void BM_Scheduler_SubmitBatchNoHelp(benchmark::State& state) {
  veda::Scheduler& s = scheduler(state.range(0) != 0);
  std::atomic<int> done{0};
  for (auto _ : state) {
    done.store(0, std::memory_order_relaxed);
    submit_counting_batch(s, done);
    while (done.load(std::memory_order_acquire) != kBatch) std::this_thread::yield();
  }
  set_time_per_task(state, kBatch);
}
BENCHMARK(BM_Scheduler_SubmitBatchNoHelp)->ArgName("observer")->Arg(0)->Arg(1)->Threads(1)->Threads(2)->UseRealTime();

// One task from inside a worker spawns a batch into its own deque (the
// lock-free path) and helps until the children are done.
void BM_Scheduler_SpawnFromWorker(benchmark::State& state) {
  veda::Scheduler& s = scheduler(state.range(0) != 0);
  for (auto _ : state) spawn_batch_from_a_task(s, true);
  set_time_per_task(state, kBatch);
}
BENCHMARK(BM_Scheduler_SpawnFromWorker)->ArgName("observer")->Arg(0)->Arg(1)->Threads(1)->Threads(2)->UseRealTime();

// Latency: submit one task and wait (without helping) until a worker ran it.
void BM_Scheduler_RoundTrip(benchmark::State& state) {
  veda::Scheduler& s = scheduler(state.range(0) != 0);
  std::atomic<bool> done{false};
  for (auto _ : state) {
    done.store(false, std::memory_order_relaxed);
    s.submit([&done] {
      done.store(true, std::memory_order_release);
      return true;
    });
    while (!done.load(std::memory_order_acquire)) std::this_thread::yield();
  }
  set_time_per_task(state, 1);
}
BENCHMARK(BM_Scheduler_RoundTrip)->ArgName("observer")->Arg(0)->Arg(1)->Threads(1)->Threads(2)->UseRealTime();

// Baseline: build and call the same Task inline, no scheduler.
void BM_Scheduler_BaselineInlineTask(benchmark::State& state) {
  std::atomic<int> done{0};
  for (auto _ : state) {
    veda::Task t([&done] {
      done.fetch_add(1, std::memory_order_release);
      return true;
    });
    benchmark::DoNotOptimize(t());
  }
  set_time_per_task(state, 1);
}
BENCHMARK(BM_Scheduler_BaselineInlineTask);

// Baseline: the textbook pool, one mutex + condition variable + deque of
// std::function, same workload as SubmitBatchNoHelp.
class MutexPool {
 public:
  explicit MutexPool(unsigned n) {
    for (unsigned i = 0; i < n; ++i) {
      threads_.emplace_back([this] {
        for (;;) {
          std::function<void()> job;
          {
            std::unique_lock<std::mutex> lock(mutex_);
            cv_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
            if (jobs_.empty()) return;
            job = std::move(jobs_.front());
            jobs_.pop_front();
          }
          job();
        }
      });
    }
  }
  ~MutexPool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void submit(std::function<void()> job) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      jobs_.push_back(std::move(job));
    }
    cv_.notify_one();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

void BM_Scheduler_BaselineMutexPool(benchmark::State& state) {
  static MutexPool pool(std::thread::hardware_concurrency() == 0 ? 1U
                                                                   : std::thread::hardware_concurrency());
  std::atomic<int> done{0};
  for (auto _ : state) {
    done.store(0, std::memory_order_relaxed);
    for (int i = 0; i < kBatch; ++i) {
      pool.submit([&done] { done.fetch_add(1, std::memory_order_release); });
    }
    while (done.load(std::memory_order_acquire) != kBatch) std::this_thread::yield();
  }
  set_time_per_task(state, kBatch);
}
BENCHMARK(BM_Scheduler_BaselineMutexPool)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace
