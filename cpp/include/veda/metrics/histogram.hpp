// veda::Histogram: a bounded, mergeable base-2 exponential histogram.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "veda/metrics/detail/cells.hpp"
#include "veda/metrics/exemplar.hpp"

namespace veda {

namespace detail {
struct ScaleTables;
class RecentWindow;
}  // namespace detail

// A point-in-time copy of a Histogram, in the layout of an OpenTelemetry
// ExponentialHistogram data point (positive range only): bucket `offset + i`
// covers (base^(offset+i), base^(offset+i+1)] with base = 2^(2^-scale).
struct HistogramSnapshot {
  int scale = 0;
  std::uint64_t zero_count = 0;   // observations equal to 0 (or below zero_threshold)
  double zero_threshold = 0.0;
  std::int32_t offset = 0;        // index of counts[0]
  std::vector<std::uint64_t> counts;
  std::uint64_t count = 0;        // zero_count + sum(counts)
  double sum = 0.0;
  double min = 0.0;               // NaN when count == 0
  double max = 0.0;               // NaN when count == 0
  std::int64_t start_unix_nano = 0;
  // Classic buckets (only for a histogram made with bounds): the bounds in
  // increasing order and, per bound, the observations in (previous bound,
  // bound]; one more count at the end for those above the last bound (+Inf).
  std::vector<double> bounds;
  std::vector<std::uint64_t> bound_counts;

  // Estimated value at percentile p in [0, 100] (nearest rank, reported at the
  // bucket's log-midpoint and clamped to [min, max]). NaN when empty.
  // Throws std::invalid_argument when p is outside [0, 100] or NaN.
  double percentile(double p) const;
  double mean() const noexcept;  // NaN when empty

  // Lower (exclusive) bound of bucket index `index`: base^index.
  double bucket_lower(std::int32_t index) const noexcept;

  // Adds `other`'s observations, bucket for bucket (exactly: the same
  // buckets at the same scale): a histogram of the same family recorded
  // elsewhere, e.g. by another process. The start is the earlier one.
  // Throws std::invalid_argument when the scales or classic bounds differ.
  void merge(const HistogramSnapshot& other);
};

// Records a distribution of non-negative values in exponential buckets.
//
// Buckets follow OpenTelemetry's base-2 exponential layout, so a snapshot can
// be exported losslessly as an OTLP ExponentialHistogram. The relative error of
// any percentile is at most 2^(2^-scale / 2) - 1: 0.54% at the default scale 6.
//
// Memory is fixed at construction: a window of kMaxBuckets counters (32 KiB),
// centred on the first observed value. At scale s the window spans
// kMaxBuckets / 2^s powers of two (64 at scale 6, a factor of 1.8e19). A value
// beyond the window is still counted exactly in count, sum, min and max but
// lands in the window's edge bucket. Zero (and any positive value below
// zero_threshold, the smallest normal double) goes to the zero bucket.
// Negative, NaN and infinite values are rejected: observe() drops and counts
// them in rejected(), observe_checked() throws std::invalid_argument.
//
// Thread-safety: observe() is lock-free and may run from any number of threads
// concurrently with any reader. Each thread keeps count and sum in a cache line
// of its own; bucket counters (exponential and classic) are shared atomics.
// The counters (detail::HistogramCells) live in this object's own memory or
// in a multi-process file (veda/metrics/multiprocess.hpp), at the same cost.
class Histogram {
 public:
  static constexpr int kMinScale = 0;
  static constexpr int kMaxScale = 8;
  static constexpr int kDefaultScale = 6;
  static constexpr std::int32_t kMaxBuckets = detail::HistogramCells::kMaxBuckets;

  // Throws std::invalid_argument if scale is outside [kMinScale, kMaxScale],
  // or if `bounds` breaks a rule of check_bounds(). With bounds, each
  // observation is also counted in the classic bucket (previous bound, bound]
  // it falls in, as Prometheus' classic histograms are.
  // With max_age_s > 0, recent() and the exposed summary quantiles describe
  // about the last max_age_s seconds (see recent()); 0: no window.
  explicit Histogram(int scale = kDefaultScale, std::vector<double> bounds = {}, double max_age_s = 0.0);
  // Records into `shared` (detail::HistogramCells::bytes(bounds.size()),
  // zeroed or a previous run's), which must outlive this object: a series of
  // a multi-process file. `bounds` as check_bounds() returns them. Its
  // exemplars also go to `shared_exemplars` (exemplar_slots(bounds.size())
  // slots of detail::kSharedExemplarBytes), for other processes to read.
  Histogram(detail::HistogramCells* shared, int scale, std::vector<double> bounds, double max_age_s,
            void* shared_exemplars);

  // Exemplar slots of a histogram: one per classic bucket, else kNativeExemplars.
  static std::size_t exemplar_slots(std::size_t classic_bounds) noexcept {
    return classic_bounds == 0 ? kNativeExemplars : classic_bounds + 1;
  }

  // The snapshot of cells recorded by a histogram of this scale and these
  // (checked) classic bounds, in this process or another (see snapshot()).
  static HistogramSnapshot read(const detail::HistogramCells& cells, int scale, const std::vector<double>& bounds,
                                std::int64_t start_unix_nano);

  // Checks classic bucket bounds and returns them without a trailing +Inf
  // (which every classic histogram has implicitly). Throws
  // std::invalid_argument naming the rule broken: at least one finite bound;
  // no NaN or -Inf, +Inf only as the last; strictly increasing (no bound twice).
  static std::vector<double> check_bounds(std::vector<double> bounds);
  ~Histogram();
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  void observe(double value) noexcept {
    if (!valid_value(value)) {
      rejected_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    record(value);
  }

  // Like observe(), but throws std::invalid_argument for a value observe() would reject.
  void observe_checked(double value);

  // observe(value) that also keeps `exemplar` (its value set to `value`, its
  // time to now when 0): with classic buckets as the exemplar of the bucket
  // the value falls in, without them as one of kNativeExemplars kept in
  // turn. The _checked form also throws for labels check_exemplar_labels()
  // refuses, recording nothing.
  static constexpr std::size_t kNativeExemplars = 4;
  void observe(double value, Exemplar exemplar);
  void observe_checked(double value, Exemplar exemplar);

  // The exemplars kept: (classic bucket index, exemplar) with classic
  // buckets (the last index is +Inf), (slot, exemplar) without them.
  std::vector<std::pair<std::int32_t, Exemplar>> exemplars() const;

  HistogramSnapshot snapshot() const;

  // Only for a histogram made with max_age_s > 0: the observations of about
  // the last max_age_s seconds, as the snapshot minus a copy from at least
  // that long ago. Copies are kept at each call (thinned to about 16 per
  // window), so with calls rarer than the window it covers the time since
  // the previous call; early on, the whole lifetime. Without a window, the
  // snapshot. The second form takes a snapshot() the caller already has.
  HistogramSnapshot recent() const { return recent(snapshot()); }
  HistogramSnapshot recent(const HistogramSnapshot& now) const;
  double max_age_seconds() const noexcept { return max_age_s_; }

  // Convenience readers; each takes its own consistent-enough view.
  double percentile(double p) const { return snapshot().percentile(p); }
  double mean() const noexcept;
  std::uint64_t count() const noexcept;
  double sum() const noexcept;
  double min() const noexcept;  // NaN when empty
  double max() const noexcept;  // NaN when empty

  int scale() const noexcept { return scale_; }
  const std::vector<double>& bounds() const noexcept { return bounds_; }
  std::uint64_t rejected() const noexcept { return rejected_.load(std::memory_order_relaxed); }
  std::int64_t created_unix_nano() const noexcept { return created_ns_; }

  // Bucket index of a positive normal value at `scale`:
  // the i with base^i < value <= base^(i+1).
  static std::int32_t bucket_index(double value, int scale) noexcept;

  static bool valid_value(double value) noexcept {
    return value >= 0.0 && value <= 1.7976931348623157e308;  // false for NaN
  }

 private:
  // Records a valid value; returns its classic bucket index (bounds().size()
  // for +Inf, and for a histogram without classic buckets).
  std::size_t record(double value) noexcept;
  std::int32_t window_origin(std::int32_t index) noexcept;

  const int scale_;
  const std::vector<double> bounds_;
  const double max_age_s_;
  // Created with the first exemplar (call_once), then published for readers.
  std::unique_ptr<detail::ExemplarSlots> exemplar_storage_;
  std::atomic<detail::ExemplarSlots*> exemplars_{nullptr};
  std::once_flag exemplars_once_;
  std::atomic<std::uint32_t> next_exemplar_{0};
  void* const shared_exemplars_;
  std::unique_ptr<detail::RecentWindow> window_;
  const detail::ScaleTables* tables_;
  detail::OwnedCells own_;  // null when the cells are shared
  detail::HistogramCells* cells_;
  std::atomic<std::uint64_t>* bound_counts_;  // bounds_.size() + 1 of them, used only with bounds
  std::atomic<std::uint64_t>* buckets_;       // kMaxBuckets
  std::atomic<std::uint64_t> rejected_{0};
  std::int64_t created_ns_;
};

}  // namespace veda
