// Tests for veda::TelemetrySystem and render_snapshot_prometheus: the observer
// hook, snapshot fields, latency percentiles, throughput windows shared by
// concurrent readers, background collection (history, callbacks, stop), and
// a stress test with producers, readers and the collector at once.
#include "veda/telemetry/telemetry.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "veda/metrics/names.hpp"
#include "veda/metrics/registry.hpp"
#include "veda/metrics/text_format.hpp"
#include "veda/telemetry/catalogue.hpp"
#include "veda/runtime/runtime.hpp"
#include "veda/runtime/scheduler.hpp"

#include "support/test_support.hpp"

namespace veda {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

using test::contains;
using test::Gate;
using test::has_line;
using test::spin_until;
using test::Watchdog;

// How long spin_until sleeps between polls in this file.
constexpr std::chrono::microseconds kSpinPause = 200us;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

TelemetryOptions interval(double seconds, std::size_t max_snapshots = 3600) {
  TelemetryOptions o;
  o.collect_interval_s = seconds;
  o.max_snapshots = max_snapshots;
  return o;
}

// Collects snapshots delivered to a callback, thread-safely.
struct Recorder {
  std::mutex mutex;
  std::vector<MetricsSnapshot> seen;
  std::set<std::thread::id> threads;
  std::condition_variable cv;

  void operator()(const MetricsSnapshot& s) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      seen.push_back(s);
      threads.insert(std::this_thread::get_id());
    }
    cv.notify_all();
  }
  std::size_t size() {
    std::lock_guard<std::mutex> lock(mutex);
    return seen.size();
  }
  void wait_for(std::size_t n) {
    std::unique_lock<std::mutex> lock(mutex);
    cv.wait(lock, [&] { return seen.size() >= n; });
  }
};

// --- Construction and the observer hook -------------------------------------

TEST(TelemetrySystemTest, RejectsBadOptions) {
  Registry registry;
  for (const double bad : {0.0, -1.0, std::numeric_limits<double>::quiet_NaN(),
                           std::numeric_limits<double>::infinity()}) {
    try {
      TelemetrySystem t(interval(bad), registry);
      ADD_FAILURE() << "accepted collect_interval " << bad;
    } catch (const std::invalid_argument& e) {
      EXPECT_TRUE(contains(e.what(), "collect_interval")) << e.what();
    }
  }
  try {
    TelemetrySystem t(interval(1.0, 0), registry);
    ADD_FAILURE() << "accepted max_snapshots 0";
  } catch (const std::invalid_argument& e) {
    EXPECT_TRUE(contains(e.what(), "max_snapshots")) << e.what();
  }
}

TEST(TelemetrySystemTest, RegistersTheDocumentedFamilies) {
  Registry registry;
  TelemetrySystem t(TelemetryOptions{}, registry);
  std::vector<std::string> names = registry.names();
  std::sort(names.begin(), names.end());
  const std::vector<std::string> expected = {
      "pyveda_cpu_utilization_percent", "pyveda_latency_ms",      "pyveda_memory_used_mb",
      "pyveda_process_rss_mb",          "pyveda_queue_wait_ms",   "pyveda_run_time_ms",
      "pyveda_tasks_executed",          "pyveda_tasks_failed",    "pyveda_tasks_pending",
      "pyveda_tasks_running",           "pyveda_throughput_tasks_per_sec"};
  EXPECT_EQ(names, expected);
  EXPECT_EQ(t.collect_interval(), 1.0);
  EXPECT_EQ(t.max_snapshots(), 3600u);
  EXPECT_FALSE(t.is_running());
  EXPECT_TRUE(t.snapshots().empty());
}

TEST(TelemetrySystemTest, OnTaskEndRecordsOutcomeAndTimings) {
  Registry registry;
  TelemetrySystem t(TelemetryOptions{}, registry);
  t.on_task_end(2'000'000, 3'000'000, true);  // 2 ms queued, 3 ms run
  t.on_task_end(0, 1'000'000, false);         // failed, 1 ms run
  t.on_task_start(7'000'000);  // the start hook records nothing
  EXPECT_EQ(t.executed().get(), 2.0);
  EXPECT_EQ(t.failed().get(), 1.0);
  EXPECT_EQ(t.queue_wait_ms().count(), 2u);
  EXPECT_DOUBLE_EQ(t.queue_wait_ms().sum(), 2.0);
  EXPECT_EQ(t.run_time_ms().count(), 2u);
  EXPECT_DOUBLE_EQ(t.run_time_ms().sum(), 4.0);
  EXPECT_EQ(t.latency_ms().count(), 2u);
  EXPECT_DOUBLE_EQ(t.latency_ms().sum(), 6.0);
  EXPECT_DOUBLE_EQ(t.latency_ms().max(), 5.0);
  EXPECT_DOUBLE_EQ(t.latency_ms().min(), 1.0);

  const MetricsSnapshot s = t.snapshot();
  EXPECT_EQ(s.tasks_executed, 2u);
  EXPECT_EQ(s.tasks_failed, 1u);
  EXPECT_EQ(s.latency_count, 2u);
  EXPECT_DOUBLE_EQ(s.latency_sum_ms, 6.0);
  EXPECT_DOUBLE_EQ(s.avg_latency_ms, 3.0);
  EXPECT_EQ(s.tasks_pending, 0u) << "no scheduler attached";
  EXPECT_EQ(s.tasks_running, 0u);
}

TEST(TelemetrySystemTest, RemoteTasksArePendingUntilTheyEndThenCountedWithTheirLatency) {
  Registry registry;
  TelemetrySystem t(TelemetryOptions{}, registry);
  t.on_remote_submit();
  t.on_remote_submit();
  t.on_remote_submit();
  EXPECT_EQ(t.snapshot().tasks_pending, 3u);
  double pending_gauge = -1.0;
  for (const FamilySnapshot& f : registry.collect()) {
    if (f.info.name == "pyveda_tasks_pending") pending_gauge = f.series.at(0).value;
  }
  EXPECT_EQ(pending_gauge, 3.0);
  t.on_remote_end(4'000'000, true);   // 4 ms from submit to result
  t.on_remote_end(2'000'000, false);  // failed after 2 ms
  const MetricsSnapshot s = t.snapshot();
  EXPECT_EQ(s.tasks_pending, 1u);
  EXPECT_EQ(s.tasks_executed, 2u);
  EXPECT_EQ(s.tasks_failed, 1u);
  EXPECT_EQ(s.latency_count, 2u);
  EXPECT_DOUBLE_EQ(s.latency_sum_ms, 6.0);
  EXPECT_EQ(t.queue_wait_ms().count(), 0u) << "where a remote task queued is not known here";
  EXPECT_EQ(t.run_time_ms().count(), 0u);
  t.on_remote_cancelled();  // the last one never ran
  EXPECT_EQ(t.snapshot().tasks_pending, 0u);
  EXPECT_EQ(t.snapshot().tasks_executed, 2u);
}

TEST(TelemetrySystemTest, SnapshotBeforeAnyTaskReadsZero) {
  Registry registry;
  TelemetrySystem t(TelemetryOptions{}, registry);
  const MetricsSnapshot s = t.snapshot();
  EXPECT_EQ(s.tasks_executed, 0u);
  EXPECT_EQ(s.tasks_failed, 0u);
  EXPECT_EQ(s.latency_count, 0u);
  EXPECT_EQ(s.avg_latency_ms, 0.0);
  EXPECT_EQ(s.p50_latency_ms, 0.0);
  EXPECT_EQ(s.p95_latency_ms, 0.0);
  EXPECT_EQ(s.p99_latency_ms, 0.0);
  EXPECT_EQ(s.throughput_tasks_per_sec, 0.0);
  EXPECT_FALSE(s.gpu_utilization_percent.has_value());
  EXPECT_FALSE(s.gpu_memory_used_mb.has_value());
  EXPECT_EQ(t.throughput(), 0.0);
}

TEST(TelemetrySystemTest, PercentilesFromRecordedLatencies) {
  Registry registry;
  TelemetrySystem t(TelemetryOptions{}, registry);
  for (int i = 0; i < 90; ++i) t.on_task_end(0, 1'000'000, true);    // 1 ms
  for (int i = 0; i < 10; ++i) t.on_task_end(0, 100'000'000, true);  // 100 ms
  const MetricsSnapshot s = t.snapshot();
  EXPECT_NEAR(s.p50_latency_ms, 1.0, 0.01);
  EXPECT_NEAR(s.p95_latency_ms, 100.0, 1.0);
  EXPECT_NEAR(s.p99_latency_ms, 100.0, 1.0);
  EXPECT_NEAR(s.avg_latency_ms, 10.9, 1e-9);
  EXPECT_NEAR(s.latency_sum_ms, 1090.0, 1e-9);
  EXPECT_EQ(s.latency_count, 100u);
}

// --- Snapshot fields --------------------------------------------------------

// A throwaway /proc tree (see probes/system_test.cpp) for exact system fields.
class ProcTree {
 public:
  ProcTree() {
    std::string pattern = (fs::temp_directory_path() / "veda_telemetry_proc_XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    root_ = pattern;
    fs::create_directories(root_ / "self");
    write("stat", "cpu  100 0 100 700 100 0 0 0 0 0\n");
    write("meminfo", "MemTotal:       16384000 kB\nMemFree:         1000000 kB\nMemAvailable:    4096000 kB\n");
    write("self/statm", "10000 2560 300 10 0 5000 0\n");
    write("self/stat",
          "4242 (veda) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 "
          "123 456789 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 3 0 0 0 0 0\n");
  }
  ~ProcTree() {
    std::error_code ignored;
    fs::remove_all(root_, ignored);
  }
  ProcTree(const ProcTree&) = delete;
  ProcTree& operator=(const ProcTree&) = delete;

  // Rewrites in place: the probe keeps its descriptors open.
  void write(const std::string& relative, const std::string& content) {
    std::ofstream out(root_ / relative, std::ios::binary | std::ios::trunc);
    out << content;
  }
  std::string root() const { return root_.string(); }

 private:
  fs::path root_;
};

TEST(TelemetrySystemTest, SystemFieldsComeFromTheProbeOverTheWindow) {
  ProcTree proc;
  Registry registry;
  TelemetryOptions o;
  o.proc_root = proc.root();
  TelemetrySystem t(o, registry);  // first point: busy 200 of 1000 ticks since boot

  // 300 busy ticks of 600 since the start point: 50 % over the window.
  proc.write("stat", "cpu  400 0 100 1000 100 0 0 0 0 0\n");
  const MetricsSnapshot s = t.snapshot();
  EXPECT_TRUE(s.system_ok);
  EXPECT_DOUBLE_EQ(s.memory_total_mb, 16000.0);
  EXPECT_DOUBLE_EQ(s.memory_used_mb, 12000.0);
  const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
  EXPECT_DOUBLE_EQ(s.process_rss_mb, 2560.0 * page / 1048576.0);
  EXPECT_DOUBLE_EQ(s.cpu_utilization_percent, 50.0);

  // The system gauges follow the latest snapshot.
  const auto families = registry.collect();
  for (const auto& f : families) {
    if (f.info.name == "pyveda_memory_used_mb") {
      EXPECT_DOUBLE_EQ(f.series[0].value, 12000.0);
    } else if (f.info.name == "pyveda_cpu_utilization_percent") {
      EXPECT_DOUBLE_EQ(f.series[0].value, 50.0);
    } else if (f.info.name == "pyveda_process_rss_mb") {
      EXPECT_DOUBLE_EQ(f.series[0].value, s.process_rss_mb);
    }
  }

  // A second reader right away shares the same window (from the start point),
  // so it sees the same 50 %, not the probe's own since-last-sample window.
  const MetricsSnapshot again = t.snapshot();
  EXPECT_DOUBLE_EQ(again.cpu_utilization_percent, 50.0);
}

TEST(TelemetrySystemTest, MissingProcTreeGivesNotOk) {
  Registry registry;
  TelemetryOptions o;
  o.proc_root = "/nonexistent/veda/proc";
  TelemetrySystem t(o, registry);
  t.on_task_end(0, 1000, true);
  const MetricsSnapshot s = t.snapshot();
  EXPECT_FALSE(s.system_ok);
  EXPECT_EQ(s.memory_used_mb, 0.0);
  EXPECT_EQ(s.process_rss_mb, 0.0);
  EXPECT_EQ(s.tasks_executed, 1u) << "task figures do not depend on the probe";
}

TEST(TelemetrySystemTest, SnapshotIsConsistentWithTheMetrics) {
  Watchdog dog;
  Registry registry;
  RuntimeOptions o;
  o.num_threads = 2;
  o.enable_telemetry = true;
  Runtime rt(o, registry);
  TelemetrySystem& t = *rt.telemetry();
  constexpr int kTasks = 500;
  for (int i = 0; i < kTasks; ++i) {
    ASSERT_TRUE(rt.scheduler().submit([i] {
      if (i % 5 == 0) throw std::runtime_error("x");
      return i % 5 != 1;
    }));
  }
  rt.scheduler().help_until([&] { return t.executed().get() == kTasks && rt.scheduler().running() == 0; });

  const double before = static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                std::chrono::system_clock::now().time_since_epoch())
                                                .count()) /
                        1e9;
  const MetricsSnapshot s = t.snapshot();
  EXPECT_EQ(s.tasks_executed, static_cast<std::uint64_t>(t.executed().get()));
  EXPECT_EQ(s.tasks_executed, static_cast<std::uint64_t>(kTasks));
  EXPECT_EQ(s.tasks_failed, static_cast<std::uint64_t>(t.failed().get()));
  EXPECT_EQ(s.tasks_failed, static_cast<std::uint64_t>(2 * kTasks / 5));
  EXPECT_EQ(s.tasks_pending, 0u);
  EXPECT_EQ(s.tasks_running, 0u);
  EXPECT_EQ(s.latency_count, t.latency_ms().count());
  EXPECT_DOUBLE_EQ(s.latency_sum_ms, t.latency_ms().sum());
  EXPECT_DOUBLE_EQ(s.avg_latency_ms, s.latency_sum_ms / static_cast<double>(s.latency_count));
  EXPECT_LE(s.p50_latency_ms, s.p95_latency_ms);
  EXPECT_LE(s.p95_latency_ms, s.p99_latency_ms);
  EXPECT_GE(s.p50_latency_ms, t.latency_ms().min());
  EXPECT_LE(s.p99_latency_ms, t.latency_ms().max());
  EXPECT_GE(s.timestamp, before - 1.0);
  EXPECT_LE(s.timestamp, before + 5.0);
  EXPECT_GT(s.window_seconds, 0.0);
  EXPECT_NEAR(s.throughput_tasks_per_sec, kTasks / s.window_seconds, 1e-6 * kTasks / s.window_seconds)
      << "no point is one interval old yet: the window runs from the start";
  EXPECT_GE(s.cpu_utilization_percent, 0.0);
  EXPECT_LE(s.cpu_utilization_percent, 100.0);
  if (s.system_ok) {
    EXPECT_GT(s.memory_total_mb, 0.0);
    EXPECT_LE(s.memory_used_mb, s.memory_total_mb);
    EXPECT_GT(s.process_rss_mb, 0.0);
  }
}

TEST(TelemetrySystemTest, AttachReadsPendingAndRunningAndDetaches) {
  Watchdog dog;
  Registry registry;
  TelemetrySystem t(TelemetryOptions{}, registry);
  SchedulerOptions so;
  so.num_threads = 1;
  so.observer = &t;
  auto scheduler = std::make_shared<Scheduler>(so);
  t.attach(scheduler);
  Gate gate;
  std::atomic<bool> started{false};
  ASSERT_TRUE(scheduler->submit([&] {
    started.store(true);
    gate.wait();
    return true;
  }));
  spin_until([&] { return started.load(); }, kSpinPause);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(scheduler->submit([] { return true; }));
  MetricsSnapshot s = t.snapshot();
  EXPECT_EQ(s.tasks_pending, 3u);
  EXPECT_EQ(s.tasks_running, 1u);

  t.attach(nullptr);
  s = t.snapshot();
  EXPECT_EQ(s.tasks_pending, 0u);
  EXPECT_EQ(s.tasks_running, 0u);

  t.attach(scheduler);
  gate.open();
  scheduler->shutdown(true);
  EXPECT_EQ(t.executed().get(), 4.0);
  scheduler.reset();  // only a weak reference is kept: reads 0 afterwards
  s = t.snapshot();
  EXPECT_EQ(s.tasks_pending, 0u);
  EXPECT_EQ(s.tasks_executed, 4u);
  EXPECT_TRUE(has_line(registry.render_prometheus(), "pyveda_tasks_pending 0"));
}

TEST(TelemetrySystemTest, LatencyPercentilesOfSleepingTasks) {
  Watchdog dog;
  Registry registry;
  RuntimeOptions o;
  o.num_threads = 2;
  o.enable_telemetry = true;
  Runtime rt(o, registry);
  TelemetrySystem& t = *rt.telemetry();
  // One task at a time, so queue wait stays small.
  auto run_one = [&](std::chrono::milliseconds d) {
    const double target = t.executed().get() + 1;
    ASSERT_TRUE(rt.scheduler().submit([d] {
      std::this_thread::sleep_for(d);
      return true;
    }));
    rt.scheduler().help_until([&] { return t.executed().get() == target; });
  };
  for (int i = 0; i < 50; ++i) run_one(i % 5 == 1 || i % 5 == 3 ? 20ms : 2ms);
  // 30 x 2 ms and 20 x 20 ms: the median is a short task, p95 and p99 long ones.
  const MetricsSnapshot s = t.snapshot();
  ASSERT_EQ(s.latency_count, 50u);
  const double slack = 0.995;  // the histogram's relative error is < 0.6 %
  EXPECT_GE(s.p50_latency_ms, 2.0 * slack);
  EXPECT_LT(s.p50_latency_ms, 15.0) << "the median must be one of the 2 ms tasks";
  EXPECT_GE(s.p95_latency_ms, 20.0 * slack);
  EXPECT_LT(s.p95_latency_ms, 100.0);
  EXPECT_GE(s.p99_latency_ms, s.p95_latency_ms);
  EXPECT_LT(s.p99_latency_ms, 200.0);
  const double mean_floor = (30 * 2.0 + 20 * 20.0) / 50.0;
  EXPECT_GE(s.avg_latency_ms, mean_floor * slack);
  EXPECT_LT(s.avg_latency_ms, mean_floor * 3.0);
  EXPECT_GE(t.run_time_ms().min(), 2.0 * slack);
}

// --- Throughput windows -----------------------------------------------------

// Submits a trivial task every `period` (absolute schedule) until stopped and
// remembers when it started and how many it submitted.
class Producer {
 public:
  Producer(Scheduler& s, std::chrono::microseconds period) : scheduler_(s) {
    start_ = Clock::now();
    thread_ = std::thread([this, period] {
      auto next = start_;
      while (!stop_.load(std::memory_order_relaxed)) {
        if (scheduler_.submit([] { return true; })) submitted_.fetch_add(1, std::memory_order_relaxed);
        next += period;
        std::this_thread::sleep_until(next);
      }
    });
  }
  ~Producer() { stop(); }
  void stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  // Tasks per second since the start.
  double rate() const { return static_cast<double>(submitted_.load()) / seconds_since(start_); }
  Clock::time_point start() const { return start_; }

 private:
  Scheduler& scheduler_;
  Clock::time_point start_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> submitted_{0};
  std::thread thread_;
};

TEST(TelemetryThroughputTest, SteadyRateOverTheWindowAndBackToBackReadersAgree) {
  Watchdog dog;
  Registry registry;
  RuntimeOptions o;
  o.num_threads = 2;
  o.enable_telemetry = true;
  o.collect_interval_s = 0.2;
  Runtime rt(o, registry);
  TelemetrySystem& t = *rt.telemetry();
  t.start();
  Producer producer(rt.scheduler(), 1ms);
  std::this_thread::sleep_for(1500ms);

  const double truth = producer.rate();
  ASSERT_GT(truth, 200.0) << "the producer could not keep any pace";
  // Back to back: the second reader must not see a window shortened by the
  // first. If the window's start point ages past one interval between the two
  // reads the window legitimately moves, so allow a retry.
  bool same_window = false;
  for (int attempt = 0; attempt < 3 && !same_window; ++attempt) {
    const MetricsSnapshot a = t.snapshot();
    const MetricsSnapshot b = t.snapshot();
    for (const MetricsSnapshot* s : {&a, &b}) {
      EXPECT_GE(s->window_seconds, 0.2) << "a window is at least one interval";
      EXPECT_LE(s->window_seconds, 0.2 * 2 + 0.15) << "and at most about two";
      EXPECT_NEAR(s->throughput_tasks_per_sec, truth, 0.25 * truth) << "window " << s->window_seconds;
    }
    EXPECT_NEAR(b.throughput_tasks_per_sec, a.throughput_tasks_per_sec, 0.1 * a.throughput_tasks_per_sec);
    const double grew = b.window_seconds - a.window_seconds;
    same_window = grew >= 0.0 && grew < 0.02;
  }
  EXPECT_TRUE(same_window) << "back-to-back snapshots kept reporting different windows";

  // The cheap reader and the registry gauge use the same window.
  EXPECT_NEAR(t.throughput(), truth, 0.25 * truth);
  const auto families = registry.collect();
  for (const auto& f : families) {
    if (f.info.name == "pyveda_throughput_tasks_per_sec") {
      EXPECT_NEAR(f.series[0].value, truth, 0.25 * truth);
    }
  }
  producer.stop();
  // The collector ran at its interval meanwhile.
  EXPECT_GE(t.snapshots().size(), 5u);
  EXPECT_LE(t.snapshots().size(), 9u);
}

TEST(TelemetryThroughputTest, ConcurrentReadersNeverShortenEachOthersWindow) {
  Watchdog dog;
  Registry registry;
  RuntimeOptions o;
  o.num_threads = 2;
  o.enable_telemetry = true;
  o.collect_interval_s = 0.1;
  Runtime rt(o, registry);
  TelemetrySystem& t = *rt.telemetry();
  const auto created = Clock::now();
  t.start();
  Producer producer(rt.scheduler(), 1ms);

  std::atomic<bool> stop{false};
  std::atomic<int> short_windows{0};
  std::atomic<int> long_windows{0};
  std::atomic<int> reads{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&, r] {
      while (!stop.load()) {
        const bool old_enough = seconds_since(created) > 0.1;
        if (r == 2) {
          (void)t.throughput();
          std::this_thread::sleep_for(1ms);
          continue;
        }
        const MetricsSnapshot s = t.snapshot();
        reads.fetch_add(1);
        if (old_enough && s.window_seconds < 0.1) short_windows.fetch_add(1);
        if (s.window_seconds > 0.1 * 4) long_windows.fetch_add(1);
      }
    });
  }
  std::this_thread::sleep_for(800ms);
  stop.store(true);
  for (auto& th : readers) th.join();
  EXPECT_GT(reads.load(), 20);
  EXPECT_EQ(short_windows.load(), 0) << "a reader shortened another reader's window";
  EXPECT_EQ(long_windows.load(), 0);
}

TEST(TelemetryThroughputTest, IdleSystemDecaysToZero) {
  Registry registry;
  TelemetrySystem t(interval(0.05), registry);
  for (int i = 0; i < 100; ++i) t.on_task_end(0, 1000, true);
  EXPECT_GT(t.snapshot().throughput_tasks_per_sec, 0.0);
  // Record points across a few intervals with no new tasks: the window moves
  // past the burst.
  for (int i = 0; i < 4; ++i) {
    std::this_thread::sleep_for(60ms);
    t.snapshot();
  }
  const MetricsSnapshot s = t.snapshot();
  EXPECT_EQ(s.throughput_tasks_per_sec, 0.0);
  EXPECT_GE(s.window_seconds, 0.05);
  EXPECT_EQ(t.throughput(), 0.0);
}

// --- render_snapshot_prometheus --------------------------------------------

MetricsSnapshot sample_snapshot() {
  MetricsSnapshot s;
  s.timestamp = 1700000000.0;
  s.tasks_executed = 7;
  s.tasks_failed = 2;
  s.tasks_pending = 3;
  s.tasks_running = 1;
  s.avg_latency_ms = 3.0;
  s.p50_latency_ms = 1.5;
  s.p90_latency_ms = 3.5;
  s.p95_latency_ms = 4.25;
  s.p99_latency_ms = 9.0;
  s.latency_sum_ms = 21.0;
  s.latency_count = 7;
  s.throughput_tasks_per_sec = 12.5;
  s.window_seconds = 1.0;
  s.cpu_utilization_percent = 37.5;
  s.memory_used_mb = 1024.0;
  s.memory_total_mb = 4096.0;
  s.process_rss_mb = 64.5;
  s.system_ok = true;
  return s;
}

TEST(RenderSnapshotTest, RendersTheGuidesNamesAndValues) {
  const std::string text = render_snapshot_prometheus(sample_snapshot());
  for (const std::string line : {
           "# TYPE pyveda_tasks_executed_total counter",
           "pyveda_tasks_executed_total 7",
           "# TYPE pyveda_tasks_failed_total counter",
           "pyveda_tasks_failed_total 2",
           "# TYPE pyveda_tasks_pending gauge",
           "pyveda_tasks_pending 3",
           "# TYPE pyveda_tasks_running gauge",
           "pyveda_tasks_running 1",
           "# TYPE pyveda_latency_ms summary",
           "pyveda_latency_ms{quantile=\"0.5\"} 1.5",
           "pyveda_latency_ms{quantile=\"0.9\"} 3.5",
           "pyveda_latency_ms{quantile=\"0.95\"} 4.25",
           "pyveda_latency_ms{quantile=\"0.99\"} 9",
           "pyveda_latency_ms_sum 21",
           "pyveda_latency_ms_count 7",
           "# TYPE pyveda_throughput_tasks_per_sec gauge",
           "pyveda_throughput_tasks_per_sec 12.5",
           "# TYPE pyveda_cpu_utilization_percent gauge",
           "pyveda_cpu_utilization_percent 37.5",
           "# TYPE pyveda_memory_used_mb gauge",
           "pyveda_memory_used_mb 1024",
           "# TYPE pyveda_process_rss_mb gauge",
           "pyveda_process_rss_mb 64.5",
       }) {
    EXPECT_TRUE(has_line(text, line)) << "missing: " << line << "\n" << text;
  }
  EXPECT_FALSE(contains(text, "gpu")) << text;
  EXPECT_FALSE(contains(text, "memory_total")) << text;
  EXPECT_EQ(text.back(), '\n');

  // Every sample line is "name[{labels}] value"; every family has HELP and TYPE.
  std::istringstream in(text);
  std::string line;
  int samples = 0;
  int helps = 0;
  int types = 0;
  while (std::getline(in, line)) {
    ASSERT_FALSE(line.empty());
    if (line.rfind("# HELP ", 0) == 0) {
      ++helps;
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      ++types;
      continue;
    }
    ASSERT_EQ(line.rfind("pyveda_", 0), 0u) << line;
    const auto space = line.rfind(' ');
    ASSERT_NE(space, std::string::npos) << line;
    const std::string value = line.substr(space + 1);
    EXPECT_NO_THROW((void)std::stod(value)) << line;
    ++samples;
  }
  EXPECT_EQ(helps, 9);
  EXPECT_EQ(types, 9);
  EXPECT_EQ(samples, 8 + 6);  // 8 scalars + the 4 quantiles of every export, _sum and _count
  // Families in the documented order.
  EXPECT_LT(text.find("pyveda_tasks_executed_total"), text.find("pyveda_tasks_failed_total"));
  EXPECT_LT(text.find("pyveda_tasks_running"), text.find("pyveda_latency_ms"));
  EXPECT_LT(text.find("pyveda_latency_ms_count"), text.find("pyveda_throughput_tasks_per_sec"));
}

TEST(RenderSnapshotTest, NaNQuantilesBeforeTheFirstTask) {
  const std::string text = render_snapshot_prometheus(MetricsSnapshot{});
  EXPECT_TRUE(has_line(text, "pyveda_latency_ms{quantile=\"0.5\"} NaN")) << text;
  EXPECT_TRUE(has_line(text, "pyveda_latency_ms{quantile=\"0.95\"} NaN")) << text;
  EXPECT_TRUE(has_line(text, "pyveda_latency_ms{quantile=\"0.99\"} NaN")) << text;
  EXPECT_TRUE(has_line(text, "pyveda_latency_ms_sum 0")) << text;
  EXPECT_TRUE(has_line(text, "pyveda_latency_ms_count 0")) << text;
  EXPECT_TRUE(has_line(text, "pyveda_tasks_executed_total 0")) << text;

  // A real snapshot of an idle system renders the same way.
  Registry registry;
  TelemetrySystem t(TelemetryOptions{}, registry);
  const std::string live = render_snapshot_prometheus(t.snapshot());
  EXPECT_TRUE(has_line(live, "pyveda_latency_ms{quantile=\"0.5\"} NaN")) << live;
  t.on_task_end(0, 2'000'000, true);
  const std::string after = render_snapshot_prometheus(t.snapshot());
  EXPECT_FALSE(contains(after, "NaN")) << after;
  EXPECT_TRUE(has_line(after, "pyveda_latency_ms_count 1")) << after;
  EXPECT_TRUE(has_line(after, "pyveda_latency_ms{quantile=\"0.5\"} 2")) << after;
}

TEST(RenderSnapshotTest, GpuGaugesOnlyWhenSet) {
  MetricsSnapshot s = sample_snapshot();
  s.gpu_utilization_percent = 42.5;
  std::string text = render_snapshot_prometheus(s);
  EXPECT_TRUE(has_line(text, "# TYPE pyveda_gpu_utilization_percent gauge")) << text;
  EXPECT_TRUE(has_line(text, "pyveda_gpu_utilization_percent 42.5")) << text;
  EXPECT_FALSE(contains(text, "pyveda_gpu_memory_used_mb")) << text;

  s.gpu_utilization_percent.reset();
  s.gpu_memory_used_mb = 2048.0;
  text = render_snapshot_prometheus(s);
  EXPECT_FALSE(contains(text, "pyveda_gpu_utilization_percent")) << text;
  EXPECT_TRUE(has_line(text, "pyveda_gpu_memory_used_mb 2048")) << text;

  s.gpu_utilization_percent = 0.0;  // set to zero still renders
  text = render_snapshot_prometheus(s);
  EXPECT_TRUE(has_line(text, "pyveda_gpu_utilization_percent 0")) << text;
  EXPECT_TRUE(has_line(text, "pyveda_gpu_memory_used_mb 2048")) << text;
}

TEST(RenderSnapshotTest, UsesTheSameSampleNamesAsTheRegistry) {
  Registry registry;
  TelemetrySystem t(TelemetryOptions{}, registry);
  t.on_task_end(1'000'000, 1'000'000, false);
  const std::string snap = render_snapshot_prometheus(t.snapshot());
  const std::string reg = registry.render_prometheus();
  for (const std::string name :
       {"pyveda_tasks_executed_total", "pyveda_tasks_failed_total", "pyveda_tasks_pending", "pyveda_tasks_running",
        "pyveda_latency_ms_sum", "pyveda_latency_ms_count", "pyveda_throughput_tasks_per_sec",
        "pyveda_cpu_utilization_percent", "pyveda_memory_used_mb", "pyveda_process_rss_mb"}) {
    EXPECT_TRUE(contains(snap, "\n" + name + " ")) << name << "\n" << snap;
    EXPECT_TRUE(contains(reg, "\n" + name + " ")) << name << "\n" << reg;
  }
  EXPECT_TRUE(has_line(snap, "pyveda_tasks_failed_total 1"));
  EXPECT_TRUE(has_line(reg, "pyveda_tasks_failed_total 1"));
}

// --- Background collection --------------------------------------------------

TEST(TelemetryCollectorTest, HistoryGrowsAtTheInterval) {
  Watchdog dog;
  Registry registry;
  TelemetrySystem t(interval(0.05), registry);
  const auto started = Clock::now();
  t.start();
  EXPECT_TRUE(t.is_running());
  spin_until([&] { return t.snapshots().size() >= 5; }, kSpinPause);
  EXPECT_GE(seconds_since(started), 5 * 0.05 * 0.95);
  t.stop();
  // Measured after stop(): collections may happen between the wait and stop().
  const double elapsed = seconds_since(started);
  EXPECT_FALSE(t.is_running());
  const auto history = t.snapshots();
  ASSERT_GE(history.size(), 5u);
  EXPECT_LE(history.size(), static_cast<std::size_t>(elapsed / 0.05) + 1) << "collects no faster than the interval";
  // The schedule is fixed-rate (a late collection does not shift the next
  // one), so single gaps may be short under load; the mean gap may not.
  const double mean_gap = (history.back().timestamp - history.front().timestamp) /
                          static_cast<double>(history.size() - 1);
  EXPECT_GE(mean_gap, 0.05 * 0.8);
  // Nothing is collected after stop().
  std::this_thread::sleep_for(150ms);
  EXPECT_EQ(t.snapshots().size(), history.size());
}

TEST(TelemetryCollectorTest, LiveSnapshotsCarryTheLatencyBucketsTheHistoryDoesNot) {
  Watchdog dog;
  Registry registry;
  TelemetrySystem t(interval(0.01), registry);
  t.on_task_end(0, 2'000'000, true);
  t.on_task_end(1'000'000, 4'000'000, false);
  const MetricsSnapshot live = t.snapshot();
  ASSERT_NE(live.latency_histogram, nullptr);
  EXPECT_EQ(live.latency_histogram->count, 2u);
  EXPECT_EQ(live.latency_histogram->count, live.latency_count);
  EXPECT_DOUBLE_EQ(live.latency_histogram->sum, live.latency_sum_ms);
  EXPECT_GT(live.start_unix_nano, 0);
  EXPECT_EQ(live.start_unix_nano, t.executed().created_unix_nano());

  Recorder recorder;
  t.add_callback([&recorder](const MetricsSnapshot& s) { recorder(s); });
  t.start();
  recorder.wait_for(3);
  t.stop();
  const auto history = t.snapshots();
  ASSERT_GE(history.size(), 3u);
  for (const auto& s : history) {
    EXPECT_EQ(s.latency_histogram, nullptr) << "the history keeps no buckets";
    EXPECT_EQ(s.start_unix_nano, live.start_unix_nano) << "the cumulative start never moves";
  }
  std::lock_guard<std::mutex> lock(recorder.mutex);
  for (const auto& s : recorder.seen) {
    ASSERT_NE(s.latency_histogram, nullptr) << "callbacks get the buckets";
    EXPECT_EQ(s.latency_histogram->count, 2u);
  }
}

TEST(TelemetryCollectorTest, HistoryIsBoundedAndKeepsTheNewest) {
  Watchdog dog;
  Registry registry;
  TelemetrySystem t(interval(0.01, 3), registry);
  Recorder recorder;
  t.add_callback([&recorder](const MetricsSnapshot& s) { recorder(s); });
  t.start();
  recorder.wait_for(8);
  t.stop();
  const auto history = t.snapshots();
  ASSERT_EQ(history.size(), 3u);
  std::lock_guard<std::mutex> lock(recorder.mutex);
  ASSERT_GE(recorder.seen.size(), 8u);
  // Callbacks run after the snapshot is stored, so the last three seen are the history.
  const std::size_t n = recorder.seen.size();
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(history[i].timestamp, recorder.seen[n - 3 + i].timestamp) << i;
}

TEST(TelemetryCollectorTest, SetMaxSnapshotsTrimsAndRejectsZero) {
  Watchdog dog;
  Registry registry;
  TelemetrySystem t(interval(0.01, 100), registry);
  t.start();
  spin_until([&] { return t.snapshots().size() >= 6; }, kSpinPause);
  t.stop();
  const auto before = t.snapshots();
  ASSERT_GE(before.size(), 6u);

  t.set_max_snapshots(2);
  EXPECT_EQ(t.max_snapshots(), 2u);
  const auto after = t.snapshots();
  ASSERT_EQ(after.size(), 2u);
  EXPECT_EQ(after[0].timestamp, before[before.size() - 2].timestamp) << "the oldest are dropped";
  EXPECT_EQ(after[1].timestamp, before.back().timestamp);

  EXPECT_THROW(t.set_max_snapshots(0), std::invalid_argument);
  EXPECT_EQ(t.max_snapshots(), 2u);
  EXPECT_EQ(t.snapshots().size(), 2u);

  t.set_max_snapshots(50);  // growing keeps what is there
  EXPECT_EQ(t.snapshots().size(), 2u);
  t.clear_snapshots();
  EXPECT_TRUE(t.snapshots().empty());
  EXPECT_EQ(t.max_snapshots(), 50u);

  // The new bound applies to a running collector too.
  t.set_max_snapshots(1);
  t.start();
  spin_until([&] { return !t.snapshots().empty(); }, kSpinPause);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(t.snapshots().size(), 1u);
  t.stop();
}

TEST(TelemetryCollectorTest, StopReturnsPromptlyForALongInterval) {
  Watchdog dog;
  Registry registry;
  TelemetrySystem t(interval(5.0), registry);
  t.start();
  std::this_thread::sleep_for(50ms);
  const auto before = Clock::now();
  t.stop();
  EXPECT_LT(seconds_since(before), 1.0);
  EXPECT_FALSE(t.is_running());
  EXPECT_TRUE(t.snapshots().empty());

  // The destructor stops a running collector just as fast.
  auto u = std::make_unique<TelemetrySystem>(interval(5.0), registry);
  u->start();
  std::this_thread::sleep_for(20ms);
  const auto destroy = Clock::now();
  u.reset();
  EXPECT_LT(seconds_since(destroy), 1.0);
}

TEST(TelemetryCollectorTest, StartTwiceRunsOneCollectorAndStopIsIdempotent) {
  Watchdog dog;
  Registry registry;
  TelemetrySystem t(interval(0.02), registry);
  t.stop();  // never started: harmless
  Recorder recorder;
  t.add_callback([&recorder](const MetricsSnapshot& s) { recorder(s); });
  const auto started = Clock::now();
  t.start();
  t.start();
  EXPECT_TRUE(t.is_running());
  std::this_thread::sleep_for(220ms);
  t.stop();
  const double elapsed = seconds_since(started);
  t.stop();
  EXPECT_FALSE(t.is_running());
  std::lock_guard<std::mutex> lock(recorder.mutex);
  EXPECT_EQ(recorder.threads.size(), 1u) << "a second start() must not add a collector";
  EXPECT_GE(recorder.seen.size(), 3u);
  EXPECT_LE(recorder.seen.size(), static_cast<std::size_t>(elapsed / 0.02) + 1);
}

TEST(TelemetryCollectorTest, RestartsAfterStop) {
  Watchdog dog;
  Registry registry;
  TelemetrySystem t(interval(0.01), registry);
  t.start();
  spin_until([&] { return t.snapshots().size() >= 2; }, kSpinPause);
  t.stop();
  const std::size_t first = t.snapshots().size();
  t.start();
  EXPECT_TRUE(t.is_running());
  spin_until([&] { return t.snapshots().size() >= first + 2; }, kSpinPause);
  t.stop();
  EXPECT_FALSE(t.is_running());
}

TEST(TelemetryCollectorTest, CallbacksReceiveEverySnapshot) {
  Watchdog dog;
  Registry registry;
  TelemetrySystem t(interval(0.01), registry);
  Recorder a;
  Recorder b;
  const std::size_t id_a = t.add_callback([&a](const MetricsSnapshot& s) { a(s); });
  const std::size_t id_b = t.add_callback([&b](const MetricsSnapshot& s) { b(s); });
  EXPECT_NE(id_a, id_b);
  t.on_task_end(0, 1000, true);
  t.start();
  a.wait_for(5);
  t.stop();
  const auto history = t.snapshots();
  std::lock_guard<std::mutex> la(a.mutex);
  std::lock_guard<std::mutex> lb(b.mutex);
  ASSERT_EQ(a.seen.size(), history.size());
  ASSERT_EQ(b.seen.size(), history.size());
  for (std::size_t i = 0; i < history.size(); ++i) {
    EXPECT_EQ(a.seen[i].timestamp, history[i].timestamp);
    EXPECT_EQ(b.seen[i].timestamp, history[i].timestamp);
    EXPECT_EQ(a.seen[i].tasks_executed, 1u);
  }
  EXPECT_EQ(a.threads.size(), 1u);
  EXPECT_EQ(a.threads.count(std::this_thread::get_id()), 0u) << "callbacks run on the collector thread";
}

TEST(TelemetryCollectorTest, ThrowingCallbackDoesNotStopCollection) {
  Watchdog dog;
  Registry registry;
  TelemetrySystem t(interval(0.01), registry);
  std::atomic<int> thrown{0};
  t.add_callback([&thrown](const MetricsSnapshot&) {
    thrown.fetch_add(1);
    throw std::runtime_error("callback failure");
  });
  t.add_callback([](const MetricsSnapshot&) { throw 42; });  // not even a std::exception
  Recorder after;
  t.add_callback([&after](const MetricsSnapshot& s) { after(s); });
  t.start();
  after.wait_for(4);
  EXPECT_TRUE(t.is_running());
  t.stop();
  EXPECT_GE(thrown.load(), 4);
  EXPECT_EQ(static_cast<std::size_t>(thrown.load()), after.size()) << "later callbacks still run";
}

TEST(TelemetryCollectorTest, RemoveCallback) {
  Watchdog dog;
  Registry registry;
  TelemetrySystem t(interval(0.01), registry);
  Recorder keep;
  std::atomic<int> removed_calls{0};
  t.add_callback([&keep](const MetricsSnapshot& s) { keep(s); });
  const std::size_t id = t.add_callback([&removed_calls](const MetricsSnapshot&) { removed_calls.fetch_add(1); });
  t.start();
  keep.wait_for(2);
  t.remove_callback(id);
  t.remove_callback(id);       // twice: harmless
  t.remove_callback(id + 99);  // unknown: harmless
  // A callback copied before remove_callback may still be running once.
  const int at_removal = removed_calls.load();
  const std::size_t seen = keep.size();
  keep.wait_for(seen + 4);
  t.stop();
  EXPECT_LE(removed_calls.load(), at_removal + 1);
  EXPECT_GE(removed_calls.load(), 2);
}

TEST(TelemetryCollectorTest, StopFromInsideACallbackDoesNotDeadlock) {
  Watchdog dog(std::chrono::seconds(20));
  Registry registry;
  auto t = std::make_unique<TelemetrySystem>(interval(0.01), registry);
  std::atomic<int> calls{0};
  std::atomic<bool> returned{false};
  TelemetrySystem* raw = t.get();
  t->add_callback([&calls, &returned, raw](const MetricsSnapshot&) {
    calls.fetch_add(1);
    raw->stop();
    // Keep the collector thread busy after stop() returned, so that the
    // owner below destroys the system while this callback is still running.
    std::this_thread::sleep_for(30ms);
    returned.store(true);
  });
  t->start();
  spin_until([&] { return calls.load() >= 1; }, kSpinPause);
  spin_until([&] { return !raw->is_running(); }, kSpinPause);
  EXPECT_EQ(calls.load(), 1);
  // Destroying now must wait for the collector thread: it is still inside the
  // callback and touches the system when it returns.
  t.reset();
  EXPECT_TRUE(returned.load()) << "the destructor returned while the collector thread was still running";
  // Give a collector that was left running time to trip over the freed
  // system (ASan: heap-use-after-free) while this frame is still alive.
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(calls.load(), 1);
}

TEST(TelemetryCollectorTest, StartAfterAStopFromACallbackRunsOneCollector) {
  Watchdog dog(std::chrono::seconds(20));
  Registry registry;
  TelemetrySystem t(interval(0.01), registry);
  Gate release;
  std::atomic<int> calls{0};
  std::mutex mutex;
  std::vector<std::thread::id> callers;
  t.add_callback([&](const MetricsSnapshot&) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      callers.push_back(std::this_thread::get_id());
    }
    if (calls.fetch_add(1) == 0) {
      t.stop();
      release.wait();  // start() below happens while this collector is still in its callback
    }
  });
  t.start();
  spin_until([&] { return calls.load() >= 1 && !t.is_running(); }, kSpinPause);
  std::thread restarter([&] { t.start(); });
  std::this_thread::sleep_for(30ms);
  release.open();
  restarter.join();
  EXPECT_TRUE(t.is_running());
  spin_until([&] { return calls.load() >= 8; }, kSpinPause);
  std::this_thread::sleep_for(50ms);
  t.stop();
  EXPECT_FALSE(t.is_running());
  std::lock_guard<std::mutex> lock(mutex);
  std::set<std::thread::id> after_restart(callers.begin() + 1, callers.end());
  EXPECT_EQ(after_restart.size(), 1u) << "the stopped collector came back to life next to the new one";
  const int settled = calls.load();
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(calls.load(), settled) << "a collector still runs after stop()";
}

TEST(TelemetryCollectorTest, StopAndStartFromTheSameCallbackKeepsCollecting) {
  Watchdog dog(std::chrono::seconds(20));
  Registry registry;
  TelemetrySystem t(interval(0.01), registry);
  Recorder recorder;
  std::atomic<int> calls{0};
  t.add_callback([&](const MetricsSnapshot& s) {
    if (calls.fetch_add(1) == 0) {
      t.stop();
      t.start();
    }
    recorder(s);
  });
  t.start();
  recorder.wait_for(5);
  EXPECT_TRUE(t.is_running());
  t.stop();
  EXPECT_FALSE(t.is_running());
  const std::size_t n = recorder.size();
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(recorder.size(), n);
}

// --- Stress -------------------------------------------------------------------

TEST(TelemetryStressTest, ProducersReadersAndCollectorTogether) {
  Watchdog dog(std::chrono::seconds(110));
  Registry registry;
  RuntimeOptions o;
  o.num_threads = 4;
  o.enable_telemetry = true;
  o.collect_interval_s = 0.005;
  o.max_snapshots = 50;
  Runtime rt(o, registry);
  TelemetrySystem& t = *rt.telemetry();
  std::atomic<int> callbacks{0};
  t.add_callback([&callbacks](const MetricsSnapshot&) { callbacks.fetch_add(1); });
  t.start();

  constexpr int kProducers = 4;
  constexpr int kPerProducer = 20000;
  constexpr std::uint64_t kTotal = std::uint64_t{kProducers} * kPerProducer;
  std::atomic<bool> stop_readers{false};
  std::atomic<int> violations{0};
  std::atomic<int> reads{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&, r] {
      std::uint64_t last_executed = 0;
      while (!stop_readers.load()) {
        if (r == 0) {
          const MetricsSnapshot s = t.snapshot();
          if (s.tasks_executed < last_executed || s.tasks_executed > kTotal || s.latency_count > kTotal ||
              s.tasks_pending > kTotal || s.window_seconds < 0.0 || s.throughput_tasks_per_sec < 0.0 ||
              !(s.p50_latency_ms <= s.p99_latency_ms)) {
            violations.fetch_add(1);
          }
          last_executed = s.tasks_executed;
        } else {
          const std::string text = registry.render_prometheus();
          if (!contains(text, "pyveda_tasks_executed_total ")) violations.fetch_add(1);
          (void)t.snapshots();
        }
        reads.fetch_add(1);
      }
    });
  }

  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&rt] {
      for (int i = 0; i < kPerProducer; ++i) {
        rt.scheduler().submit([i] { return i % 10 != 0; });
      }
    });
  }
  for (auto& th : producers) th.join();
  rt.scheduler().help_until([&] {
    return static_cast<std::uint64_t>(t.executed().get()) == kTotal && rt.scheduler().running() == 0;
  });
  spin_until([&] { return reads.load() >= 10; }, kSpinPause);
  stop_readers.store(true);
  for (auto& th : readers) th.join();
  t.stop();

  EXPECT_EQ(violations.load(), 0);
  EXPECT_EQ(static_cast<std::uint64_t>(t.executed().get()), kTotal);
  EXPECT_EQ(static_cast<std::uint64_t>(t.failed().get()), kTotal / 10);
  EXPECT_EQ(t.latency_ms().count(), kTotal);
  EXPECT_EQ(t.queue_wait_ms().count(), kTotal);
  EXPECT_EQ(t.run_time_ms().count(), kTotal);
  EXPECT_EQ(rt.scheduler().completed() + rt.scheduler().failed(), kTotal);
  const MetricsSnapshot s = t.snapshot();
  EXPECT_EQ(s.tasks_executed, kTotal);
  EXPECT_EQ(s.tasks_failed, kTotal / 10);
  EXPECT_EQ(s.tasks_pending, 0u);
  EXPECT_EQ(s.tasks_running, 0u);
  EXPECT_TRUE(has_line(registry.render_prometheus(), "pyveda_tasks_executed_total " + std::to_string(kTotal)));
  EXPECT_LE(t.snapshots().size(), 50u);
  EXPECT_GT(callbacks.load(), 0);
}

// --- the catalogue and to_families() ----------------------------------------

TEST(Catalogue, NamesAreUniqueValidAndDescribed) {
  std::set<std::string_view> names, otlp_names;
  for (const RuntimeMetric* m : runtime_metrics::kAll) {
    EXPECT_TRUE(names.insert(m->name).second) << m->name;
    EXPECT_TRUE(otlp_names.insert(m->otlp_name).second) << m->otlp_name;
    EXPECT_TRUE(is_valid_metric_name(m->name)) << m->name;
    EXPECT_FALSE(m->help.empty() || m->unit.empty()) << m->name;
    EXPECT_NE(m->name.substr(m->name.size() - 6), "_total") << m->name;  // counters are named without it
  }
}

TEST(Catalogue, TheRegistryAndTheSnapshotDescribeEachMetricTheSameWay) {
  Registry registry;
  RuntimeOptions options;
  options.num_threads = 1;
  options.enable_telemetry = true;
  Runtime runtime(options, registry);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(runtime.scheduler().submit([] { return true; }));
  runtime.scheduler().help_until([&] { return runtime.scheduler().completed() == 20; });
  const MetricsSnapshot live = runtime.telemetry()->snapshot();

  MetricsSnapshot history_copy = live;  // what the collector keeps: no buckets
  history_copy.latency_histogram = nullptr;
  const MetricsSnapshot& history = history_copy;
  for (const MetricsSnapshot* s : {&live, &history}) {
    for (const FamilySnapshot& f : to_families(*s)) {
      const RuntimeMetric* m = find_runtime_metric(f.info.name);
      ASSERT_NE(m, nullptr) << f.info.name;
      EXPECT_EQ(f.info.help, m->help);
      EXPECT_EQ(f.info.type, m->type);
    }
  }
  for (const FamilySnapshot& f : registry.collect()) {
    const RuntimeMetric* m = find_runtime_metric(f.info.name);
    ASSERT_NE(m, nullptr) << f.info.name;
    EXPECT_EQ(f.info.help, m->help) << f.info.name;
  }
  // One quantile set: the history snapshot's figures fill the same four quantiles.
  const std::vector<FamilySnapshot> families = to_families(history);
  const auto latency = std::find_if(families.begin(), families.end(),
                                    [](const FamilySnapshot& f) { return f.info.name == "pyveda_latency_ms"; });
  ASSERT_NE(latency, families.end());
  ASSERT_EQ(latency->series.at(0).quantiles.size(), std::size(kSummaryQuantiles));
  for (std::size_t i = 0; i < std::size(kSummaryQuantiles); ++i) {
    EXPECT_EQ(latency->series[0].quantiles[i].first, kSummaryQuantiles[i]);
  }
  EXPECT_EQ(latency->series[0].quantiles[1].second, history.p90_latency_ms);
  EXPECT_EQ(latency->series[0].histogram.count, 20u);
  // The live snapshot carries its buckets: the quantiles come from them, as on /metrics.
  std::string from_live;
  render_prometheus(to_families(live), from_live);
  EXPECT_EQ(from_live, render_snapshot_prometheus(live));
  EXPECT_TRUE(contains(from_live, "pyveda_latency_ms{quantile=\"0.9\"}")) << from_live;
}

TEST(Catalogue, AnEmptySnapshotHasNaNQuantilesAndNoGpuFamilies) {
  MetricsSnapshot s;
  const std::string text = render_snapshot_prometheus(s);
  EXPECT_TRUE(contains(text, "pyveda_latency_ms{quantile=\"0.99\"} NaN")) << text;
  EXPECT_FALSE(contains(text, "pyveda_gpu")) << text;
  s.gpu_memory_used_mb = 512.0;  // an aggregate without per-device samples
  EXPECT_TRUE(contains(render_snapshot_prometheus(s), "pyveda_gpu_memory_used_mb 512\n"));
  const std::string om = render_snapshot_openmetrics(s);
  EXPECT_TRUE(contains(om, "# TYPE pyveda_tasks_executed counter\n")) << om;
  EXPECT_EQ(om.substr(om.size() - 6), "# EOF\n");
}

}  // namespace
}  // namespace veda
