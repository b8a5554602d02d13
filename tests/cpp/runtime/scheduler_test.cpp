// Tests for veda::Task and veda::Scheduler: exactly-once execution, nesting,
// failures, back-pressure, shutdown, observer and hooks.
#include "veda/runtime/scheduler.hpp"

#include <gtest/gtest.h>

#if defined(__linux__)
#include <pthread.h>
#endif

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "support/test_support.hpp"

namespace veda {
namespace {

using namespace std::chrono_literals;

// The watchdog aborts a hung test (a deadlock or lost wake-up would otherwise
// stall until ctest's timeout, without saying which test hung); spin_until
// yields between polls here.
using test::Gate;
using test::spin_until;
using test::Watchdog;

// Counts how often it is destroyed while still owning its slot, to prove every
// task is destroyed exactly once whether it ran or was cancelled.
struct DestroyCounter {
  explicit DestroyCounter(std::atomic<int>* c) : count(c) {}
  DestroyCounter(DestroyCounter&& other) noexcept : count(other.count) { other.count = nullptr; }
  DestroyCounter& operator=(DestroyCounter&&) = delete;
  DestroyCounter(const DestroyCounter&) = delete;
  ~DestroyCounter() {
    if (count != nullptr) count->fetch_add(1);
  }
  std::atomic<int>* count;
};

// --- Task ---------------------------------------------------------------------

TEST(TaskTest, EmptyByDefault) {
  Task t;
  EXPECT_FALSE(t);
  Task n = nullptr;
  EXPECT_FALSE(n);
  bool (*fp)() = nullptr;
  Task from_null_fp = fp;
  EXPECT_FALSE(from_null_fp);
  EXPECT_THROW(t(), std::bad_function_call);
}

TEST(TaskTest, RunsInlineAndHeapCallables) {
  int hits = 0;
  Task small([&hits] {
    ++hits;
    return true;
  });
  EXPECT_TRUE(small);
  EXPECT_TRUE(small());

  struct Big {
    char payload[200] = {};
    int* hits;
    bool operator()() {
      ++*hits;
      return payload[0] == 0;
    }
  };
  static_assert(!Task::stores_inline<Big>);
  Task big(Big{{}, &hits});
  EXPECT_TRUE(big());
  EXPECT_EQ(hits, 2);

  Task fails([] { return false; });
  EXPECT_FALSE(fails());
}

TEST(TaskTest, InlineLimitIsAtLeast48Bytes) {
  struct Fits {
    char data[48];
    bool operator()() { return true; }
  };
  static_assert(Task::stores_inline<Fits>);
  static_assert(Task::inline_size >= 48);
  static_assert(sizeof(Task) == 64);
}

TEST(TaskTest, MoveTransfersOwnershipAndDestroysOnce) {
  std::atomic<int> destroyed{0};
  {
    Task a([guard = DestroyCounter(&destroyed)] { return guard.count != nullptr; });
    Task b(std::move(a));
    EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move): moved-from is empty
    EXPECT_TRUE(b);
    EXPECT_EQ(destroyed.load(), 0);
    EXPECT_TRUE(b());
    Task c;
    c = std::move(b);
    EXPECT_TRUE(c());
    EXPECT_EQ(destroyed.load(), 0);
    c = Task([] { return true; });  // assigning over destroys the old callable
    EXPECT_EQ(destroyed.load(), 1);
  }
  EXPECT_EQ(destroyed.load(), 1);

  // Heap-stored, non-trivial callable.
  {
    std::vector<int> big(1000, 7);
    Task a([guard = DestroyCounter(&destroyed), big, pad = std::string(100, 'x')] {
      return big[999] == 7 && pad.size() == 100;
    });
    Task b(std::move(a));
    EXPECT_TRUE(b());
  }
  EXPECT_EQ(destroyed.load(), 2);
}

TEST(TaskTest, AcceptsMoveOnlyCallables) {
  auto owned = std::make_unique<int>(41);
  Task t([p = std::move(owned)] { return ++*p == 42; });
  Task u(std::move(t));
  EXPECT_TRUE(u());
}

TEST(TaskTest, MakeTaskAdaptsVoidAndCatches) {
  int hits = 0;
  Task v = make_task([&hits] { ++hits; });
  EXPECT_TRUE(v());
  EXPECT_EQ(hits, 1);

  Task thrower = make_task([] { throw std::runtime_error("boom"); });
  EXPECT_FALSE(thrower());

  Task b = make_task([] { return false; });
  EXPECT_FALSE(b());

  Task throwing_bool = make_task([]() -> bool { throw 42; });
  EXPECT_FALSE(throwing_bool());
}

// --- Scheduler: construction ------------------------------------------------

TEST(SchedulerTest, RejectsBadOptions) {
  SchedulerOptions options;
  options.num_threads = Scheduler::max_threads + 1;
  try {
    Scheduler s(options);
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("num_threads"), std::string::npos) << e.what();
  }
}

TEST(SchedulerTest, DefaultsToHardwareConcurrency) {
  Watchdog dog;
  Scheduler s;
  const unsigned hw = std::thread::hardware_concurrency();
  EXPECT_EQ(s.num_threads(), hw == 0 ? 1U : hw);
  EXPECT_EQ(s.queue_capacity(), 0U);
  EXPECT_FALSE(s.is_shutdown());
}

TEST(SchedulerTest, EmptyTaskIsInvalid) {
  Watchdog dog;
  Scheduler s(SchedulerOptions{1});
  EXPECT_THROW(s.submit(Task{}), std::invalid_argument);
  EXPECT_EQ(s.pending(), 0U);
}

// --- Scheduler: every task runs exactly once ---------------------------------

class ExactlyOnceTest : public ::testing::TestWithParam<std::tuple<unsigned, unsigned>> {};

TEST_P(ExactlyOnceTest, AllTasksRunExactlyOnce) {
  Watchdog dog;
  const auto [workers, submitters] = GetParam();
  constexpr int kTasks = 100000;
  Scheduler s(SchedulerOptions{workers});
  std::vector<std::atomic<int>> hits(kTasks);
  std::atomic<int> ran{0};

  std::vector<std::thread> threads;
  for (unsigned t = 0; t < submitters; ++t) {
    threads.emplace_back([&, t] {
      for (int i = static_cast<int>(t); i < kTasks; i += static_cast<int>(submitters)) {
        ASSERT_TRUE(s.submit([&hits, &ran, i] {
          hits[static_cast<std::size_t>(i)].fetch_add(1, std::memory_order_relaxed);
          ran.fetch_add(1, std::memory_order_release);
          return true;
        }));
      }
    });
  }
  for (auto& th : threads) th.join();
  s.help_until([&] { return ran.load(std::memory_order_acquire) == kTasks; });
  spin_until([&] { return s.completed() == static_cast<std::uint64_t>(kTasks); });

  for (int i = 0; i < kTasks; ++i) {
    ASSERT_EQ(hits[static_cast<std::size_t>(i)].load(), 1) << "task " << i;
  }
  EXPECT_EQ(s.completed(), static_cast<std::uint64_t>(kTasks));
  EXPECT_EQ(s.failed(), 0U);
  EXPECT_EQ(s.cancelled(), 0U);
  EXPECT_EQ(s.pending(), 0U);
  EXPECT_EQ(s.running(), 0U);
}

INSTANTIATE_TEST_SUITE_P(WorkersBySubmitters, ExactlyOnceTest,
                         ::testing::Combine(::testing::Values(1U, 2U, 4U),
                                            ::testing::Values(1U, 2U, 3U, 4U)),
                         [](const auto& param_info) {
                           return "w" + std::to_string(std::get<0>(param_info.param)) + "_s" +
                                  std::to_string(std::get<1>(param_info.param));
                         });

// --- Scheduler: nesting -------------------------------------------------------

// Recursive fib: each level submits one child and waits for it with help_until.
// If the child cannot be submitted (shutdown), it runs inline.
long fib(Scheduler& s, int n) {
  if (n < 2) return n;
  long left = 0;
  std::atomic<bool> done{false};
  const bool queued = s.submit([&s, &left, &done, n] {
    left = fib(s, n - 1);
    done.store(true, std::memory_order_release);
    return true;
  });
  if (!queued) left = fib(s, n - 1);
  const long right = fib(s, n - 2);
  if (queued) s.help_until([&done] { return done.load(std::memory_order_acquire); });
  return left + right;
}

class NestedTest : public ::testing::TestWithParam<unsigned> {};

TEST_P(NestedTest, FibInsideWorkerTask) {
  Watchdog dog;
  Scheduler s(SchedulerOptions{GetParam()});
  std::promise<long> result;
  auto future = result.get_future();
  // The whole recursion happens on the workers; this thread only waits, so
  // with one worker it must help itself through every level.
  ASSERT_TRUE(s.submit([&] {
    result.set_value(fib(s, 20));
    return true;
  }));
  EXPECT_EQ(future.get(), 6765);
  spin_until([&] { return s.running() == 0; });
  EXPECT_EQ(s.failed(), 0U);
  EXPECT_EQ(s.completed(), 10946U);  // root + one task per inner node of fib(20)
}

TEST_P(NestedTest, FibFromExternalThread) {
  Watchdog dog;
  Scheduler s(SchedulerOptions{GetParam()});
  EXPECT_EQ(fib(s, 20), 6765);
  EXPECT_EQ(s.failed(), 0U);
}

// An outside thread takes the oldest queued task first, and every fib task
// helps in turn, so its nesting would grow with the number of queued tasks;
// on a small stack it must stop helping (and only wait) before it overflows.
TEST_P(NestedTest, FibFromAnExternalThreadWithASmallStack) {
#if defined(__linux__)
  Watchdog dog;
  Scheduler s(SchedulerOptions{GetParam()});
  struct Job {
    Scheduler* s;
    long result = 0;
  } job{&s};
  pthread_attr_t attr;
  ASSERT_EQ(pthread_attr_init(&attr), 0);
  ASSERT_EQ(pthread_attr_setstacksize(&attr, std::size_t{512} << 10), 0);
  pthread_t thread;
  ASSERT_EQ(pthread_create(
                &thread, &attr,
                [](void* arg) -> void* {
                  auto* j = static_cast<Job*>(arg);
                  j->result = fib(*j->s, 20);
                  return nullptr;
                },
                &job),
            0);
  pthread_attr_destroy(&attr);
  ASSERT_EQ(pthread_join(thread, nullptr), 0);
  EXPECT_EQ(job.result, 6765);
  EXPECT_EQ(s.failed(), 0U);
#else
  GTEST_SKIP() << "stack bounds are read on Linux only";
#endif
}

INSTANTIATE_TEST_SUITE_P(Threads, NestedTest, ::testing::Values(1U, 2U, 4U));

TEST(SchedulerTest, HelpUntilWorksAcrossSchedulers) {
  Watchdog dog;
  Scheduler a(SchedulerOptions{1});
  Scheduler b(SchedulerOptions{1});
  std::promise<long> result;
  auto future = result.get_future();
  // A worker of `a` is an ordinary external thread for `b`.
  ASSERT_TRUE(a.submit([&] {
    EXPECT_TRUE(a.is_worker_thread());
    EXPECT_FALSE(b.is_worker_thread());
    result.set_value(fib(b, 15));
    return true;
  }));
  EXPECT_EQ(future.get(), 610);
}

TEST(SchedulerTest, HelpUntilReturnsOnExternalCondition) {
  Watchdog dog;
  Scheduler s(SchedulerOptions{1});
  std::atomic<bool> flag{false};
  std::thread setter([&] {
    std::this_thread::sleep_for(5ms);
    flag.store(true);
  });
  s.help_until([&] { return flag.load(); });  // no task drives this; the poll does
  setter.join();
  EXPECT_TRUE(flag.load());
}

TEST(SchedulerTest, HelpUntilPropagatesPredicateExceptions) {
  Watchdog dog;
  Scheduler s(SchedulerOptions{1});
  EXPECT_THROW(s.help_until([]() -> bool { throw std::runtime_error("pred"); }),
               std::runtime_error);
  std::atomic<bool> ran{false};
  ASSERT_TRUE(s.submit([&] {
    ran = true;
    return true;
  }));
  s.help_until([&] { return ran.load(); });
}

// wait_until() sleeps until the tasks are done and never runs one itself,
// even when the workers are busy and the queue is full of work it could take.
TEST(SchedulerTest, WaitUntilNeverRunsATaskOnTheCallingThread) {
  Watchdog dog;
  Scheduler s(SchedulerOptions{1});
  const auto me = std::this_thread::get_id();
  std::atomic<int> done{0};
  std::atomic<int> on_waiter{0};
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(s.submit([&] {
      if (std::this_thread::get_id() == me) on_waiter.fetch_add(1);
      std::this_thread::sleep_for(50us);
      done.fetch_add(1);
      return true;
    }));
  }
  s.wait_until([&] { return done.load() == 200; });
  EXPECT_EQ(done.load(), 200);
  EXPECT_EQ(on_waiter.load(), 0);
  // A condition no task drives still ends the wait (the poll), and exceptions propagate.
  std::atomic<bool> flag{false};
  std::thread setter([&] {
    std::this_thread::sleep_for(5ms);
    flag.store(true);
  });
  s.wait_until([&] { return flag.load(); });
  setter.join();
  EXPECT_THROW(s.wait_until([]() -> bool { throw std::runtime_error("pred"); }), std::runtime_error);
}

TEST(SchedulerTest, RunOneRunsOnCallingThread) {
  Watchdog dog;
  Scheduler s(SchedulerOptions{1});
  Gate gate;
  std::atomic<bool> blocker_started{false};
  ASSERT_TRUE(s.submit([&] {
    blocker_started = true;
    gate.wait();
    return true;
  }));
  spin_until([&] { return blocker_started.load(); });

  std::thread::id ran_on;
  ASSERT_TRUE(s.submit([&] {
    ran_on = std::this_thread::get_id();
    return true;
  }));
  EXPECT_EQ(s.pending(), 1U);
  EXPECT_EQ(s.running(), 1U);
  EXPECT_TRUE(s.run_one());
  EXPECT_EQ(ran_on, std::this_thread::get_id());
  EXPECT_FALSE(s.run_one());
  gate.open();
  s.shutdown(true);
  EXPECT_EQ(s.completed(), 2U);
}

// --- Scheduler: failures ------------------------------------------------------

TEST(SchedulerTest, FailuresAreCountedAndWorkersSurvive) {
  Watchdog dog;
  Scheduler s(SchedulerOptions{2});
  constexpr int kEach = 2000;
  std::atomic<int> ok_ran{0};
  for (int i = 0; i < kEach; ++i) {
    ASSERT_TRUE(s.submit([]() -> bool { throw std::runtime_error("task failure"); }));
    ASSERT_TRUE(s.submit([]() -> bool { throw 7; }));  // not a std::exception
    ASSERT_TRUE(s.submit([] { return false; }));
    ASSERT_TRUE(s.submit(make_task([] { throw std::logic_error("void task"); })));
    ASSERT_TRUE(s.submit([&] {
      ok_ran.fetch_add(1);
      return true;
    }));
  }
  s.help_until([&] { return s.completed() + s.failed() == 5U * kEach; });
  EXPECT_EQ(s.failed(), 4U * kEach);
  EXPECT_EQ(s.completed(), 1U * kEach);
  EXPECT_EQ(ok_ran.load(), kEach);

  // Both workers are still alive: two tasks that wait for each other can only
  // finish if they run at the same time on different workers.
  std::atomic<int> arrived{0};
  std::promise<void> both;
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(s.submit([&] {
      if (arrived.fetch_add(1) == 1) both.set_value();
      spin_until([&] { return arrived.load() == 2; });
      return true;
    }));
  }
  both.get_future().wait();
}

// --- Scheduler: bounded queue -------------------------------------------------

TEST(SchedulerTest, QueueCapacityBlocksAndTrySubmitTimesOut) {
  Watchdog dog;
  SchedulerOptions options;
  options.num_threads = 1;
  options.queue_capacity = 2;
  Scheduler s(options);
  EXPECT_EQ(s.queue_capacity(), 2U);

  Gate gate;
  std::atomic<bool> blocker_started{false};
  ASSERT_TRUE(s.submit([&] {
    blocker_started = true;
    gate.wait();
    return true;
  }));
  spin_until([&] { return blocker_started.load(); });

  std::atomic<int> ran{0};
  auto counting = [&] {
    ran.fetch_add(1);
    return true;
  };
  ASSERT_TRUE(s.submit(counting));
  ASSERT_TRUE(s.submit(counting));
  EXPECT_EQ(s.pending(), 2U);

  // Full: try_submit gives up, destroying the task unrun.
  std::atomic<int> destroyed{0};
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(s.try_submit([g = DestroyCounter(&destroyed)] { return g.count != nullptr; }, 20ms));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 20ms);
  EXPECT_EQ(destroyed.load(), 1);
  EXPECT_FALSE(s.try_submit(counting, 0ns));
  EXPECT_FALSE(s.try_submit(counting, -5ms));

  // A blocking submit waits until the worker starts a queued task.
  std::atomic<bool> returned{false};
  std::thread producer([&] {
    EXPECT_TRUE(s.submit(counting));
    returned = true;
  });
  std::this_thread::sleep_for(30ms);
  EXPECT_FALSE(returned.load());
  EXPECT_EQ(s.pending(), 2U);
  gate.open();
  producer.join();
  EXPECT_TRUE(returned.load());
  s.help_until([&] { return ran.load() == 3; });
  EXPECT_TRUE(s.try_submit(counting, 1s));
  s.shutdown(true);
  EXPECT_EQ(ran.load(), 4);
  EXPECT_EQ(s.completed(), 5U);
}

TEST(SchedulerTest, BlockedSubmitReturnsFalseOnShutdown) {
  Watchdog dog;
  SchedulerOptions options;
  options.num_threads = 1;
  options.queue_capacity = 1;
  Scheduler s(options);
  Gate gate;
  std::atomic<bool> blocker_started{false};
  ASSERT_TRUE(s.submit([&] {
    blocker_started = true;
    gate.wait();
    return true;
  }));
  spin_until([&] { return blocker_started.load(); });
  ASSERT_TRUE(s.submit([] { return true; }));

  std::promise<bool> result;
  std::thread producer([&] { result.set_value(s.submit([] { return true; })); });
  std::this_thread::sleep_for(10ms);
  std::thread stopper([&] { s.shutdown(false); });
  auto future = result.get_future();
  EXPECT_FALSE(future.get());
  gate.open();
  producer.join();
  stopper.join();
  EXPECT_EQ(s.cancelled(), 1U);
  EXPECT_EQ(s.completed(), 1U);
}

TEST(SchedulerTest, NestedSubmitWithTinyCapacityDoesNotDeadlock) {
  for (unsigned workers : {1U, 2U}) {
    Watchdog dog;
    SchedulerOptions options;
    options.num_threads = workers;
    options.queue_capacity = 2;
    Scheduler s(options);
    std::promise<long> result;
    auto future = result.get_future();
    ASSERT_TRUE(s.submit([&] {
      result.set_value(fib(s, 14));
      return true;
    }));
    EXPECT_EQ(future.get(), 377) << workers << " workers";
  }
}

// --- Scheduler: shutdown ------------------------------------------------------

TEST(SchedulerTest, ShutdownWaitDrainsQueuedTasks) {
  Watchdog dog;
  Scheduler s(SchedulerOptions{1});
  Gate gate;
  std::atomic<bool> blocker_started{false};
  ASSERT_TRUE(s.submit([&] {
    blocker_started = true;
    gate.wait();
    return true;
  }));
  spin_until([&] { return blocker_started.load(); });
  constexpr int kQueued = 100;
  std::atomic<int> ran{0};
  for (int i = 0; i < kQueued; ++i) {
    ASSERT_TRUE(s.submit([&] {
      ran.fetch_add(1);
      return true;
    }));
  }
  std::thread stopper([&] { s.shutdown(true); });
  spin_until([&] { return s.is_shutdown(); });
  std::atomic<int> destroyed{0};
  EXPECT_FALSE(s.submit([g = DestroyCounter(&destroyed)] { return g.count != nullptr; }));
  EXPECT_EQ(destroyed.load(), 1);
  gate.open();
  stopper.join();
  EXPECT_EQ(ran.load(), kQueued);
  EXPECT_EQ(s.completed(), static_cast<std::uint64_t>(kQueued + 1));
  EXPECT_EQ(s.cancelled(), 0U);
  EXPECT_EQ(s.pending(), 0U);
  EXPECT_EQ(s.running(), 0U);
}

TEST(SchedulerTest, ShutdownNoWaitCancelsQueuedTasks) {
  Watchdog dog;
  Scheduler s(SchedulerOptions{2});
  Gate gate;
  std::atomic<int> blockers_started{0};
  constexpr int kExternal = 100;
  constexpr int kFromWorker = 50;
  std::atomic<int> ran{0};
  std::atomic<int> destroyed{0};
  // One worker fills its own deque and then blocks; the other just blocks.
  // Nothing queued can run until the gate opens.
  ASSERT_TRUE(s.submit([&] {
    blockers_started.fetch_add(1);
    spin_until([&] { return blockers_started.load() == 2; });
    for (int i = 0; i < kFromWorker; ++i) {
      EXPECT_TRUE(s.submit([&ran, g = DestroyCounter(&destroyed)] {
        ran.fetch_add(1);
        return g.count != nullptr;
      }));
    }
    gate.wait();
    return true;
  }));
  ASSERT_TRUE(s.submit([&] {
    blockers_started.fetch_add(1);
    gate.wait();
    return true;
  }));
  spin_until([&] { return blockers_started.load() == 2; });
  for (int i = 0; i < kExternal; ++i) {
    ASSERT_TRUE(s.submit([&ran, g = DestroyCounter(&destroyed)] {
      ran.fetch_add(1);
      return g.count != nullptr;
    }));
  }
  spin_until([&] { return s.pending() == static_cast<std::size_t>(kExternal + kFromWorker); });
  std::thread stopper([&] { s.shutdown(false); });
  spin_until([&] { return s.is_shutdown(); });
  EXPECT_FALSE(s.submit([] { return true; }));
  gate.open();
  stopper.join();
  EXPECT_EQ(ran.load(), 0);
  EXPECT_EQ(destroyed.load(), kExternal + kFromWorker);
  EXPECT_EQ(s.cancelled(), static_cast<std::uint64_t>(kExternal + kFromWorker));
  EXPECT_EQ(s.completed(), 2U);
  EXPECT_EQ(s.pending(), 0U);
  EXPECT_EQ(s.running(), 0U);
}

TEST(SchedulerTest, ShutdownIsIdempotentAndConcurrent) {
  Watchdog dog;
  Scheduler s(SchedulerOptions{2});
  std::atomic<int> ran{0};
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(s.submit([&] {
      ran.fetch_add(1);
      return true;
    }));
  }
  std::thread a([&] { s.shutdown(true); });
  std::thread b([&] { s.shutdown(true); });
  a.join();
  b.join();
  s.shutdown(true);
  s.shutdown(false);
  EXPECT_TRUE(s.is_shutdown());
  EXPECT_EQ(ran.load(), 1000);
  EXPECT_FALSE(s.submit([] { return true; }));
  EXPECT_FALSE(s.try_submit([] { return true; }, 1ms));
}

TEST(SchedulerTest, DestructorDrains) {
  Watchdog dog;
  std::atomic<int> ran{0};
  {
    Scheduler s(SchedulerOptions{2});
    for (int i = 0; i < 5000; ++i) {
      ASSERT_TRUE(s.submit([&] {
        ran.fetch_add(1);
        return true;
      }));
    }
  }
  EXPECT_EQ(ran.load(), 5000);
}

TEST(SchedulerTest, ShutdownFromInsideATaskDoesNotDeadlock) {
  for (bool wait : {true, false}) {
    Watchdog dog;
    std::atomic<int> ran{0};
    std::atomic<bool> inner_submit{true};
    {
      Scheduler s(SchedulerOptions{2});
      std::promise<void> called;
      ASSERT_TRUE(s.submit([&] {
        s.shutdown(wait);  // marks the shutdown and returns: cannot join itself
        inner_submit = s.submit([] { return true; });
        called.set_value();
        return true;
      }));
      called.get_future().wait();
      EXPECT_TRUE(s.is_shutdown());
      for (int i = 0; i < 10; ++i) {
        EXPECT_FALSE(s.submit([&] {
          ran.fetch_add(1);
          return true;
        }));
      }
    }  // the destructor joins
    EXPECT_FALSE(inner_submit.load());
    EXPECT_EQ(ran.load(), 0);
  }
}

TEST(SchedulerTest, CancelledChildSignalsItsWaiterThroughItsDestructor) {
  // The documented way to wait for work that shutdown(false) may cancel: the
  // child's destructor marks it finished whether or not it ran.
  Watchdog dog;
  Scheduler s(SchedulerOptions{1});
  std::promise<bool> child_ran;
  std::atomic<bool> parent_waiting{false};
  ASSERT_TRUE(s.submit([&] {
    auto finished = std::make_shared<std::atomic<bool>>(false);
    struct MarkOnDestroy {
      std::shared_ptr<std::atomic<bool>> flag;
      ~MarkOnDestroy() {
        if (flag) flag->store(true);
      }
      MarkOnDestroy(std::shared_ptr<std::atomic<bool>> f) : flag(std::move(f)) {}
      MarkOnDestroy(MarkOnDestroy&&) noexcept = default;
    };
    std::atomic<bool> ran_child{false};
    EXPECT_TRUE(s.submit([&ran_child, mark = MarkOnDestroy(finished)] {
      ran_child = true;
      return true;
    }));
    parent_waiting = true;
    // Cannot run the child before the shutdown below: wait for it first.
    spin_until([&] { return s.is_shutdown(); });
    s.help_until([&] { return finished->load(); });
    child_ran.set_value(ran_child.load());
    return true;
  }));
  spin_until([&] { return parent_waiting.load(); });
  s.shutdown(false);
  EXPECT_FALSE(child_ran.get_future().get());
  EXPECT_EQ(s.cancelled(), 1U);
}

// --- Scheduler: observer and hooks ------------------------------------------

class RecordingObserver : public SchedulerObserver {
 public:
  void on_task_start(std::int64_t queue_wait_ns) noexcept override {
    starts.fetch_add(1);
    if (queue_wait_ns < 0) negative.fetch_add(1);
    update_max(max_wait, queue_wait_ns);
  }
  void on_task_end(std::int64_t queue_wait_ns, std::int64_t run_ns, bool ok) noexcept override {
    ends.fetch_add(1);
    (ok ? oks : fails).fetch_add(1);
    if (queue_wait_ns < 0 || run_ns < 0) negative.fetch_add(1);
    update_max(max_run, run_ns);
  }
  static void update_max(std::atomic<std::int64_t>& m, std::int64_t v) {
    std::int64_t cur = m.load();
    while (v > cur && !m.compare_exchange_weak(cur, v)) {
    }
  }
  std::atomic<int> starts{0}, ends{0}, oks{0}, fails{0}, negative{0};
  std::atomic<std::int64_t> max_wait{0}, max_run{0};
};

TEST(SchedulerTest, ObserverSeesEveryTaskOnce) {
  Watchdog dog;
  RecordingObserver observer;
  {
    SchedulerOptions options;
    options.num_threads = 2;
    options.observer = &observer;
    Scheduler s(options);
    constexpr int kTasks = 10000;
    for (int i = 0; i < kTasks; ++i) {
      ASSERT_TRUE(s.submit([i] {
        if (i % 10 == 0) throw std::runtime_error("fail");
        return i % 10 != 1;
      }));
    }
    // A task that runs >= 2 ms, and one that queues behind a 5 ms blocker.
    ASSERT_TRUE(s.submit([] {
      std::this_thread::sleep_for(2ms);
      return true;
    }));
    s.shutdown(true);
    EXPECT_EQ(observer.starts.load(), kTasks + 1);
    EXPECT_EQ(observer.ends.load(), kTasks + 1);
    EXPECT_EQ(observer.fails.load(), 2 * kTasks / 10);
    EXPECT_EQ(observer.oks.load(), kTasks + 1 - 2 * kTasks / 10);
    EXPECT_EQ(static_cast<std::uint64_t>(observer.oks.load()), s.completed());
    EXPECT_EQ(static_cast<std::uint64_t>(observer.fails.load()), s.failed());
    EXPECT_EQ(observer.negative.load(), 0);
    EXPECT_GE(observer.max_run.load(), 2'000'000);
  }
  {
    RecordingObserver waits;
    SchedulerOptions options;
    options.num_threads = 1;
    options.observer = &waits;
    Scheduler s(options);
    ASSERT_TRUE(s.submit([] {
      std::this_thread::sleep_for(5ms);
      return true;
    }));
    ASSERT_TRUE(s.submit([] { return true; }));  // waits behind the sleeper
    s.shutdown(true);
    EXPECT_GE(waits.max_wait.load(), 4'000'000);
    EXPECT_EQ(waits.starts.load(), 2);
  }
}

TEST(SchedulerTest, WorkerHooksAndThreadIdentity) {
  Watchdog dog;
  std::mutex mutex;
  std::multiset<int> started;
  std::multiset<int> stopped;
  EXPECT_FALSE(Scheduler::in_worker_thread());
  EXPECT_EQ(Scheduler::current_worker_index(), -1);
  {
    SchedulerOptions options;
    options.num_threads = 3;
    options.on_worker_start = [&] {
      std::lock_guard<std::mutex> lock(mutex);
      started.insert(Scheduler::current_worker_index());
    };
    options.on_worker_stop = [&] {
      std::lock_guard<std::mutex> lock(mutex);
      stopped.insert(Scheduler::current_worker_index());
      throw std::runtime_error("swallowed");
    };
    Scheduler s(options);
    EXPECT_FALSE(s.is_worker_thread());
    std::promise<std::tuple<bool, bool, int>> seen;
    ASSERT_TRUE(s.submit([&] {
      seen.set_value({Scheduler::in_worker_thread(), s.is_worker_thread(),
                      Scheduler::current_worker_index()});
      return true;
    }));
    const auto [in_worker, of_this, index] = seen.get_future().get();
    EXPECT_TRUE(in_worker);
    EXPECT_TRUE(of_this);
    EXPECT_GE(index, 0);
    EXPECT_LT(index, 3);
  }
  EXPECT_EQ(started, (std::multiset<int>{0, 1, 2}));
  EXPECT_EQ(stopped, (std::multiset<int>{0, 1, 2}));
}

// --- Stress -------------------------------------------------------------------

TEST(SchedulerStressTest, MixedExternalAndNestedSubmissions) {
  Watchdog dog(std::chrono::seconds(120));
  for (unsigned workers : {1U, 2U, 3U}) {
    SchedulerOptions options;
    options.num_threads = workers;
    options.queue_capacity = workers == 3 ? 64 : 0;
    Scheduler s(options);
    constexpr int kRoots = 2000;
    constexpr int kSubmitters = 3;
    std::atomic<long> leaves{0};
    std::atomic<int> roots_done{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kSubmitters; ++t) {
      threads.emplace_back([&] {
        for (int i = 0; i < kRoots; ++i) {
          ASSERT_TRUE(s.submit([&s, &leaves, &roots_done, i] {
            // Fan out to 0..3 children and wait for them.
            const int children = i % 4;
            std::atomic<int> done{0};
            for (int c = 0; c < children; ++c) {
              EXPECT_TRUE(s.submit([&] {
                leaves.fetch_add(1);
                done.fetch_add(1, std::memory_order_release);
                return true;
              }));
            }
            s.help_until([&] { return done.load(std::memory_order_acquire) == children; });
            roots_done.fetch_add(1);
            return true;
          }));
        }
      });
    }
    for (auto& th : threads) th.join();
    s.help_until([&] { return roots_done.load() == kSubmitters * kRoots; });
    s.shutdown(true);
    long expected = 0;
    for (int i = 0; i < kRoots; ++i) expected += i % 4;
    EXPECT_EQ(leaves.load(), expected * kSubmitters) << workers << " workers";
    EXPECT_EQ(s.completed(),
              static_cast<std::uint64_t>(kSubmitters * kRoots + expected * kSubmitters));
    EXPECT_EQ(s.pending(), 0U);
  }
}

TEST(SchedulerStressTest, IdleWakeUpsAreNotLost) {
  // Many short bursts separated by idle gaps long enough for workers to park:
  // every burst must complete without anyone helping.
  Watchdog dog(std::chrono::seconds(120));
  Scheduler s(SchedulerOptions{2});
  std::atomic<int> ran{0};
  int expected = 0;
  for (int round = 0; round < 200; ++round) {
    const int burst = 1 + round % 5;
    for (int i = 0; i < burst; ++i) {
      ASSERT_TRUE(s.submit([&] {
        ran.fetch_add(1, std::memory_order_release);
        return true;
      }));
    }
    expected += burst;
    spin_until([&] { return ran.load(std::memory_order_acquire) == expected; });
    if (round % 20 == 0) std::this_thread::sleep_for(2ms);  // let the workers park
  }
  EXPECT_EQ(ran.load(), expected);
}

}  // namespace
}  // namespace veda
