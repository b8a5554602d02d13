// Tests for veda::Counter: values, rejected amounts and exact concurrent totals.
#include "veda/metrics/counter.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "veda/metrics/detail/sharded.hpp"

#include "support/test_support.hpp"

namespace {

using veda::Counter;

using veda::test::kInf;
using veda::test::kNaN;
using veda::test::run_threads;

// Runs `threads` threads that each call counter.inc() `per_thread` times.
void hammer(Counter& counter, unsigned threads, int per_thread) {
  run_threads(threads, [&](unsigned) {
    for (int i = 0; i < per_thread; ++i) counter.inc();
  });
}

TEST(Counter, StartsAtZero) {
  Counter c;
  EXPECT_EQ(c.get(), 0.0);
  EXPECT_EQ(c.rejected(), 0u);
  EXPECT_GT(c.created_unix_nano(), 0);
}

TEST(Counter, IncAddsOneByDefaultAndAmounts) {
  Counter c;
  c.inc();
  c.inc();
  EXPECT_EQ(c.get(), 2.0);
  c.inc(0.5);
  c.inc(0.0);
  EXPECT_EQ(c.get(), 2.5);
  c.inc_checked(1.5);
  EXPECT_EQ(c.get(), 4.0);
  c.inc(std::numeric_limits<double>::max());
  EXPECT_EQ(c.get(), std::numeric_limits<double>::max());
  EXPECT_EQ(c.rejected(), 0u);
}

TEST(Counter, ResetStartsFromZeroAndMovesCreated) {
  Counter c;
  const auto created = c.created_unix_nano();
  c.inc(5);
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  c.reset();
  EXPECT_EQ(c.get(), 0.0);
  EXPECT_GT(c.created_unix_nano(), created);
  c.inc(3);
  EXPECT_EQ(c.get(), 3.0);
  c.reset();
  c.reset();
  EXPECT_EQ(c.get(), 0.0);
}

TEST(Counter, ValidAmount) {
  EXPECT_TRUE(Counter::valid_amount(0.0));
  EXPECT_TRUE(Counter::valid_amount(1e300));
  EXPECT_TRUE(Counter::valid_amount(std::numeric_limits<double>::max()));
  EXPECT_TRUE(Counter::valid_amount(std::numeric_limits<double>::denorm_min()));
  EXPECT_FALSE(Counter::valid_amount(-1.0));
  EXPECT_FALSE(Counter::valid_amount(-std::numeric_limits<double>::denorm_min()));
  EXPECT_FALSE(Counter::valid_amount(kNaN));
  EXPECT_FALSE(Counter::valid_amount(kInf));
  EXPECT_FALSE(Counter::valid_amount(-kInf));
}

TEST(Counter, IncRejectsNegativeNanAndInfinity) {
  Counter c;
  c.inc(2);
  c.inc(-1.0);
  c.inc(kNaN);
  c.inc(kInf);
  c.inc(-kInf);
  EXPECT_EQ(c.get(), 2.0);
  EXPECT_EQ(c.rejected(), 4u);
}

// Returns the message of the std::invalid_argument inc_checked(amount) throws.
std::string checked_message(Counter& c, double amount) {
  try {
    c.inc_checked(amount);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  ADD_FAILURE() << "inc_checked(" << amount << ") did not throw std::invalid_argument";
  return {};
}

TEST(Counter, IncCheckedThrowsWithMessage) {
  Counter c;
  c.inc(1);
  const std::string negative = checked_message(c, -2.5);
  EXPECT_NE(negative.find("-2.5"), std::string::npos) << negative;
  EXPECT_NE(negative.find("finite number >= 0"), std::string::npos) << negative;
  EXPECT_NE(negative.find("Gauge"), std::string::npos) << negative;
  EXPECT_NE(checked_message(c, kNaN).find("NaN"), std::string::npos);
  EXPECT_NE(checked_message(c, kInf).find("+Inf"), std::string::npos);
  EXPECT_NE(checked_message(c, -kInf).find("-Inf"), std::string::npos);
  // A refused checked increment changes nothing and is not counted as rejected.
  EXPECT_EQ(c.get(), 1.0);
  EXPECT_EQ(c.rejected(), 0u);
}

class CounterThreads : public ::testing::TestWithParam<unsigned> {};

TEST_P(CounterThreads, TotalIsExact) {
  const unsigned threads = GetParam();
  constexpr int kPerThread = 100000;
  Counter c;
  hammer(c, threads, kPerThread);
  EXPECT_EQ(c.get(), static_cast<double>(threads) * kPerThread);
  EXPECT_EQ(c.rejected(), 0u);
}

// 1..8 threads, plus more threads than exclusive slots so that some share kSharedSlot.
INSTANTIATE_TEST_SUITE_P(Sweep, CounterThreads,
                         ::testing::Values(1u, 2u, 3u, 4u, 5u, 6u, 7u, 8u,
                                           veda::detail::kExclusiveSlots + 4),
                         [](const auto& param_info) { return std::to_string(param_info.param) + "threads"; });

TEST(Counter, ThreadsBeyondExclusiveSlotsUseSharedSlot) {
  // Hold kExclusiveSlots + 4 threads alive at once so some must share a slot,
  // then check that each got either an exclusive slot or the shared one.
  constexpr unsigned kThreads = veda::detail::kExclusiveSlots + 4;
  std::vector<unsigned> slots(kThreads, veda::detail::kNoSlot);
  std::atomic<unsigned> arrived{0};
  Counter c;
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < kThreads; ++t) {
    pool.emplace_back([&, t] {
      slots[t] = veda::detail::thread_slot();
      arrived.fetch_add(1);
      while (arrived.load() < kThreads) std::this_thread::yield();
      for (int i = 0; i < 50000; ++i) c.inc();
    });
  }
  for (std::thread& th : pool) th.join();
  unsigned shared = 0;
  for (unsigned s : slots) {
    ASSERT_LE(s, veda::detail::kSharedSlot);
    if (s == veda::detail::kSharedSlot) ++shared;
  }
  // The main thread (and the gtest runner) may hold slots too, so at least 4 share.
  EXPECT_GE(shared, 4u);
  EXPECT_EQ(c.get(), static_cast<double>(kThreads) * 50000);
}

// Occupies every exclusive slot with idle threads for the lifetime of the
// object, so threads started meanwhile all write into kSharedSlot.
class SlotHolders {
 public:
  SlotHolders() {
    for (unsigned t = 0; t < veda::detail::kExclusiveSlots; ++t) {
      threads_.emplace_back([this] {
        veda::detail::thread_slot();
        held_.fetch_add(1);
        while (!release_.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      });
    }
    while (held_.load() < veda::detail::kExclusiveSlots) std::this_thread::yield();
  }
  ~SlotHolders() {
    release_.store(true);
    for (std::thread& th : threads_) th.join();
  }
  SlotHolders(const SlotHolders&) = delete;
  SlotHolders& operator=(const SlotHolders&) = delete;

 private:
  std::atomic<unsigned> held_{0};
  std::atomic<bool> release_{false};
  std::vector<std::thread> threads_;
};

TEST(Counter, SharedSlotIsExactUnderContention) {
  Counter c;
  constexpr unsigned kWorkers = 4;
  constexpr int kPerThread = 200000;
  std::vector<unsigned> slots(kWorkers);
  {
    SlotHolders holders;
    run_threads(kWorkers, [&](unsigned t) {
      slots[t] = veda::detail::thread_slot();
      for (int i = 0; i < kPerThread; ++i) c.inc();
    });
  }
  for (unsigned s : slots) EXPECT_EQ(s, veda::detail::kSharedSlot);
  EXPECT_EQ(c.get(), static_cast<double>(kWorkers) * kPerThread);
}

TEST(Counter, ExitedThreadsGiveSlotsBackAndTotalStaysExact) {
  // Waves of short-lived threads: each wave reuses the slots the last one freed.
  Counter c;
  constexpr int kWaves = 10;
  constexpr unsigned kPerWave = veda::detail::kExclusiveSlots + 2;
  constexpr int kPerThread = 10000;
  for (int w = 0; w < kWaves; ++w) hammer(c, kPerWave, kPerThread);
  EXPECT_EQ(c.get(), static_cast<double>(kWaves) * kPerWave * kPerThread);

  // Interleaved: a long-lived thread keeps incrementing while others come and go.
  Counter d;
  std::atomic<bool> stop{false};
  long long long_lived = 0;
  std::thread steady([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      d.inc();
      ++long_lived;
    }
  });
  for (int w = 0; w < kWaves; ++w) hammer(d, 4, kPerThread);
  stop.store(true);
  steady.join();
  EXPECT_EQ(d.get(), static_cast<double>(kWaves) * 4 * kPerThread + static_cast<double>(long_lived));
}

TEST(Counter, FractionalIncrementsAcrossThreads) {
  // Binary fractions add exactly, so the sharded sum is exact too.
  Counter c;
  run_threads(4, [&](unsigned) {
    for (int i = 0; i < 100000; ++i) c.inc(0.25);
  });
  EXPECT_EQ(c.get(), 100000.0);
}

TEST(Counter, ResetWhileIncrementing) {
  // reset() racing with inc(): the final value is what was added after the last reset.
  Counter c;
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    while (!stop.load(std::memory_order_relaxed)) c.inc();
  });
  for (int i = 0; i < 100; ++i) c.reset();
  stop.store(true);
  writer.join();
  c.reset();
  EXPECT_EQ(c.get(), 0.0);
  c.inc(7);
  EXPECT_EQ(c.get(), 7.0);
}

}  // namespace
