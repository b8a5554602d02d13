// veda::detail::TickClock: the clock the scheduler times tasks with (queue
// wait and run time), cheaper to read than std::chrono::steady_clock.
//
// On x86-64 Linux whose kernel itself keeps time with the TSC (clocksource
// "tsc": invariant and synchronised across cores, as the kernel checked at
// boot) a reading is one `rdtsc` (about 8 ns here, against about 24 ns for
// steady_clock's vDSO call). Its rate is measured once against steady_clock
// (about 1 ms, on the first calibrate() call) and refined by later
// calibrate() calls from the time elapsed since. Everywhere else a tick is a
// steady_clock nanosecond.
//
// Only differences of readings mean anything (to_ns(later - earlier)); a
// reading is not a point in steady_clock's time.
//
// Thread-safety: now() and to_ns() may run on any thread at any time;
// calibrate() too (it locks).
#pragma once

#include <atomic>
#include <cstdint>

#include "metrics/clock.hpp"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define VEDA_DETAIL_TICK_TSC 1
#include <x86intrin.h>
#endif

namespace veda::detail {

class TickClock {
 public:
  // Chooses the source and measures its rate the first time (about 1 ms when
  // it is the TSC); later calls refine the rate when at least a second has
  // passed since the last refinement. Call before the first now() whose
  // readings are converted (the scheduler does, in its constructor).
  static void calibrate() noexcept;

  // The current reading in ticks.
  static std::int64_t now() noexcept {
#if defined(VEDA_DETAIL_TICK_TSC)
    if (tsc_.load(std::memory_order_relaxed)) return static_cast<std::int64_t>(__rdtsc());
#endif
    return steady_now_ns();
  }

  // `ticks` (a difference of readings) in nanoseconds.
  static std::int64_t to_ns(std::int64_t ticks) noexcept {
#if defined(VEDA_DETAIL_TICK_TSC)
    if (tsc_.load(std::memory_order_relaxed)) {
      return static_cast<std::int64_t>(static_cast<double>(ticks) * ns_per_tick_.load(std::memory_order_relaxed));
    }
#endif
    return ticks;
  }

  // Whether ticks are TSC cycles (false: steady_clock nanoseconds).
  static bool uses_tsc() noexcept { return tsc_.load(std::memory_order_relaxed); }
  // Nanoseconds per tick (1 for steady_clock).
  static double ns_per_tick() noexcept { return uses_tsc() ? ns_per_tick_.load(std::memory_order_relaxed) : 1.0; }

 private:
  static std::atomic<bool> tsc_;
  static std::atomic<double> ns_per_tick_;
};

}  // namespace veda::detail
