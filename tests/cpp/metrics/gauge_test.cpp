// Tests for veda::Gauge: set/inc/dec, special values and contention.
#include "veda/metrics/gauge.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <thread>

#include "support/test_support.hpp"

namespace {

using veda::Gauge;
using veda::test::run_threads;

TEST(Gauge, StartsAtZero) {
  Gauge g;
  EXPECT_EQ(g.get(), 0.0);
  EXPECT_GT(g.created_unix_nano(), 0);
}

TEST(Gauge, SetIncDec) {
  Gauge g;
  g.set(10);
  EXPECT_EQ(g.get(), 10.0);
  g.inc();
  EXPECT_EQ(g.get(), 11.0);
  g.inc(2.5);
  EXPECT_EQ(g.get(), 13.5);
  g.dec();
  EXPECT_EQ(g.get(), 12.5);
  g.dec(20);
  EXPECT_EQ(g.get(), -7.5);
  g.inc(-0.5);  // a negative increment is a decrement
  EXPECT_EQ(g.get(), -8.0);
  g.set(-3);
  EXPECT_EQ(g.get(), -3.0);
}

TEST(Gauge, AcceptsSpecialValues) {
  Gauge g;
  g.set(std::numeric_limits<double>::quiet_NaN());
  EXPECT_TRUE(std::isnan(g.get()));
  g.set(std::numeric_limits<double>::infinity());
  EXPECT_EQ(g.get(), std::numeric_limits<double>::infinity());
  g.set(-std::numeric_limits<double>::infinity());
  EXPECT_EQ(g.get(), -std::numeric_limits<double>::infinity());
  g.set(0);
  g.inc(std::numeric_limits<double>::quiet_NaN());
  EXPECT_TRUE(std::isnan(g.get()));
}

TEST(Gauge, SetToCurrentTime) {
  Gauge g;
  const double before =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  g.set_to_current_time();
  const double after =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_GE(g.get(), before - 1e-3);
  EXPECT_LE(g.get(), after + 1e-3);
}

class GaugeThreads : public ::testing::TestWithParam<unsigned> {};

TEST_P(GaugeThreads, IntegerIncrementsAreExact) {
  const unsigned threads = GetParam();
  constexpr int kPerThread = 100000;
  Gauge up;
  Gauge updown;
  updown.set(1000);
  run_threads(threads, [&](unsigned t) {
    for (int i = 0; i < kPerThread; ++i) {
      up.inc();
      // Half the threads go up by 2, the other half down by 2: net zero for even counts.
      if (t % 2 == 0) {
        updown.inc(2);
      } else {
        updown.dec(2);
      }
    }
  });
  EXPECT_EQ(up.get(), static_cast<double>(threads) * kPerThread);
  const double net = (threads % 2 == 0) ? 0.0 : 2.0 * kPerThread;
  EXPECT_EQ(updown.get(), 1000.0 + net);
}

INSTANTIATE_TEST_SUITE_P(Sweep, GaugeThreads, ::testing::Values(1u, 2u, 4u, 8u, 20u),
                         [](const auto& param_info) { return std::to_string(param_info.param) + "threads"; });

TEST(Gauge, ConcurrentSetLeavesOneOfTheWrittenValues) {
  Gauge g;
  run_threads(4, [&](unsigned t) {
    for (int i = 0; i < 100000; ++i) g.set(static_cast<double>(t));
  });
  const double v = g.get();
  EXPECT_TRUE(v == 0.0 || v == 1.0 || v == 2.0 || v == 3.0) << v;
}

}  // namespace

TEST(Gauge, FunctionGauge) {
  veda::Gauge g;
  g.set(3);
  std::atomic<int> calls{0};
  g.set_function([&] { return static_cast<double>(++calls); });
  EXPECT_EQ(g.get(), 1.0);
  EXPECT_EQ(g.get(), 2.0);
  g.set_function([]() -> double { throw std::runtime_error("boom"); });
  EXPECT_TRUE(std::isnan(g.get()));
  g.set_function({});
  EXPECT_EQ(g.get(), 3.0);  // back to the stored value
}

TEST(Gauge, FunctionReplacedWhileRead) {
  veda::Gauge g;
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    while (!stop.load()) {
      const double v = g.get();
      EXPECT_TRUE(v == 0.0 || v == 1.0 || v == 2.0) << v;
    }
  });
  for (int i = 0; i < 2000; ++i) {
    g.set_function([] { return 1.0; });
    g.set_function([] { return 2.0; });
    g.set_function({});
  }
  stop.store(true);
  reader.join();
}
