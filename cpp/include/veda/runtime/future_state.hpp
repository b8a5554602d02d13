// veda::FutureState: where one task's result stands, shared by the thread
// that runs the task and the threads that cancel it or wait for it.
//
// The five states and their transitions are those of Python's
// concurrent.futures.Future, so a binding can present a FutureState as one:
//
//   pending --try_start()--> running --finish()--> finished
//      |
//      +--try_cancel()--> cancelled --try_start()--> cancelled_notified
//
// try_start() on a cancelled future is how the runner learns that it must not
// run the task; it records that the runner saw the cancellation (Python's
// CANCELLED_AND_NOTIFIED, which concurrent.futures.wait() counts as done).
//
// The state holds no result: the owner keeps its result beside the state and
// writes it before finish(); a reader that sees `finished` (acquire) sees it.
// Waiting is not done here: the runtime's waiters re-check done() whenever
// the scheduler finishes a task (Scheduler::help_until/wait_until).
//
// Thread-safety: every method may be called from any thread at any time; each
// transition is one atomic compare-and-swap, so of a racing try_start() and
// try_cancel() exactly one wins.
#pragma once

#include <atomic>
#include <cstdint>

namespace veda {

enum class FutureStatus : std::uint8_t { pending, running, cancelled, cancelled_notified, finished };

class FutureState {
 public:
  FutureState() noexcept = default;
  FutureState(const FutureState&) = delete;
  FutureState& operator=(const FutureState&) = delete;

  // pending -> running: true, the caller now runs the task and must finish().
  // cancelled -> cancelled_notified: false, the task must not run.
  // Any other state: false, no change (the task was already started).
  bool try_start() noexcept {
    auto expected = FutureStatus::pending;
    if (status_.compare_exchange_strong(expected, FutureStatus::running, std::memory_order_acq_rel)) return true;
    if (expected == FutureStatus::cancelled) {
      status_.compare_exchange_strong(expected, FutureStatus::cancelled_notified, std::memory_order_acq_rel);
    }
    return false;
  }

  // pending -> cancelled: true. Already cancelled (notified or not): true, no
  // change. Running or finished: false, a started task cannot be cancelled.
  bool try_cancel() noexcept {
    auto expected = FutureStatus::pending;
    if (status_.compare_exchange_strong(expected, FutureStatus::cancelled, std::memory_order_acq_rel)) return true;
    return expected == FutureStatus::cancelled || expected == FutureStatus::cancelled_notified;
  }

  // running -> finished (release: what the runner wrote before is visible to
  // whoever reads finished). False, no change, unless running.
  bool finish() noexcept {
    auto expected = FutureStatus::running;
    return status_.compare_exchange_strong(expected, FutureStatus::finished, std::memory_order_acq_rel);
  }

  FutureStatus status() const noexcept { return status_.load(std::memory_order_acquire); }

  // Finished or cancelled (notified or not): Future.done() in Python.
  bool done() const noexcept {
    const FutureStatus s = status();
    return s == FutureStatus::finished || s == FutureStatus::cancelled || s == FutureStatus::cancelled_notified;
  }

 private:
  std::atomic<FutureStatus> status_{FutureStatus::pending};
};

}  // namespace veda
