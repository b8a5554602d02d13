// Tests for veda::RuntimeOptions and veda::Runtime: option validation, the
// runtime with telemetry off and on, the pyveda_* families it keeps in a
// registry (live pending/running gauges, replacement by a second runtime,
// frozen values after destruction).
#include "veda/runtime/runtime.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "veda/metrics/registry.hpp"
#include "veda/telemetry/telemetry.hpp"

#include "support/test_support.hpp"

namespace veda {
namespace {

using namespace std::chrono_literals;

using test::contains;
using test::Gate;
using test::has_line;
using test::message_of;
using test::spin_until;
using test::Watchdog;

// How long spin_until sleeps between polls in this file.
constexpr std::chrono::microseconds kSpinPause = 100us;

const FamilySnapshot* find_family(const std::vector<FamilySnapshot>& families, const std::string& name) {
  for (const auto& f : families) {
    if (f.info.name == name) return &f;
  }
  return nullptr;
}

// The value of the one series of a counter or gauge family; NaN when missing.
double value_of(const Registry& registry, const std::string& name) {
  const auto families = registry.collect();
  const FamilySnapshot* f = find_family(families, name);
  if (f == nullptr || f->series.size() != 1) return std::numeric_limits<double>::quiet_NaN();
  return f->series[0].value;
}

// The observation count of the one series of a histogram family.
std::uint64_t count_of(const Registry& registry, const std::string& name) {
  const auto families = registry.collect();
  const FamilySnapshot* f = find_family(families, name);
  if (f == nullptr || f->series.size() != 1) return ~std::uint64_t{0};
  return f->series[0].histogram.count;
}

RuntimeOptions telemetry_options(unsigned threads) {
  RuntimeOptions o;
  o.num_threads = threads;
  o.enable_telemetry = true;
  return o;
}

// Runs `n` tasks on `rt` (task i returns false when i % 4 == 1 and throws when
// i % 4 == 2) and waits until the telemetry has recorded all of them and the
// scheduler is idle.
void run_mixed_tasks(Runtime& rt, int n) {
  TelemetrySystem* t = rt.telemetry();
  ASSERT_NE(t, nullptr);
  const auto before = static_cast<std::uint64_t>(t->executed().get());
  for (int i = 0; i < n; ++i) {
    ASSERT_TRUE(rt.scheduler().submit([i] {
      if (i % 4 == 1) return false;
      if (i % 4 == 2) throw std::runtime_error("task failure");
      return true;
    }));
  }
  const auto target = before + static_cast<std::uint64_t>(n);
  rt.scheduler().help_until([&] {
    return static_cast<std::uint64_t>(t->executed().get()) == target && rt.scheduler().running() == 0 &&
           rt.scheduler().pending() == 0;
  });
}

// --- RuntimeOptions ---------------------------------------------------------

TEST(RuntimeOptionsTest, DefaultsAreValid) {
  RuntimeOptions o;
  EXPECT_NO_THROW(o.validate());
  EXPECT_EQ(o.num_threads, 0u);
  EXPECT_FALSE(o.enable_telemetry);
  EXPECT_EQ(o.collect_interval_s, 1.0);
  EXPECT_EQ(o.max_snapshots, 3600u);
}

TEST(RuntimeOptionsTest, ThreadsAboveMaximumNameTheField) {
  RuntimeOptions o;
  o.num_threads = Scheduler::max_threads + 1;
  const std::string msg = message_of<std::invalid_argument>([&] { o.validate(); });
  EXPECT_TRUE(contains(msg, "threads")) << msg;
  EXPECT_TRUE(contains(msg, std::to_string(Scheduler::max_threads + 1))) << msg;
  EXPECT_FALSE(contains(msg, "collect_interval")) << msg;
}

TEST(RuntimeOptionsTest, BadCollectIntervalNamesTheField) {
  for (const double bad : {0.0, -0.0, -1.0, std::numeric_limits<double>::quiet_NaN(),
                           std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity()}) {
    RuntimeOptions o;
    o.collect_interval_s = bad;
    const std::string msg = message_of<std::invalid_argument>([&] { o.validate(); });
    EXPECT_TRUE(contains(msg, "collect_interval")) << "value " << bad << ": " << msg;
  }
  RuntimeOptions ok;
  ok.collect_interval_s = 1e-3;
  EXPECT_NO_THROW(ok.validate());
}

TEST(RuntimeOptionsTest, ZeroMaxSnapshotsNamesTheField) {
  RuntimeOptions o;
  o.max_snapshots = 0;
  const std::string msg = message_of<std::invalid_argument>([&] { o.validate(); });
  EXPECT_TRUE(contains(msg, "max_snapshots")) << msg;
  o.max_snapshots = 1;
  EXPECT_NO_THROW(o.validate());
}

TEST(RuntimeOptionsTest, RuntimeValidatesBeforeTouchingTheRegistry) {
  Registry registry;
  RuntimeOptions o = telemetry_options(1);
  o.max_snapshots = 0;
  const std::string msg = message_of<std::invalid_argument>([&] { Runtime rt(o, registry); });
  EXPECT_TRUE(contains(msg, "max_snapshots")) << msg;
  EXPECT_EQ(registry.size(), 0u) << "a rejected Runtime must not register or replace families";

  o = telemetry_options(Scheduler::max_threads + 1);
  EXPECT_THROW(Runtime(o, registry), std::invalid_argument);
  EXPECT_EQ(registry.size(), 0u);
}

// --- Runtime, telemetry off -----------------------------------------------

TEST(RuntimeTest, TelemetryOffHasNoTelemetryAndRunsTasks) {
  Watchdog dog;
  Registry registry;
  RuntimeOptions o;
  o.num_threads = 2;
  Runtime rt(o, registry);
  EXPECT_EQ(rt.telemetry(), nullptr);
  EXPECT_EQ(registry.size(), 0u) << "telemetry off registers nothing";
  EXPECT_EQ(rt.options().num_threads, 2u);
  EXPECT_EQ(rt.scheduler().num_threads(), 2u);

  constexpr int kTasks = 1000;
  std::atomic<int> ran{0};
  for (int i = 0; i < kTasks; ++i) {
    ASSERT_TRUE(rt.scheduler().submit([&ran, i] {
      ran.fetch_add(1, std::memory_order_relaxed);
      return i % 10 != 0;
    }));
  }
  rt.scheduler().help_until([&] { return rt.scheduler().completed() + rt.scheduler().failed() == kTasks; });
  EXPECT_EQ(ran.load(), kTasks);
  EXPECT_EQ(rt.scheduler().failed(), static_cast<std::uint64_t>(kTasks / 10));
  EXPECT_FALSE(rt.is_shutdown());
  rt.shutdown();
  EXPECT_TRUE(rt.is_shutdown());
  rt.shutdown(false);  // idempotent
  EXPECT_FALSE(rt.scheduler().submit([] { return true; }));
}

TEST(RuntimeTest, ZeroThreadsResolvesToTheSchedulersCount) {
  Registry registry;
  Runtime rt(RuntimeOptions{}, registry);
  EXPECT_GE(rt.options().num_threads, 1u);
  EXPECT_EQ(rt.options().num_threads, rt.scheduler().num_threads());
}

TEST(RuntimeTest, WorkerHooksArePassedThrough) {
  Watchdog dog;
  std::atomic<int> started{0};
  std::atomic<int> stopped{0};
  {
    RuntimeOptions o;
    o.num_threads = 3;
    o.on_worker_start = [&] { started.fetch_add(1); };
    o.on_worker_stop = [&] { stopped.fetch_add(1); };
    Registry registry;
    Runtime rt(o, registry);
    spin_until([&] { return started.load() == 3; }, kSpinPause);
  }
  EXPECT_EQ(started.load(), 3);
  EXPECT_EQ(stopped.load(), 3);
}

// --- Runtime, telemetry on ------------------------------------------------

TEST(RuntimeTelemetryTest, CountsEveryOutcomeInTheRegistry) {
  Watchdog dog;
  Registry registry;
  Runtime rt(telemetry_options(2), registry);
  ASSERT_NE(rt.telemetry(), nullptr);
  EXPECT_FALSE(rt.telemetry()->is_running()) << "collection starts only on start()";
  EXPECT_EQ(rt.telemetry()->collect_interval(), 1.0);
  EXPECT_EQ(rt.telemetry()->max_snapshots(), 3600u);

  constexpr int kTasks = 400;  // a quarter return false, a quarter throw
  run_mixed_tasks(rt, kTasks);

  EXPECT_EQ(value_of(registry, "pyveda_tasks_executed"), kTasks);
  EXPECT_EQ(value_of(registry, "pyveda_tasks_failed"), kTasks / 2);
  EXPECT_EQ(count_of(registry, "pyveda_latency_ms"), static_cast<std::uint64_t>(kTasks));
  EXPECT_EQ(count_of(registry, "pyveda_queue_wait_ms"), static_cast<std::uint64_t>(kTasks));
  EXPECT_EQ(count_of(registry, "pyveda_run_time_ms"), static_cast<std::uint64_t>(kTasks));
  EXPECT_EQ(value_of(registry, "pyveda_tasks_pending"), 0.0);
  EXPECT_EQ(value_of(registry, "pyveda_tasks_running"), 0.0);
  EXPECT_GT(value_of(registry, "pyveda_throughput_tasks_per_sec"), 0.0);
  // The scheduler's own counters agree with the telemetry.
  EXPECT_EQ(rt.scheduler().completed(), static_cast<std::uint64_t>(kTasks / 2));
  EXPECT_EQ(rt.scheduler().failed(), static_cast<std::uint64_t>(kTasks / 2));

  // Latency is queue wait + run time, observation by observation.
  const auto families = registry.collect();
  const auto* latency = find_family(families, "pyveda_latency_ms");
  const auto* wait = find_family(families, "pyveda_queue_wait_ms");
  const auto* run = find_family(families, "pyveda_run_time_ms");
  ASSERT_TRUE(latency && wait && run);
  const double expected_sum = wait->series[0].histogram.sum + run->series[0].histogram.sum;
  EXPECT_NEAR(latency->series[0].histogram.sum, expected_sum, 1e-9 * std::max(1.0, expected_sum));
  EXPECT_EQ(latency->info.type, MetricType::histogram);

  const std::string text = registry.render_prometheus();
  for (const std::string line :
       {"# TYPE pyveda_tasks_executed_total counter", "pyveda_tasks_executed_total 400",
        "# TYPE pyveda_tasks_failed_total counter", "pyveda_tasks_failed_total 200",
        "# TYPE pyveda_tasks_pending gauge", "pyveda_tasks_pending 0", "# TYPE pyveda_tasks_running gauge",
        "pyveda_tasks_running 0", "# TYPE pyveda_latency_ms summary", "pyveda_latency_ms_count 400",
        "# TYPE pyveda_queue_wait_ms summary", "pyveda_queue_wait_ms_count 400",
        "# TYPE pyveda_run_time_ms summary", "pyveda_run_time_ms_count 400",
        "# TYPE pyveda_throughput_tasks_per_sec gauge", "# TYPE pyveda_cpu_utilization_percent gauge",
        "# TYPE pyveda_memory_used_mb gauge", "# TYPE pyveda_process_rss_mb gauge"}) {
    EXPECT_TRUE(has_line(text, line)) << "missing line: " << line << "\n" << text;
  }
  EXPECT_TRUE(contains(text, "pyveda_latency_ms{quantile=\"0.5\"} ")) << text;
}

TEST(RuntimeTelemetryTest, PendingAndRunningAreReadLiveFromTheScheduler) {
  Watchdog dog;
  Registry registry;
  Runtime rt(telemetry_options(1), registry);
  Gate gate;
  std::atomic<bool> blocker_started{false};
  ASSERT_TRUE(rt.scheduler().submit([&] {
    blocker_started.store(true);
    gate.wait();
    return true;
  }));
  spin_until([&] { return blocker_started.load(); }, kSpinPause);

  constexpr int kQueued = 5;
  for (int i = 0; i < kQueued; ++i) ASSERT_TRUE(rt.scheduler().submit([] { return true; }));

  EXPECT_EQ(value_of(registry, "pyveda_tasks_pending"), kQueued);
  EXPECT_EQ(value_of(registry, "pyveda_tasks_running"), 1.0);
  const std::string text = registry.render_prometheus();
  EXPECT_TRUE(has_line(text, "pyveda_tasks_pending 5")) << text;
  EXPECT_TRUE(has_line(text, "pyveda_tasks_running 1")) << text;
  const MetricsSnapshot s = rt.telemetry()->snapshot();
  EXPECT_EQ(s.tasks_pending, static_cast<std::uint64_t>(kQueued));
  EXPECT_EQ(s.tasks_running, 1u);
  EXPECT_EQ(s.tasks_executed, 0u);

  gate.open();
  rt.scheduler().help_until([&] { return rt.telemetry()->executed().get() == kQueued + 1; });
  spin_until([&] { return rt.scheduler().running() == 0; }, kSpinPause);
  EXPECT_EQ(value_of(registry, "pyveda_tasks_pending"), 0.0);
  EXPECT_EQ(value_of(registry, "pyveda_tasks_running"), 0.0);
  EXPECT_EQ(value_of(registry, "pyveda_tasks_executed"), kQueued + 1);
}

TEST(RuntimeTelemetryTest, SecondRuntimeOnTheSameRegistryStartsFromZero) {
  Watchdog dog;
  Registry registry;
  auto first = std::make_unique<Runtime>(telemetry_options(2), registry);
  run_mixed_tasks(*first, 40);
  EXPECT_EQ(value_of(registry, "pyveda_tasks_executed"), 40.0);
  const std::size_t families = registry.size();
  EXPECT_EQ(families, 11u);

  Runtime second(telemetry_options(2), registry);
  EXPECT_EQ(registry.size(), families) << "families are replaced, not duplicated";
  EXPECT_EQ(value_of(registry, "pyveda_tasks_executed"), 0.0);
  EXPECT_EQ(value_of(registry, "pyveda_tasks_failed"), 0.0);
  EXPECT_EQ(count_of(registry, "pyveda_latency_ms"), 0u);

  run_mixed_tasks(second, 8);
  EXPECT_EQ(value_of(registry, "pyveda_tasks_executed"), 8.0);
  EXPECT_EQ(value_of(registry, "pyveda_tasks_failed"), 4.0);

  // The first runtime keeps counting in its own (no longer exported) metrics.
  run_mixed_tasks(*first, 12);
  EXPECT_EQ(first->telemetry()->executed().get(), 52.0);
  EXPECT_EQ(value_of(registry, "pyveda_tasks_executed"), 8.0);

  // Destroying the first runtime leaves the second's families alone and live.
  first.reset();
  EXPECT_EQ(registry.size(), families);
  EXPECT_EQ(value_of(registry, "pyveda_tasks_executed"), 8.0);
  Gate gate;
  std::atomic<bool> started{false};
  ASSERT_TRUE(second.scheduler().submit([&] {
    started.store(true);
    gate.wait();
    return true;
  }));
  spin_until([&] { return started.load(); }, kSpinPause);
  EXPECT_EQ(value_of(registry, "pyveda_tasks_running"), 1.0);
  gate.open();
}

TEST(RuntimeTelemetryTest, FamiliesOutliveTheRuntimeWithFrozenValues) {
  Watchdog dog;
  Registry registry;
  {
    Runtime rt(telemetry_options(2), registry);
    rt.telemetry()->start();
    run_mixed_tasks(rt, 100);
    rt.telemetry()->snapshot();  // sets the system gauges
  }
  // Every read below goes through gauges whose functions pointed into the
  // destroyed TelemetrySystem; under ASan a dangling read would fail here.
  const std::string text = registry.render_prometheus();
  EXPECT_TRUE(has_line(text, "pyveda_tasks_executed_total 100")) << text;
  EXPECT_TRUE(has_line(text, "pyveda_tasks_failed_total 50")) << text;
  EXPECT_TRUE(has_line(text, "pyveda_latency_ms_count 100")) << text;
  EXPECT_TRUE(has_line(text, "pyveda_tasks_pending 0")) << text;
  EXPECT_TRUE(has_line(text, "pyveda_tasks_running 0")) << text;
  EXPECT_GT(value_of(registry, "pyveda_memory_used_mb"), 0.0);

  // A live throughput gauge would decay as its window grows with no new tasks;
  // a frozen one keeps its last value exactly.
  const double throughput = value_of(registry, "pyveda_throughput_tasks_per_sec");
  EXPECT_GT(throughput, 0.0);
  std::this_thread::sleep_for(30ms);
  EXPECT_EQ(value_of(registry, "pyveda_throughput_tasks_per_sec"), throughput);
  EXPECT_EQ(registry.render_prometheus(), registry.render_prometheus());
}

TEST(RuntimeTelemetryTest, ShutdownStopsCollection) {
  Watchdog dog;
  Registry registry;
  RuntimeOptions o = telemetry_options(1);
  o.collect_interval_s = 0.01;
  o.max_snapshots = 7;
  Runtime rt(o, registry);
  EXPECT_EQ(rt.telemetry()->collect_interval(), 0.01);
  EXPECT_EQ(rt.telemetry()->max_snapshots(), 7u);
  rt.telemetry()->start();
  EXPECT_TRUE(rt.telemetry()->is_running());
  spin_until([&] { return !rt.telemetry()->snapshots().empty(); }, kSpinPause);
  rt.shutdown();
  EXPECT_FALSE(rt.telemetry()->is_running());
  EXPECT_TRUE(rt.is_shutdown());
  const std::size_t kept = rt.telemetry()->snapshots().size();
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(rt.telemetry()->snapshots().size(), kept);
  EXPECT_LE(kept, 7u);
}

TEST(RuntimeTelemetryTest, TasksSubmittedFromTasksAreCounted) {
  Watchdog dog;
  Registry registry;
  Runtime rt(telemetry_options(2), registry);
  constexpr int kParents = 20;
  constexpr int kChildren = 10;
  std::atomic<int> children_done{0};
  for (int p = 0; p < kParents; ++p) {
    ASSERT_TRUE(rt.scheduler().submit([&] {
      std::atomic<int> mine{0};
      for (int c = 0; c < kChildren; ++c) {
        rt.scheduler().submit([&] {
          mine.fetch_add(1);
          return true;
        });
      }
      rt.scheduler().help_until([&] { return mine.load() == kChildren; });
      children_done.fetch_add(kChildren);
      return true;
    }));
  }
  const double total = kParents * (kChildren + 1);
  rt.scheduler().help_until([&] { return rt.telemetry()->executed().get() == total; });
  EXPECT_EQ(children_done.load(), kParents * kChildren);
  EXPECT_EQ(value_of(registry, "pyveda_tasks_executed"), total);
  EXPECT_EQ(value_of(registry, "pyveda_tasks_failed"), 0.0);
}

TEST(RuntimeTelemetryTest, ReportedTaskIsCountedBeforeItPublishes) {
  Watchdog dog;
  Registry registry;
  Runtime rt(telemetry_options(1), registry);
  EXPECT_FALSE(Scheduler::report_current_task(true)) << "outside a task";
  // The task reports, then checks it is already counted (as a waiter of its
  // published result would), then returns a value that must be ignored.
  std::atomic<double> counted_before_return{-1.0};
  std::atomic<bool> second_report{true};
  ASSERT_TRUE(rt.scheduler().submit([&] {
    Scheduler::report_current_task(false);
    second_report.store(Scheduler::report_current_task(true));
    counted_before_return.store(rt.telemetry()->executed().get());
    return true;
  }));
  rt.scheduler().help_until([&] { return rt.scheduler().completed() + rt.scheduler().failed() == 1; });
  EXPECT_EQ(counted_before_return.load(), 1.0);
  EXPECT_FALSE(second_report.load()) << "a task reports once";
  EXPECT_EQ(rt.scheduler().failed(), 1u) << "the reported outcome wins over the return value";
  EXPECT_EQ(value_of(registry, "pyveda_tasks_executed"), 1.0);
  EXPECT_EQ(value_of(registry, "pyveda_tasks_failed"), 1.0);
  EXPECT_EQ(count_of(registry, "pyveda_latency_ms"), 1u) << "observed once";
}

TEST(RuntimeTelemetryTest, SkippedTaskIsNeitherExecutedNorLeftRunning) {
  Watchdog dog;
  Registry registry;
  Runtime rt(telemetry_options(1), registry);
  EXPECT_FALSE(Scheduler::skip_current_task()) << "outside a task";
  std::atomic<bool> skipped{false};
  ASSERT_TRUE(rt.scheduler().submit([&skipped] {
    skipped.store(Scheduler::skip_current_task());
    return true;
  }));
  ASSERT_TRUE(rt.scheduler().submit([] { return true; }));
  rt.scheduler().help_until([&] { return rt.scheduler().cancelled() + rt.scheduler().completed() == 2; });
  EXPECT_TRUE(skipped.load());
  EXPECT_EQ(rt.scheduler().cancelled(), 1u);
  EXPECT_EQ(rt.scheduler().completed(), 1u);
  rt.scheduler().help_until([&] { return rt.telemetry()->executed().get() == 1.0; });
  EXPECT_EQ(rt.scheduler().running(), 0u) << "a skipped task must not stay counted as running";
  EXPECT_EQ(rt.scheduler().pending(), 0u);
  EXPECT_EQ(value_of(registry, "pyveda_tasks_running"), 0.0);
  EXPECT_EQ(value_of(registry, "pyveda_tasks_pending"), 0.0);
  EXPECT_EQ(value_of(registry, "pyveda_tasks_executed"), 1.0);
  EXPECT_EQ(count_of(registry, "pyveda_latency_ms"), 1u);

  // pending stays exact around skipped tasks: block the worker, queue three
  // skipping tasks and two plain ones.
  Gate gate;
  std::atomic<bool> blocked{false};
  ASSERT_TRUE(rt.scheduler().submit([&] {
    blocked.store(true);
    gate.wait();
    return true;
  }));
  spin_until([&] { return blocked.load(); }, kSpinPause);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(rt.scheduler().submit([] { return Scheduler::skip_current_task(); }));
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(rt.scheduler().submit([] { return true; }));
  EXPECT_EQ(value_of(registry, "pyveda_tasks_pending"), 5.0);
  EXPECT_EQ(value_of(registry, "pyveda_tasks_running"), 1.0);
  gate.open();
  rt.scheduler().help_until([&] { return rt.scheduler().cancelled() + rt.scheduler().completed() == 8; });
  EXPECT_EQ(rt.scheduler().cancelled(), 4u);
  EXPECT_EQ(rt.scheduler().running(), 0u);
  EXPECT_EQ(rt.scheduler().pending(), 0u);
  EXPECT_EQ(rt.telemetry()->snapshot().tasks_running, 0u);
}

}  // namespace
}  // namespace veda
