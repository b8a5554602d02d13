// veda::Scheduler: the scheduler core (workers, the injection queue, helping,
// back-pressure, shutdown) built from the pieces in runtime/detail/: the node
// pool, the Chase-Lev deques and the event counts.
#include "veda/runtime/scheduler.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <exception>  // std::terminate
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "runtime/detail/cpu.hpp"
#include "runtime/detail/event_count.hpp"
#include "runtime/detail/node_pool.hpp"
#include "runtime/detail/stack.hpp"
#include "runtime/detail/tick_clock.hpp"
#include "runtime/detail/work_deque.hpp"
#include "veda/detail/cache_line.hpp"
#include "veda/detail/fork.hpp"
#include "veda/detail/single_writer.hpp"

namespace veda {

SchedulerObserver::~SchedulerObserver() = default;

namespace detail {
namespace {

// Idle workers (and helpers with nothing to run) look for work kSpinRounds
// times kPauses pause instructions apart, then kYieldRounds times after a
// yield, and then sleep: about ten microseconds in all. Yielding rather than
// spinning matters when threads outnumber cores (external submitters and
// helpers come on top of one worker per core): a spinning worker would take
// the CPU from the producer it is waiting for.
constexpr int kSpinRounds = 4;
constexpr int kPauses = 16;
constexpr int kYieldRounds = 8;
// Most tasks a worker moves from the injection queue to its deque at once.
constexpr std::size_t kMaxBatch = 32;
// A helper re-checks its predicate at least this often while it sleeps.
constexpr std::chrono::microseconds kHelpPoll{1000};
// A task-running thread waiting for queue space while nothing is runnable
// (every queued task is still being pushed) retries this often.
constexpr std::chrono::microseconds kSpacePoll{100};

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;


inline std::uint64_t next_random(std::uint64_t& state) noexcept {
  // xorshift64*; the state must not be zero.
  if (state == 0) state = 0x9E3779B97F4A7C15ULL;
  state ^= state >> 12;
  state ^= state << 25;
  state ^= state >> 27;
  return state * 0x2545F4914F6CDD1DULL;
}

// A queued task. The node is allocated by submit() and freed by whoever runs
// or cancels it, so deques only move pointers.
struct Node {
  Node(Task&& t, std::int64_t ts) noexcept : task(std::move(t)), submit_ticks(ts) {}
  Task task;
  std::int64_t submit_ticks;  // TickClock; only set when an observer is attached
};

using TaskNodePool = NodePool<Node>;

Node* make_node(Task&& task, std::int64_t submit_ticks) {
  return ::new (TaskNodePool::allocate()) Node(std::move(task), submit_ticks);
}

struct NodeDeleter {
  void operator()(Node* node) const noexcept {
    node->~Node();  // runs the callable's destructor
    TaskNodePool::release(node);
  }
};
using NodePtr = std::unique_ptr<Node, NodeDeleter>;

// Increments a counter slot. A worker's slot has a single writer (the worker),
// so a plain load+store suffices; the shared slot for other threads needs an RMW.
inline void bump(std::atomic<std::uint64_t>& c, bool exclusive) noexcept {
  if (exclusive) {
    single_writer_add(c, 1);
  } else {
    c.fetch_add(1, std::memory_order_relaxed);
  }
}

inline void unbump(std::atomic<std::uint64_t>& c, bool exclusive) noexcept {
  if (exclusive) {
    single_writer_sub(c, 1);
  } else {
    c.fetch_sub(1, std::memory_order_relaxed);
  }
}

// Per-thread bookkeeping shared by all schedulers in the process.
struct WorkerContext {
  SchedulerCore* core = nullptr;
  unsigned index = 0;
};

// One entry per task being executed on this thread (tasks nest through
// help_until / run_one / helping submits), so a thread can tell whether it
// is inside a task of a given scheduler.
struct ExecFrame {
  const SchedulerCore* core;
  ExecFrame* prev;
  bool skipped = false;  // set by Scheduler::skip_current_task()
  // Set by Scheduler::report_current_task(): the outcome was reported to the
  // observer early, before the task finished its own bookkeeping.
  bool reported = false;
  bool reported_ok = false;
  SchedulerObserver* observer = nullptr;
  std::int64_t start_ticks = 0;  // TickClock
  std::int64_t queue_wait_ns = 0;
};

thread_local WorkerContext t_worker;
thread_local ExecFrame* t_frames = nullptr;
thread_local std::uint64_t t_rng = 0;

}  // namespace

// The state behind a veda::Scheduler. See scheduler.hpp for the contract.
class SchedulerCore {
 public:
  enum : int { kRunning = 0, kDraining = 1, kDiscarding = 2 };

  explicit SchedulerCore(SchedulerOptions&& options);
  ~SchedulerCore();

  SchedulerCore(const SchedulerCore&) = delete;
  SchedulerCore& operator=(const SchedulerCore&) = delete;

  bool submit(Task&& task, const Deadline* deadline);
  bool run_one();
  void help_until(bool (*done)(const void*), const void* ctx);
  void wait_until(bool (*done)(const void*), const void* ctx);
  void help_or_wait(bool (*done)(const void*), const void* ctx, bool help);
  void shutdown(bool wait);

  std::size_t pending() const noexcept;
  std::size_t running() const noexcept;
  std::uint64_t completed() const noexcept;
  std::uint64_t failed() const noexcept;
  std::uint64_t cancelled() const noexcept { return cancelled_.load(std::memory_order_relaxed); }
  unsigned num_threads() const noexcept { return nthreads_; }
  std::size_t queue_capacity() const noexcept { return capacity_; }
  bool is_shutdown() const noexcept { return state_.load(std::memory_order_acquire) != kRunning; }
  bool is_worker_thread() const noexcept { return t_worker.core == this; }
  // True on a worker of this scheduler or inside one of its tasks.
  bool in_task_context() const noexcept;
  // Made in a parent process, before the fork() that made this one.
  bool inherited() const noexcept { return stamp_.inherited(); }

 private:
  struct alignas(kCacheLine) CounterSlot {
    std::atomic<std::uint64_t> submitted{0};
    std::atomic<std::uint64_t> started{0};
    std::atomic<std::uint64_t> completed{0};
    std::atomic<std::uint64_t> failed{0};
  };

  struct alignas(kCacheLine) Worker {
    Worker() : deque(256) {}
    WorkDeque<Node> deque;
    std::thread thread;
    std::uint64_t rng = 0;
  };

  void worker_main(unsigned index);
  Node* wait_for_work(unsigned index);
  void found_while_searching() noexcept;
  Node* find_work(unsigned index);    // worker `index`: own deque, injection queue, steal
  Node* find_work_external();         // any other thread: injection queue, steal
  Node* take_global(Worker* into);
  Node* steal_any(unsigned skip, std::uint64_t& rng);
  bool work_visible() const noexcept;
  // Takes one queued task and runs (or, when discarding, cancels) it.
  // Returns 0 when nothing was queued, 1 when it ran a task, 2 when it cancelled one.
  // `clock` (may be null) chains clock readings between tasks run back to
  // back on this thread: in, the end time of the task it ran just before
  // (0: none, or something else happened since); out, this task's end time
  // (0 when it was not timed here).
  int help_one(std::int64_t* clock = nullptr);
  bool execute(Node* node, unsigned slot, std::int64_t* clock = nullptr);
  void cancel(Node* node) noexcept;
  bool reserve_slot(const Deadline* deadline);
  void release_slot() noexcept;
  void notify_new_work() noexcept;
  void notify_helpers() noexcept;
  void join_and_sweep();
  void run_hook(const std::function<void()>& hook) noexcept;

  const unsigned nthreads_;
  const std::size_t capacity_;
  SchedulerObserver* const observer_;
  const std::function<void()> on_worker_start_;
  const std::function<void()> on_worker_stop_;

  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<CounterSlot[]> counters_;  // one per worker, then one shared by other threads

  alignas(kCacheLine) std::mutex global_mutex_;
  std::deque<Node*> global_;                  // injection queue, under global_mutex_
  std::atomic<std::size_t> global_size_{0};   // global_.size(), readable without the lock

  const ProcessStamp stamp_;  // see veda/detail/fork.hpp
  alignas(kCacheLine) std::atomic<int> state_{kRunning};
  alignas(kCacheLine) std::atomic<std::size_t> queued_{0};  // reserved + queued, with a capacity
  alignas(kCacheLine) std::atomic<std::uint64_t> cancelled_{0};

  // Workers between finding nothing and parking. While one searches, a new
  // task needs no wake-up: the searcher will find it.
  alignas(kCacheLine) std::atomic<unsigned> searching_{0};

  WorkerParking work_ec_;  // idle workers
  Broadcast help_ec_;      // threads in help_until(): task finished or new work
  Broadcast space_ec_;     // producers blocked on queue_capacity

  std::mutex join_mutex_;
  bool joined_ = false;  // under join_mutex_
};

SchedulerCore::SchedulerCore(SchedulerOptions&& options)
    : nthreads_([&] {
        if (options.num_threads > Scheduler::max_threads) {
          throw std::invalid_argument(
              "veda::Scheduler: num_threads = " + std::to_string(options.num_threads) +
              " exceeds the maximum of " + std::to_string(Scheduler::max_threads) +
              " (use 0 for one thread per hardware thread)");
        }
        if (options.num_threads != 0) return options.num_threads;
        const unsigned hw = std::thread::hardware_concurrency();
        return std::clamp(hw, 1U, Scheduler::max_threads);
      }()),
      capacity_(options.queue_capacity),
      observer_(options.observer),
      on_worker_start_(std::move(options.on_worker_start)),
      on_worker_stop_(std::move(options.on_worker_stop)) {
  if (observer_ != nullptr) TickClock::calibrate();  // before the first task is timed
  workers_.reserve(nthreads_);
  for (unsigned i = 0; i < nthreads_; ++i) {
    workers_.push_back(std::make_unique<Worker>());
    workers_.back()->rng = 0x9E3779B97F4A7C15ULL * (i + 1);
  }
  counters_ = std::make_unique<CounterSlot[]>(nthreads_ + 1);
  try {
    for (unsigned i = 0; i < nthreads_; ++i) {
      workers_[i]->thread = std::thread([this, i] { worker_main(i); });
    }
  } catch (...) {
    shutdown(false);
    throw;
  }
}

SchedulerCore::~SchedulerCore() {
  // Scheduler::~Scheduler joined the workers; free anything left defensively.
  for (Node* node : global_) NodeDeleter{}(node);
  for (auto& w : workers_) {
    while (Node* node = w->deque.pop()) NodeDeleter{}(node);
  }
}

void SchedulerCore::run_hook(const std::function<void()>& hook) noexcept {
  if (!hook) return;
  try {
    hook();
  } catch (...) {  // documented: hook exceptions are swallowed
  }
}

void SchedulerCore::worker_main(unsigned index) {
  t_worker = WorkerContext{this, index};
  run_hook(on_worker_start_);
  std::int64_t clock = 0;  // end of the previous task, while tasks run back to back
  for (;;) {
    Node* node = find_work(index);
    if (node == nullptr) {
      clock = 0;
      node = wait_for_work(index);
    }
    if (node == nullptr) break;
    execute(node, index, &clock);
  }
  run_hook(on_worker_stop_);
  t_worker = WorkerContext{};
}

Node* SchedulerCore::wait_for_work(unsigned index) {
  searching_.fetch_add(1, std::memory_order_relaxed);
  for (;;) {
    if (state_.load(std::memory_order_acquire) != kRunning) {
      searching_.fetch_sub(1, std::memory_order_relaxed);
      // Seen after the state change, which happened under global_mutex_ after
      // every accepted external push: this search sees all of them. Nothing
      // found means nothing is left for this worker: exit.
      return find_work(index);
    }
    // Spin briefly, then yield (with more threads than cores, as with external
    // submitters, a spinning worker would take the CPU from the producer),
    // then sleep.
    for (int round = 0; round < kSpinRounds + kYieldRounds; ++round) {
      if (round < kSpinRounds) {
        for (int i = 0; i < kPauses; ++i) cpu_relax();
      } else {
        std::this_thread::yield();
      }
      if (Node* node = find_work(index)) {
        found_while_searching();
        return node;
      }
      if (state_.load(std::memory_order_relaxed) != kRunning) break;
    }
    if (state_.load(std::memory_order_relaxed) != kRunning) continue;

    const std::uint64_t key = work_ec_.prepare_wait();
    // Stop searching before the last look, so a producer that pushes after
    // it sees searching_ == 0 and wakes us.
    searching_.fetch_sub(1, std::memory_order_seq_cst);
    full_fence();
    if (Node* node = find_work(index)) {
      work_ec_.cancel_wait();
      searching_.fetch_add(1, std::memory_order_relaxed);
      found_while_searching();
      return node;
    }
    if (state_.load(std::memory_order_acquire) != kRunning) {
      work_ec_.cancel_wait();
      return find_work(index);
    }
    work_ec_.commit_wait(key);
    searching_.fetch_add(1, std::memory_order_relaxed);
  }
}

void SchedulerCore::found_while_searching() noexcept {
  // The last searcher leaving with work wakes a sleeper if more is queued, so
  // a burst pulls in as many workers as it needs, one wake-up at a time.
  if (searching_.fetch_sub(1, std::memory_order_seq_cst) == 1) {
    full_fence();
    if (work_visible() && work_ec_.has_waiters()) work_ec_.notify_one();
  }
}

Node* SchedulerCore::find_work(unsigned index) {
  Worker& w = *workers_[index];
  if (Node* node = w.deque.pop()) return node;
  if (Node* node = take_global(&w)) return node;
  return steal_any(index, w.rng);
}

Node* SchedulerCore::find_work_external() {
  if (Node* node = take_global(nullptr)) return node;
  return steal_any(nthreads_, t_rng);
}

Node* SchedulerCore::take_global(Worker* into) {
  if (global_size_.load(std::memory_order_relaxed) == 0) return nullptr;
  Node* first = nullptr;
  std::size_t moved = 0;
  {
    std::lock_guard<std::mutex> lock(global_mutex_);
    const std::size_t size = global_.size();
    if (size == 0) return nullptr;
    first = global_.front();
    global_.pop_front();
    if (into != nullptr && size > 1) {
      // Take a share of the rest into the worker's deque, where the other
      // workers can steal it; this amortises the lock. Only as much as fits
      // without growing the ring, so this path never allocates.
      const std::int64_t room = std::max<std::int64_t>(0, into->deque.free_slots() - 1);
      moved = std::min({kMaxBatch - 1, (size - 1) / nthreads_, static_cast<std::size_t>(room)});
      // Pushed newest first so the owner pops them oldest first.
      for (std::size_t k = moved; k-- > 0;) into->deque.push(global_[k]);
      global_.erase(global_.begin(), global_.begin() + static_cast<std::ptrdiff_t>(moved));
    }
    global_size_.store(global_.size(), std::memory_order_relaxed);
  }
  if (moved > 0) notify_new_work();
  return first;
}

Node* SchedulerCore::steal_any(unsigned skip, std::uint64_t& rng) {
  const unsigned n = nthreads_;
  const unsigned start = static_cast<unsigned>(next_random(rng) % n);
  for (unsigned k = 0; k < n; ++k) {
    unsigned victim = start + k;
    if (victim >= n) victim -= n;
    if (victim == skip) continue;
    if (Node* node = workers_[victim]->deque.steal()) return node;
  }
  return nullptr;
}

bool SchedulerCore::work_visible() const noexcept {
  if (global_size_.load(std::memory_order_relaxed) != 0) return true;
  for (const auto& w : workers_) {
    if (w->deque.size() != 0) return true;
  }
  return false;
}

bool SchedulerCore::in_task_context() const noexcept {
  if (t_worker.core == this) return true;
  for (const ExecFrame* f = t_frames; f != nullptr; f = f->prev) {
    if (f->core == this) return true;
  }
  return false;
}

void SchedulerCore::notify_new_work() noexcept {
  full_fence();
  if (searching_.load(std::memory_order_relaxed) == 0 && work_ec_.has_waiters()) {
    work_ec_.notify_one();
  }
  if (help_ec_.has_waiters()) help_ec_.notify_all();
}

void SchedulerCore::notify_helpers() noexcept {
  full_fence();
  if (help_ec_.has_waiters()) help_ec_.notify_all();
}

bool SchedulerCore::reserve_slot(const Deadline* deadline) {
  std::size_t q = queued_.load(std::memory_order_relaxed);
  for (;;) {
    while (q < capacity_) {
      if (queued_.compare_exchange_weak(q, q + 1, std::memory_order_acq_rel,
                                        std::memory_order_relaxed)) {
        return true;
      }
    }
    if (state_.load(std::memory_order_acquire) != kRunning) return false;
    if (deadline != nullptr && Clock::now() >= *deadline) return false;
    // A thread inside a task of ours must not just block: the tasks that
    // would make room may need this very thread. Run queued work instead.
    const bool helping = in_task_context();
    if (helping && help_one() != 0) {
      q = queued_.load(std::memory_order_relaxed);
      continue;
    }
    const std::uint32_t key = space_ec_.prepare_wait();
    q = queued_.load(std::memory_order_relaxed);
    if (q < capacity_ || state_.load(std::memory_order_acquire) != kRunning) {
      space_ec_.cancel_wait(key);
      continue;
    }
    if (helping) {
      Deadline soon = Clock::now() + kSpacePoll;
      if (deadline != nullptr) soon = std::min(soon, *deadline);
      space_ec_.commit_wait(key, &soon);
    } else {
      space_ec_.commit_wait(key, deadline);
    }
    q = queued_.load(std::memory_order_relaxed);
  }
}

void SchedulerCore::release_slot() noexcept {
  if (capacity_ == 0) return;
  queued_.fetch_sub(1, std::memory_order_acq_rel);
  full_fence();
  if (space_ec_.has_waiters()) space_ec_.notify_all();
}

bool SchedulerCore::submit(Task&& task, const Deadline* deadline) {
  if (!task) throw std::invalid_argument("veda::Scheduler::submit: the task is empty");
  if (state_.load(std::memory_order_acquire) != kRunning) return false;
  if (inherited()) return false;  // a parent's scheduler: its workers are not in this process
  if (capacity_ != 0 && !reserve_slot(deadline)) return false;

  NodePtr node;
  try {
    node.reset(make_node(std::move(task), observer_ != nullptr ? TickClock::now() : 0));
  } catch (...) {
    release_slot();
    throw;
  }

  const bool worker = t_worker.core == this;
  const unsigned slot = worker ? t_worker.index : nthreads_;
  // Counted before the push so pending() never sees a start before its submit.
  std::atomic<std::uint64_t>& submitted = counters_[slot].submitted;
  bump(submitted, worker);
  try {
    if (worker) {
      // A worker's own deque: if shutdown starts right after this check the
      // worker still finds the task before it exits (it never leaves its own
      // deque non-empty), so it is drained or cancelled like the rest.
      if (state_.load(std::memory_order_acquire) != kRunning) {
        unbump(submitted, worker);
        release_slot();
        return false;
      }
      workers_[slot]->deque.push(node.get());
    } else {
      std::lock_guard<std::mutex> lock(global_mutex_);
      if (state_.load(std::memory_order_relaxed) != kRunning) {
        unbump(submitted, worker);
        release_slot();
        return false;
      }
      global_.push_back(node.get());
      global_size_.store(global_.size(), std::memory_order_relaxed);
    }
  } catch (...) {
    unbump(submitted, worker);
    release_slot();
    throw;
  }
  node.release();
  notify_new_work();
  return true;
}

bool SchedulerCore::execute(Node* raw, unsigned slot, std::int64_t* clock) {
  NodePtr node(raw);
  release_slot();
  const std::int64_t previous_end = clock != nullptr ? std::exchange(*clock, 0) : 0;
  if (state_.load(std::memory_order_relaxed) == kDiscarding) {
    cancel(node.release());
    return false;
  }
  const bool exclusive = slot < nthreads_;
  CounterSlot& counters = counters_[slot];
  bump(counters.started, exclusive);

  ExecFrame frame{this, t_frames};
  t_frames = &frame;
  bool ok = false;
  if (observer_ == nullptr) {
    try {
      ok = node->task();
    } catch (...) {
      ok = false;
    }
  } else {
    frame.observer = observer_;
    // Right after another task, that task's end reading is this one's start
    // (only queue-taking happened between), unless this one was queued later.
    frame.start_ticks =
        previous_end != 0 && previous_end >= node->submit_ticks ? previous_end : TickClock::now();
    frame.queue_wait_ns = TickClock::to_ns(std::max<std::int64_t>(0, frame.start_ticks - node->submit_ticks));
    observer_->on_task_start(frame.queue_wait_ns);
    try {
      ok = node->task();
    } catch (...) {
      ok = false;
    }
    if (!frame.skipped && !frame.reported) {
      const std::int64_t end = TickClock::now();
      observer_->on_task_end(frame.queue_wait_ns,
                             TickClock::to_ns(std::max<std::int64_t>(0, end - frame.start_ticks)), ok);
      // Tasks that reported early (report_current_task) did more work after
      // their reading, so they do not pass it on.
      if (clock != nullptr) *clock = end;
    }
  }
  if (frame.reported) ok = frame.reported_ok;
  t_frames = frame.prev;

  // Destroy the callable before the task counts as finished, so whoever
  // waits on completed() sees its captures already released.
  node.reset();
  if (frame.skipped) {
    // Counted as cancelled instead of started, or pending() would count it
    // gone twice and running() would count it running forever.
    cancelled_.fetch_add(1, std::memory_order_relaxed);
    unbump(counters.started, exclusive);
  } else {
    bump(ok ? counters.completed : counters.failed, exclusive);
  }
  notify_helpers();
  return true;
}

void SchedulerCore::cancel(Node* node) noexcept {
  NodeDeleter{}(node);  // runs the callable's destructor: its way to learn of the cancel
  cancelled_.fetch_add(1, std::memory_order_relaxed);
  notify_helpers();
}

int SchedulerCore::help_one(std::int64_t* clock) {
  const bool worker = t_worker.core == this;
  Node* node = worker ? find_work(t_worker.index) : find_work_external();
  if (node == nullptr) {
    if (clock != nullptr) *clock = 0;
    return 0;
  }
  return execute(node, worker ? t_worker.index : nthreads_, clock) ? 1 : 2;
}

bool SchedulerCore::run_one() {
  for (;;) {
    const int r = help_one();
    if (r != 2) return r == 1;
  }
}

void SchedulerCore::help_until(bool (*done)(const void*), const void* ctx) { help_or_wait(done, ctx, true); }

void SchedulerCore::wait_until(bool (*done)(const void*), const void* ctx) { help_or_wait(done, ctx, false); }

// The wait behind both: with `help`, run queued tasks while there are any;
// then spin and yield briefly, then sleep on help_ec_ (every finished task
// and, for helpers, new work notifies it) for at most kHelpPoll. A helper
// whose stack is nearly used up (see kStackReserveDivisor) only waits.
void SchedulerCore::help_or_wait(bool (*done)(const void*), const void* ctx, bool help) {
  if (inherited()) {
    // Nothing of this scheduler runs here: waiting would never end.
    if (done(ctx)) return;
    throw std::runtime_error(
        "veda::Scheduler: this scheduler was created in the parent process before fork(); its tasks do not run "
        "in the child, so waiting for them would never end (create a new scheduler or runtime in the child)");
  }
  if (help && stack_left() == 0) help = false;  // deep in nested helping: leave the rest to others
  std::int64_t clock = 0;  // end of the previous task, while this loop runs tasks back to back
  for (;;) {
    if (done(ctx)) return;
    if (help && help_one(&clock) != 0) continue;

    bool retry = false;
    for (int round = 0; round < kSpinRounds + kYieldRounds && !retry; ++round) {
      if (round < kSpinRounds) {
        for (int i = 0; i < kPauses; ++i) cpu_relax();
      } else {
        std::this_thread::yield();
      }
      if (done(ctx)) return;
      retry = help && work_visible();
    }
    if (retry) continue;

    const std::uint32_t key = help_ec_.prepare_wait();
    bool ready = false;
    try {
      ready = done(ctx);
    } catch (...) {
      help_ec_.cancel_wait(key);
      throw;
    }
    if (ready || (help && work_visible())) {
      help_ec_.cancel_wait(key);
      if (ready) return;
      continue;
    }
    const Deadline deadline = Clock::now() + kHelpPoll;
    help_ec_.commit_wait(key, &deadline);
  }
}

void SchedulerCore::shutdown(bool wait) {
  const int target = wait ? kDraining : kDiscarding;
  if (inherited()) {
    // The parent's workers are not in this process and its locks may be held
    // by them forever: only mark it shut down (see ~Scheduler).
    state_.store(kDiscarding, std::memory_order_release);  // the last state: nothing moves it back
    return;
  }
  {
    std::lock_guard<std::mutex> lock(global_mutex_);
    if (state_.load(std::memory_order_relaxed) < target) {
      state_.store(target, std::memory_order_release);
    }
  }
  full_fence();  // pairs with prepare_wait(): waiters either see the state or get notified
  work_ec_.notify_all();
  help_ec_.notify_all();
  space_ec_.notify_all();
  // A thread running one of our tasks (or a worker hook) cannot join the
  // workers: it would wait for itself. The next shutdown() from elsewhere,
  // or the destructor, joins.
  if (in_task_context()) return;
  join_and_sweep();
}

void SchedulerCore::join_and_sweep() {
  std::lock_guard<std::mutex> lock(join_mutex_);
  if (!joined_) {
    for (auto& w : workers_) {
      if (w->thread.joinable()) w->thread.join();
    }
    joined_ = true;
  }
  // Workers exit only with their deques empty and after seeing the shutdown,
  // and external pushes stop under global_mutex_ with the state change, so
  // normally nothing is left. Handle stragglers anyway: with the workers
  // joined, this thread may act as the owner of every deque (join_mutex_
  // keeps concurrent shutdown() calls out).
  for (;;) {
    Node* node = nullptr;
    {
      std::lock_guard<std::mutex> glock(global_mutex_);
      if (!global_.empty()) {
        node = global_.front();
        global_.pop_front();
        global_size_.store(global_.size(), std::memory_order_relaxed);
      }
    }
    for (std::size_t i = 0; node == nullptr && i < workers_.size(); ++i) {
      node = workers_[i]->deque.pop();
    }
    if (node == nullptr) break;
    execute(node, nthreads_);  // runs when draining, cancels when discarding
  }
}

std::size_t SchedulerCore::pending() const noexcept {
  std::uint64_t started = 0;
  std::uint64_t submitted = 0;
  for (unsigned i = 0; i <= nthreads_; ++i) {
    started += counters_[i].started.load(std::memory_order_relaxed);
  }
  const std::uint64_t cancelled = cancelled_.load(std::memory_order_relaxed);
  for (unsigned i = 0; i <= nthreads_; ++i) {
    submitted += counters_[i].submitted.load(std::memory_order_relaxed);
  }
  const std::uint64_t gone = started + cancelled;
  return submitted > gone ? static_cast<std::size_t>(submitted - gone) : 0;
}

std::size_t SchedulerCore::running() const noexcept {
  std::uint64_t finished = 0;
  std::uint64_t started = 0;
  for (unsigned i = 0; i <= nthreads_; ++i) {
    finished += counters_[i].completed.load(std::memory_order_relaxed) +
                counters_[i].failed.load(std::memory_order_relaxed);
  }
  for (unsigned i = 0; i <= nthreads_; ++i) {
    started += counters_[i].started.load(std::memory_order_relaxed);
  }
  return started > finished ? static_cast<std::size_t>(started - finished) : 0;
}

std::uint64_t SchedulerCore::completed() const noexcept {
  std::uint64_t total = 0;
  for (unsigned i = 0; i <= nthreads_; ++i) {
    total += counters_[i].completed.load(std::memory_order_relaxed);
  }
  return total;
}

std::uint64_t SchedulerCore::failed() const noexcept {
  std::uint64_t total = 0;
  for (unsigned i = 0; i <= nthreads_; ++i) {
    total += counters_[i].failed.load(std::memory_order_relaxed);
  }
  return total;
}

}  // namespace detail

// --- veda::Scheduler: forwards to the core -----------------------------------

Scheduler::Scheduler(SchedulerOptions options)
    : core_(std::make_unique<detail::SchedulerCore>(std::move(options))) {}

Scheduler::~Scheduler() {
  if (core_->inherited()) {
    // Made before fork(): its workers are not in this process (their
    // std::thread handles cannot be joined) and its locks and queues may be
    // in the middle of a change they never finish. Leave all of it alone.
    (void)core_.release();
    return;
  }
  if (core_->in_task_context()) {
    std::fputs("veda::Scheduler destroyed from one of its own tasks or workers; "
               "a thread cannot join itself\n",
               stderr);
    std::terminate();
  }
  core_->shutdown(true);
}

bool Scheduler::submit(Task task) { return core_->submit(std::move(task), nullptr); }

bool Scheduler::try_submit(Task task, std::chrono::nanoseconds timeout) {
  const auto now = detail::Clock::now();
  if (timeout.count() <= 0) {
    const detail::Deadline deadline = now;
    return core_->submit(std::move(task), &deadline);
  }
  // Saturate: a timeout past the clock's range means "no deadline".
  const auto room = detail::Deadline::max() - now;
  if (timeout >= room) return core_->submit(std::move(task), nullptr);
  const detail::Deadline deadline =
      now + std::chrono::duration_cast<detail::Clock::duration>(timeout);
  return core_->submit(std::move(task), &deadline);
}

bool Scheduler::run_one() { return core_->run_one(); }

void Scheduler::help_until_impl(bool (*done)(const void*), const void* ctx) {
  core_->help_until(done, ctx);
}

void Scheduler::wait_until_impl(bool (*done)(const void*), const void* ctx) {
  core_->wait_until(done, ctx);
}

void Scheduler::shutdown(bool wait) { core_->shutdown(wait); }

std::size_t Scheduler::pending() const noexcept { return core_->pending(); }
std::size_t Scheduler::running() const noexcept { return core_->running(); }
std::uint64_t Scheduler::completed() const noexcept { return core_->completed(); }
std::uint64_t Scheduler::failed() const noexcept { return core_->failed(); }
std::uint64_t Scheduler::cancelled() const noexcept { return core_->cancelled(); }
unsigned Scheduler::num_threads() const noexcept { return core_->num_threads(); }
std::size_t Scheduler::queue_capacity() const noexcept { return core_->queue_capacity(); }
bool Scheduler::is_shutdown() const noexcept { return core_->is_shutdown(); }
bool Scheduler::is_worker_thread() const noexcept { return core_->is_worker_thread(); }
bool Scheduler::is_inherited() const noexcept { return core_->inherited(); }

bool Scheduler::in_worker_thread() noexcept { return detail::t_worker.core != nullptr; }

bool Scheduler::report_current_task(bool ok) noexcept {
  detail::ExecFrame* frame = detail::t_frames;
  if (frame == nullptr || frame->reported || frame->skipped) return false;
  frame->reported = true;
  frame->reported_ok = ok;
  if (frame->observer != nullptr) {
    const std::int64_t run =
        detail::TickClock::to_ns(std::max<std::int64_t>(0, detail::TickClock::now() - frame->start_ticks));
    frame->observer->on_task_end(frame->queue_wait_ns, run, ok);
  }
  return true;
}

bool Scheduler::skip_current_task() noexcept {
  detail::ExecFrame* frame = detail::t_frames;
  if (frame == nullptr) return false;
  frame->skipped = true;
  return true;
}

int Scheduler::current_worker_index() noexcept {
  return detail::t_worker.core != nullptr ? static_cast<int>(detail::t_worker.index) : -1;
}

}  // namespace veda
