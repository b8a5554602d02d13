// Helpers shared by the C++ test suites under tests/cpp (header-only).
//
// Everything here is inline or a template, so any number of test sources of
// one binary may include it. Thread-safety is noted on each helper.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <initializer_list>
#include <limits>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#if __has_include(<dlfcn.h>)
#include <dlfcn.h>
#define VEDA_TEST_HAVE_DLFCN 1
#endif

// VEDA_TEST_TSAN: defined in a ThreadSanitizer build, which supports neither
// new threads in a child of a multi-threaded process nor a child that exits
// with the parent's other threads unjoined (the fork tests skip there).
#if defined(__SANITIZE_THREAD__)
#define VEDA_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define VEDA_TEST_TSAN 1
#endif
#endif

namespace veda {
namespace test {

// Quiet NaN and +infinity, for special-value tests. Constants: thread-safe.
inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
inline constexpr double kInf = std::numeric_limits<double>::infinity();
// The label values of an unlabelled family's series.
inline const std::vector<std::string> kNoLabels;

// Aborts the test binary, naming the test, unless destroyed within `limit`;
// create and destroy it on one thread (its own thread only waits).
class Watchdog {
 public:
  explicit Watchdog(std::chrono::seconds limit = std::chrono::seconds(60))
      : thread_([this, limit] {
          std::unique_lock<std::mutex> lock(mutex_);
          if (!cv_.wait_for(lock, limit, [this] { return done_; })) {
            const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
            std::fprintf(stderr, "Watchdog: %s.%s did not finish within %llds; aborting\n",
                         info != nullptr ? info->test_suite_name() : "?",
                         info != nullptr ? info->name() : "?", static_cast<long long>(limit.count()));
            std::abort();
          }
        }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

// A one-shot gate tasks can block on; open() and wait() are thread-safe from any threads.
class Gate {
 public:
  void open() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      open_ = true;
    }
    cv_.notify_all();
  }
  void wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [this] { return open_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool open_ = false;
};

// Polls `pred` until it holds, sleeping `pause` between polls (zero: yield); `pred` must be race-free.
template <class Pred>
void spin_until(Pred pred, std::chrono::microseconds pause = std::chrono::microseconds::zero()) {
  while (!pred()) {
    if (pause == std::chrono::microseconds::zero()) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(pause);
    }
  }
}

// Runs body(t) on `threads` threads that all start together, then joins them; `body` runs concurrently.
template <class F>
void run_threads(unsigned threads, F body) {
  std::atomic<unsigned> ready{0};
  std::vector<std::thread> pool;
  pool.reserve(threads);
  for (unsigned t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      ready.fetch_add(1);
      while (ready.load() < threads) std::this_thread::yield();
      body(t);
    });
  }
  for (std::thread& th : pool) th.join();
}

// Runs f, expects it to throw E, and returns the message (a gtest failure otherwise); thread-safe if f is.
template <class E, class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw another exception type: " << e.what();
    return {};
  }
  ADD_FAILURE() << "did not throw";
  return {};
}

// The bytes {b...} as a string, for byte-exact encoder expectations. Pure.
inline std::string bytes(std::initializer_list<int> b) {
  std::string out;
  for (int c : b) out.push_back(static_cast<char>(c));
  return out;
}

// True when `haystack` contains `needle`. Pure: thread-safe.
inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// True when `text` has `line` as a whole line (each line ends in '\n'). Pure: thread-safe.
inline bool has_line(const std::string& text, const std::string& line) {
  return text.compare(0, line.size() + 1, line + "\n") == 0 || contains(text, "\n" + line + "\n");
}

#ifdef VEDA_TEST_HAVE_DLFCN
// Calls the int-returning `symbol` of an already loaded `library` (0 when not loaded, -1 when
// the symbol is missing) without loading it; thread-safe (dlopen/dlsym are).
inline int fake_query(const char* library, const char* symbol) {
  void* handle = ::dlopen(library, RTLD_NOW | RTLD_NOLOAD);
  if (handle == nullptr) return 0;  // not loaded: nothing initialised
  using Query = int (*)();
  auto query = reinterpret_cast<Query>(::dlsym(handle, symbol));
  const int value = query != nullptr ? query() : -1;
  ::dlclose(handle);
  return value;
}
#endif

}  // namespace test
}  // namespace veda
