// Tests for veda::FutureState (veda/runtime/future_state.hpp): each transition
// of the concurrent.futures state machine, and a runner racing a canceller.
#include "veda/runtime/future_state.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace veda {
namespace {

TEST(FutureState, RunsToFinished) {
  FutureState state;
  EXPECT_EQ(state.status(), FutureStatus::pending);
  EXPECT_FALSE(state.done());
  EXPECT_FALSE(state.finish());  // not running yet
  ASSERT_TRUE(state.try_start());
  EXPECT_EQ(state.status(), FutureStatus::running);
  EXPECT_FALSE(state.try_start());   // started once only
  EXPECT_FALSE(state.try_cancel());  // a running task cannot be cancelled
  EXPECT_FALSE(state.done());
  ASSERT_TRUE(state.finish());
  EXPECT_EQ(state.status(), FutureStatus::finished);
  EXPECT_TRUE(state.done());
  EXPECT_FALSE(state.finish());
  EXPECT_FALSE(state.try_cancel());
  EXPECT_FALSE(state.try_start());
  EXPECT_EQ(state.status(), FutureStatus::finished);
}

TEST(FutureState, CancelledBeforeItRuns) {
  FutureState state;
  ASSERT_TRUE(state.try_cancel());
  EXPECT_EQ(state.status(), FutureStatus::cancelled);
  EXPECT_TRUE(state.done());
  EXPECT_TRUE(state.try_cancel());  // cancelling again still reports cancelled
  EXPECT_FALSE(state.try_start());  // the runner skips it and records that it saw it
  EXPECT_EQ(state.status(), FutureStatus::cancelled_notified);
  EXPECT_TRUE(state.try_cancel());
  EXPECT_FALSE(state.try_start());
  EXPECT_FALSE(state.finish());
  EXPECT_EQ(state.status(), FutureStatus::cancelled_notified);
  EXPECT_TRUE(state.done());
}

// Many rounds of one runner against one canceller: exactly one of them wins,
// and the loser's view agrees with the final state.
TEST(FutureState, RunnerAndCancellerRace) {
  constexpr int kRounds = 4000;
  int started = 0, cancelled = 0;
  for (int round = 0; round < kRounds; ++round) {
    FutureState state;
    std::atomic<bool> go{false};
    bool ran = false, cancel_won = false;
    std::thread runner([&] {
      while (!go.load(std::memory_order_acquire)) {
      }
      ran = state.try_start();
      if (ran) {
        EXPECT_TRUE(state.finish());
      }
    });
    std::thread canceller([&] {
      while (!go.load(std::memory_order_acquire)) {
      }
      cancel_won = state.try_cancel();
    });
    go.store(true, std::memory_order_release);
    runner.join();
    canceller.join();
    ASSERT_NE(ran, cancel_won) << "round " << round;
    if (ran) {
      ++started;
      EXPECT_EQ(state.status(), FutureStatus::finished);
    } else {
      ++cancelled;
      EXPECT_EQ(state.status(), FutureStatus::cancelled_notified);
    }
  }
  EXPECT_EQ(started + cancelled, kRounds);
}

}  // namespace
}  // namespace veda
