// The recorded state of a Counter, Gauge or Histogram series as plain
// atomics: in the process's own memory, or in a multi-process file
// (veda/metrics/multiprocess.hpp) that other processes read.
//
// Contract shared by every layout here: all-zero bytes are a new, empty
// series (a forked child maps a fresh, zero-filled file under its inherited
// series), the layout holds no pointers, and every field is a lock-free
// atomic, so a reader in another process may load it at any time.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <new>

#include "veda/metrics/detail/sharded.hpp"

namespace veda::detail {

struct CounterCells {
  ShardedDouble value;
  alignas(kCacheLine) std::atomic<double> base{0.0};  // value.sum() at the last reset()
  std::atomic<std::int64_t> reset_unix_nano{0};       // time of the last reset(); 0: none

  double get() const noexcept { return value.sum() - base.load(std::memory_order_relaxed); }
};

struct GaugeCells {
  std::atomic<double> value{0.0};
  // Time of the last change, kept only for the multi-process "mostrecent"
  // modes (0: never changed there).
  std::atomic<std::int64_t> changed_unix_nano{0};
};

struct alignas(kCacheLine) HistogramShard {
  std::atomic<std::uint64_t> count{0};
  std::atomic<double> sum{0.0};
};

// A histogram's header; the classic bucket counts (bounds + 1) and then the
// kMaxBuckets exponential bucket counts follow it (see bytes()).
struct HistogramCells {
  HistogramShard shards[kSlotCount];
  alignas(kCacheLine) std::atomic<std::uint64_t> zero_count{0};
  // min and max as the bits of non-negative doubles, whose unsigned order is
  // their numeric order: max as they are, min complemented, so that zero is
  // "nothing observed yet" for both (min_complement == 0 then).
  std::atomic<std::uint64_t> min_complement{0};
  std::atomic<std::uint64_t> max_bits{0};
  // The window's origin XOR 2^31: 0 until the first observation places it.
  std::atomic<std::uint32_t> origin_code{0};

  static constexpr std::int32_t kMaxBuckets = 4096;

  static std::size_t bytes(std::size_t classic_bounds) noexcept {
    return sizeof(HistogramCells) + sizeof(std::atomic<std::uint64_t>) * (classic_bounds + 1 + kMaxBuckets);
  }
  std::atomic<std::uint64_t>* classic() noexcept { return reinterpret_cast<std::atomic<std::uint64_t>*>(this + 1); }
  const std::atomic<std::uint64_t>* classic() const noexcept {
    return reinterpret_cast<const std::atomic<std::uint64_t>*>(this + 1);
  }
  std::atomic<std::uint64_t>* buckets(std::size_t classic_bounds) noexcept { return classic() + classic_bounds + 1; }
  const std::atomic<std::uint64_t>* buckets(std::size_t classic_bounds) const noexcept {
    return classic() + classic_bounds + 1;
  }

  // Constructs the header and its trailing counters in `memory` (at least
  // bytes(classic_bounds), aligned to kCacheLine). With `zeroed` (memory
  // known to be all zero bytes, as a fresh multi-process file is), the
  // counters are left as they are, already zero, so the pages of buckets
  // never observed are never touched and take no memory or disk.
  static HistogramCells* construct(void* memory, std::size_t classic_bounds, bool zeroed = false) noexcept {
    auto* cells = new (memory) HistogramCells;
    if (zeroed) return cells;
    auto* counts = cells->classic();
    for (std::size_t i = 0; i < classic_bounds + 1 + kMaxBuckets; ++i) new (counts + i) std::atomic<std::uint64_t>(0);
    return cells;
  }
};

static_assert(std::atomic<double>::is_always_lock_free && std::atomic<std::uint64_t>::is_always_lock_free &&
                  std::atomic<std::int64_t>::is_always_lock_free && std::atomic<std::uint32_t>::is_always_lock_free,
              "the cells are shared between processes only as lock-free atomics");
static_assert(sizeof(HistogramCells) % kCacheLine == 0, "histogram counters start on a cache line");

inline std::uint64_t double_bits(double v) noexcept {
  std::uint64_t b;
  std::memcpy(&b, &v, sizeof b);
  return b;
}

inline double bits_double(std::uint64_t b) noexcept {
  double v;
  std::memcpy(&v, &b, sizeof v);
  return v;
}

// Memory for cells of the process's own: zeroed, aligned to kCacheLine.
struct AlignedDelete {
  void operator()(void* p) const noexcept { ::operator delete(p, std::align_val_t{kCacheLine}); }
};
using OwnedCells = std::unique_ptr<void, AlignedDelete>;
inline OwnedCells allocate_cells(std::size_t bytes) {
  void* memory = ::operator new(bytes, std::align_val_t{kCacheLine});
  std::memset(memory, 0, bytes);
  return OwnedCells(memory);
}

// Raises an unsigned cell to at least `value` (a compare-exchange loop).
inline void atomic_raise(std::atomic<std::uint64_t>& cell, std::uint64_t value) noexcept {
  std::uint64_t seen = cell.load(std::memory_order_relaxed);
  while (value > seen && !cell.compare_exchange_weak(seen, value, std::memory_order_relaxed)) {
  }
}

}  // namespace veda::detail
