#include "veda/tracing/span_store.hpp"

#include <chrono>
#include <stdexcept>
#include <string>
#include <utility>

#include "veda/metrics/counter.hpp"
#include "veda/metrics/registry.hpp"
#include "veda/telemetry/catalogue.hpp"

namespace veda {
namespace {

Counter& spans_dropped_counter() {
  static Counter& counter = default_registry()
                                .counter(std::string(runtime_metrics::spans_dropped.name),
                                         std::string(runtime_metrics::spans_dropped.help))
                                ->unlabelled();
  return counter;
}

}  // namespace

std::int64_t unix_nano_now() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

SpanStore::SpanStore(std::size_t capacity)
    : capacity_(capacity == 0 ? throw std::invalid_argument("SpanStore capacity must be at least 1")
                              : capacity),
      dropped_counter_(spans_dropped_counter()) {
  ring_.reserve(capacity_ < 1024 ? capacity_ : 1024);
}

void SpanStore::add(SpanData&& span) noexcept {
  // make_shared may throw bad_alloc only: terminate, as for any noexcept.
  add(std::make_shared<const SpanData>(std::move(span)));
}

void SpanStore::add(std::shared_ptr<const SpanData> span) noexcept {
  std::shared_ptr<const SpanData> evicted;
  bool signal = false;
  bool full = false;
  {
    std::lock_guard<detail::ForkSafeMutex> lock(mutex_);
    ++added_;
    if (added_ >= wake_at_) {
      wake_at_ = std::numeric_limits<std::uint64_t>::max();
      signal = true;
    }
    if (ring_.size() < capacity_) {
      ring_.push_back(std::move(span));  // may throw bad_alloc only (see above)
    } else {
      evicted = std::exchange(ring_[head_], std::move(span));
      head_ = head_ + 1 == capacity_ ? 0 : head_ + 1;
      ++dropped_;
      full = true;
    }
  }
  if (signal) added_cv_.notify_all();
  if (full) dropped_counter_.inc();
}

bool SpanStore::wait_for_added(std::uint64_t sequence, std::chrono::nanoseconds timeout) const {
  std::unique_lock<detail::ForkSafeMutex> lock(mutex_);
  const std::uint64_t wakes = wakes_;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (added_ < sequence && wakes_ == wakes) {
    if (sequence < wake_at_) wake_at_ = sequence;  // after a signal for another waiter, ask again
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= std::chrono::nanoseconds::zero()) break;
    added_cv_.wait_for(lock, left, [&] { return added_ >= sequence || wakes_ != wakes || wake_at_ > sequence; });
  }
  return added_ >= sequence;
}

void SpanStore::wake() const noexcept {
  {
    std::lock_guard<detail::ForkSafeMutex> lock(mutex_);
    ++wakes_;
  }
  added_cv_.notify_all();
}

std::vector<std::shared_ptr<const SpanData>> SpanStore::records() const {
  std::lock_guard<detail::ForkSafeMutex> lock(mutex_);
  std::vector<std::shared_ptr<const SpanData>> out;
  out.reserve(ring_.size());
  out.insert(out.end(), ring_.begin() + static_cast<std::ptrdiff_t>(head_), ring_.end());
  out.insert(out.end(), ring_.begin(), ring_.begin() + static_cast<std::ptrdiff_t>(head_));
  return out;
}

std::uint64_t SpanStore::added() const noexcept {
  std::lock_guard<detail::ForkSafeMutex> lock(mutex_);
  return added_;
}

std::vector<std::shared_ptr<const SpanData>> SpanStore::records_since(std::uint64_t after,
                                                                      std::uint64_t* newest) const {
  std::lock_guard<detail::ForkSafeMutex> lock(mutex_);
  if (newest != nullptr) *newest = added_;
  std::vector<std::shared_ptr<const SpanData>> out;
  if (after >= added_) return out;
  const std::uint64_t unread = added_ - after;
  const std::size_t n = unread < ring_.size() ? static_cast<std::size_t>(unread) : ring_.size();
  out.reserve(n);
  // The ring in age order is [head_, size) then [0, head_); the newest n are its tail.
  const std::size_t size = ring_.size();
  for (std::size_t k = size - n; k < size; ++k) out.push_back(ring_[(head_ + k) % size]);
  return out;
}

std::vector<SpanData> SpanStore::snapshot() const {
  const auto shared = records();
  std::vector<SpanData> out;
  out.reserve(shared.size());
  for (const auto& s : shared) out.push_back(*s);
  return out;
}

std::vector<SpanData> SpanStore::drain() {
  std::vector<std::shared_ptr<const SpanData>> ring;
  std::size_t head = 0;
  {
    std::lock_guard<detail::ForkSafeMutex> lock(mutex_);
    ring.swap(ring_);
    head = std::exchange(head_, 0);
  }
  std::vector<SpanData> out;
  out.reserve(ring.size());
  for (std::size_t i = head; i < ring.size(); ++i) out.push_back(*ring[i]);
  for (std::size_t i = 0; i < head; ++i) out.push_back(*ring[i]);
  return out;
}

void SpanStore::clear() noexcept {
  std::vector<std::shared_ptr<const SpanData>> old;
  {
    std::lock_guard<detail::ForkSafeMutex> lock(mutex_);
    old.swap(ring_);
    head_ = 0;
  }
}

std::size_t SpanStore::size() const noexcept {
  std::lock_guard<detail::ForkSafeMutex> lock(mutex_);
  return ring_.size();
}

std::uint64_t SpanStore::dropped() const noexcept {
  std::lock_guard<detail::ForkSafeMutex> lock(mutex_);
  return dropped_;
}

}  // namespace veda
