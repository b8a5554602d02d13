#include <mutex>
#include <vector>

#include "veda/detail/fork.hpp"
#include "veda/metrics/detail/sharded.hpp"

namespace veda::detail {
namespace {

struct SlotPool {
  ForkSafeMutex mutex;  // a thread started in a forked child takes it
  std::vector<unsigned> free;
  unsigned next = 0;
};

// Never destroyed: threads may exit after static destruction has begun.
SlotPool& pool() {
  static SlotPool* instance = new SlotPool;
  return *instance;
}

void release_slot(unsigned slot) {
  SlotPool& p = pool();
  std::lock_guard<ForkSafeMutex> lock(p.mutex);
  p.free.push_back(slot);
}

// Gives the slot back when its thread exits. Writes made by the thread later in
// its teardown (other thread_local destructors) go to the shared slot.
struct SlotGuard {
  unsigned slot;
  ~SlotGuard() {
    tls_slot = kSharedSlot;
    if (slot < kExclusiveSlots) release_slot(slot);
  }
};

}  // namespace

unsigned acquire_thread_slot() noexcept {
  unsigned slot = kSharedSlot;
  {
    SlotPool& p = pool();
    std::lock_guard<ForkSafeMutex> lock(p.mutex);
    if (!p.free.empty()) {
      slot = p.free.back();
      p.free.pop_back();
    } else if (p.next < kExclusiveSlots) {
      slot = p.next++;
    }
  }
  // The mutex orders this thread's first write to the slot after the last
  // write of the thread that released it.
  static thread_local SlotGuard guard{slot};
  tls_slot = slot;
  return slot;
}

}  // namespace veda::detail
