// veda::detail::WorkerParking and veda::detail::Broadcast: event counts, the
// sleep/wake primitive that lets a thread block until a condition it polls
// becomes true, without a lost wake-up and without a mutex on the notifier's
// fast path (nobody waiting costs the notifier one relaxed load).
//
// Both follow one protocol:
//
//   waiter:   key = prepare_wait();
//             if (condition) cancel_wait(...); else commit_wait(key, ...);
//   notifier: make the condition true; full_fence(); if (has_waiters()) notify...();
//
// prepare_wait() registers the waiter and fences before the waiter checks the
// condition again, so either the waiter sees the notifier's change or the
// notifier sees the registration and moves the epoch, which commit_wait()
// re-checks under the mutex before it sleeps. The two classes differ in who
// is woken and who unregisters the waiter.
//
// Thread-safety: every method may be called from any thread; a key belongs
// to the thread whose prepare_wait() returned it.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

#include "runtime/detail/cpu.hpp"
#include "veda/detail/cache_line.hpp"

namespace veda::detail {

// For a pool of interchangeable sleepers (idle workers): notify_one() wakes
// one of them. A waiter unregisters itself when it wakes, so a sleeper that a
// notify_one() did not reach is still counted and gets the next one.
class WorkerParking {
 public:
  // Registers the caller as a waiter and returns its key. Must be followed
  // by exactly one cancel_wait() or commit_wait(key).
  std::uint64_t prepare_wait() noexcept {
    waiters_.fetch_add(1, std::memory_order_seq_cst);
    full_fence();
    return epoch_.load(std::memory_order_acquire);
  }

  // Withdraws the registration of a caller that found its condition true.
  void cancel_wait() noexcept { waiters_.fetch_sub(1, std::memory_order_relaxed); }

  // Sleeps until a notify_one() or notify_all() issued after prepare_wait()
  // (returns at once if one already was), then withdraws the registration.
  void commit_wait(std::uint64_t key) noexcept {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      while (epoch_.load(std::memory_order_relaxed) == key) cv_.wait(lock);
    }
    waiters_.fetch_sub(1, std::memory_order_relaxed);
  }

  // True while some thread is registered. A notifier calls it after its own
  // full_fence() and skips the notify when it returns false.
  bool has_waiters() const noexcept { return waiters_.load(std::memory_order_relaxed) != 0; }

  // Wakes one sleeping waiter (if any sleeps) and makes every registered
  // waiter's commit_wait() return without sleeping.
  void notify_one() noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    epoch_.fetch_add(1, std::memory_order_release);
    cv_.notify_one();
  }

  // Wakes every sleeping waiter.
  void notify_all() noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    epoch_.fetch_add(1, std::memory_order_release);
    cv_.notify_all();
  }

 private:
  alignas(kCacheLine) std::atomic<std::uint32_t> waiters_{0};
  std::atomic<std::uint64_t> epoch_{0};
  std::mutex mutex_;
  std::condition_variable cv_;
};

// For waiters that each have a condition of their own (threads helping until
// their tasks finish, producers blocked on a full queue): notify_all() wakes
// everyone registered and unregisters them in the same atomic step, so until
// one registers again further notifications cost one relaxed load. State
// word: the epoch in the high 32 bits, the registered waiters in the low 32.
class Broadcast {
 public:
  using Deadline = std::chrono::steady_clock::time_point;

  // Registers the caller as a waiter and returns its key. Must be followed
  // by exactly one cancel_wait(key) or commit_wait(key, ...).
  std::uint32_t prepare_wait() noexcept {
    const std::uint64_t s = state_.fetch_add(1, std::memory_order_seq_cst);
    full_fence();
    return epoch_of(s);
  }

  // Withdraws the registration of a caller that found its condition true
  // (a no-op if a notify_all() has already withdrawn it).
  void cancel_wait(std::uint32_t key) noexcept { unregister(key); }

  // Sleeps until a notify_all() issued after prepare_wait() (returns at once
  // if one already was) or until `*deadline` when `deadline` is not null,
  // then withdraws the registration if it is still there.
  void commit_wait(std::uint32_t key, const Deadline* deadline) noexcept {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      while (epoch_of(state_.load(std::memory_order_acquire)) == key) {
        if (deadline == nullptr) {
          cv_.wait(lock);
        } else if (cv_.wait_until(lock, *deadline) == std::cv_status::timeout) {
          break;
        }
      }
    }
    unregister(key);
  }

  // True while some thread is registered. A notifier calls it after its own
  // full_fence() and skips the notify when it returns false.
  bool has_waiters() const noexcept {
    return (state_.load(std::memory_order_relaxed) & kWaiterMask) != 0;
  }

  // Wakes every registered waiter and unregisters them all; a no-op (one
  // relaxed load) when nobody is registered.
  void notify_all() noexcept {
    std::uint64_t s = state_.load(std::memory_order_relaxed);
    do {
      if ((s & kWaiterMask) == 0) return;
    } while (!state_.compare_exchange_weak(s, (s | kWaiterMask) + 1, std::memory_order_acq_rel,
                                           std::memory_order_relaxed));
    // (s | mask) + 1 = next epoch, zero waiters. Taking the mutex orders this
    // after any waiter that saw the old epoch under it and is about to sleep.
    std::lock_guard<std::mutex> lock(mutex_);
    cv_.notify_all();
  }

 private:
  static constexpr std::uint64_t kWaiterMask = 0xFFFFFFFFULL;
  static std::uint32_t epoch_of(std::uint64_t s) noexcept { return static_cast<std::uint32_t>(s >> 32); }

  // Drops this waiter's registration unless a notify_all() already did.
  void unregister(std::uint32_t key) noexcept {
    std::uint64_t s = state_.load(std::memory_order_relaxed);
    while (epoch_of(s) == key &&
           !state_.compare_exchange_weak(s, s - 1, std::memory_order_relaxed)) {
    }
  }

  alignas(kCacheLine) std::atomic<std::uint64_t> state_{0};
  std::mutex mutex_;
  std::condition_variable cv_;
};

}  // namespace veda::detail
