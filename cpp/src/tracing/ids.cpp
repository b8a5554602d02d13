#include "veda/tracing/ids.hpp"

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <random>
#include <thread>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

#include "veda/detail/fork.hpp"

namespace veda {
namespace {

using detail::fork_generation;

std::uint64_t splitmix64(std::uint64_t& state) noexcept {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }

// xoshiro256** (Blackman & Vigna), one per thread.
class Xoshiro {
 public:
  Xoshiro() noexcept {
    std::uint64_t seed = 0;
    try {
      std::random_device rd;
      seed = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
    } catch (...) {
      // No entropy source: fall back to the clock and the thread id below.
    }
    seed ^= std::hash<std::thread::id>{}(std::this_thread::get_id()) * 0x9e3779b97f4a7c15ULL;
    seed ^= static_cast<std::uint64_t>(std::chrono::high_resolution_clock::now().time_since_epoch().count());
    seed ^= reinterpret_cast<std::uintptr_t>(this);
#if defined(__unix__) || defined(__APPLE__)
    seed ^= static_cast<std::uint64_t>(getpid()) << 32;
#endif
    for (auto& s : s_) s = splitmix64(seed);
  }

  std::uint64_t next() noexcept {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

 private:
  std::uint64_t s_[4];
};

// A generator's copy in a child after fork() would repeat the parent's ids, so
// each generator reseeds (with the child's pid mixed in) the first time it is
// used in a new fork generation.
Xoshiro& generator() noexcept {
  thread_local Xoshiro gen;
  thread_local std::uint64_t seeded_in = fork_generation();
  const std::uint64_t now = fork_generation();
  if (seeded_in != now) {
    gen = Xoshiro();
    seeded_in = now;
  }
  return gen;
}

template <std::size_t N>
void fill(std::array<std::uint8_t, N>& out) noexcept {
  Xoshiro& gen = generator();
  do {
    for (std::size_t i = 0; i < N; i += 8) {
      const std::uint64_t v = gen.next();
      std::memcpy(out.data() + i, &v, 8);
    }
  } while (!is_valid(out));
}

template <std::size_t N>
bool all_zero(const std::array<std::uint8_t, N>& id) noexcept {
  for (auto b : id) {
    if (b != 0) return false;
  }
  return true;
}

template <std::size_t N>
std::string hex(const std::array<std::uint8_t, N>& id) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(2 * N, '0');
  for (std::size_t i = 0; i < N; ++i) {
    out[2 * i] = kDigits[id[i] >> 4];
    out[2 * i + 1] = kDigits[id[i] & 0xF];
  }
  return out;
}

int nibble(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

template <std::size_t N>
bool parse(std::string_view text, std::array<std::uint8_t, N>& out) noexcept {
  if (text.size() != 2 * N) return false;
  std::array<std::uint8_t, N> tmp{};
  for (std::size_t i = 0; i < N; ++i) {
    const int hi = nibble(text[2 * i]);
    const int lo = nibble(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    tmp[i] = static_cast<std::uint8_t>((hi << 4) | lo);
  }
  out = tmp;
  return true;
}

}  // namespace

TraceId generate_trace_id() noexcept {
  TraceId id;
  fill(id);
  return id;
}

SpanId generate_span_id() noexcept {
  SpanId id;
  fill(id);
  return id;
}

bool is_valid(const TraceId& id) noexcept { return !all_zero(id); }
bool is_valid(const SpanId& id) noexcept { return !all_zero(id); }
std::string to_hex(const TraceId& id) { return hex(id); }
std::string to_hex(const SpanId& id) { return hex(id); }
bool trace_id_from_hex(std::string_view text, TraceId& out) noexcept { return parse(text, out); }
bool span_id_from_hex(std::string_view text, SpanId& out) noexcept { return parse(text, out); }

}  // namespace veda
