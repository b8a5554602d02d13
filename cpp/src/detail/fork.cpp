// The fork generation counter (see veda/detail/fork.hpp).
#include "veda/detail/fork.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif

namespace veda::detail {

std::atomic<std::uint64_t> g_fork_generation{0};

// Every live ForkSafeMutex, in an intrusive list under its own lock. The list
// is never destroyed: mutexes may outlive static destruction.
struct ForkSafeMutexList {
  std::mutex lock;
  ForkSafeMutex* head = nullptr;

  static ForkSafeMutexList& get() {
    static ForkSafeMutexList* instance = new ForkSafeMutexList;
    return *instance;
  }

  void add(ForkSafeMutex* m) {
    std::lock_guard<std::mutex> guard(lock);
    m->next_ = head;
    if (head != nullptr) head->prev_ = m;
    head = m;
  }

  void remove(ForkSafeMutex* m) {
    std::lock_guard<std::mutex> guard(lock);
    if (m->prev_ != nullptr) m->prev_->next_ = m->next_;
    if (m->next_ != nullptr) m->next_->prev_ = m->prev_;
    if (head == m) head = m->next_;
  }

  // Before fork(): the list, then each mutex; after it (both sides): each
  // mutex, then the list.
  static void prepare() noexcept {
    ForkSafeMutexList& list = get();
    list.lock.lock();
    for (ForkSafeMutex* m = list.head; m != nullptr; m = m->next_) m->mutex_.lock();
  }
  static void release() noexcept {
    ForkSafeMutexList& list = get();
    for (ForkSafeMutex* m = list.head; m != nullptr; m = m->next_) m->mutex_.unlock();
    list.lock.unlock();
  }
};

ForkSafeMutex::ForkSafeMutex() { ForkSafeMutexList::get().add(this); }
ForkSafeMutex::~ForkSafeMutex() { ForkSafeMutexList::get().remove(this); }

namespace {

#if defined(__unix__) || defined(__APPLE__)
void prepare_fork() noexcept { ForkSafeMutexList::prepare(); }
void after_fork_in_parent() noexcept { ForkSafeMutexList::release(); }
void after_fork_in_child() noexcept {
  g_fork_generation.fetch_add(1, std::memory_order_relaxed);
  ForkSafeMutexList::release();
}

// Registered at load time, so no fork() can come before it.
[[maybe_unused]] const bool g_registered =
    pthread_atfork(&prepare_fork, &after_fork_in_parent, &after_fork_in_child) == 0;
#endif

}  // namespace

}  // namespace veda::detail
