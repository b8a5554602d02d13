// veda::SpanStore: a bounded buffer of finished spans.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <vector>

#include "veda/detail/fork.hpp"

#include "veda/tracing/span.hpp"

namespace veda {

class Counter;

// A ring buffer of finished spans. When full, add() drops the oldest span and
// counts it in dropped() and in the counter `pyveda_spans_dropped_total` of
// default_registry() (shared by every store).
//
// Records are immutable once added and shared (std::shared_ptr) with readers:
// records() copies pointers, not spans.
//
// Thread-safety: all methods may be called concurrently. add() holds a mutex
// only to move the record into its slot (the evicted record is released after
// the lock is) and never throws.
class SpanStore {
 public:
  static constexpr std::size_t kDefaultCapacity = 100000;

  // Throws std::invalid_argument for capacity 0.
  explicit SpanStore(std::size_t capacity = kDefaultCapacity);
  SpanStore(const SpanStore&) = delete;
  SpanStore& operator=(const SpanStore&) = delete;

  void add(SpanData&& span) noexcept;
  // Shares a finished record (Span::end() hands its record over this way).
  void add(std::shared_ptr<const SpanData> span) noexcept;

  // The buffered records, oldest first, shared rather than copied.
  std::vector<std::shared_ptr<const SpanData>> records() const;
  // Each record added gets the next sequence number (1, 2, ...); clear() and
  // drain() do not reset it. added() is the newest one, 0 before any add.
  std::uint64_t added() const noexcept;
  // The buffered records whose sequence number is greater than `after`,
  // oldest first; `*newest` (if not null) receives added(). Reading with the
  // previous call's `*newest` as `after` gives each record at most once: a
  // record evicted (or cleared) before it was read is skipped, and counted in
  // dropped() if it was evicted. An `after` beyond added() gives nothing.
  std::vector<std::shared_ptr<const SpanData>> records_since(std::uint64_t after,
                                                             std::uint64_t* newest = nullptr) const;
  // Waits until added() >= `sequence`, wake() is called, or `timeout`
  // passes; true if added() >= `sequence` then. For a thread that exports
  // in batches: wait_for_added(cursor + batch, delay) wakes it as soon as
  // a batch is ready. add() only signals once a waiter's sequence is reached.
  bool wait_for_added(std::uint64_t sequence, std::chrono::nanoseconds timeout) const;
  // Wakes every thread in wait_for_added() now (e.g. to flush or stop).
  void wake() const noexcept;
  // Copies of the buffered spans, oldest first.
  std::vector<SpanData> snapshot() const;
  // Removes the buffered spans and returns them, oldest first.
  std::vector<SpanData> drain();
  void clear() noexcept;

  std::size_t size() const noexcept;
  std::size_t capacity() const noexcept { return capacity_; }
  // Spans this store dropped because it was full.
  std::uint64_t dropped() const noexcept;

 private:
  const std::size_t capacity_;
  Counter& dropped_counter_;
  mutable detail::ForkSafeMutex mutex_;  // never left locked by fork()
  std::vector<std::shared_ptr<const SpanData>> ring_;  // grows up to capacity_, then wraps
  std::size_t head_ = 0;        // index of the oldest span once full
  std::uint64_t dropped_ = 0;
  std::uint64_t added_ = 0;     // sequence number of the newest record
  mutable detail::ForkSafeCondition added_cv_;
  // The lowest sequence a waiter waits for (max: none); add() signals when it reaches it.
  mutable std::uint64_t wake_at_ = std::numeric_limits<std::uint64_t>::max();
  mutable std::uint64_t wakes_ = 0;  // wake() calls, so a waiter sees one that came while it waited
};

}  // namespace veda
