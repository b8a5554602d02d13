// veda::Family<M>: one named metric and its labelled series.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "veda/detail/fork.hpp"
#include "veda/metrics/counter.hpp"
#include "veda/metrics/detail/series_store.hpp"
#include "veda/metrics/gauge.hpp"
#include "veda/metrics/histogram.hpp"

namespace veda {

enum class MetricType { counter, gauge, histogram };

// "counter", "gauge" or "histogram".
const char* to_string(MetricType type) noexcept;

// How the multi-process aggregate (veda/metrics/multiprocess.hpp) combines a
// gauge's values across processes, as prometheus_client's multiprocess_mode:
// all (one series per process, with a "pid" label), sum, min, max,
// mostrecent (the value changed last); the live* forms count only processes
// still running. A dead process keeps its share under the other forms.
enum class GaugeMode { all, liveall, min, livemin, max, livemax, sum, livesum, mostrecent, livemostrecent };

// "all", "liveall", ..., "livemostrecent".
const char* to_string(GaugeMode mode) noexcept;
// The mode called `name`; throws std::invalid_argument naming the modes otherwise.
GaugeMode gauge_mode_from(std::string_view name);
// Whether only live processes count (the live* modes).
bool live_only(GaugeMode mode) noexcept;
// Whether the mode keeps the time of each change (the mostrecent modes).
inline bool stamped(GaugeMode mode) noexcept {
  return mode == GaugeMode::mostrecent || mode == GaugeMode::livemostrecent;
}

// Name, help and label names shared by every series of a metric.
struct FamilyInfo {
  std::string name;  // as registered; counters drop a trailing "_total"
  std::string help;
  std::vector<std::string> label_names;
  MetricType type = MetricType::counter;
  int scale = Histogram::kDefaultScale;  // histograms only
  // Histograms only: classic bucket bounds (checked, without +Inf); empty for
  // none, when the text formats show the histogram as a summary.
  std::vector<double> buckets;
  // Histograms only: seconds of the recent window behind the summary
  // quantiles (Histogram::recent()); 0 for the whole lifetime.
  double max_age_s = 0.0;
  // A summary (Registry::summary()): a histogram that every format exposes
  // as a summary with exactly `quantiles` (increasing, in [0, 1]; none for
  // only count and sum), never as a histogram.
  bool summary = false;
  std::vector<double> quantiles;
  // The unit OpenMetrics declares ("seconds", "bytes"; empty for none). The
  // name ends in "_<unit>" (Registry checks it).
  std::string unit;
  // Gauges only: how the multi-process aggregate combines processes.
  GaugeMode multiprocess_mode = GaugeMode::all;
  // Gauges only: the value is a sum moved up and down (an OpenTelemetry
  // UpDownCounter), which OTLP carries as a non-monotonic Sum, not a Gauge.
  bool up_down = false;
};

class FamilyBase {
 public:
  // The family's series record into `store` (a multi-process file) when
  // given; by default into the store of this process's multi-process mode,
  // if it is on (detail::shared_series_store()).
  explicit FamilyBase(FamilyInfo info, std::shared_ptr<detail::SeriesStore> store = detail::shared_series_store())
      : info_(std::move(info)), store_(std::move(store)) {}
  virtual ~FamilyBase() = default;
  FamilyBase(const FamilyBase&) = delete;
  FamilyBase& operator=(const FamilyBase&) = delete;

  const FamilyInfo& info() const noexcept { return info_; }
  virtual std::size_t size() const = 0;

  // Whether the series record into a multi-process file, which the
  // multi-process aggregate reads (rather than this object).
  bool shared() const noexcept { return store_ != nullptr && !retired_.load(std::memory_order_acquire); }

  // Takes the family's series out of the multi-process aggregate (the family
  // left its registry); later series record in this process only.
  virtual void retire() = 0;

 protected:
  FamilyInfo info_;
  const std::shared_ptr<detail::SeriesStore> store_;
  std::atomic<bool> retired_{false};
};

namespace detail {
// A series in a multi-process file: its cells (veda/metrics/detail/cells.hpp),
// then, on a cache line, its exemplar slots (kSharedExemplarBytes each; a
// counter has one, a histogram Histogram::exemplar_slots(), a gauge none).
inline std::size_t shared_cell_bytes(const FamilyInfo& info) noexcept {
  switch (info.type) {
    case MetricType::counter:
      return sizeof(CounterCells);
    case MetricType::gauge:
      return sizeof(GaugeCells);
    case MetricType::histogram:
      return HistogramCells::bytes(info.buckets.size());
  }
  return 0;
}
inline std::size_t shared_exemplar_slots(const FamilyInfo& info) noexcept {
  switch (info.type) {
    case MetricType::counter:
      return 1;
    case MetricType::gauge:
      return 0;
    case MetricType::histogram:
      return Histogram::exemplar_slots(info.buckets.size());
  }
  return 0;
}
inline std::size_t shared_exemplar_offset(const FamilyInfo& info) noexcept {
  return (shared_cell_bytes(info) + kCacheLine - 1) / kCacheLine * kCacheLine;
}
inline std::size_t shared_series_bytes(const FamilyInfo& info) noexcept {
  return shared_exemplar_offset(info) + shared_exemplar_slots(info) * kSharedExemplarBytes;
}

// Whether a and b define the same metric, help aside.
bool same_definition(const FamilyInfo& a, const FamilyInfo& b) noexcept;
// "gauge with label names ('a', 'b')", "histogram with ..., scale 6, buckets (...)": for error messages.
std::string describe(const FamilyInfo& info);
}  // namespace detail

namespace detail {
// Throws std::invalid_argument unless `values` has one entry per label name.
void check_label_count(const FamilyInfo& info, std::size_t given);
// Joins label values into one map key; unambiguous for any byte content.
std::string label_key(const std::vector<std::string>& values);
// Maps name=value pairs onto the family's label order; throws std::invalid_argument
// on an unknown, missing or repeated name.
std::vector<std::string> order_labels(const FamilyInfo& info,
                                      const std::vector<std::pair<std::string, std::string>>& pairs);
[[noreturn]] void throw_labelled_access(const FamilyInfo& info);
[[noreturn]] void throw_unlabelled_remove(const FamilyInfo& info);
[[noreturn]] void throw_too_many_series(const FamilyInfo& info, std::size_t limit);
}  // namespace detail

// The series of one metric, keyed by label values.
//
// Thread-safety: all methods may be called concurrently. labels() takes a
// shared lock to find an existing series and an exclusive lock to add one;
// keep the returned handle to record without any lookup (the handle stays
// valid after remove() or clear(), it is just no longer exported).
// Cardinality is capped at max_series(); past it labels() throws
// std::length_error rather than grow without bound.
template <class M>
class Family final : public FamilyBase {
 public:
  static constexpr std::size_t kDefaultMaxSeries = 100000;

  explicit Family(FamilyInfo info, std::size_t max_series = kDefaultMaxSeries,
                  std::shared_ptr<detail::SeriesStore> store = detail::shared_series_store())
      : FamilyBase(std::move(info), std::move(store)), max_series_(max_series) {
    if (info_.label_names.empty()) unlabelled_ = add({});
  }

  // The series for these label values (in label-name order), created on first use.
  std::shared_ptr<M> labels(const std::vector<std::string>& values) {
    detail::check_label_count(info_, values.size());
    std::string key = detail::label_key(values);
    {
      std::shared_lock lock(mutex_);
      auto it = index_.find(key);
      if (it != index_.end()) return series_[it->second].metric;
    }
    // Made before the exclusive lock: a new series joins the fork-safe lock
    // list and may write to a multi-process file, neither of which may
    // happen under a fork-safe lock (veda/detail/fork.hpp).
    std::uint64_t record = 0;
    std::shared_ptr<M> metric = make(values, record);
    std::unique_lock lock(mutex_);
    auto it = index_.find(key);
    if (it == index_.end() && index_.size() < max_series_) {
      insert_locked(std::move(key), values, metric, record);
      return metric;
    }
    // Another thread made it meanwhile, or the family is full: this one goes unused.
    if (record != 0) store_->retire(record);
    std::shared_ptr<M> existing = it != index_.end() ? series_[it->second].metric : nullptr;
    lock.unlock();
    metric.reset();
    if (!existing) throw_too_many();
    return existing;
  }

  // The series for name=value pairs, in any order.
  std::shared_ptr<M> labels(const std::vector<std::pair<std::string, std::string>>& pairs) {
    return labels(detail::order_labels(info_, pairs));
  }

  // Brace-list forms. Without them labels({"GET", "200"}) is ambiguous between
  // the two vector overloads. Name=value pairs in nested braces stay ambiguous
  // on purpose (a pair of literals also converts to one std::string through its
  // iterator-range constructor); spell their type instead.
  std::shared_ptr<M> labels(std::initializer_list<std::string> values) {
    return labels(std::vector<std::string>(values));
  }
  std::shared_ptr<M> labels(std::initializer_list<std::pair<std::string, std::string>> pairs) {
    return labels(std::vector<std::pair<std::string, std::string>>(pairs));
  }

  // The only series of a family without label names; throws std::invalid_argument
  // (naming the label names) when the family has labels.
  M& unlabelled() const;

  // Stops exporting one series; returns false if it did not exist. The one
  // series of an unlabelled family cannot be removed (std::invalid_argument).
  bool remove(const std::vector<std::string>& values) {
    if (info_.label_names.empty()) detail::throw_unlabelled_remove(info_);
    detail::check_label_count(info_, values.size());
    std::shared_ptr<M> gone;  // dropped after the lock (a series' locks leave the fork list)
    std::unique_lock lock(mutex_);
    auto it = index_.find(detail::label_key(values));
    if (it == index_.end()) return false;
    // O(1): the slot becomes a hole that for_each() skips; the holes are
    // squeezed out (keeping creation order) once they outnumber the series.
    Series& slot = series_[it->second];
    if (slot.record != 0) store_->retire(slot.record);
    gone = std::move(slot.metric);
    slot.label_values.clear();
    index_.erase(it);
    ++holes_;
    if (holes_ > index_.size()) compact_locked();
    generation_.fetch_add(1, std::memory_order_release);
    return true;
  }

  // Removes every labelled series (an unlabelled family keeps its one series).
  void clear() {
    if (info_.label_names.empty()) return;
    std::vector<Series> gone;  // dropped after the lock, as in remove()
    std::unique_lock lock(mutex_);
    for (const Series& s : series_) {
      if (s.record != 0) store_->retire(s.record);
    }
    index_.clear();
    gone.swap(series_);
    holes_ = 0;
    generation_.fetch_add(1, std::memory_order_release);
  }

  void retire() override {
    if (store_ == nullptr) return;
    std::unique_lock lock(mutex_);
    retired_.store(true, std::memory_order_release);
    for (Series& s : series_) {
      if (s.record != 0) store_->retire(s.record);
      s.record = 0;
    }
  }

  // Changes whenever a series stops being exported (remove() or clear()): a
  // cache of labels() handles kept outside the family is stale once it moves.
  std::uint64_t generation() const noexcept { return generation_.load(std::memory_order_acquire); }

  std::size_t size() const override {
    std::shared_lock lock(mutex_);
    return index_.size();
  }
  std::size_t max_series() const noexcept { return max_series_; }

  // Calls f(label_values, metric) for each series in creation order, under a shared lock.
  template <class F>
  void for_each(F&& f) const {
    std::shared_lock lock(mutex_);
    for (const Series& s : series_) {
      if (s.metric) f(s.label_values, *s.metric);
    }
  }

 private:
  struct Series {
    std::vector<std::string> label_values;
    std::shared_ptr<M> metric;
    std::uint64_t record = 0;  // its record in the multi-process file; 0: none
  };

  // The unlabelled family's one series, made by the constructor (no lock is held yet).
  std::shared_ptr<M> add(const std::vector<std::string>& values) {
    std::uint64_t record = 0;
    std::shared_ptr<M> metric = make(values, record);
    std::unique_lock lock(mutex_);
    insert_locked(detail::label_key(values), values, metric, record);
    return metric;
  }

  void insert_locked(std::string key, const std::vector<std::string>& values, const std::shared_ptr<M>& metric,
                     std::uint64_t record) {
    series_.reserve(series_.size() + 1);
    index_.emplace(std::move(key), series_.size());
    series_.push_back(Series{values, metric, record});
  }

  // Drops the holes remove() left, keeping creation order, and renumbers the index.
  void compact_locked() {
    std::size_t out = 0;
    for (std::size_t in = 0; in < series_.size(); ++in) {
      if (!series_[in].metric) continue;
      if (out != in) series_[out] = std::move(series_[in]);
      index_[detail::label_key(series_[out].label_values)] = out;
      ++out;
    }
    series_.resize(out);
    holes_ = 0;
  }

  std::shared_ptr<M> make(const std::vector<std::string>& values, std::uint64_t& record) const {
    if (shared()) {
      auto cells = store_->allocate(info_, values, detail::shared_series_bytes(info_));
      record = cells.record;
      void* exemplars = static_cast<char*>(cells.memory) + detail::shared_exemplar_offset(info_);
      if constexpr (std::is_same_v<M, Histogram>) {
        return std::make_shared<Histogram>(detail::HistogramCells::construct(cells.memory, info_.buckets.size(), true),
                                           info_.scale, info_.buckets, info_.max_age_s, exemplars);
      } else if constexpr (std::is_same_v<M, Gauge>) {
        return std::make_shared<Gauge>(new (cells.memory) detail::GaugeCells, stamped(info_.multiprocess_mode));
      } else {
        return std::make_shared<Counter>(new (cells.memory) detail::CounterCells, exemplars);
      }
    }
    if constexpr (std::is_same_v<M, Histogram>) {
      return std::make_shared<Histogram>(info_.scale, info_.buckets, info_.max_age_s);
    } else {
      return std::make_shared<M>();
    }
  }

  [[noreturn]] void throw_too_many() const;

  const std::size_t max_series_;
  std::atomic<std::uint64_t> generation_{0};
  mutable detail::ForkSafe<std::shared_mutex> mutex_{detail::kForkLevelFamily};  // never left locked by fork()
  std::unordered_map<std::string, std::size_t> index_;
  std::vector<Series> series_;  // creation order; removed series leave holes (null metric)
  std::size_t holes_ = 0;
  std::shared_ptr<M> unlabelled_;
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

template <class M>
M& Family<M>::unlabelled() const {
  if (!unlabelled_) detail::throw_labelled_access(info_);
  return *unlabelled_;
}

template <class M>
void Family<M>::throw_too_many() const {
  detail::throw_too_many_series(info_, max_series_);
}

}  // namespace veda
