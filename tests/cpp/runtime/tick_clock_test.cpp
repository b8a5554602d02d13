// Tests for veda::detail::TickClock (runtime/detail/tick_clock.hpp): the
// source it picks and that its ticks convert to the nanoseconds steady_clock
// measures over the same interval.
#include "runtime/detail/tick_clock.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

namespace veda::detail {
namespace {

std::string kernel_clocksource() {
  std::FILE* f = std::fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
  if (f == nullptr) return "";
  char name[32] = {};
  if (std::fgets(name, sizeof name, f) == nullptr) name[0] = '\0';
  std::fclose(f);
  std::string out(name);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

TEST(TickClock, UsesTheTscExactlyWhenTheKernelTimesWithIt) {
  TickClock::calibrate();
#if defined(VEDA_DETAIL_TICK_TSC) && defined(__linux__)
  EXPECT_EQ(TickClock::uses_tsc(), kernel_clocksource() == "tsc");
#else
  EXPECT_FALSE(TickClock::uses_tsc());
#endif
  if (!TickClock::uses_tsc()) {
    EXPECT_EQ(TickClock::ns_per_tick(), 1.0);
    EXPECT_EQ(TickClock::to_ns(12345), 12345);
  } else {
    EXPECT_GT(TickClock::ns_per_tick(), 0.0);
  }
}

TEST(TickClock, TicksConvertToTheNanosecondsSteadyClockMeasures) {
  TickClock::calibrate();
  for (const int ms : {5, 50}) {
    const std::int64_t steady_before = steady_now_ns();
    const std::int64_t before = TickClock::now();
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    const std::int64_t after = TickClock::now();
    const std::int64_t steady_after = steady_now_ns();
    const double measured = static_cast<double>(TickClock::to_ns(after - before));
    const double expected = static_cast<double>(steady_after - steady_before);
    // The tick interval lies inside the steady one; the rate is right to far
    // better than 2% (what the two readings' order allows on a loaded machine).
    EXPECT_LE(measured, expected * 1.02) << ms << " ms";
    EXPECT_GE(measured, expected * 0.98 - 20000.0) << ms << " ms";
  }
}

TEST(TickClock, ReadingsNeverGoBackOnOneThread) {
  TickClock::calibrate();
  std::int64_t last = TickClock::now();
  for (int i = 0; i < 100000; ++i) {
    const std::int64_t now = TickClock::now();
    ASSERT_GE(now, last);
    last = now;
  }
}

}  // namespace
}  // namespace veda::detail
