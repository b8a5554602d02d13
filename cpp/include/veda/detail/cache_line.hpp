// veda::detail::kCacheLine: the padding unit that keeps independently written
// data of PyVeda's concurrent structures on separate cache lines.
#pragma once

#include <cstddef>

namespace veda::detail {

// Bytes between two objects that different threads write, so that they do not
// share a cache line (false sharing). 64 on x86-64 and on the common AArch64
// cores. A fixed constant rather than std::hardware_destructive_interference_size,
// which not every C++17 standard library provides and which GCC warns about in
// headers because its value may differ between translation units.
inline constexpr std::size_t kCacheLine = 64;

}  // namespace veda::detail
