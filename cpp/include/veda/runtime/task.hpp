// veda::Task: a move-only, type-erased unit of work for veda::Scheduler.
#pragma once

#include <cstddef>
#include <cstring>
#include <functional>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace veda {

class Task;

namespace detail {

// The per-type operations a Task dispatches through. `relocate` and `destroy`
// are null when a bitwise copy of the storage moves the callable and nothing
// needs destroying (trivially copyable callables and the heap pointer).
struct TaskOps {
  bool (*invoke)(void* storage);
  void (*relocate)(void* dst, void* src) noexcept;
  void (*destroy)(void* storage) noexcept;
};

template <class Fn, class = void>
struct returns_bool : std::false_type {};
template <class Fn>
struct returns_bool<Fn, std::enable_if_t<std::is_same_v<std::invoke_result_t<Fn&>, bool>>>
    : std::true_type {};

template <class Fn, class = void>
struct returns_void_or_bool : std::false_type {};
template <class Fn>
struct returns_void_or_bool<Fn, std::void_t<std::invoke_result_t<Fn&>>>
    : std::bool_constant<std::is_void_v<std::invoke_result_t<Fn&>> ||
                         std::is_same_v<std::invoke_result_t<Fn&>, bool>> {};

}  // namespace detail

// A callable `bool()`: true means the work succeeded, false that it failed.
//
// Callables up to inline_size bytes (alignment up to inline_align) whose move
// constructor is noexcept are stored inside the Task; larger ones go to the
// heap. Moving a Task copies 64 bytes at most (plus the callable's own move
// constructor for inline callables that are not trivially copyable), so Tasks
// can be passed around by value. Only callables returning exactly `bool` are
// accepted; use make_task() for `void()` callables.
//
// Thread-safety: none; a Task is owned by one thread at a time. Moving it to
// another thread needs the usual happens-before (the Scheduler provides it).
class Task {
 public:
  static constexpr std::size_t inline_size = 56;
  static constexpr std::size_t inline_align = alignof(std::max_align_t);

  // True when a callable of type Fn is stored without a heap allocation.
  template <class Fn>
  static constexpr bool stores_inline = sizeof(Fn) <= inline_size &&
                                        alignof(Fn) <= inline_align &&
                                        std::is_nothrow_move_constructible_v<Fn>;

  Task() noexcept = default;
  Task(std::nullptr_t) noexcept {}  // NOLINT(google-explicit-constructor)

  // Wraps any callable whose `operator()` returns bool. Implicit, like
  // std::function, so `scheduler.submit([] { return true; })` works.
  template <class F, class Fn = std::decay_t<F>,
            std::enable_if_t<!std::is_same_v<Fn, Task> && detail::returns_bool<Fn>::value &&
                                 std::is_constructible_v<Fn, F&&>,
                             int> = 0>
  Task(F&& fn) {  // NOLINT(google-explicit-constructor)
    if constexpr (std::is_pointer_v<Fn>) {
      if (fn == nullptr) return;  // an empty function pointer gives an empty Task
    }
    if constexpr (stores_inline<Fn>) {
      ::new (static_cast<void*>(storage_)) Fn(std::forward<F>(fn));
      ops_ = &InlineOps<Fn>::table;
    } else {
      Fn* heap = new Fn(std::forward<F>(fn));
      std::memcpy(storage_, &heap, sizeof heap);
      ops_ = &HeapOps<Fn>::table;
    }
  }

  Task(Task&& other) noexcept : ops_(other.ops_) {
    if (ops_ != nullptr) {
      take_storage(other);
      other.ops_ = nullptr;
    }
  }

  Task& operator=(Task&& other) noexcept {
    if (this != &other) {
      reset();
      if (other.ops_ != nullptr) {
        ops_ = other.ops_;
        take_storage(other);
        other.ops_ = nullptr;
      }
    }
    return *this;
  }

  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;

  ~Task() { reset(); }

  // Destroys the callable; the Task becomes empty.
  void reset() noexcept {
    if (ops_ != nullptr) {
      if (ops_->destroy != nullptr) ops_->destroy(storage_);
      ops_ = nullptr;
    }
  }

  explicit operator bool() const noexcept { return ops_ != nullptr; }

  // Runs the callable; exceptions it throws propagate. Throws
  // std::bad_function_call on an empty Task.
  bool operator()() {
    if (ops_ == nullptr) throw std::bad_function_call();
    return ops_->invoke(storage_);
  }

 private:
  void take_storage(Task& other) noexcept {
    if (ops_->relocate != nullptr) {
      ops_->relocate(storage_, other.storage_);
    } else {
      std::memcpy(storage_, other.storage_, inline_size);
    }
  }

  template <class Fn>
  static Fn* as(void* storage) noexcept {
    return std::launder(static_cast<Fn*>(storage));
  }

  template <class Fn>
  struct InlineOps {
    static bool invoke(void* s) { return std::invoke(*as<Fn>(s)); }
    static void relocate(void* dst, void* src) noexcept {
      Fn* from = as<Fn>(src);
      ::new (dst) Fn(std::move(*from));
      from->~Fn();
    }
    static void destroy(void* s) noexcept { as<Fn>(s)->~Fn(); }
    static constexpr bool trivial = std::is_trivially_copyable_v<Fn>;
    static constexpr detail::TaskOps table{&invoke, trivial ? nullptr : &relocate,
                                           trivial ? nullptr : &destroy};
  };

  template <class Fn>
  struct HeapOps {
    static Fn* get(void* s) noexcept {
      Fn* heap = nullptr;
      std::memcpy(&heap, s, sizeof heap);
      return heap;
    }
    static bool invoke(void* s) { return std::invoke(*get(s)); }
    static void destroy(void* s) noexcept { delete get(s); }
    static constexpr detail::TaskOps table{&invoke, nullptr, &destroy};
  };

  alignas(inline_align) unsigned char storage_[inline_size];
  const detail::TaskOps* ops_ = nullptr;
};

static_assert(sizeof(Task) == 64, "Task is meant to fill one cache line");
static_assert(std::is_nothrow_move_constructible_v<Task>);

namespace detail {

// Adapts a `void()` or `bool()` callable: an exception becomes `false`.
template <class Fn>
struct NoThrowTask {
  Fn fn;
  bool operator()() noexcept {
    try {
      if constexpr (std::is_void_v<std::invoke_result_t<Fn&>>) {
        std::invoke(fn);
        return true;
      } else {
        return std::invoke(fn);
      }
    } catch (...) {
      return false;
    }
  }
};

}  // namespace detail

// Builds a Task from a `void()` callable (success unless it throws) or a
// `bool()` callable; any exception the callable throws is caught and the task
// reports failure (false). The Scheduler also counts a throwing Task as failed,
// so this helper is about the `void()` adaptation and about Tasks that are run
// by hand.
template <class F, class Fn = std::decay_t<F>,
          std::enable_if_t<detail::returns_void_or_bool<Fn>::value, int> = 0>
Task make_task(F&& fn) {
  return Task(detail::NoThrowTask<Fn>{std::forward<F>(fn)});
}

}  // namespace veda
