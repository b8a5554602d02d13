// Tests for the recent-window latency (metrics/recent_window.hpp) and the
// snapshots and summary quantiles built on it.
#include "metrics/recent_window.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include "veda/metrics/registry.hpp"
#include "veda/metrics/text_format.hpp"
#include "veda/telemetry/telemetry.hpp"

namespace veda {
namespace {

constexpr std::int64_t kSecond = 1000000000;

TEST(HistogramDifference, SubtractsBucketByBucket) {
  Histogram h(3);
  for (const double v : {1.0, 2.0, 0.0}) h.observe(v);
  const HistogramSnapshot before = h.snapshot();
  for (const double v : {2.0, 64.0, 0.0, 0.0}) h.observe(v);
  const HistogramSnapshot d = detail::histogram_difference(h.snapshot(), before);
  EXPECT_EQ(d.count, 4u);
  EXPECT_EQ(d.zero_count, 2u);
  EXPECT_DOUBLE_EQ(d.sum, 66.0);
  std::uint64_t in_buckets = 0;
  for (const auto c : d.counts) in_buckets += c;
  EXPECT_EQ(in_buckets, 2u);
  EXPECT_NE(d.counts.front(), 0u);  // trimmed at both ends
  EXPECT_NE(d.counts.back(), 0u);
  EXPECT_EQ(d.offset, Histogram::bucket_index(2.0, 3));
  EXPECT_NEAR(d.percentile(100), 64.0, 64.0 * 0.1);
}

TEST(RecentWindow, EarlyOnTheWindowIsTheLifetimeThenOnlyTheRecentPart) {
  detail::RecentWindow window(10.0, 0);
  Histogram h;
  for (int i = 0; i < 1000; ++i) h.observe(1.0);
  EXPECT_EQ(window.recent(h.snapshot(), 2 * kSecond).count, 1000u);  // younger than a window: everything
  EXPECT_EQ(window.recent(h.snapshot(), 4 * kSecond).count, 1000u);
  for (int i = 0; i < 10; ++i) h.observe(500.0);
  // At 15 s the newest baseline at least 10 s old is the one from 4 s (taken after the fast ones).
  const HistogramSnapshot recent = window.recent(h.snapshot(), 15 * kSecond);
  EXPECT_EQ(recent.count, 10u);
  EXPECT_NEAR(recent.percentile(50), 500.0, 5.0);
  // Idle for a whole window: nothing recent.
  EXPECT_EQ(window.recent(h.snapshot(), 40 * kSecond).count, 0u);
  EXPECT_THROW(detail::RecentWindow(0.0, 0), std::invalid_argument);
  try {
    detail::RecentWindow(-1.0, 0, "latency_window");
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "latency_window must be a number of seconds in (0, 1e9]");
  }
  EXPECT_THROW(detail::RecentWindow(std::nan(""), 0), std::invalid_argument);
}

// A million fast tasks, then a few slow ones: the snapshot's p99 and the
// summary quantiles on /metrics show the slow ones within one window, while
// the cumulative count and sum keep the lifetime.
TEST(TelemetryRecentWindow, SlowTasksShowWithinOneWindow) {
  Registry registry;
  TelemetryOptions options;
  options.latency_window_s = 0.2;
  TelemetrySystem telemetry(options, registry);
  for (int i = 0; i < 1000000; ++i) telemetry.on_task_end(100000, 900000, true);  // 1 ms
  const MetricsSnapshot fast = telemetry.snapshot();
  EXPECT_NEAR(fast.p99_latency_ms, 1.0, 0.01);
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  for (int i = 0; i < 50; ++i) telemetry.on_task_end(0, 150000000, true);  // 150 ms
  const MetricsSnapshot slow = telemetry.snapshot();
  EXPECT_NEAR(slow.p99_latency_ms, 150.0, 1.5);
  EXPECT_NEAR(slow.p50_latency_ms, 150.0, 1.5);
  EXPECT_NEAR(slow.avg_latency_ms, 150.0, 0.01);
  EXPECT_EQ(slow.latency_count, 1000050u);  // the lifetime
  EXPECT_NEAR(slow.latency_sum_ms, 1000000.0 + 50 * 150.0, 1e-3);
  const std::string text = registry.render_prometheus();
  const std::string p99 = "pyveda_latency_ms{quantile=\"0.99\"} ";
  const auto at = text.find(p99);
  ASSERT_NE(at, std::string::npos);
  EXPECT_NEAR(std::stod(text.substr(at + p99.size())), 150.0, 1.5);
}

TEST(HistogramRecent, AWindowedHistogramExposesRecentQuantiles) {
  Registry registry;
  Histogram& h = *registry.histogram("w_ms", "W.", {}, Histogram::kDefaultScale, {}, 0.2)
                      ->labels(std::vector<std::string>{});
  EXPECT_EQ(h.max_age_seconds(), 0.2);
  for (int i = 0; i < 10000; ++i) h.observe(1.0);
  EXPECT_EQ(h.recent().count, 10000u);  // younger than the window: everything
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  for (int i = 0; i < 10; ++i) h.observe(300.0);
  EXPECT_NEAR(h.recent().percentile(50), 300.0, 3.0);
  EXPECT_NEAR(h.percentile(50), 1.0, 0.01);  // the lifetime view is unchanged
  const std::string text = registry.render_prometheus();
  EXPECT_NE(text.find("w_ms{quantile=\"0.5\"} 29"), std::string::npos) << text;
  EXPECT_NE(text.find("w_ms_count 10010\n"), std::string::npos);
  // Re-registering must give the same window.
  EXPECT_THROW(registry.histogram("w_ms", "W.", {}, Histogram::kDefaultScale, {}, 1.0), std::invalid_argument);
  EXPECT_THROW(registry.histogram("w2_ms", "W.", {}, Histogram::kDefaultScale, {}, -1.0), std::invalid_argument);
  // Without a window, recent() is the snapshot.
  Histogram plain;
  plain.observe(2.0);
  EXPECT_EQ(plain.recent().count, 1u);
}

}  // namespace
}  // namespace veda
