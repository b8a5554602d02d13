// Tests for veda::detail::NodePool (runtime/detail/node_pool.hpp): blocks
// allocated and released from many threads, handed across threads and across
// thread exits, are never handed out twice while live.
#include "runtime/detail/node_pool.hpp"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_set>
#include <vector>

#include "support/test_support.hpp"

namespace veda {
namespace {

using test::Watchdog;

// A node of the size of the scheduler's (a 64-byte Task plus a timestamp).
struct Block {
  std::uint64_t words[9];
};
using Pool = detail::NodePool<Block>;

// A second node type: its pool is independent of Pool.
struct SmallBlock {
  void* link;
};
using SmallPool = detail::NodePool<SmallBlock>;

// Every block currently handed out, sharded by address to keep the lock short.
// insert() fails when a block is handed out while it is still live.
class LiveSet {
 public:
  bool insert(void* p) {
    Shard& s = shard(p);
    std::lock_guard<std::mutex> lock(s.mutex);
    return s.live.insert(p).second;
  }
  bool erase(void* p) {
    Shard& s = shard(p);
    std::lock_guard<std::mutex> lock(s.mutex);
    return s.live.erase(p) == 1;
  }

 private:
  struct Shard {
    std::mutex mutex;
    std::unordered_set<void*> live;
  };
  Shard& shard(void* p) { return shards_[(reinterpret_cast<std::uintptr_t>(p) >> 6) % shards_.size()]; }
  std::array<Shard, 16> shards_;
};

// Fills a block with a pattern naming its owner, and checks it back.
void stamp(Block* b, std::uint64_t owner, std::uint64_t seq) {
  for (std::size_t i = 0; i < 9; ++i) b->words[i] = (owner << 40) ^ (seq << 4) ^ i;
}
bool intact(const Block* b, std::uint64_t owner, std::uint64_t seq) {
  for (std::size_t i = 0; i < 9; ++i) {
    if (b->words[i] != ((owner << 40) ^ (seq << 4) ^ i)) return false;
  }
  return true;
}

TEST(NodePoolTest, BlocksAreAlignedAndWritable) {
  std::vector<void*> blocks;
  for (int i = 0; i < 1000; ++i) {
    void* p = Pool::allocate();
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % alignof(std::max_align_t), 0U);
    stamp(static_cast<Block*>(p), 1, static_cast<std::uint64_t>(i));
    blocks.push_back(p);
  }
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    EXPECT_TRUE(intact(static_cast<Block*>(blocks[i]), 1, i));
    Pool::release(blocks[i]);
  }
}

TEST(NodePoolTest, ReleasedBlockIsReusedOnTheSameThread) {
  if (!Pool::kRecycles) GTEST_SKIP() << "pooling is off under AddressSanitizer";
  void* a = Pool::allocate();
  Pool::release(a);
  void* b = Pool::allocate();
  EXPECT_EQ(a, b);  // the thread's free list is LIFO
  Pool::release(b);
}

TEST(NodePoolTest, PoolsOfDifferentTypesDoNotShareBlocks) {
  if (!Pool::kRecycles) GTEST_SKIP() << "pooling is off under AddressSanitizer";
  void* big = Pool::allocate();
  Pool::release(big);
  void* small = SmallPool::allocate();
  EXPECT_NE(small, big);
  SmallPool::release(small);
  EXPECT_EQ(Pool::allocate(), big);
  Pool::release(big);
}

TEST(NodePoolTest, ManyThreadsAllocateAndReleaseLocallyWithoutDoubleHandOut) {
  Watchdog dog;
  LiveSet live;
  std::atomic<int> duplicates{0};
  std::atomic<int> corrupted{0};
  constexpr unsigned kThreads = 6;
  constexpr int kRounds = 60;
  // Bursts larger than two chains force spills to the depot and refills from it.
  constexpr int kBurst = 300;
  test::run_threads(kThreads, [&](unsigned t) {
    std::vector<Block*> mine;
    mine.reserve(kBurst);
    for (int round = 0; round < kRounds; ++round) {
      const int burst = 1 + (round * 37 + static_cast<int>(t) * 11) % kBurst;
      for (int i = 0; i < burst; ++i) {
        auto* b = static_cast<Block*>(Pool::allocate());
        if (!live.insert(b)) duplicates.fetch_add(1);
        stamp(b, t, static_cast<std::uint64_t>(i));
        mine.push_back(b);
      }
      for (int i = burst; i-- > 0;) {
        Block* b = mine[static_cast<std::size_t>(i)];
        if (!intact(b, t, static_cast<std::uint64_t>(i))) corrupted.fetch_add(1);
        live.erase(b);
        Pool::release(b);
      }
      mine.clear();
    }
  });
  EXPECT_EQ(duplicates.load(), 0);
  EXPECT_EQ(corrupted.load(), 0);
}

TEST(NodePoolTest, BlocksHandedAcrossThreadsAreNeverHandedOutTwice) {
  // The scheduler's pattern: producers allocate, consumers release, so blocks
  // flow from consumer caches through the depot back to the producers.
  Watchdog dog;
  LiveSet live;
  std::atomic<int> duplicates{0};
  std::atomic<int> corrupted{0};
  std::atomic<int> unknown{0};
  constexpr unsigned kProducers = 3;
  constexpr unsigned kConsumers = 3;
  constexpr std::uint64_t kPerProducer = 40000;

  struct Handoff {
    Block* block;
    std::uint64_t owner;
    std::uint64_t seq;
  };
  std::mutex mutex;
  std::condition_variable cv;
  std::deque<Handoff> queue;
  unsigned producers_left = kProducers;

  test::run_threads(kProducers + kConsumers, [&](unsigned t) {
    if (t < kProducers) {
      for (std::uint64_t i = 0; i < kPerProducer; ++i) {
        auto* b = static_cast<Block*>(Pool::allocate());
        if (!live.insert(b)) duplicates.fetch_add(1);
        stamp(b, t, i);
        {
          std::lock_guard<std::mutex> lock(mutex);
          queue.push_back({b, t, i});
        }
        cv.notify_one();
      }
      {
        std::lock_guard<std::mutex> lock(mutex);
        --producers_left;
      }
      cv.notify_all();
      return;
    }
    for (;;) {
      Handoff h{};
      {
        std::unique_lock<std::mutex> lock(mutex);
        cv.wait(lock, [&] { return !queue.empty() || producers_left == 0; });
        if (queue.empty()) return;
        h = queue.front();
        queue.pop_front();
      }
      if (!intact(h.block, h.owner, h.seq)) corrupted.fetch_add(1);
      if (!live.erase(h.block)) unknown.fetch_add(1);
      Pool::release(h.block);
    }
  });
  EXPECT_EQ(duplicates.load(), 0);
  EXPECT_EQ(corrupted.load(), 0);
  EXPECT_EQ(unknown.load(), 0);
}

TEST(NodePoolTest, ThreadsExitingWithCachedBlocksLeaveThemUsable) {
  // Short-lived threads free blocks into their caches and exit; their caches
  // go to the depot (or the allocator), and later threads draw from there.
  Watchdog dog;
  LiveSet live;
  std::atomic<int> duplicates{0};
  for (int wave = 0; wave < 20; ++wave) {
    test::run_threads(4, [&](unsigned t) {
      std::vector<void*> mine;
      for (int i = 0; i < 200 + static_cast<int>(t) * 50; ++i) {
        void* p = Pool::allocate();
        if (!live.insert(p)) duplicates.fetch_add(1);
        mine.push_back(p);
      }
      for (void* p : mine) {
        live.erase(p);
        Pool::release(p);
      }
    });
  }
  EXPECT_EQ(duplicates.load(), 0);
}

}  // namespace
}  // namespace veda
