// The fork generation counter (see veda/detail/fork.hpp).
#include "veda/detail/fork.hpp"

#include <new>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif

namespace veda::detail {

std::atomic<std::uint64_t> g_fork_generation{0};

// Every live fork-safe lock, in an intrusive list under its own lock. The
// list is never destroyed: locks may outlive static destruction.
struct ForkSafeLockList {
  std::mutex lock;
  ForkSafeLockBase* head = nullptr;

  static ForkSafeLockList& get() {
    static ForkSafeLockList* instance = new ForkSafeLockList;
    return *instance;
  }

  // Before fork(): the list, then each lock, level by level (see
  // ForkLockLevel); after it (both sides): each lock, then the list.
  static void prepare() noexcept {
    ForkSafeLockList& list = get();
    list.lock.lock();
    for (int level = 0; level < kForkLevels; ++level) {
      for (ForkSafeLockBase* m = list.head; m != nullptr; m = m->next_) {
        if (m->level_ == level) m->lock_for_fork();
      }
    }
  }
  static void release_in_parent() noexcept {
    ForkSafeLockList& list = get();
    for (ForkSafeLockBase* m = list.head; m != nullptr; m = m->next_) m->unlock_after_fork();
    list.lock.unlock();
  }
  static void renew_in_child() noexcept {
    ForkSafeLockList& list = get();
    for (ForkSafeLockBase* m = list.head; m != nullptr; m = m->next_) m->renew_in_child();
    new (&list.lock) std::mutex();
  }
};

void ForkSafeLockBase::join_fork_list() {
  ForkSafeLockList& list = ForkSafeLockList::get();
  std::lock_guard<std::mutex> guard(list.lock);
  next_ = list.head;
  if (list.head != nullptr) list.head->prev_ = this;
  list.head = this;
}

void ForkSafeLockBase::leave_fork_list() {
  ForkSafeLockList& list = ForkSafeLockList::get();
  std::lock_guard<std::mutex> guard(list.lock);
  if (prev_ != nullptr) prev_->next_ = next_;
  if (next_ != nullptr) next_->prev_ = prev_;
  if (list.head == this) list.head = next_;
}

namespace {

#if defined(__unix__) || defined(__APPLE__)
void prepare_fork() noexcept { ForkSafeLockList::prepare(); }
void after_fork_in_parent() noexcept { ForkSafeLockList::release_in_parent(); }
void after_fork_in_child() noexcept {
  g_fork_generation.fetch_add(1, std::memory_order_relaxed);
  ForkSafeLockList::renew_in_child();
}

// Registered at load time, so no fork() can come before it.
[[maybe_unused]] const bool g_registered =
    pthread_atfork(&prepare_fork, &after_fork_in_parent, &after_fork_in_child) == 0;
#endif

}  // namespace

}  // namespace veda::detail
