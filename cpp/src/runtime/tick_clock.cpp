// The task clock's source and rate (see runtime/detail/tick_clock.hpp).
#include "runtime/detail/tick_clock.hpp"

#include <cstdio>
#include <cstring>
#include <limits>
#include <mutex>

namespace veda::detail {

std::atomic<bool> TickClock::tsc_{false};
std::atomic<double> TickClock::ns_per_tick_{1.0};

namespace {

#if defined(VEDA_DETAIL_TICK_TSC)

// Whether the kernel keeps time with the TSC: then it found the counter
// invariant and synchronised across cores.
bool kernel_times_with_tsc() noexcept {
#if defined(__linux__)
  std::FILE* f = std::fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
  if (f == nullptr) return false;
  char name[32] = {};
  const bool read = std::fgets(name, sizeof name, f) != nullptr;
  std::fclose(f);
  return read && std::strncmp(name, "tsc", 3) == 0 && (name[3] == '\n' || name[3] == '\0');
#else
  return false;
#endif
}

// A (steady ns, tsc) pair read close together: the pair of the tightest of a
// few tries, its steady reading the midpoint of two around the rdtsc.
struct Pair {
  std::int64_t ns;
  std::int64_t tsc;
};

Pair read_pair() noexcept {
  Pair best{0, 0};
  std::int64_t best_gap = std::numeric_limits<std::int64_t>::max();
  for (int i = 0; i < 8; ++i) {
    const std::int64_t before = steady_now_ns();
    const auto tsc = static_cast<std::int64_t>(__rdtsc());
    const std::int64_t after = steady_now_ns();
    if (after - before < best_gap) {
      best_gap = after - before;
      best = Pair{before + (after - before) / 2, tsc};
    }
  }
  return best;
}

struct Calibration {
  std::mutex mutex;
  bool done = false;
  Pair origin{0, 0};
  std::int64_t refined_at_ns = 0;
};

Calibration& calibration() {
  static Calibration* instance = new Calibration;  // never destroyed: threads may read late
  return *instance;
}

#endif

}  // namespace

void TickClock::calibrate() noexcept {
#if defined(VEDA_DETAIL_TICK_TSC)
  Calibration& c = calibration();
  std::lock_guard<std::mutex> lock(c.mutex);
  if (!c.done) {
    c.done = true;
    if (!kernel_times_with_tsc()) return;
    c.origin = read_pair();
    Pair later = read_pair();
    while (later.ns - c.origin.ns < 1000000) later = read_pair();  // about 1 ms
    if (later.tsc <= c.origin.tsc) return;  // a counter that does not advance: keep steady_clock
    ns_per_tick_.store(static_cast<double>(later.ns - c.origin.ns) / static_cast<double>(later.tsc - c.origin.tsc),
                       std::memory_order_relaxed);
    c.refined_at_ns = later.ns;
    tsc_.store(true, std::memory_order_release);
    return;
  }
  if (!tsc_.load(std::memory_order_relaxed)) return;
  const Pair now = read_pair();
  if (now.ns - c.refined_at_ns < 1000000000 || now.tsc <= c.origin.tsc) return;
  // The longer the baseline, the smaller the error of the two readings' jitter.
  ns_per_tick_.store(static_cast<double>(now.ns - c.origin.ns) / static_cast<double>(now.tsc - c.origin.tsc),
                     std::memory_order_relaxed);
  c.refined_at_ns = now.ns;
#endif
}

}  // namespace veda::detail
