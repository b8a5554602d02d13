// veda::detail::NodePool<T>: recycles storage for fixed-size nodes that are
// typically allocated on one thread and freed on another (the scheduler's
// queued tasks: created by the submitter, destroyed by the worker that ran
// them), a pattern that per-thread malloc caches serve badly.
//
// Design: every thread keeps a private free list. A thread holding 2 * kChain
// free nodes hands kChain of them to a shared depot as one chain; a thread
// whose list is empty takes a whole chain back, so the depot's mutex is taken
// once per kChain nodes at most. The depot keeps at most kMaxChains chains;
// beyond that, nodes go back to the global allocator. The depot is never
// destroyed, so threads may exit in any order, even during static destruction
// (an exiting thread's list goes to the depot or back to the allocator).
//
// Under AddressSanitizer the pool is bypassed (plain operator new/delete), so
// a use-after-free of a node is still reported instead of hidden by reuse.
//
// Thread-safety: allocate() and release() may be called from any thread, and
// a block may be released by a thread other than the one that allocated it.
#pragma once

#include <atomic>
#include <cstddef>
#include <mutex>
#include <new>
#include <vector>

#include "veda/detail/fork.hpp"

namespace veda::detail {

#if defined(__SANITIZE_ADDRESS__)
#define VEDA_DETAIL_NODE_POOL 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VEDA_DETAIL_NODE_POOL 0
#endif
#endif
#ifndef VEDA_DETAIL_NODE_POOL
#define VEDA_DETAIL_NODE_POOL 1
#endif

// One pool per node type T (the type only fixes the block size; the pool
// never constructs or destroys a T).
template <class T>
class NodePool {
 public:
  // True when blocks are recycled; false in AddressSanitizer builds, where
  // allocate()/release() are plain operator new/delete.
  static constexpr bool kRecycles = VEDA_DETAIL_NODE_POOL != 0;

  // Returns uninitialised storage for one T, aligned for any type that
  // operator new aligns. Throws std::bad_alloc when no recycled block is at
  // hand and the allocator fails. A block is never handed out twice without
  // a release() in between.
  static void* allocate() {
    if constexpr (kRecycles) {
      Cache& cache = t_cache;
      if (cache.head == nullptr) cache.refill();
      if (FreeNode* n = cache.head) {
        cache.head = n->next;
        --cache.count;
        return n;
      }
    }
    return ::operator new(sizeof(T));
  }

  // Gives back a block from allocate() whose T has already been destroyed;
  // its contents are overwritten. Any thread may release any block.
  static void release(void* p) noexcept {
    if constexpr (kRecycles) {
      Cache& cache = t_cache;
      auto* n = ::new (p) FreeNode{cache.head};
      cache.head = n;
      if (++cache.count >= 2 * kChain) cache.spill();
    } else {
      ::operator delete(p);
    }
  }

 private:
  static constexpr unsigned kChain = 64;
  static constexpr std::size_t kMaxChains = 64;

  struct FreeNode {
    FreeNode* next;
  };
  static_assert(sizeof(FreeNode) <= sizeof(T), "a node must be able to hold a free-list link");
  static_assert(alignof(T) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__,
                "over-aligned node types need an aligned operator new");

  struct Depot {
    ForkSafeMutex mutex;  // a forked child's new runtime takes it
    std::vector<FreeNode*> chains;  // each a list of exactly kChain nodes
    std::atomic<std::size_t> size{0};  // chains.size(), readable without the mutex
  };

  static Depot& depot() {
    static Depot* const d = new Depot;  // intentionally leaked, see the header comment
    return *d;
  }

  static void free_chain(FreeNode* n) noexcept {
    while (n != nullptr) {
      FreeNode* next = n->next;
      ::operator delete(n);
      n = next;
    }
  }

  // A thread's private free list.
  struct Cache {
    FreeNode* head = nullptr;
    unsigned count = 0;

    // Takes one chain from the depot, if it has any; leaves the list empty otherwise.
    void refill() noexcept {
      Depot& d = depot();
      if (d.size.load(std::memory_order_relaxed) == 0) return;
      std::lock_guard<ForkSafeMutex> lock(d.mutex);
      if (d.chains.empty()) return;
      head = d.chains.back();
      d.chains.pop_back();
      d.size.store(d.chains.size(), std::memory_order_relaxed);
      count = kChain;
    }

    // Moves kChain nodes to the depot (or frees them when it is full).
    void spill() noexcept {
      FreeNode* chain = head;
      FreeNode* last = head;
      for (unsigned i = 1; i < kChain; ++i) last = last->next;
      head = last->next;
      last->next = nullptr;
      count -= kChain;
      give(chain);
    }

    static void give(FreeNode* chain) noexcept {
      Depot& d = depot();
      {
        std::lock_guard<ForkSafeMutex> lock(d.mutex);
        if (d.chains.size() < kMaxChains) {
          try {
            d.chains.push_back(chain);
            d.size.store(d.chains.size(), std::memory_order_relaxed);
            return;
          } catch (...) {  // out of memory for the vector: free the nodes instead
          }
        }
      }
      free_chain(chain);
    }

    // At thread exit: whole chains to the depot, the remainder to the allocator.
    ~Cache() {
      while (count >= kChain) spill();
      free_chain(head);
    }
  };

  static inline thread_local Cache t_cache;
};

}  // namespace veda::detail
