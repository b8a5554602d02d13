// The native part of pyveda.runtime.Future: a veda::FutureState with the
// task's outcome beside it.
//
// pyveda.runtime.Future derives from this class and from
// concurrent.futures.Future. A future starts "native": its state and result
// live here, the runner changes them without running any Python code, and
// done()/result() read them. The base class's own fields (a condition, a
// waiter list, done-callbacks) cost a microsecond to create, and only
// add_done_callback(), concurrent.futures.wait()/as_completed() and the like
// need them; the first time one of them is asked for, the Python class calls
// the base class's public constructor and replays the state through its
// public methods (attach()). From then on the base class is the state, and
// the runner drives it through its public executor methods
// (set_running_or_notify_cancel, set_result, set_exception).
//
// Thread-safety: every method needs the GIL except native_done() and
// attached(). A runner's check of attached() and the native transition it
// guards happen in one GIL hold, so a runner never changes a native state
// after attach() has read it for the replay.
#pragma once

#include <nanobind/nanobind.h>

#include <atomic>

#include "veda/runtime/future_state.hpp"

namespace veda::bindings {

// What a future holds, as the Python class reads it (exposed as FutureCore.PENDING ...).
enum class Outcome : int { pending = 0, running = 1, returned = 2, raised = 3, cancelled = 4, cancelled_notified = 5, attached = 6 };

class PyFuture {
 public:
  explicit PyFuture(nanobind::object runtime) : runtime_(std::move(runtime)) {}

  // The runner's side (GIL held). start(): true if the task should run now;
  // false if it was cancelled (it is then marked as seen by the runner).
  static bool start(nanobind::handle self);
  // The task returned `result` (exception null) or raised `exception`.
  static void finish(nanobind::handle self, nanobind::handle result, nanobind::handle exception);
  // The task was dropped without running (shutdown(wait=False), refused).
  static void cancel_unrun(nanobind::handle self);

  // The Python class's side.
  Outcome peek() const;
  nanobind::object value() const { return value_ ? value_ : nanobind::none(); }
  // Marks the base class's fields as the state from now on; returns what the
  // native state was, for the caller to replay. Idempotent: attached after.
  Outcome attach();
  bool attached() const { return attached_.load(std::memory_order_acquire); }
  // Cancels a native future (true: cancelled); attached ones are the base class's to cancel.
  bool try_cancel() { return state_.try_cancel(); }

  // The native state's done(), readable without the GIL; it means something
  // only while !attached() (an attached future answers through done()).
  bool native_done() const { return state_.done(); }

  const nanobind::object& runtime() const { return runtime_; }

  // Garbage-collector support (the value may refer back to the future).
  int traverse(visitproc visit, void* arg) const;
  void clear();

 private:
  FutureState state_;
  std::atomic<bool> attached_{false};
  bool raised_ = false;
  nanobind::object value_;  // the result or the exception, once finished
  nanobind::object runtime_;
};

void init_future(nanobind::module_& m);

}  // namespace veda::bindings
