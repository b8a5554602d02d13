// Tests for veda::detail::WorkDeque (runtime/detail/work_deque.hpp): owner
// LIFO / thief FIFO order, growth, and one owner pushing and popping against
// several thieves with every item taken exactly once (run under TSan too).
#include "runtime/detail/work_deque.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "support/test_support.hpp"

namespace veda {
namespace {

using detail::WorkDeque;
using test::Watchdog;

// An item the owner fills in (plain, non-atomic fields) before pushing it, so
// a taker reading them checks that the push published the contents.
struct Item {
  std::int64_t id = -1;
  std::int64_t check = 0;
};

std::vector<Item> make_items(std::int64_t n) {
  std::vector<Item> items(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) items[static_cast<std::size_t>(i)].id = i;
  return items;
}

TEST(WorkDequeTest, EmptyDequeYieldsNothing) {
  WorkDeque<Item> deque(4);
  EXPECT_EQ(deque.size(), 0);
  EXPECT_EQ(deque.free_slots(), 4);
  EXPECT_EQ(deque.pop(), nullptr);
  EXPECT_EQ(deque.steal(), nullptr);
  EXPECT_EQ(deque.size(), 0);  // a pop on empty leaves the indices balanced
}

TEST(WorkDequeTest, OwnerPopsNewestFirstThiefStealsOldestFirst) {
  auto items = make_items(6);
  WorkDeque<Item> deque(8);
  for (Item& item : items) deque.push(&item);
  EXPECT_EQ(deque.size(), 6);
  EXPECT_EQ(deque.free_slots(), 2);
  EXPECT_EQ(deque.pop(), &items[5]);
  EXPECT_EQ(deque.steal(), &items[0]);
  EXPECT_EQ(deque.pop(), &items[4]);
  EXPECT_EQ(deque.steal(), &items[1]);
  EXPECT_EQ(deque.steal(), &items[2]);
  EXPECT_EQ(deque.pop(), &items[3]);  // the last one, taken through the CAS path
  EXPECT_EQ(deque.pop(), nullptr);
  EXPECT_EQ(deque.steal(), nullptr);
  EXPECT_EQ(deque.size(), 0);
}

TEST(WorkDequeTest, GrowsAndKeepsOrder) {
  auto items = make_items(100);
  WorkDeque<Item> deque(2);
  for (Item& item : items) deque.push(&item);
  EXPECT_EQ(deque.size(), 100);
  EXPECT_GE(deque.free_slots(), 0);
  // Thieves see the oldest half in push order, the owner the rest newest first.
  for (std::size_t i = 0; i < 50; ++i) EXPECT_EQ(deque.steal(), &items[i]);
  for (std::size_t i = 100; i-- > 50;) EXPECT_EQ(deque.pop(), &items[i]);
  EXPECT_EQ(deque.pop(), nullptr);
}

TEST(WorkDequeTest, IndicesKeepWorkingAfterManyWrapArounds) {
  auto items = make_items(3);
  WorkDeque<Item> deque(4);
  for (int round = 0; round < 10000; ++round) {
    for (Item& item : items) deque.push(&item);
    ASSERT_EQ(deque.steal(), &items[0]);
    ASSERT_EQ(deque.pop(), &items[2]);
    ASSERT_EQ(deque.pop(), &items[1]);
  }
  EXPECT_EQ(deque.size(), 0);
  EXPECT_EQ(deque.free_slots(), 4);  // never needed to grow
}

// One owner pushes everything and pops a share back while `thieves` threads
// steal; afterwards every item must have been taken exactly once.
void run_owner_against_thieves(std::int64_t n, unsigned thieves, std::int64_t initial_capacity) {
  Watchdog dog;
  auto items = make_items(n);
  std::vector<std::atomic<int>> taken(static_cast<std::size_t>(n));
  std::atomic<std::int64_t> stolen{0};
  std::atomic<std::int64_t> bad{0};
  std::atomic<bool> owner_done{false};
  WorkDeque<Item> deque(initial_capacity);

  auto take = [&](Item* item) {
    if (item->check != item->id * 7 + 1) bad.fetch_add(1, std::memory_order_relaxed);
    taken[static_cast<std::size_t>(item->id)].fetch_add(1, std::memory_order_relaxed);
  };

  std::vector<std::thread> pool;
  for (unsigned t = 0; t < thieves; ++t) {
    pool.emplace_back([&] {
      for (;;) {
        // Read the flag first: once it is set and the deque is then seen
        // empty, nothing is left to steal.
        const bool done = owner_done.load(std::memory_order_acquire);
        if (Item* item = deque.steal()) {
          take(item);
          stolen.fetch_add(1, std::memory_order_relaxed);
        } else if (done) {
          return;
        } else {
          std::this_thread::yield();
        }
      }
    });
  }

  std::int64_t popped = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    Item& item = items[static_cast<std::size_t>(i)];
    item.check = item.id * 7 + 1;  // written before the push, read by the taker
    deque.push(&item);
    // Pop back now and then, often enough to race thieves for the last item.
    if (i % 3 == 2) {
      if (Item* mine = deque.pop()) {
        take(mine);
        ++popped;
      }
    }
  }
  while (Item* mine = deque.pop()) {
    take(mine);
    ++popped;
  }
  owner_done.store(true, std::memory_order_release);
  for (std::thread& th : pool) th.join();

  EXPECT_EQ(deque.size(), 0);
  EXPECT_EQ(bad.load(), 0) << "a taker saw an item's contents before the push published them";
  EXPECT_EQ(popped + stolen.load(), n);
  std::int64_t wrong = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const int count = taken[static_cast<std::size_t>(i)].load();
    if (count != 1) {
      if (wrong < 10) ADD_FAILURE() << "item " << i << " taken " << count << " times";
      ++wrong;
    }
  }
  EXPECT_EQ(wrong, 0);
}

TEST(WorkDequeTest, OwnerAgainstThievesTakesEveryItemExactlyOnce) {
  for (int round = 0; round < 4; ++round) {
    SCOPED_TRACE(round);
    run_owner_against_thieves(200000, 3, 256);
    if (HasFailure()) return;
  }
}

TEST(WorkDequeTest, OwnerAgainstThievesWhileTheRingGrows) {
  // A tiny first ring: the owner grows it repeatedly while thieves read slots.
  for (int round = 0; round < 4; ++round) {
    SCOPED_TRACE(round);
    run_owner_against_thieves(100000, 3, 1);
    if (HasFailure()) return;
  }
}

TEST(WorkDequeTest, LastItemRaceBetweenOwnerAndThief) {
  // The deque holds at most one item at a time, so every pop races the thief
  // for the last item (the CAS on top). One thief, so that owner and thief
  // each have a core on small machines and really overlap.
  Watchdog dog;
  constexpr std::int64_t kRounds = 400000;
  auto items = make_items(kRounds);
  std::vector<std::atomic<int>> taken(static_cast<std::size_t>(kRounds));
  std::atomic<bool> done{false};
  WorkDeque<Item> deque(2);
  std::thread thief([&] {
    for (;;) {
      const bool finished = done.load(std::memory_order_acquire);
      if (Item* item = deque.steal()) {
        taken[static_cast<std::size_t>(item->id)].fetch_add(1, std::memory_order_relaxed);
      } else if (finished) {
        return;
      }
    }
  });
  for (std::int64_t i = 0; i < kRounds; ++i) {
    deque.push(&items[static_cast<std::size_t>(i)]);
    if (Item* mine = deque.pop()) taken[static_cast<std::size_t>(mine->id)].fetch_add(1);
  }
  done.store(true, std::memory_order_release);
  thief.join();
  std::int64_t wrong = 0;
  for (std::int64_t i = 0; i < kRounds; ++i) {
    const int count = taken[static_cast<std::size_t>(i)].load();
    if (count != 1) {
      if (wrong < 10) ADD_FAILURE() << "item " << i << " taken " << count << " times";
      ++wrong;
    }
  }
  EXPECT_EQ(wrong, 0);
}

}  // namespace
}  // namespace veda
