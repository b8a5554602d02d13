// veda::detail::RecentWindow: the recent part of a cumulative histogram.
//
// A histogram is cumulative (Prometheus takes rates of it). Its recent
// percentiles come from subtracting an older copy: each recent() call (a
// snapshot, a scrape, a percentile read) leaves a copy of the cumulative
// buckets (a "baseline"), thinned to about 16 per window, and subtracts the
// newest one that is at least one window old. So the window covers at least
// `window` seconds and, when calls are rarer than that, the time since the
// call before. Nothing is added to the cost of an observation.
//
// Thread-safety: recent() may be called from any thread (snapshots and
// scrapes); it locks.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <utility>

#include "veda/detail/fork.hpp"
#include "veda/metrics/histogram.hpp"

namespace veda::detail {

// `later` minus `earlier`, bucket by bucket (the same histogram at two times:
// same scale, counts only grown). min and max are `later`'s (every value of
// the difference lies between them).
HistogramSnapshot histogram_difference(const HistogramSnapshot& later, const HistogramSnapshot& earlier);

class RecentWindow {
 public:
  // Throws std::invalid_argument unless 0 < window_s <= 1e9 (the message
  // names `what`, the setting the window came from).
  RecentWindow(double window_s, std::int64_t start_steady_ns, const char* what = "max_age_seconds");

  // The observations of about the last window: `cumulative` (taken at
  // now_ns) minus the newest baseline at least one window old, or minus the
  // oldest one while none is that old (the start: an empty histogram, so
  // early on the window is the whole lifetime). Records `cumulative` as a
  // baseline.
  HistogramSnapshot recent(const HistogramSnapshot& cumulative, std::int64_t now_ns);

  double window_seconds() const noexcept { return static_cast<double>(window_ns_) / 1e9; }

 private:
  const std::int64_t window_ns_;
  detail::ForkSafeMutex mutex_{detail::kForkLevelSeries};  // never left locked by fork()
  std::deque<std::pair<std::int64_t, HistogramSnapshot>> baselines_;  // oldest first
};

}  // namespace veda::detail
