// veda::SpanStore: a bounded buffer of finished spans.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

#include "veda/tracing/span.hpp"

namespace veda {

class Counter;

// A ring buffer of finished spans. When full, add() drops the oldest span and
// counts it in dropped() and in the counter `pyveda_spans_dropped_total` of
// default_registry() (shared by every store).
//
// Thread-safety: all methods may be called concurrently. add() holds a mutex
// only to move the span into its slot (the evicted span is destroyed after
// the lock is released) and never throws.
class SpanStore {
 public:
  static constexpr std::size_t kDefaultCapacity = 100000;

  // Throws std::invalid_argument for capacity 0.
  explicit SpanStore(std::size_t capacity = kDefaultCapacity);
  SpanStore(const SpanStore&) = delete;
  SpanStore& operator=(const SpanStore&) = delete;

  void add(SpanData&& span) noexcept;

  // Copies of the buffered spans, oldest first.
  std::vector<SpanData> snapshot() const;
  // Moves the buffered spans out, oldest first, leaving the store empty.
  std::vector<SpanData> drain();
  void clear() noexcept;

  std::size_t size() const noexcept;
  std::size_t capacity() const noexcept { return capacity_; }
  // Spans this store dropped because it was full.
  std::uint64_t dropped() const noexcept;

 private:
  const std::size_t capacity_;
  Counter& dropped_counter_;
  mutable std::mutex mutex_;
  std::vector<SpanData> ring_;  // grows up to capacity_, then wraps
  std::size_t head_ = 0;        // index of the oldest span once full
  std::uint64_t dropped_ = 0;
};

}  // namespace veda
