// Tests for veda::Histogram: bucket maths, percentile accuracy, special values,
// window edges, memory bound and concurrent recording.
#include "veda/metrics/histogram.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "veda/metrics/detail/sharded.hpp"

#include "support/test_support.hpp"

namespace {

using veda::Histogram;
using veda::HistogramSnapshot;

using veda::test::kInf;
using veda::test::kNaN;

std::uint64_t bucket_total(const HistogramSnapshot& s) {
  return std::accumulate(s.counts.begin(), s.counts.end(), std::uint64_t{0});
}

// ---------------------------------------------------------------- bucket_index

TEST(HistogramBucketIndex, PowersOfTwoLandInTheBucketBelow) {
  // base^i < v <= base^(i+1): 2^k is the upper bound of bucket k*2^s - 1.
  for (int scale = Histogram::kMinScale; scale <= Histogram::kMaxScale; ++scale) {
    const std::int32_t per_octave = std::int32_t{1} << scale;
    for (int k = -1022; k <= 1023; ++k) {
      const double v = std::ldexp(1.0, k);
      ASSERT_EQ(Histogram::bucket_index(v, scale), k * per_octave - 1) << "2^" << k << " scale " << scale;
      const double above = std::nextafter(v, kInf);
      ASSERT_EQ(Histogram::bucket_index(above, scale), k * per_octave) << "next above 2^" << k;
      if (k > -1022) {
        const double below = std::nextafter(v, 0.0);
        ASSERT_EQ(Histogram::bucket_index(below, scale), k * per_octave - 1) << "next below 2^" << k;
      }
    }
  }
}

TEST(HistogramBucketIndex, KnownValues) {
  EXPECT_EQ(Histogram::bucket_index(1.0, 0), -1);
  EXPECT_EQ(Histogram::bucket_index(1.5, 0), 0);
  EXPECT_EQ(Histogram::bucket_index(2.0, 0), 0);
  EXPECT_EQ(Histogram::bucket_index(3.0, 0), 1);
  EXPECT_EQ(Histogram::bucket_index(0.75, 0), -1);
  // scale 1: boundaries at sqrt(2)^i.
  EXPECT_EQ(Histogram::bucket_index(1.4, 1), 0);
  EXPECT_EQ(Histogram::bucket_index(1.5, 1), 1);
  EXPECT_EQ(Histogram::bucket_index(DBL_MAX, 0), 1023);
  EXPECT_EQ(Histogram::bucket_index(DBL_MIN, 0), -1023);
  // ceil(log2(10) * 64) - 1 = ceil(212.60...) - 1
  EXPECT_EQ(Histogram::bucket_index(10.0, 6), 212);
}

TEST(HistogramBucketIndex, MatchesLongDoubleLog2Reference) {
  static_assert(std::numeric_limits<long double>::digits >= 64 ||
                    std::numeric_limits<long double>::digits == 53,
                "unexpected long double");
  std::mt19937_64 rng(20240611);
  std::uniform_int_distribution<int> exponent(-1022, 1023);
  std::uniform_int_distribution<std::uint64_t> mantissa(0, (std::uint64_t{1} << 52) - 1);
  constexpr int kSamples = 200000;
  for (int scale = Histogram::kMinScale; scale <= Histogram::kMaxScale; ++scale) {
    const long double per_octave = std::ldexp(1.0L, scale);
    int checked = 0;
    for (int n = 0; n < kSamples; ++n) {
      const double m = 1.0 + std::ldexp(static_cast<double>(mantissa(rng)), -52);
      const double v = std::ldexp(m, exponent(rng));
      const long double r = std::log2(static_cast<long double>(v)) * per_octave;
      // Skip values too close to a boundary for the reference itself to decide.
      if (std::fabs(r - std::round(r)) < 1e-9L && m != 1.0) continue;
      const auto expected = static_cast<std::int32_t>(std::ceil(r)) - 1;
      const std::int32_t got = Histogram::bucket_index(v, scale);
      ASSERT_EQ(got, expected) << "v=" << v << " scale=" << scale;
      // And directly against the definition base^i < v <= base^(i+1).
      const long double lo = std::exp2(static_cast<long double>(got) / per_octave);
      const long double hi = std::exp2(static_cast<long double>(got + 1) / per_octave);
      ASSERT_LT(lo, static_cast<long double>(v) * (1 + 1e-15L)) << v;
      ASSERT_GE(hi, static_cast<long double>(v) * (1 - 1e-15L)) << v;
      ++checked;
    }
    EXPECT_GT(checked, kSamples * 99 / 100) << "too many ambiguous samples at scale " << scale;
  }
}

TEST(HistogramBucketIndex, IsMonotonic) {
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> dist(0.0, 10.0);
  std::vector<double> values(20000);
  for (double& v : values) v = dist(rng);
  std::sort(values.begin(), values.end());
  for (int scale = Histogram::kMinScale; scale <= Histogram::kMaxScale; ++scale) {
    for (std::size_t i = 1; i < values.size(); ++i) {
      if (values[i - 1] < DBL_MIN) continue;
      ASSERT_LE(Histogram::bucket_index(values[i - 1], scale), Histogram::bucket_index(values[i], scale));
    }
  }
}

// ---------------------------------------------------------------- construction

TEST(Histogram, ScaleOutOfRangeThrows) {
  EXPECT_THROW(Histogram(-1), std::invalid_argument);
  EXPECT_THROW(Histogram(9), std::invalid_argument);
  for (int s = Histogram::kMinScale; s <= Histogram::kMaxScale; ++s) {
    Histogram h(s);
    EXPECT_EQ(h.scale(), s);
  }
  EXPECT_EQ(Histogram().scale(), Histogram::kDefaultScale);
}

TEST(Histogram, ClassicBucketsCountEachBoundInclusive) {
  Histogram h(Histogram::kDefaultScale, {1, 2, 4});
  for (const double v : {0.0, 1.0, 1.5, 2.0, 3.9, 4.0, 4.0000001, 100.0}) h.observe(v);
  const HistogramSnapshot s = h.snapshot();
  EXPECT_EQ(s.bounds, (std::vector<double>{1, 2, 4}));
  // (-inf, 1], (1, 2], (2, 4], (4, +Inf)
  EXPECT_EQ(s.bound_counts, (std::vector<std::uint64_t>{2, 2, 2, 2}));
  EXPECT_EQ(s.count, 8u);
  EXPECT_TRUE(Histogram(6).snapshot().bounds.empty());
}

TEST(Histogram, ClassicBoundsRulesAreNamed) {
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(Histogram::check_bounds({1, 2, inf}), (std::vector<double>{1, 2}));  // a trailing +Inf is implied
  auto message = [](std::vector<double> bounds) {
    try {
      Histogram::check_bounds(std::move(bounds));
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message({}), "histogram buckets need at least one finite bound (+Inf is always added)");
  EXPECT_EQ(message({inf}), "histogram buckets need at least one finite bound (+Inf is always added)");
  EXPECT_EQ(message({1, nan}), "histogram bucket bounds must be finite numbers (+Inf only as the last), got NaN at position 1");
  EXPECT_EQ(message({-inf, 1}), "histogram bucket bounds must be finite numbers (+Inf only as the last), got -Inf at position 0");
  EXPECT_EQ(message({1, inf, 2}), "histogram bucket bounds must be finite numbers (+Inf only as the last), got +Inf at position 1");
  EXPECT_EQ(message({1, 3, 2}), "histogram bucket bounds must increase: 2 after 3 at position 2");
  EXPECT_EQ(message({1, 2, 2}), "histogram bucket bounds must not repeat: 2 after 2 at position 2");
  EXPECT_THROW(Histogram(6, {2, 1}), std::invalid_argument);
}

TEST(Histogram, MemoryIsBounded) {
  // The object plus its fixed bucket window stays under 64 KiB.
  EXPECT_LT(sizeof(Histogram) + static_cast<std::size_t>(Histogram::kMaxBuckets) * 8, 64u * 1024u);
  // Recording many distinct values never grows the snapshot past the window.
  Histogram h(8);
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> exponent(-1000.0, 1000.0);
  for (int i = 0; i < 100000; ++i) h.observe(std::exp2(exponent(rng)));
  EXPECT_LE(h.snapshot().counts.size(), static_cast<std::size_t>(Histogram::kMaxBuckets));
  EXPECT_EQ(h.snapshot().count, 100000u);
}

// ---------------------------------------------------------------- empty / stats

TEST(Histogram, EmptyIsNaN) {
  Histogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.sum(), 0.0);
  EXPECT_TRUE(std::isnan(h.min()));
  EXPECT_TRUE(std::isnan(h.max()));
  EXPECT_TRUE(std::isnan(h.mean()));
  EXPECT_TRUE(std::isnan(h.percentile(50)));
  EXPECT_TRUE(std::isnan(h.percentile(0)));
  EXPECT_TRUE(std::isnan(h.percentile(100)));
  const HistogramSnapshot s = h.snapshot();
  EXPECT_EQ(s.count, 0u);
  EXPECT_TRUE(s.counts.empty());
  EXPECT_TRUE(std::isnan(s.mean()));
  EXPECT_TRUE(std::isnan(s.min));
  EXPECT_TRUE(std::isnan(s.max));
}

TEST(Histogram, MinMaxMeanSumCount) {
  Histogram h;
  for (double v : {4.0, 1.0, 2.5, 8.0, 0.5}) h.observe(v);
  EXPECT_EQ(h.count(), 5u);
  EXPECT_EQ(h.sum(), 16.0);
  EXPECT_EQ(h.min(), 0.5);
  EXPECT_EQ(h.max(), 8.0);
  EXPECT_EQ(h.mean(), 3.2);
  EXPECT_EQ(h.percentile(0), 0.5);
  EXPECT_EQ(h.percentile(100), 8.0);
  const HistogramSnapshot s = h.snapshot();
  EXPECT_EQ(s.scale, Histogram::kDefaultScale);
  EXPECT_EQ(s.count, 5u);
  EXPECT_EQ(s.sum, 16.0);
  EXPECT_EQ(s.min, 0.5);
  EXPECT_EQ(s.max, 8.0);
  EXPECT_EQ(s.mean(), 3.2);
  EXPECT_EQ(s.zero_count, 0u);
  EXPECT_EQ(bucket_total(s), 5u);
  EXPECT_EQ(s.start_unix_nano, h.created_unix_nano());
  // offset is the bucket of the smallest value, the last bucket that of the largest.
  EXPECT_EQ(s.offset, Histogram::bucket_index(0.5, s.scale));
  EXPECT_EQ(s.offset + static_cast<std::int32_t>(s.counts.size()) - 1, Histogram::bucket_index(8.0, s.scale));
  EXPECT_EQ(s.counts.front(), 1u);
  EXPECT_EQ(s.counts.back(), 1u);
  // bucket_lower is base^index: 0.5 = 2^-1 is the upper bound of bucket offset.
  EXPECT_DOUBLE_EQ(s.bucket_lower(s.offset + 1), 0.5);
  EXPECT_DOUBLE_EQ(s.bucket_lower(0), 1.0);
}

TEST(Histogram, SingleValuePercentilesAreThatValue) {
  Histogram h;
  for (int i = 0; i < 10; ++i) h.observe(3.7);
  for (double p : {0.0, 1.0, 50.0, 99.0, 100.0}) EXPECT_EQ(h.percentile(p), 3.7) << p;
}

// ---------------------------------------------------------------- zero bucket

TEST(Histogram, ZeroBucket) {
  Histogram h;
  h.observe(0.0);
  h.observe(-0.0);
  h.observe(std::numeric_limits<double>::denorm_min());  // below zero_threshold
  h.observe(2.0);
  const HistogramSnapshot s = h.snapshot();
  EXPECT_EQ(s.zero_count, 3u);
  EXPECT_EQ(s.zero_threshold, DBL_MIN);
  EXPECT_EQ(bucket_total(s), 1u);
  EXPECT_EQ(s.count, 4u);
  EXPECT_EQ(h.count(), 4u);
  EXPECT_EQ(h.min(), 0.0);
  EXPECT_EQ(h.max(), 2.0);
  EXPECT_EQ(h.percentile(50), 0.0);
  EXPECT_EQ(h.percentile(75), 0.0);
  EXPECT_EQ(h.percentile(100), 2.0);
  EXPECT_EQ(h.rejected(), 0u);
}

TEST(Histogram, OnlyZeros) {
  Histogram h;
  for (int i = 0; i < 5; ++i) h.observe(0.0);
  const HistogramSnapshot s = h.snapshot();
  EXPECT_EQ(s.zero_count, 5u);
  EXPECT_TRUE(s.counts.empty());
  EXPECT_EQ(s.count, 5u);
  EXPECT_EQ(s.percentile(50), 0.0);
  EXPECT_EQ(s.percentile(99), 0.0);
}

// ---------------------------------------------------------------- rejected values

TEST(Histogram, RejectsNegativeNanAndInfinity) {
  Histogram h;
  h.observe(1.0);
  for (double v : {-1.0, -1e-300, kNaN, kInf, -kInf}) h.observe(v);
  EXPECT_EQ(h.rejected(), 5u);
  EXPECT_EQ(h.count(), 1u);
  EXPECT_EQ(h.sum(), 1.0);
  EXPECT_EQ(h.min(), 1.0);
  EXPECT_EQ(h.max(), 1.0);
  EXPECT_EQ(h.snapshot().count, 1u);
  EXPECT_FALSE(Histogram::valid_value(-1.0));
  EXPECT_FALSE(Histogram::valid_value(kNaN));
  EXPECT_FALSE(Histogram::valid_value(kInf));
  EXPECT_TRUE(Histogram::valid_value(0.0));
  EXPECT_TRUE(Histogram::valid_value(DBL_MAX));
}

std::string observe_checked_message(Histogram& h, double value) {
  try {
    h.observe_checked(value);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  ADD_FAILURE() << "observe_checked(" << value << ") did not throw std::invalid_argument";
  return {};
}

TEST(Histogram, ObserveCheckedThrowsWithMessage) {
  Histogram h;
  h.observe_checked(2.0);
  const std::string negative = observe_checked_message(h, -3.5);
  EXPECT_NE(negative.find("finite number >= 0"), std::string::npos) << negative;
  EXPECT_NE(negative.find("-3.5"), std::string::npos) << negative;
  EXPECT_NE(observe_checked_message(h, kNaN).find("NaN"), std::string::npos);
  EXPECT_NE(observe_checked_message(h, kInf).find("+Inf"), std::string::npos);
  EXPECT_EQ(h.count(), 1u);
  EXPECT_EQ(h.rejected(), 0u);
}

// ---------------------------------------------------------------- percentile

TEST(Histogram, PercentileOutOfRangeThrows) {
  Histogram h;
  h.observe(1.0);
  for (double p : {-0.001, 100.001, -kInf, kInf, kNaN}) {
    EXPECT_THROW(h.percentile(p), std::invalid_argument) << p;
  }
  // Also on an empty histogram: the range check comes first.
  Histogram empty;
  EXPECT_THROW(empty.percentile(101), std::invalid_argument);
  try {
    h.percentile(150);
    FAIL() << "no throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("[0, 100]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("150"), std::string::npos) << e.what();
  }
}

TEST(Histogram, PercentileRelativeErrorOnLognormal) {
  constexpr std::size_t kSamples = 1000000;
  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> dist(0.0, 1.5);
  std::vector<double> values(kSamples);
  Histogram h(6);
  for (double& v : values) {
    v = dist(rng);
    h.observe(v);
  }
  std::sort(values.begin(), values.end());
  const HistogramSnapshot s = h.snapshot();
  ASSERT_EQ(s.count, kSamples);
  // The documented bound at scale 6 is 2^(2^-6 / 2) - 1 = 0.54%; the brief asks <= 1%.
  const double bound = std::exp2(std::ldexp(1.0, -6) / 2) - 1;
  for (double p : {50.0, 90.0, 95.0, 99.0, 99.9, 1.0}) {
    const auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * kSamples));
    const double truth = values[rank - 1];
    const double estimate = s.percentile(p);
    const double rel = std::fabs(estimate - truth) / truth;
    EXPECT_LE(rel, 0.01) << "p" << p << " truth " << truth << " estimate " << estimate;
    EXPECT_LE(rel, bound + 1e-12) << "p" << p;
  }
  EXPECT_EQ(s.percentile(0), values.front());
  EXPECT_EQ(s.percentile(100), values.back());
}

TEST(Histogram, PercentileErrorBoundAtEveryScale) {
  std::mt19937_64 rng(9);
  std::lognormal_distribution<double> dist(3.0, 2.0);
  std::vector<double> values(100000);
  for (double& v : values) v = dist(rng);
  std::vector<double> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  for (int scale = Histogram::kMinScale; scale <= Histogram::kMaxScale; ++scale) {
    Histogram h(scale);
    for (double v : values) h.observe(v);
    const double bound = std::exp2(std::ldexp(1.0, -scale) / 2) - 1;
    for (double p : {10.0, 50.0, 95.0, 99.0}) {
      const auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * sorted.size()));
      const double truth = sorted[rank - 1];
      EXPECT_LE(std::fabs(h.percentile(p) - truth) / truth, bound + 1e-12) << "scale " << scale << " p" << p;
    }
  }
}

// ---------------------------------------------------------------- window edges

TEST(Histogram, ValuesBeyondTheWindowAreStillCounted) {
  Histogram h(6);
  h.observe(1.0);  // centres the window: 2^-32 .. 2^32 at scale 6
  h.observe(1e30);
  h.observe(1e-30);
  h.observe(DBL_MAX);
  const HistogramSnapshot s = h.snapshot();
  EXPECT_EQ(s.count, 4u);
  EXPECT_EQ(h.count(), 4u);
  EXPECT_EQ(bucket_total(s), 4u);
  EXPECT_EQ(s.counts.size(), static_cast<std::size_t>(Histogram::kMaxBuckets));
  EXPECT_EQ(s.counts.front(), 1u);  // 1e-30 in the low edge bucket
  EXPECT_EQ(s.counts.back(), 2u);   // 1e30 and DBL_MAX in the high edge bucket
  EXPECT_EQ(h.min(), 1e-30);
  EXPECT_EQ(h.max(), DBL_MAX);
  EXPECT_EQ(h.sum(), 1.0 + 1e30 + 1e-30 + DBL_MAX);
  EXPECT_EQ(h.percentile(100), DBL_MAX);
  EXPECT_EQ(h.percentile(0), 1e-30);
  // Within the window the estimate stays accurate.
  EXPECT_NEAR(h.percentile(50), 1.0, 0.01);
}

TEST(Histogram, WindowCentresOnFirstValue) {
  Histogram h(6);
  h.observe(1e6);
  h.observe(1e6 * 1.5);
  const HistogramSnapshot s = h.snapshot();
  EXPECT_EQ(s.offset, Histogram::bucket_index(1e6, 6));
  EXPECT_EQ(bucket_total(s), 2u);
  EXPECT_EQ(h.percentile(100), 1.5e6);
  EXPECT_NEAR(h.percentile(50), 1e6, 1e6 * 0.006);
}

// ---------------------------------------------------------------- concurrency

class HistogramThreads : public ::testing::TestWithParam<unsigned> {};

TEST_P(HistogramThreads, CountAndSumAreExact) {
  const unsigned threads = GetParam();
  constexpr int kPerThread = 100000;
  Histogram h;
  std::atomic<unsigned> ready{0};
  std::atomic<unsigned> done{0};
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      // All writers start together so that they really overlap.
      ready.fetch_add(1);
      while (ready.load() < threads) std::this_thread::yield();
      for (int i = 0; i < kPerThread; ++i) h.observe(static_cast<double>((i % 100) + t));
      done.fetch_add(1);
    });
  }
  // A reader running alongside must never see more than was recorded, nor go back.
  std::uint64_t last = 0;
  while (done.load() < threads) {
    const HistogramSnapshot s = h.snapshot();
    EXPECT_LE(s.count, static_cast<std::uint64_t>(threads) * kPerThread);
    EXPECT_GE(s.count, last);
    last = s.count;
  }
  for (std::thread& th : pool) th.join();
  const std::uint64_t total = static_cast<std::uint64_t>(threads) * kPerThread;
  EXPECT_EQ(h.count(), total);
  const HistogramSnapshot s = h.snapshot();
  EXPECT_EQ(s.count, total);
  EXPECT_EQ(s.zero_count + bucket_total(s), total);
  double expected_sum = 0;
  for (unsigned t = 0; t < threads; ++t) expected_sum += (99.0 * 100 / 2 + 100.0 * t) * (kPerThread / 100);
  EXPECT_EQ(h.sum(), expected_sum);
  EXPECT_EQ(h.min(), 0.0);
  EXPECT_EQ(h.max(), 99.0 + threads - 1);
}

TEST(Histogram, SharedSlotIsExactUnderContention) {
  // Idle threads hold every exclusive slot, so the writers all share kSharedSlot.
  constexpr unsigned kWorkers = 4;
  constexpr int kPerThread = 100000;
  Histogram h;
  std::atomic<bool> release{false};
  std::atomic<unsigned> held{0};
  std::vector<std::thread> holders;
  for (unsigned t = 0; t < veda::detail::kExclusiveSlots; ++t) {
    holders.emplace_back([&] {
      veda::detail::thread_slot();
      held.fetch_add(1);
      while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
  }
  while (held.load() < veda::detail::kExclusiveSlots) std::this_thread::yield();
  std::atomic<unsigned> ready{0};
  std::vector<unsigned> slots(kWorkers);
  std::vector<std::thread> writers;
  for (unsigned t = 0; t < kWorkers; ++t) {
    writers.emplace_back([&, t] {
      slots[t] = veda::detail::thread_slot();
      ready.fetch_add(1);
      while (ready.load() < kWorkers) std::this_thread::yield();
      for (int i = 0; i < kPerThread; ++i) h.observe(2.0);
    });
  }
  for (std::thread& th : writers) th.join();
  release.store(true);
  for (std::thread& th : holders) th.join();
  for (unsigned s : slots) EXPECT_EQ(s, veda::detail::kSharedSlot);
  EXPECT_EQ(h.count(), static_cast<std::uint64_t>(kWorkers) * kPerThread);
  EXPECT_EQ(h.sum(), 2.0 * kWorkers * kPerThread);
  EXPECT_EQ(h.snapshot().count, static_cast<std::uint64_t>(kWorkers) * kPerThread);
}

INSTANTIATE_TEST_SUITE_P(Sweep, HistogramThreads, ::testing::Values(1u, 2u, 4u, 20u),
                         [](const auto& param_info) { return std::to_string(param_info.param) + "threads"; });

}  // namespace
