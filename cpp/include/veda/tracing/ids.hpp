// Trace and span identifiers: random, never all zero, lowercase hex text forms.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace veda {

using TraceId = std::array<std::uint8_t, 16>;
using SpanId = std::array<std::uint8_t, 8>;

// A fresh random id from a per-thread xoshiro256** generator, seeded from
// std::random_device, the thread id and the pid. Never all zero. After
// fork() each generator reseeds on its first use in the child, so parent and
// child never produce the same ids.
//
// Thread-safety: may be called concurrently from any thread (each thread owns
// its generator). Never throws.
TraceId generate_trace_id() noexcept;
SpanId generate_span_id() noexcept;

bool is_valid(const TraceId& id) noexcept;  // not all zero
bool is_valid(const SpanId& id) noexcept;

// Lowercase hex: 32 characters for a trace id, 16 for a span id.
std::string to_hex(const TraceId& id);
std::string to_hex(const SpanId& id);

// Parses exactly 32 / 16 lowercase hex characters into `out`; false (out
// untouched) for any other length, uppercase or non-hex. All-zero text parses;
// check is_valid() where zero is not allowed.
bool trace_id_from_hex(std::string_view text, TraceId& out) noexcept;
bool span_id_from_hex(std::string_view text, SpanId& out) noexcept;

}  // namespace veda
