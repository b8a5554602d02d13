// veda::detail::full_fence / cpu_relax: the two processor-level primitives the
// scheduler's lock-free structures share (a sequentially consistent fence and
// a spin-wait hint).
#pragma once

#include <atomic>

#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64) || defined(_M_IX86)
#define VEDA_DETAIL_CPU_X86 1
#include <immintrin.h>
#endif

namespace veda::detail {

// Tells the processor the caller is spinning (x86 `pause`, AArch64 `yield`),
// which saves power and frees the core for a sibling hyper-thread. No memory
// ordering effect; a no-op on other architectures.
inline void cpu_relax() noexcept {
#if defined(VEDA_DETAIL_CPU_X86)
  _mm_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

// A seq_cst fence: orders the caller's earlier stores before its later loads,
// which release/acquire cannot. The Chase-Lev pop/steal race and the
// sleep/wake handshake of the event counts rely on it.
//
// ThreadSanitizer does not model fences, and GCC 12+ warns when one is built
// with -fsanitize=thread (-Wtsan); only that diagnostic is silenced. Every
// happens-before edge for data handed between threads goes through
// release/acquire or a mutex, never through this fence alone, so TSan's
// verdicts stay exact.
inline void full_fence() noexcept {
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wtsan"
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
#pragma GCC diagnostic pop
#else
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

}  // namespace veda::detail
