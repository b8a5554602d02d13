#include "veda/metrics/histogram.hpp"

#include <algorithm>
#include <array>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <string>

#include "metrics/clock.hpp"
#include "metrics/recent_window.hpp"
#include "veda/metrics/text_format.hpp"

namespace veda {
namespace detail {

// Lookup tables that turn a double's mantissa into its sub-bucket within an
// octave without calling log2. The mantissa range [1, 2) is cut into 16x more
// equal cells than there are buckets per octave, so each cell holds at most one
// bucket boundary: the table gives the bucket at the cell's start and one
// comparison with the next boundary settles the rest.
struct ScaleTables {
  int scale = 0;
  int per_octave = 0;         // 2^scale
  int cell_shift = 0;         // 52 - cell bits
  std::vector<std::int16_t> cell_bucket;
  std::vector<double> bound;  // bound[k] = 2^(k / per_octave), k in [0, per_octave]
};

}  // namespace detail

namespace {

constexpr std::uint64_t kMantissaMask = (std::uint64_t{1} << 52) - 1;
constexpr std::uint64_t kOneExponent = std::uint64_t{1023} << 52;

detail::ScaleTables build_tables(int scale) {
  detail::ScaleTables t;
  t.scale = scale;
  t.per_octave = 1 << scale;
  const int cell_bits = scale + 4;
  t.cell_shift = 52 - cell_bits;
  t.bound.resize(static_cast<std::size_t>(t.per_octave) + 1);
  for (int k = 0; k <= t.per_octave; ++k) {
    t.bound[static_cast<std::size_t>(k)] = std::exp2(static_cast<double>(k) / t.per_octave);
  }
  t.bound.front() = 1.0;
  t.bound.back() = 2.0;
  const std::size_t cells = std::size_t{1} << cell_bits;
  t.cell_bucket.resize(cells);
  for (std::size_t c = 0; c < cells; ++c) {
    const double start = 1.0 + std::ldexp(static_cast<double>(c), -cell_bits);
    int j = -1;
    while (j + 1 < t.per_octave && t.bound[static_cast<std::size_t>(j + 1)] < start) ++j;
    t.cell_bucket[c] = static_cast<std::int16_t>(j);
  }
  return t;
}

const detail::ScaleTables& tables_for(int scale) {
  static std::array<detail::ScaleTables, Histogram::kMaxScale + 1> all;
  static std::once_flag once[Histogram::kMaxScale + 1];
  const auto i = static_cast<std::size_t>(scale);
  std::call_once(once[i], [&] { all[i] = build_tables(scale); });
  return all[i];
}

std::int32_t index_with(const detail::ScaleTables& t, double value) noexcept {
  const std::uint64_t b = detail::double_bits(value);
  const auto exponent = static_cast<std::int32_t>(b >> 52) - 1023;
  const std::uint64_t mantissa = b & kMantissaMask;
  const double m = detail::bits_double(mantissa | kOneExponent);
  int j = t.cell_bucket[mantissa >> t.cell_shift];
  if (m > t.bound[static_cast<std::size_t>(j + 1)]) ++j;
  return exponent * t.per_octave + j;
}

std::int32_t window_position(std::int32_t index, std::int32_t origin) noexcept {
  return std::clamp(index - origin, std::int32_t{0}, Histogram::kMaxBuckets - 1);
}

[[noreturn]] void throw_bad_observation(double value) {
  std::string message = "histogram observation must be a finite number >= 0, got ";
  append_double(message, value);
  throw std::invalid_argument(message);
}

}  // namespace

std::vector<double> Histogram::check_bounds(std::vector<double> bounds) {
  if (!bounds.empty() && std::isinf(bounds.back()) && bounds.back() > 0) bounds.pop_back();
  if (bounds.empty()) {
    throw std::invalid_argument("histogram buckets need at least one finite bound (+Inf is always added)");
  }
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    const double b = bounds[i];
    if (!std::isfinite(b)) {
      throw std::invalid_argument("histogram bucket bounds must be finite numbers (+Inf only as the last), got " +
                                  std::string(std::isnan(b) ? "NaN" : (b > 0 ? "+Inf" : "-Inf")) + " at position " +
                                  std::to_string(i));
    }
    if (i > 0 && !(bounds[i - 1] < b)) {
      char text[96];
      std::snprintf(text, sizeof text, "%.17g after %.17g at position %zu", b, bounds[i - 1], i);
      throw std::invalid_argument(std::string(bounds[i - 1] == b ? "histogram bucket bounds must not repeat: "
                                                                 : "histogram bucket bounds must increase: ") +
                                  text);
    }
  }
  return bounds;
}

namespace {

void check_scale(int scale) {
  if (scale < Histogram::kMinScale || scale > Histogram::kMaxScale) {
    throw std::invalid_argument("histogram scale must be an integer in [" + std::to_string(Histogram::kMinScale) +
                                ", " + std::to_string(Histogram::kMaxScale) + "], got " + std::to_string(scale));
  }
}

// The origin's encoding in HistogramCells::origin_code (0: not placed yet).
constexpr std::uint32_t kOriginBias = 0x80000000u;
std::uint32_t origin_code(std::int32_t origin) noexcept { return static_cast<std::uint32_t>(origin) ^ kOriginBias; }
std::int32_t origin_of(std::uint32_t code) noexcept { return static_cast<std::int32_t>(code ^ kOriginBias); }

}  // namespace

Histogram::Histogram(int scale, std::vector<double> bounds, double max_age_s)
    : Histogram(nullptr, scale, std::move(bounds), max_age_s, nullptr) {}

Histogram::Histogram(detail::HistogramCells* shared, int scale, std::vector<double> bounds, double max_age_s,
                     void* shared_exemplars)
    : scale_(scale),
      bounds_(bounds.empty() ? std::move(bounds) : check_bounds(std::move(bounds))),
      max_age_s_(max_age_s),
      shared_exemplars_(shared_exemplars),
      tables_(nullptr),
      cells_(shared),
      created_ns_(detail::unix_now_ns()) {
  check_scale(scale);
  tables_ = &tables_for(scale);
  if (max_age_s != 0.0) window_ = std::make_unique<detail::RecentWindow>(max_age_s, detail::steady_now_ns());
  if (cells_ == nullptr) {
    own_ = detail::allocate_cells(detail::HistogramCells::bytes(bounds_.size()));
    cells_ = detail::HistogramCells::construct(own_.get(), bounds_.size());
  }
  bound_counts_ = cells_->classic();
  buckets_ = cells_->buckets(bounds_.size());
}

Histogram::~Histogram() = default;

std::int32_t Histogram::bucket_index(double value, int scale) noexcept {
  return index_with(tables_for(scale), value);
}

std::int32_t Histogram::window_origin(std::int32_t index) noexcept {
  std::uint32_t code = cells_->origin_code.load(std::memory_order_acquire);
  if (code != 0) return origin_of(code);
  const std::uint32_t wanted = origin_code(index - kMaxBuckets / 2);
  if (cells_->origin_code.compare_exchange_strong(code, wanted, std::memory_order_acq_rel)) return origin_of(wanted);
  return origin_of(code);  // another thread placed the window first
}

std::size_t Histogram::record(double value) noexcept {
  if (value < DBL_MIN) {
    cells_->zero_count.fetch_add(1, std::memory_order_relaxed);
  } else {
    const std::int32_t index = index_with(*tables_, value);
    const std::int32_t pos = window_position(index, window_origin(index));
    buckets_[pos].fetch_add(1, std::memory_order_relaxed);
  }
  std::size_t classic = bounds_.size();
  if (classic != 0) {
    // The classic bucket (previous bound, bound]: the first bound >= value.
    classic = static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin());
    bound_counts_[classic].fetch_add(1, std::memory_order_relaxed);
  }
  const unsigned slot = detail::thread_slot();
  detail::HistogramShard& shard = cells_->shards[slot];
  detail::slot_add(shard.count, slot, std::uint64_t{1});
  detail::slot_add(shard.sum, slot, value);

  const std::uint64_t bits = detail::double_bits(value + 0.0);  // -0.0 becomes +0.0
  detail::atomic_raise(cells_->min_complement, ~bits);
  detail::atomic_raise(cells_->max_bits, bits);
  return classic;
}

void Histogram::observe(double value, Exemplar exemplar) {
  if (!valid_value(value)) {
    rejected_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const std::size_t classic = record(value);
  std::call_once(exemplars_once_, [this] {
    exemplar_storage_ = std::make_unique<detail::ExemplarSlots>(exemplar_slots(bounds_.size()), shared_exemplars_);
    exemplars_.store(exemplar_storage_.get(), std::memory_order_release);
  });
  const std::size_t slot =
      bounds_.empty() ? next_exemplar_.fetch_add(1, std::memory_order_relaxed) % kNativeExemplars : classic;
  exemplar.value = value;
  if (exemplar.unix_nano == 0) exemplar.unix_nano = detail::unix_now_ns();
  exemplar_storage_->set(slot, std::move(exemplar));
}

void Histogram::observe_checked(double value, Exemplar exemplar) {
  check_exemplar_labels(exemplar.labels);
  if (!valid_value(value)) throw_bad_observation(value);
  observe(value, std::move(exemplar));
}

std::vector<std::pair<std::int32_t, Exemplar>> Histogram::exemplars() const {
  const detail::ExemplarSlots* slots = exemplars_.load(std::memory_order_acquire);
  return slots ? slots->copy() : std::vector<std::pair<std::int32_t, Exemplar>>{};
}

void Histogram::observe_checked(double value) {
  if (!valid_value(value)) throw_bad_observation(value);
  record(value);
}

namespace {

std::uint64_t count_of(const detail::HistogramCells& cells) noexcept {
  std::uint64_t total = 0;
  for (const detail::HistogramShard& s : cells.shards) total += s.count.load(std::memory_order_relaxed);
  return total;
}

double sum_of(const detail::HistogramCells& cells) noexcept {
  double total = 0.0;
  for (const detail::HistogramShard& s : cells.shards) total += s.sum.load(std::memory_order_relaxed);
  return total;
}

double min_of(const detail::HistogramCells& cells) noexcept {
  const std::uint64_t complement = cells.min_complement.load(std::memory_order_relaxed);
  return complement == 0 ? std::numeric_limits<double>::quiet_NaN() : detail::bits_double(~complement);
}

double max_of(const detail::HistogramCells& cells) noexcept {
  // Empty until min is set (an observation of 0 leaves max_bits at 0).
  if (cells.min_complement.load(std::memory_order_relaxed) == 0) return std::numeric_limits<double>::quiet_NaN();
  return detail::bits_double(cells.max_bits.load(std::memory_order_relaxed));
}

}  // namespace

std::uint64_t Histogram::count() const noexcept { return count_of(*cells_); }
double Histogram::sum() const noexcept { return sum_of(*cells_); }
double Histogram::min() const noexcept { return min_of(*cells_); }
double Histogram::max() const noexcept { return max_of(*cells_); }

double Histogram::mean() const noexcept {
  const std::uint64_t n = count();
  return n == 0 ? std::numeric_limits<double>::quiet_NaN() : sum() / static_cast<double>(n);
}

HistogramSnapshot Histogram::recent(const HistogramSnapshot& now) const {
  return window_ ? window_->recent(now, detail::steady_now_ns()) : now;
}

HistogramSnapshot Histogram::snapshot() const { return read(*cells_, scale_, bounds_, created_ns_); }

HistogramSnapshot Histogram::read(const detail::HistogramCells& cells, int scale, const std::vector<double>& bounds,
                                  std::int64_t start_unix_nano) {
  const detail::ScaleTables& tables = tables_for(scale);
  HistogramSnapshot s;
  s.scale = scale;
  s.zero_threshold = DBL_MIN;
  s.start_unix_nano = start_unix_nano;
  s.sum = sum_of(cells);
  s.min = min_of(cells);
  s.max = max_of(cells);
  s.zero_count = cells.zero_count.load(std::memory_order_relaxed);
  if (!bounds.empty()) {
    s.bounds = bounds;
    s.bound_counts.resize(bounds.size() + 1);
    for (std::size_t i = 0; i <= bounds.size(); ++i) s.bound_counts[i] = cells.classic()[i].load(std::memory_order_relaxed);
  }
  const std::uint32_t code = cells.origin_code.load(std::memory_order_acquire);
  const std::atomic<std::uint64_t>* buckets = cells.buckets(bounds.size());
  std::uint64_t in_buckets = 0;
  if (code != 0) {
    const std::int32_t origin = origin_of(code);
    // Only the positions between min and max can hold counts. An observation
    // whose bucket is written but whose max is not yet is simply seen later.
    const double lo_value = std::max(s.min, DBL_MIN);
    std::int32_t lo = 0;
    std::int32_t hi = kMaxBuckets - 1;
    if (!std::isnan(s.min) && !std::isnan(s.max) && s.max >= DBL_MIN) {
      lo = window_position(index_with(tables, lo_value), origin);
      hi = window_position(index_with(tables, s.max), origin);
    }
    while (lo <= hi && buckets[lo].load(std::memory_order_relaxed) == 0) ++lo;
    while (hi >= lo && buckets[hi].load(std::memory_order_relaxed) == 0) --hi;
    if (lo <= hi) {
      s.offset = origin + lo;
      s.counts.resize(static_cast<std::size_t>(hi - lo + 1));
      for (std::int32_t i = lo; i <= hi; ++i) {
        const std::uint64_t c = buckets[i].load(std::memory_order_relaxed);
        s.counts[static_cast<std::size_t>(i - lo)] = c;
        in_buckets += c;
      }
    }
  }
  s.count = s.zero_count + in_buckets;
  return s;
}

double HistogramSnapshot::mean() const noexcept {
  return count == 0 ? std::numeric_limits<double>::quiet_NaN() : sum / static_cast<double>(count);
}

void HistogramSnapshot::merge(const HistogramSnapshot& other) {
  if (other.scale != scale || other.bounds != bounds) {
    throw std::invalid_argument("cannot merge histograms of different scales or classic buckets");
  }
  if (other.count != 0) {
    min = count == 0 ? other.min : std::min(min, other.min);
    max = count == 0 ? other.max : std::max(max, other.max);
  }
  count += other.count;
  zero_count += other.zero_count;
  sum += other.sum;
  if (start_unix_nano == 0 || (other.start_unix_nano != 0 && other.start_unix_nano < start_unix_nano)) {
    start_unix_nano = other.start_unix_nano;
  }
  if (bound_counts.empty()) {
    bound_counts = other.bound_counts;
  } else {
    for (std::size_t i = 0; i < bound_counts.size() && i < other.bound_counts.size(); ++i) {
      bound_counts[i] += other.bound_counts[i];
    }
  }
  if (other.counts.empty()) return;
  if (counts.empty()) {
    offset = other.offset;
    counts = other.counts;
    return;
  }
  const std::int64_t lo = std::min<std::int64_t>(offset, other.offset);
  const std::int64_t hi = std::max<std::int64_t>(offset + static_cast<std::int64_t>(counts.size()),
                                                 other.offset + static_cast<std::int64_t>(other.counts.size()));
  std::vector<std::uint64_t> merged(static_cast<std::size_t>(hi - lo), 0);
  for (std::size_t i = 0; i < counts.size(); ++i) merged[static_cast<std::size_t>(offset - lo) + i] += counts[i];
  for (std::size_t i = 0; i < other.counts.size(); ++i) {
    merged[static_cast<std::size_t>(other.offset - lo) + i] += other.counts[i];
  }
  offset = static_cast<std::int32_t>(lo);
  counts = std::move(merged);
}

double HistogramSnapshot::bucket_lower(std::int32_t index) const noexcept {
  return std::exp2(std::ldexp(static_cast<double>(index), -scale));
}

double HistogramSnapshot::percentile(double p) const {
  if (!(p >= 0.0 && p <= 100.0)) {
    std::string message = "percentile must be in [0, 100], got ";
    append_double(message, p);
    throw std::invalid_argument(message);
  }
  if (count == 0) return std::numeric_limits<double>::quiet_NaN();
  if (p == 0.0) return min;
  if (p == 100.0) return max;
  const double wanted = std::ceil(p / 100.0 * static_cast<double>(count));
  const auto rank = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(wanted));
  if (rank <= zero_count) return std::max(0.0, min);
  std::uint64_t seen = zero_count;
  double estimate = max;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    seen += counts[i];
    if (seen >= rank) {
      // Log-midpoint of (base^k, base^(k+1)]: at most half a bucket away from any value in it.
      const double k = static_cast<double>(offset) + static_cast<double>(i) + 0.5;
      estimate = std::exp2(std::ldexp(k, -scale));
      break;
    }
  }
  return std::clamp(estimate, min, max);
}

}  // namespace veda
