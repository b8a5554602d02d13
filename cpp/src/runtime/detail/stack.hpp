// veda::detail::stack_left(): how much of the calling thread's stack a
// helper may still use before it must stop nesting tasks (help_until).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#if defined(__linux__)
#include <pthread.h>
#endif

namespace veda::detail {

// A helper stops running tasks (and only waits) once less than this share of
// its thread's stack is left, at least kMinStackReserve bytes. A thread
// outside the pool takes the oldest queued task first, and each task that
// helps in turn can take another, so without a bound the nesting, and the
// stack, grows with the number of queued tasks rather than with their depth.
inline constexpr std::size_t kStackReserveDivisor = 4;
inline constexpr std::size_t kMinStackReserve = std::size_t{128} << 10;

// Bytes of this thread's stack below the caller's frame beyond the reserve
// (0 once inside it; stacks grow down on every target we build for), or
// SIZE_MAX where the bounds are unknown.
inline std::size_t stack_left() noexcept {
#if defined(__linux__)
  struct Bounds {
    const char* low = nullptr;
    std::size_t size = 0;
  };
  thread_local const Bounds bounds = [] {
    Bounds b;
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
      void* addr = nullptr;
      std::size_t size = 0;
      if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
        b.low = static_cast<const char*>(addr);
        b.size = size;
      }
      pthread_attr_destroy(&attr);
    }
    return b;
  }();
  if (bounds.low == nullptr) return SIZE_MAX;
  // The real frame (not a sanitizer's fake stack, as a local's address may be).
  const auto* here = static_cast<const char*>(__builtin_frame_address(0));
  if (here < bounds.low || here > bounds.low + bounds.size) return SIZE_MAX;  // an alternate stack
  const std::size_t left = static_cast<std::size_t>(here - bounds.low);
  const std::size_t reserve = std::max(bounds.size / kStackReserveDivisor, kMinStackReserve);
  return left > reserve ? left - reserve : 0;
#else
  return SIZE_MAX;
#endif
}

}  // namespace veda::detail
