// veda::detail::WorkDeque<T>: a Chase-Lev work-stealing deque of T pointers
// (Le, Pop, Cohen, Zappa Nardelli, "Correct and Efficient Work-Stealing for
// Weak Memory Models", PPoPP 2013).
//
// One thread, the owner, pushes and pops at the bottom (LIFO); any number of
// other threads steal from the top (FIFO). Neither side takes a lock. The
// ring doubles when full; a retired ring is kept until the deque is destroyed
// because a thief may still be reading a slot of the ring it loaded, so the
// memory held is at most twice the peak. The deque stores pointers only and
// never owns what they point to.
//
// Memory ordering: a push publishes the pointee with a release store that a
// thief's acquire load pairs with, so whatever the owner wrote to an item
// before pushing it is visible to the thread that takes it.
//
// Thread-safety: push(), pop() and free_slots() only on the owner thread (or
// on a thread that took over after the owner was joined); steal() and size()
// from any thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "runtime/detail/cpu.hpp"
#include "veda/detail/cache_line.hpp"

namespace veda::detail {

template <class T>
class WorkDeque {
 public:
  // An empty deque whose first ring holds `capacity` items; `capacity` must
  // be a power of two (at least 1).
  explicit WorkDeque(std::int64_t capacity) {
    auto ring = std::make_unique<Ring>(capacity);
    ring_.store(ring.get(), std::memory_order_relaxed);
    rings_.push_back(std::move(ring));
  }

  WorkDeque(const WorkDeque&) = delete;
  WorkDeque& operator=(const WorkDeque&) = delete;

  // Owner only. Adds `item` (not null) at the bottom. Throws std::bad_alloc
  // when the ring must grow and cannot; the deque is then unchanged.
  void push(T* item) {
    const std::int64_t b = bottom_.load(std::memory_order_relaxed);
    const std::int64_t t = top_.load(std::memory_order_acquire);
    Ring* ring = ring_.load(std::memory_order_relaxed);
    if (b - t >= ring->capacity) ring = grow(ring, t, b);
    ring->put(b, item);
    // Release publishes the slot and the item's contents to thieves (the
    // paper's fence + relaxed store, in a form ThreadSanitizer understands).
    bottom_.store(b + 1, std::memory_order_release);
  }

  // Owner only. Removes and returns the most recently pushed item, or nullptr
  // when the deque is empty (or a thief won the race for the last item).
  T* pop() noexcept {
    const std::int64_t b = bottom_.load(std::memory_order_relaxed) - 1;
    Ring* ring = ring_.load(std::memory_order_relaxed);
    bottom_.store(b, std::memory_order_relaxed);
    full_fence();
    std::int64_t t = top_.load(std::memory_order_relaxed);
    if (t > b) {  // empty
      bottom_.store(b + 1, std::memory_order_relaxed);
      return nullptr;
    }
    T* item = ring->get(b);
    if (t == b) {  // the last item: race the thieves for it
      if (!top_.compare_exchange_strong(t, t + 1, std::memory_order_seq_cst,
                                        std::memory_order_relaxed)) {
        item = nullptr;
      }
      bottom_.store(b + 1, std::memory_order_relaxed);
    }
    return item;
  }

  // Any thread. Removes and returns the oldest item. Returns nullptr only
  // when the deque was seen empty: a race lost to another thief (or to the
  // owner's pop) is retried, so a caller that gets nullptr may go to sleep.
  T* steal() noexcept {
    for (;;) {
      std::int64_t t = top_.load(std::memory_order_acquire);
      full_fence();
      const std::int64_t b = bottom_.load(std::memory_order_acquire);
      if (t >= b) return nullptr;
      Ring* ring = ring_.load(std::memory_order_acquire);
      T* item = ring->get(t);
      if (top_.compare_exchange_strong(t, t + 1, std::memory_order_seq_cst,
                                       std::memory_order_relaxed)) {
        return item;
      }
      cpu_relax();
    }
  }

  // Any thread. Items queued, as a relaxed snapshot: exact only while no
  // other thread pushes, pops or steals.
  std::int64_t size() const noexcept {
    const std::int64_t t = top_.load(std::memory_order_relaxed);
    const std::int64_t b = bottom_.load(std::memory_order_relaxed);
    return b > t ? b - t : 0;
  }

  // Owner only. How many pushes are sure to fit without growing the ring
  // (conservative: concurrent steals only make more room).
  std::int64_t free_slots() const noexcept {
    const Ring* ring = ring_.load(std::memory_order_relaxed);
    return ring->capacity - size();
  }

 private:
  struct Ring {
    explicit Ring(std::int64_t cap)
        : capacity(cap), mask(cap - 1), slots(new std::atomic<T*>[static_cast<std::size_t>(cap)]) {}
    void put(std::int64_t i, T* item) noexcept {
      slots[static_cast<std::size_t>(i & mask)].store(item, std::memory_order_relaxed);
    }
    T* get(std::int64_t i) const noexcept {
      return slots[static_cast<std::size_t>(i & mask)].load(std::memory_order_relaxed);
    }
    const std::int64_t capacity;  // a power of two
    const std::int64_t mask;
    std::unique_ptr<std::atomic<T*>[]> slots;
  };

  // Copies the live items [t, b) into a ring twice as large and publishes it.
  Ring* grow(Ring* old, std::int64_t t, std::int64_t b) {
    auto bigger = std::make_unique<Ring>(old->capacity * 2);
    for (std::int64_t i = t; i < b; ++i) bigger->put(i, old->get(i));
    Ring* raw = bigger.get();
    rings_.push_back(std::move(bigger));
    ring_.store(raw, std::memory_order_release);
    return raw;
  }

  alignas(kCacheLine) std::atomic<std::int64_t> top_{0};
  alignas(kCacheLine) std::atomic<std::int64_t> bottom_{0};
  alignas(kCacheLine) std::atomic<Ring*> ring_{nullptr};
  std::vector<std::unique_ptr<Ring>> rings_;  // owner only
};

}  // namespace veda::detail
