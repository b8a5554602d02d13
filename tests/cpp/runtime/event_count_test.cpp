// Tests for veda::detail::WorkerParking and veda::detail::Broadcast
// (runtime/detail/event_count.hpp): registration bookkeeping, deadlines, and
// waiter/notifier pairs that would hang on a lost wake-up (the watchdog turns
// a hang into a named failure).
#include "runtime/detail/event_count.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "runtime/detail/cpu.hpp"
#include "support/test_support.hpp"

namespace veda {
namespace {

using namespace std::chrono_literals;
using detail::Broadcast;
using detail::full_fence;
using detail::WorkerParking;
using test::Watchdog;

// Blocks until pred() holds, by the waiter side of the event-count protocol
// (no spinning, so every wait that is not satisfied at once really sleeps).
template <class Pred>
void park_until(WorkerParking& ec, Pred pred) {
  while (!pred()) {
    const std::uint64_t key = ec.prepare_wait();
    if (pred()) {
      ec.cancel_wait();
      return;
    }
    ec.commit_wait(key);
  }
}

template <class Pred>
void broadcast_wait_until(Broadcast& ec, Pred pred) {
  while (!pred()) {
    const std::uint32_t key = ec.prepare_wait();
    if (pred()) {
      ec.cancel_wait(key);
      return;
    }
    ec.commit_wait(key, nullptr);
  }
}

// --- WorkerParking ---------------------------------------------------------------

TEST(WorkerParkingTest, RegistrationIsCountedUntilCancelled) {
  WorkerParking ec;
  EXPECT_FALSE(ec.has_waiters());
  ec.prepare_wait();
  EXPECT_TRUE(ec.has_waiters());
  ec.cancel_wait();
  EXPECT_FALSE(ec.has_waiters());
}

TEST(WorkerParkingTest, CommitAfterANotifyReturnsAtOnce) {
  Watchdog dog;
  WorkerParking ec;
  const std::uint64_t key = ec.prepare_wait();
  ec.notify_one();  // between registration and commit: must not be lost
  ec.commit_wait(key);
  EXPECT_FALSE(ec.has_waiters());
  const std::uint64_t key2 = ec.prepare_wait();
  EXPECT_NE(key2, key);
  ec.notify_all();
  ec.commit_wait(key2);
  EXPECT_FALSE(ec.has_waiters());
}

TEST(WorkerParkingTest, PingPongNeverLosesAWakeUp) {
  // Two threads hand a token back and forth; each side sleeps whenever the
  // token is not there yet, so a single lost wake-up stalls the test.
  Watchdog dog;
  constexpr std::uint64_t kRounds = 5000;
  WorkerParking to_a;
  WorkerParking to_b;
  std::atomic<std::uint64_t> ping{0};
  std::atomic<std::uint64_t> pong{0};
  std::thread b([&] {
    for (std::uint64_t i = 1; i <= kRounds; ++i) {
      park_until(to_b, [&] { return ping.load(std::memory_order_acquire) >= i; });
      pong.store(i, std::memory_order_release);
      full_fence();
      if (to_a.has_waiters()) to_a.notify_one();
    }
  });
  for (std::uint64_t i = 1; i <= kRounds; ++i) {
    ping.store(i, std::memory_order_release);
    full_fence();
    if (to_b.has_waiters()) to_b.notify_one();
    park_until(to_a, [&] { return pong.load(std::memory_order_acquire) >= i; });
  }
  b.join();
  EXPECT_EQ(pong.load(), kRounds);
}

TEST(WorkerParkingTest, NotifyOnePerTokenDrainsEveryTokenWithManySleepers) {
  // Tokens posted one at a time, each followed by at most one notify_one();
  // the sleepers must consume them all before the producer stops them (a
  // token stranded with everyone asleep would hang here).
  Watchdog dog;
  constexpr unsigned kWaiters = 4;
  constexpr std::int64_t kTokens = 20000;
  WorkerParking ec;
  std::atomic<std::int64_t> tokens{0};
  std::atomic<std::int64_t> consumed{0};
  std::atomic<bool> stop{false};
  auto try_take = [&] {
    std::int64_t n = tokens.load(std::memory_order_acquire);
    while (n > 0) {
      if (tokens.compare_exchange_weak(n, n - 1, std::memory_order_acq_rel)) return true;
    }
    return false;
  };
  std::vector<std::thread> waiters;
  for (unsigned w = 0; w < kWaiters; ++w) {
    waiters.emplace_back([&] {
      for (;;) {
        if (try_take()) {
          consumed.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
        const std::uint64_t key = ec.prepare_wait();
        if (tokens.load(std::memory_order_acquire) > 0 || stop.load(std::memory_order_acquire)) {
          ec.cancel_wait();
          if (stop.load(std::memory_order_acquire) && tokens.load() == 0) return;
          continue;
        }
        ec.commit_wait(key);
      }
    });
  }
  for (std::int64_t i = 0; i < kTokens; ++i) {
    tokens.fetch_add(1, std::memory_order_acq_rel);
    full_fence();
    if (ec.has_waiters()) ec.notify_one();
    if (i % 64 == 0) std::this_thread::yield();  // let the waiters fall asleep now and then
  }
  // Only the waiters can drain the rest: no further notifications until then.
  while (consumed.load(std::memory_order_relaxed) < kTokens) std::this_thread::sleep_for(100us);
  stop.store(true, std::memory_order_release);
  full_fence();
  ec.notify_all();
  for (std::thread& t : waiters) t.join();
  EXPECT_EQ(consumed.load(), kTokens);
  EXPECT_EQ(tokens.load(), 0);
  EXPECT_FALSE(ec.has_waiters());
}

// --- Broadcast -------------------------------------------------------------------

TEST(BroadcastTest, RegistrationIsCountedUntilCancelled) {
  Broadcast ec;
  EXPECT_FALSE(ec.has_waiters());
  const std::uint32_t key = ec.prepare_wait();
  EXPECT_TRUE(ec.has_waiters());
  ec.cancel_wait(key);
  EXPECT_FALSE(ec.has_waiters());
}

TEST(BroadcastTest, NotifyAllUnregistersEveryoneAtOnce) {
  Watchdog dog;
  Broadcast ec;
  const std::uint32_t k1 = ec.prepare_wait();
  const std::uint32_t k2 = ec.prepare_wait();
  EXPECT_EQ(k1, k2);
  ec.notify_all();
  EXPECT_FALSE(ec.has_waiters());  // no waiter had to wake for this
  ec.cancel_wait(k1);               // a no-op now: already withdrawn
  EXPECT_FALSE(ec.has_waiters());
  ec.commit_wait(k2, nullptr);  // the epoch moved: returns without sleeping
  EXPECT_FALSE(ec.has_waiters());
  EXPECT_NE(ec.prepare_wait(), k1);
}

TEST(BroadcastTest, NotifyAllWithoutWaitersDoesNotMoveTheEpoch) {
  Broadcast ec;
  const std::uint32_t before = ec.prepare_wait();
  ec.cancel_wait(before);
  ec.notify_all();
  const std::uint32_t after = ec.prepare_wait();
  EXPECT_EQ(after, before);
  ec.cancel_wait(after);
}

TEST(BroadcastTest, CommitWaitReturnsAtTheDeadline) {
  Watchdog dog;
  Broadcast ec;
  const std::uint32_t key = ec.prepare_wait();
  const auto start = std::chrono::steady_clock::now();
  const Broadcast::Deadline deadline = start + 20ms;
  ec.commit_wait(key, &deadline);
  EXPECT_GE(std::chrono::steady_clock::now(), deadline);
  EXPECT_FALSE(ec.has_waiters());  // timed out: withdrew its own registration
}

TEST(BroadcastTest, EveryWaiterWakesForEveryRound) {
  // A notifier advances a generation and broadcasts; each waiter acknowledges
  // every generation through a second Broadcast. A lost wake-up on either
  // side stalls the round.
  Watchdog dog;
  constexpr unsigned kWaiters = 3;
  constexpr std::uint64_t kRounds = 2000;
  Broadcast to_waiters;
  Broadcast to_notifier;
  std::atomic<std::uint64_t> generation{0};
  std::atomic<std::uint64_t> acks{0};
  std::vector<std::thread> waiters;
  for (unsigned w = 0; w < kWaiters; ++w) {
    waiters.emplace_back([&] {
      for (std::uint64_t g = 1; g <= kRounds; ++g) {
        broadcast_wait_until(to_waiters, [&] { return generation.load(std::memory_order_acquire) >= g; });
        acks.fetch_add(1, std::memory_order_acq_rel);
        full_fence();
        to_notifier.notify_all();  // cheap when the notifier is not registered
      }
    });
  }
  for (std::uint64_t g = 1; g <= kRounds; ++g) {
    generation.store(g, std::memory_order_release);
    full_fence();
    if (to_waiters.has_waiters()) to_waiters.notify_all();
    broadcast_wait_until(to_notifier, [&] { return acks.load(std::memory_order_acquire) >= g * kWaiters; });
  }
  for (std::thread& t : waiters) t.join();
  EXPECT_EQ(acks.load(), kRounds * kWaiters);
  EXPECT_FALSE(to_waiters.has_waiters());
}

}  // namespace
}  // namespace veda
