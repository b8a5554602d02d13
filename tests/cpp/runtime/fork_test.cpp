// Tests for a scheduler and runtime made before fork(), used in the child
// (Scheduler::is_inherited, veda/detail/fork.hpp): the child never hangs on
// the parent's workers or locks, and the parent's runtime carries on.
#include "veda/runtime/runtime.hpp"

#include <gtest/gtest.h>

#if defined(__unix__) || defined(__APPLE__)
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

#include <atomic>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>

#include "veda/detail/fork.hpp"
#include "support/test_support.hpp"
#include "veda/metrics/registry.hpp"

namespace veda {
namespace {

using namespace std::chrono_literals;


// ThreadSanitizer supports neither new threads in a child of a multi-threaded
// process nor a child that exits with the parent's other threads unjoined
// (it reports them as leaked): these tests run in the other builds.
#if defined(VEDA_TEST_TSAN)
#define VEDA_SKIP_UNDER_TSAN() GTEST_SKIP() << "ThreadSanitizer does not support a multi-threaded fork()"
#else
#define VEDA_SKIP_UNDER_TSAN() (void)0
#endif

#if defined(__unix__) || defined(__APPLE__)

// Runs `child` in a fork()ed process and returns its exit status; a child
// still running after 20 s is killed and reported as status -1 (a hang).
template <class Child>
int run_in_child(Child&& child) {
  const pid_t pid = fork();
  if (pid == 0) _exit(child());
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(5ms);
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

TEST(Fork, TheGenerationMovesOnInTheChildOnly) {
  const std::uint64_t before = detail::fork_generation();
  EXPECT_EQ(run_in_child([&] { return detail::fork_generation() == before + 1 ? 0 : 1; }), 0);
  EXPECT_EQ(detail::fork_generation(), before);
}

TEST(Fork, AForkSafeMutexHeldByAnotherThreadIsFreeInTheChild) {
  VEDA_SKIP_UNDER_TSAN();
  detail::ForkSafeMutex mutex;
  Registry registry;
  std::atomic<bool> holding{false};
  std::thread holder([&] {
    std::lock_guard<detail::ForkSafeMutex> lock(mutex);
    holding.store(true);
    std::this_thread::sleep_for(50ms);  // fork() waits for this
  });
  while (!holding.load()) std::this_thread::yield();
  // A plain std::mutex would stay locked forever in the child.
  const int status = run_in_child([&] {
    if (!mutex.try_lock()) return 1;
    mutex.unlock();
    registry.counter("made_in_child_total", "Made in the child.");  // the registry's lock too
    return registry.size() == 1 ? 0 : 2;
  });
  holder.join();
  EXPECT_EQ(status, 0);
  EXPECT_TRUE(mutex.try_lock());  // and free in the parent
  mutex.unlock();
}

TEST(Fork, AFamilyAndASeriesInUseAcrossTheForkAreUsableInTheChild) {
  VEDA_SKIP_UNDER_TSAN();
  Registry registry;
  auto family = registry.counter("busy_total", "Busy.", {"k"});
  family->labels({"a"})->inc(1, Exemplar{});
  auto windowed = registry.histogram("busy_ms", "Busy.", {}, Histogram::kDefaultScale, {}, 60.0);
  windowed->unlabelled().observe(1.0);
  std::atomic<bool> reading{false};
  // A collection in another thread holds the family's lock, then the
  // series' exemplar lock and the histogram's window lock, across the fork.
  std::thread collector([&] {
    family->for_each([&](const std::vector<std::string>&, const Counter& c) {
      reading.store(true);
      std::this_thread::sleep_for(50ms);  // fork() waits for this
      (void)c.exemplars();
    });
    (void)windowed->unlabelled().recent();
  });
  while (!reading.load()) std::this_thread::yield();
  const int status = run_in_child([&] {
    family->labels({"b"})->inc();           // the family's lock
    if (family->labels({"a"})->exemplars().size() != 1) return 1;  // the series' exemplar lock
    (void)windowed->unlabelled().recent();  // the window's lock
    (void)registry.collect();
    return family->size() == 2 ? 0 : 2;
  });
  collector.join();
  EXPECT_EQ(status, 0) << "-1: the child hung; 1-2: the check that failed";
}

TEST(Fork, AnInheritedRuntimeRefusesWorkAndIsDestroyedWithoutHanging) {
  VEDA_SKIP_UNDER_TSAN();
  Registry registry;
  RuntimeOptions options;
  options.num_threads = 2;
  options.enable_telemetry = true;
  options.collect_interval_s = 0.01;  // the collector thread is busy around the fork
  auto* runtime = new Runtime(options, registry);
  runtime->telemetry()->start();
  std::atomic<bool> release{false};
  std::atomic<int> done{0};
  // One task runs and one waits in the queue while the process forks.
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(runtime->scheduler().submit([&] {
      while (!release.load()) std::this_thread::sleep_for(1ms);
      done.fetch_add(1);
      return true;
    }));
  }
  std::this_thread::sleep_for(20ms);
  const int status = run_in_child([&] {
    Scheduler& s = runtime->scheduler();
    if (!s.is_inherited()) return 1;
    if (s.submit([] { return true; })) return 2;
    std::string message;
    try {
      s.help_until([&] { return done.load() == 2; });
    } catch (const std::runtime_error& e) {
      message = e.what();
    }
    if (message.find("created in the parent process before fork()") == std::string::npos) return 3;
    s.help_until([] { return true; });  // already true: returns
    runtime->telemetry()->stop();
    delete runtime;  // joins nothing, locks nothing
    // A runtime made in the child works as usual.
    Registry child_registry;
    Runtime fresh(options, child_registry);
    if (fresh.scheduler().is_inherited()) return 4;
    std::atomic<int> ran{0};
    for (int i = 0; i < 100; ++i) fresh.scheduler().submit([&] {
      ran.fetch_add(1);
      return true;
    });
    fresh.scheduler().help_until([&] { return ran.load() == 100; });
    // A task is counted just after its callable returns: wait (bounded) for the last count.
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (fresh.telemetry()->executed().get() < 100 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(1ms);
    }
    return fresh.telemetry()->executed().get() == 100 ? 0 : 5;
  });
  EXPECT_EQ(status, 0) << "-1: the child hung; 1-5: the check that failed";
  EXPECT_FALSE(runtime->scheduler().is_inherited());
  release.store(true);
  runtime->scheduler().help_until([&] { return done.load() == 2; });
  delete runtime;
}

#endif

}  // namespace
}  // namespace veda
