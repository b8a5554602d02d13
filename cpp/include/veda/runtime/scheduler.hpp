// veda::Scheduler: a work-stealing thread pool that runs veda::Task objects.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <type_traits>

#include "veda/runtime/task.hpp"

namespace veda {

namespace detail {
class SchedulerCore;
}  // namespace detail

// Callbacks around each task a Scheduler runs, for profilers and metrics; the
// scheduler itself knows nothing about either.
//
// Thread-safety: the methods are called concurrently from every thread that
// runs tasks (workers, and threads inside help_until()/run_one()), so an
// implementation must be thread-safe. They run on the task's thread right
// before and after the task, so keep them short. Times come from
// std::chrono::steady_clock and are never negative.
//
// Clock readings: one at submit(), one when a thread takes the task, one when
// it ends. A thread that runs tasks back to back (a worker with a full queue,
// a help_until() loop) reads the clock once between two tasks: the end of one
// is the start of the next, so the next task's run time includes the few
// nanoseconds of taking it from its queue.
class SchedulerObserver {
 public:
  virtual ~SchedulerObserver();

  // The task is about to run; it waited `queue_wait_ns` since submit().
  virtual void on_task_start(std::int64_t /*queue_wait_ns*/) noexcept {}

  // The task returned (`ok` = returned true) or failed (returned false or threw)
  // after running for `run_ns`.
  virtual void on_task_end(std::int64_t /*queue_wait_ns*/, std::int64_t /*run_ns*/,
                           bool /*ok*/) noexcept {}
};

// Construction parameters of a Scheduler.
struct SchedulerOptions {
  // Worker threads; 0 picks std::thread::hardware_concurrency() (1 if that is
  // unknown). At most Scheduler::max_threads.
  unsigned num_threads = 0;

  // Most tasks queued and not yet started; 0 = unbounded. When the limit is
  // reached submit() blocks (try_submit() gives up after its timeout). A thread
  // that is running a task of this scheduler (a worker, or a thread inside
  // help_until()) runs queued tasks while it waits instead of just blocking,
  // so a full queue cannot deadlock nested submissions.
  std::size_t queue_capacity = 0;

  // Called around every task; nullptr = none. Not owned: it must outlive the
  // Scheduler. With nullptr no clock is read at all.
  SchedulerObserver* observer = nullptr;

  // Run on each worker thread when it starts and right before it exits (for
  // example to attach the thread to an interpreter). Exceptions they throw are
  // swallowed; they should not throw.
  std::function<void()> on_worker_start = {};
  std::function<void()> on_worker_stop = {};
};

// A pool of worker threads that run Tasks.
//
// Each worker owns a lock-free work-stealing deque (Chase-Lev): tasks submitted
// from a worker go to the bottom of its own deque, the worker pops from the
// bottom and idle workers steal from the top. Tasks submitted from any other
// thread go to one shared injection queue. Idle workers spin briefly and then
// sleep on a condition variable until work arrives, so an idle scheduler uses
// no CPU.
//
// A task that returns false or throws is counted in failed(); the exception is
// swallowed and the worker carries on. To wait for tasks you submitted, call
// help_until(): the calling thread runs queued tasks while it waits, so a task
// may submit children and wait for them even with a single worker thread.
//
// Thread-safety: every method may be called concurrently from any thread,
// including from inside tasks, except the destructor (see ~Scheduler). The
// counters are relaxed snapshots: exact when the scheduler is quiescent, and
// individually consistent (never negative) while tasks are in flight.
class Scheduler {
 public:
  static constexpr unsigned max_threads = 1024;

  // Starts the workers. Throws std::invalid_argument when num_threads exceeds
  // max_threads, std::system_error when a thread cannot be started.
  explicit Scheduler(SchedulerOptions options = {});

  // shutdown(true): runs every queued task, then joins the workers. Must not
  // run on a worker of this scheduler or inside one of its tasks: a thread
  // cannot join itself, so that prints a message and calls std::terminate.
  ~Scheduler();

  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;
  Scheduler(Scheduler&&) = delete;
  Scheduler& operator=(Scheduler&&) = delete;

  // Queues `task`. From a worker of this scheduler it goes to that worker's
  // deque, from other threads to the shared queue. With a queue_capacity it
  // blocks while that many tasks are queued (see SchedulerOptions). Returns
  // false, and destroys the task without running it, once shutdown() has
  // started; tasks must then cope (for example run the work inline). A submit
  // racing with shutdown() may still be accepted; the task is then drained or
  // cancelled like every other queued task, never lost. Throws
  // std::invalid_argument for an empty task and std::bad_alloc when out of
  // memory; no other exceptions.
  //
  // The callable is destroyed on the thread that runs it, right after it
  // returns, or, when cancelled, on the thread that cancels it (a worker, a
  // helping thread or the one calling shutdown()).
  bool submit(Task task);

  // Like submit(), but gives up when the queue is still full after `timeout`
  // (zero or negative: do not wait) and returns false; the task is then
  // destroyed without running. Helping threads check the timeout between the
  // tasks they run, so they may overrun it by one task.
  bool try_submit(Task task, std::chrono::nanoseconds timeout);

  // Runs one queued task on the calling thread if there is one (a worker takes
  // from its own deque first). Returns true when a task was run. After
  // shutdown(false) queued tasks are cancelled instead of run, and this
  // returns false.
  bool run_one();

  // Runs queued tasks on the calling thread until `done()` returns true; when
  // there is nothing to run, sleeps until a task finishes or new work arrives
  // (and re-checks `done()` at least every millisecond, for conditions that
  // tasks do not drive). Works from any thread; inside a task it is the way to
  // wait for child tasks without deadlock. `done` is called from this thread
  // only; exceptions it throws propagate.
  //
  // After shutdown(false) queued tasks are destroyed instead of run. A task
  // waiting for a child that may be cancelled must let `done()` see the
  // cancellation (for example a flag set from the child's destructor), or it
  // waits forever.
  template <class Pred>
  void help_until(Pred&& done) {
    static_assert(std::is_invocable_r_v<bool, Pred&>, "help_until needs a bool() predicate");
    help_until_impl(&call_predicate<std::remove_reference_t<Pred>>, std::addressof(done));
  }

  // Like help_until() but never runs a task on the calling thread: sleeps
  // until a task finishes or new work arrives, re-checking `done()` at least
  // every millisecond. For a thread that must stay free while it waits, such
  // as the one the process's signals go to (a task run there would receive
  // them). Called from inside a task of this scheduler it can deadlock (the
  // children it waits for may need this very thread); use help_until() there.
  // `done` is called from this thread only; exceptions it throws propagate.
  template <class Pred>
  void wait_until(Pred&& done) {
    static_assert(std::is_invocable_r_v<bool, Pred&>, "wait_until needs a bool() predicate");
    wait_until_impl(&call_predicate<std::remove_reference_t<Pred>>, std::addressof(done));
  }

  // Stops accepting tasks (submit() returns false from now on) and ends the
  // workers. wait=true runs every task already queued first; wait=false
  // destroys queued tasks without running them (counted in cancelled()) and
  // only lets running tasks finish. Returns once the workers are joined.
  //
  // Idempotent, and may be called concurrently; a later shutdown(false) turns
  // a running drain into a cancel. Called from a task of this scheduler (or a
  // worker hook) it only starts the shutdown and returns at once, since the
  // thread cannot join itself; the workers are then joined by the next
  // shutdown() call from another thread or by the destructor.
  void shutdown(bool wait = true);

  // Tasks queued and not yet started.
  std::size_t pending() const noexcept;
  // Tasks running right now.
  std::size_t running() const noexcept;
  // Tasks that returned true.
  std::uint64_t completed() const noexcept;
  // Tasks that returned false or threw.
  std::uint64_t failed() const noexcept;
  // Queued tasks destroyed without running by shutdown(false), plus tasks
  // that called skip_current_task().
  std::uint64_t cancelled() const noexcept;

  unsigned num_threads() const noexcept;
  std::size_t queue_capacity() const noexcept;
  bool is_shutdown() const noexcept;

  // True on a worker thread of this scheduler.
  bool is_worker_thread() const noexcept;

  // True in a child process for a scheduler made before the fork(): its
  // workers stayed in the parent. There submit() returns false,
  // help_until()/wait_until() throw std::runtime_error unless `done()` is
  // already true, shutdown() only marks it shut down, and the destructor
  // leaves its memory alone (no join, no lock: their owners are not in this
  // process; what was queued is not run, not destroyed).
  bool is_inherited() const noexcept;
  // True on a worker thread of any Scheduler.
  static bool in_worker_thread() noexcept;
  // The calling worker's index in [0, num_threads()), or -1 on other threads.
  static int current_worker_index() noexcept;

  // Called from inside a running task whose work turned out to be cancelled
  // before it began (e.g. its future was cancelled while queued): the task is
  // then counted in cancelled() instead of completed()/failed(), and the
  // observer's on_task_end is not called. Returns false outside a task.
  static bool skip_current_task() noexcept;

  // Called from inside a running task once its work is done but before it
  // publishes the result (e.g. completes a future): reports the outcome to
  // the observer now, so whoever sees the result also sees it counted. The
  // task's return value is then ignored for the outcome. Returns false
  // outside a task or when already reported or skipped.
  static bool report_current_task(bool ok) noexcept;

 private:
  // Calls the predicate behind a type-erased pointer (help_until/wait_until).
  template <class P>
  static bool call_predicate(const void* p) {
    return static_cast<bool>((*static_cast<P*>(const_cast<void*>(p)))());
  }

  void help_until_impl(bool (*done)(const void*), const void* ctx);
  void wait_until_impl(bool (*done)(const void*), const void* ctx);

  std::unique_ptr<detail::SchedulerCore> core_;
};

}  // namespace veda
