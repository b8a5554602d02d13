// veda::detail::single_writer_add / single_writer_sub: updating an atomic cell
// that exactly one thread writes, without a read-modify-write instruction.
#pragma once

#include <atomic>
#include <type_traits>

namespace veda::detail {

// Adds `delta` to `cell` as a relaxed load followed by a relaxed store.
//
// Contract: the calling thread is the only one that writes `cell` while the
// call runs (other threads may read it at any time: they see the value before
// or after, never a torn one). With two writers an update can be lost; use
// fetch_add (or a compare-exchange loop for floating point) there instead.
// Works for integral and floating-point cells alike.
template <class T>
inline void single_writer_add(std::atomic<T>& cell, typename std::atomic<T>::value_type delta) noexcept {
  static_assert(std::is_arithmetic_v<T>, "single_writer_add needs an arithmetic cell");
  cell.store(static_cast<T>(cell.load(std::memory_order_relaxed) + delta), std::memory_order_relaxed);
}

// Subtracts `delta` from `cell`; the same single-writer contract as
// single_writer_add. Unsigned cells wrap as with fetch_sub.
template <class T>
inline void single_writer_sub(std::atomic<T>& cell, typename std::atomic<T>::value_type delta) noexcept {
  static_assert(std::is_arithmetic_v<T>, "single_writer_sub needs an arithmetic cell");
  cell.store(static_cast<T>(cell.load(std::memory_order_relaxed) - delta), std::memory_order_relaxed);
}

}  // namespace veda::detail
