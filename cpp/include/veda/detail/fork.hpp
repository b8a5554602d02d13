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
// release them all after the fork.
class ForkSafeLockBase {
 public:
  ForkSafeLockBase(const ForkSafeLockBase&) = delete;
  ForkSafeLockBase& operator=(const ForkSafeLockBase&) = delete;

 protected:
  ForkSafeLockBase() = default;
  virtual ~ForkSafeLockBase() = default;
  // Called by the derived class once its mutex exists, and before it goes.
  void join_fork_list();
  void leave_fork_list();

 private:
  friend struct ForkSafeLockList;
  virtual void lock_for_fork() noexcept = 0;
  virtual void unlock_after_fork() noexcept = 0;
  ForkSafeLockBase* prev_ = nullptr;
  ForkSafeLockBase* next_ = nullptr;
};

// A mutex (std::mutex, std::shared_mutex, ...) that fork() never leaves
// locked in the child: the prepare handler takes it exclusively (waiting for
// a thread that holds it to let go) and both sides release it after the
// fork. For locks held briefly, never while waiting for another fork-safe
// lock or for the Python GIL (the thread calling fork() may hold it), and
// never while constructing or destroying a fork-safe lock (that takes the
// list's lock, which the prepare handler holds while it waits). Meets
// Lockable (and SharedLockable when M does), so std::lock_guard,
// std::unique_lock and std::shared_lock work with it.
template <class M>
class ForkSafe final : public ForkSafeLockBase {
 public:
  ForkSafe() { join_fork_list(); }
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
  M mutex_;
};

using ForkSafeMutex = ForkSafe<std::mutex>;

}  // namespace veda::detail
