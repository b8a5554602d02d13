// Per-thread sharded accumulators: the lock-free building block of Counter and Histogram.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "veda/detail/cache_line.hpp"
#include "veda/detail/single_writer.hpp"

namespace veda::detail {

// Number of slots that a live thread may own exclusively. A thread that finds
// them all taken shares the extra slot kSharedSlot with other such threads.
inline constexpr unsigned kExclusiveSlots = 16;
inline constexpr unsigned kSharedSlot = kExclusiveSlots;
inline constexpr unsigned kSlotCount = kExclusiveSlots + 1;
inline constexpr unsigned kNoSlot = ~0u;

// The calling thread's slot, assigned on first use and given back when the
// thread exits, so a slot below kExclusiveSlots is written by one thread at a
// time and needs no read-modify-write instruction.
inline thread_local unsigned tls_slot = kNoSlot;
unsigned acquire_thread_slot() noexcept;

inline unsigned thread_slot() noexcept {
  unsigned slot = tls_slot;
  return slot != kNoSlot ? slot : acquire_thread_slot();
}

// Adds to an atomic double with a compare-exchange loop (C++17 has no fetch_add).
inline void atomic_add(std::atomic<double>& target, double delta) noexcept {
  double current = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(current, current + delta, std::memory_order_relaxed)) {
  }
}

// Adds into a slot: a plain load/store for an owned slot, a CAS loop for the shared one.
inline void slot_add(std::atomic<double>& cell, unsigned slot, double delta) noexcept {
  if (slot < kExclusiveSlots) {
    single_writer_add(cell, delta);
  } else {
    atomic_add(cell, delta);
  }
}

inline void slot_add(std::atomic<std::uint64_t>& cell, unsigned slot, std::uint64_t delta) noexcept {
  if (slot < kExclusiveSlots) {
    single_writer_add(cell, delta);
  } else {
    cell.fetch_add(delta, std::memory_order_relaxed);
  }
}

// A double split over one cache line per slot; readers sum all slots.
// Thread-safety: add() and sum() may run concurrently from any threads.
class ShardedDouble {
 public:
  void add(double delta) noexcept {
    unsigned slot = thread_slot();
    slot_add(cells_[slot].value, slot, delta);
  }

  double sum() const noexcept {
    double total = 0.0;
    for (const Cell& cell : cells_) total += cell.value.load(std::memory_order_relaxed);
    return total;
  }

 private:
  struct alignas(kCacheLine) Cell {
    std::atomic<double> value{0.0};
  };
  Cell cells_[kSlotCount];
};

}  // namespace veda::detail
