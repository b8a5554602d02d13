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
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <new>
#include <utility>

namespace veda::detail {

// Incremented in each child, by a pthread_atfork handler registered when the
// core is loaded. Never decremented.
extern std::atomic<std::uint64_t> g_fork_generation;

// 0 in the process the core was loaded in, 1 in its children, 2 in theirs, ...
inline std::uint64_t fork_generation() noexcept { return g_fork_generation.load(std::memory_order_relaxed); }

// The generation an object was made in, as a member: inherited() is true in
// a child process for an object made before the fork().
class ProcessStamp {
 public:
  bool inherited() const noexcept { return generation_ != fork_generation(); }

 private:
  std::uint64_t generation_ = fork_generation();
};

// The list every fork-safe lock joins (see ForkSafe below): a pthread_atfork
// prepare handler takes every lock on it, and the parent and the child
// release them all after the fork (the child by starting new, unlocked ones).
// The level of a fork-safe lock: the prepare handler takes every lock of
// level 0, then of level 1, ..., so a thread may hold a lock while it waits
// for one of a higher level (never of its own or a lower one) and fork()
// still cannot deadlock: whatever it waits for has not been taken yet.
enum ForkLockLevel : int {
  kForkLevelRegistry = 0,  // a Registry's (a family's is taken under it)
  kForkLevelFamily = 1,    // a Family's series index (a series' own locks are taken under it)
  kForkLevelSeries = 2,    // one series' (recent window, exemplars, gauge function)
  kForkLevelLeaf = 3,      // locks under which no other fork-safe lock is taken
};
inline constexpr int kForkLevels = 4;

class ForkSafeLockBase {
 public:
  ForkSafeLockBase(const ForkSafeLockBase&) = delete;
  ForkSafeLockBase& operator=(const ForkSafeLockBase&) = delete;

 protected:
  explicit ForkSafeLockBase(int level) noexcept : level_(level) {}
  virtual ~ForkSafeLockBase() = default;
  // Called by the derived class once its mutex exists, and before it goes.
  void join_fork_list();
  void leave_fork_list();

 private:
  friend struct ForkSafeLockList;
  virtual void lock_for_fork() noexcept = 0;
  virtual void unlock_after_fork() noexcept = 0;     // in the parent
  virtual void renew_in_child() noexcept = 0;         // in the child
  const int level_;
  ForkSafeLockBase* prev_ = nullptr;
  ForkSafeLockBase* next_ = nullptr;
};

// A mutex (std::mutex, std::shared_mutex, ...) that fork() never leaves
// locked in the child: the prepare handler takes it exclusively (waiting for
// a thread that holds it to let go) and both sides release it after the
// fork. For locks held briefly: while holding one, wait only for fork-safe
// locks of a higher level (ForkLockLevel), never for the Python GIL (the
// thread calling fork() may hold it), and never construct or destroy a
// fork-safe lock (that takes the list's lock, which the prepare handler
// holds while it waits). Meets
// Lockable (and SharedLockable when M does), so std::lock_guard,
// std::unique_lock and std::shared_lock work with it.
template <class M>
class ForkSafe final : public ForkSafeLockBase {
 public:
  explicit ForkSafe(int level = kForkLevelLeaf) : ForkSafeLockBase(level) { join_fork_list(); }
  ~ForkSafe() override { leave_fork_list(); }

  void lock() { mutex_.lock(); }
  bool try_lock() { return mutex_.try_lock(); }
  void unlock() { mutex_.unlock(); }
  void lock_shared() { mutex_.lock_shared(); }
  bool try_lock_shared() { return mutex_.try_lock_shared(); }
  void unlock_shared() { mutex_.unlock_shared(); }

 private:
  void lock_for_fork() noexcept override { mutex_.lock(); }
  void unlock_after_fork() noexcept override { mutex_.unlock(); }
  // The child's thread is not the one that locked it (a new thread id), and
  // a pthread rwlock unlocked by another thread counts it as a reader's
  // unlock and stays write-locked; the state it guards is whole (the prepare
  // handler held it), so the child starts a new, unlocked mutex in its place.
  void renew_in_child() noexcept override { new (&mutex_) M(); }
  M mutex_;
};

using ForkSafeMutex = ForkSafe<std::mutex>;

// A condition variable to wait on with a ForkSafe lock. fork() may copy it
// with waiters that are threads of the parent (gone in the child) and a
// notifier's state half-written; the child starts a new one in its place,
// as it does the mutexes. It holds no lock of its own across a fork, so it
// takes none in the prepare handler.
class ForkSafeCondition final : public ForkSafeLockBase {
 public:
  ForkSafeCondition() : ForkSafeLockBase(kForkLevelLeaf) { join_fork_list(); }
  ~ForkSafeCondition() override { leave_fork_list(); }

  template <class Lock, class Duration, class Predicate>
  bool wait_for(Lock& lock, const Duration& timeout, Predicate ready) {
    return cv_.wait_for(lock, timeout, std::move(ready));
  }
  void notify_all() noexcept { cv_.notify_all(); }

 private:
  void lock_for_fork() noexcept override {}
  void unlock_after_fork() noexcept override {}
  // The old one is left as it is (destroying it could wait for the parent's waiters).
  void renew_in_child() noexcept override { new (&cv_) std::condition_variable_any(); }
  std::condition_variable_any cv_;
};

}  // namespace veda::detail
