// veda::detail::fork_generation: tells an object made before fork() from
// one made in this process.
//
// fork() copies a process with only the calling thread: every other thread
// of the parent is gone in the child, and a mutex one of them held stays
// locked. Objects that own threads or shared locks (the scheduler, the
// telemetry collector) note the generation they were made in; in a child
// the generation has moved on, and they then neither join threads that do
// not exist nor take locks that may never be released (see each class).
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>

namespace veda::detail {

// Incremented in each child, by a pthread_atfork handler registered when the
// core is loaded. Never decremented.
extern std::atomic<std::uint64_t> g_fork_generation;

// 0 in the process the core was loaded in, 1 in its children, 2 in theirs, ...
inline std::uint64_t fork_generation() noexcept { return g_fork_generation.load(std::memory_order_relaxed); }

// A mutex that fork() never leaves locked in the child: a pthread_atfork
// prepare handler takes every live ForkSafeMutex (waiting for threads that
// hold one to let go), and the parent and the child release them all after
// the fork. For locks held briefly, never while waiting for another lock or
// for the Python GIL (the thread calling fork() may hold it). Meets the
// standard Lockable requirements, so std::lock_guard works with it.
class ForkSafeMutex {
 public:
  ForkSafeMutex();
  ~ForkSafeMutex();
  ForkSafeMutex(const ForkSafeMutex&) = delete;
  ForkSafeMutex& operator=(const ForkSafeMutex&) = delete;

  void lock() { mutex_.lock(); }
  bool try_lock() { return mutex_.try_lock(); }
  void unlock() { mutex_.unlock(); }

 private:
  friend struct ForkSafeMutexList;
  std::mutex mutex_;
  ForkSafeMutex* prev_ = nullptr;
  ForkSafeMutex* next_ = nullptr;
};

}  // namespace veda::detail
