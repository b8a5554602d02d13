// The recent part of a cumulative histogram (see latency_window.hpp).
#include "metrics/recent_window.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace veda::detail {

HistogramSnapshot histogram_difference(const HistogramSnapshot& later, const HistogramSnapshot& earlier) {
  HistogramSnapshot d;
  d.scale = later.scale;
  d.zero_threshold = later.zero_threshold;
  d.start_unix_nano = later.start_unix_nano;
  d.min = later.min;
  d.max = later.max;
  auto minus = [](std::uint64_t a, std::uint64_t b) { return a > b ? a - b : 0; };
  d.zero_count = minus(later.zero_count, earlier.zero_count);
  d.count = minus(later.count, earlier.count);
  d.sum = std::max(0.0, later.sum - earlier.sum);
  d.offset = later.offset;
  d.counts = later.counts;
  if (earlier.scale == later.scale || earlier.counts.empty()) {
    for (std::size_t i = 0; i < earlier.counts.size(); ++i) {
      const std::int64_t at = static_cast<std::int64_t>(earlier.offset) + static_cast<std::int64_t>(i) - later.offset;
      if (at < 0 || at >= static_cast<std::int64_t>(d.counts.size())) continue;
      auto& c = d.counts[static_cast<std::size_t>(at)];
      c = minus(c, earlier.counts[i]);
    }
  }
  if (!later.bound_counts.empty() && later.bound_counts.size() == earlier.bound_counts.size()) {
    d.bounds = later.bounds;
    d.bound_counts = later.bound_counts;
    for (std::size_t i = 0; i < d.bound_counts.size(); ++i) d.bound_counts[i] = minus(d.bound_counts[i], earlier.bound_counts[i]);
  }
  // Trim empty buckets at either end, as Histogram::snapshot() does.
  std::size_t lo = 0, hi = d.counts.size();
  while (lo < hi && d.counts[lo] == 0) ++lo;
  while (hi > lo && d.counts[hi - 1] == 0) --hi;
  d.counts = std::vector<std::uint64_t>(d.counts.begin() + static_cast<std::ptrdiff_t>(lo),
                                        d.counts.begin() + static_cast<std::ptrdiff_t>(hi));
  d.offset += static_cast<std::int32_t>(lo);
  if (d.count == 0) d.min = d.max = std::nan("");
  return d;
}

RecentWindow::RecentWindow(double window_s, std::int64_t start_steady_ns, const char* what)
    : window_ns_(static_cast<std::int64_t>(window_s * 1e9)) {
  if (!(window_s > 0.0) || !(window_s <= 1e9)) {
    throw std::invalid_argument(std::string(what) + " must be a number of seconds in (0, 1e9]");
  }
  HistogramSnapshot empty;
  empty.min = empty.max = std::nan("");
  baselines_.emplace_back(start_steady_ns, std::move(empty));
}

HistogramSnapshot RecentWindow::recent(const HistogramSnapshot& cumulative, std::int64_t now_ns) {
  std::lock_guard<ForkSafeMutex> lock(mutex_);
  // The newest baseline at least one window old; the ones before it are no longer needed.
  std::size_t chosen = 0;
  for (std::size_t i = baselines_.size(); i-- > 0;) {
    if (now_ns - baselines_[i].first >= window_ns_) {
      chosen = i;
      break;
    }
  }
  baselines_.erase(baselines_.begin(), baselines_.begin() + static_cast<std::ptrdiff_t>(chosen));
  HistogramSnapshot out = histogram_difference(cumulative, baselines_.front().second);
  // Every call leaves a baseline, so the next window starts no earlier than
  // needed; a middle one goes again when its neighbours are within window/8
  // of each other, which keeps about 16 per window whatever the call rate.
  baselines_.emplace_back(now_ns, cumulative);
  const std::size_t n = baselines_.size();
  if (n >= 3 && baselines_[n - 1].first - baselines_[n - 3].first < window_ns_ / 8) {
    baselines_.erase(baselines_.begin() + static_cast<std::ptrdiff_t>(n - 2));
  }
  return out;
}

}  // namespace veda::detail
