// veda::Exemplar: one observation kept beside a counter or a histogram bucket,
// usually with the trace and span it happened in, as OpenMetrics and
// Prometheus' protobuf exposition carry them.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "veda/detail/fork.hpp"

namespace veda {

struct Exemplar {
  std::vector<std::pair<std::string, std::string>> labels;  // given labels, e.g. {"user", "42"}
  double value = 0.0;          // the increment or the observed value
  std::int64_t unix_nano = 0;  // when it was recorded
  // Recorded inside a span: its ids, exposed as the labels trace_id and
  // span_id (lowercase hex) before `labels`. Kept as bytes so recording one
  // allocates nothing.
  bool has_span = false;
  std::array<std::uint8_t, 16> trace_id{};
  std::array<std::uint8_t, 8> span_id{};

  // Every label as exposed: trace_id and span_id first when has_span, then `labels`.
  std::vector<std::pair<std::string, std::string>> all_labels() const;
};

// Appends bytes as lowercase hex.
template <std::size_t N>
void append_hex(std::string& out, const std::array<std::uint8_t, N>& bytes) {
  constexpr char kDigits[] = "0123456789abcdef";
  for (const std::uint8_t b : bytes) {
    out += kDigits[b >> 4];
    out += kDigits[b & 0xF];
  }
}

// OpenMetrics' limit on an exemplar's label set: names and values together,
// in UTF-8 characters (code points).
inline constexpr std::size_t kMaxExemplarLabelCharacters = 128;

// Throws std::invalid_argument (saying how long the labels are and what is
// allowed) when the names and values are longer than
// kMaxExemplarLabelCharacters together, or a name is not a valid label name.
void check_exemplar_labels(const std::vector<std::pair<std::string, std::string>>& labels);

namespace detail {

// One exemplar slot in a multi-process file (veda/metrics/multiprocess.hpp):
// a sequence lock, the exemplar's value, time and ids, and its labels, so
// that another process reads a whole exemplar or none. All zero: empty.
inline constexpr std::size_t kSharedExemplarBytes = 704;

// Writes `e` into the shared slot at `slot` (kSharedExemplarBytes, aligned to
// 8). Writers of one slot must not overlap (ExemplarSlots holds its mutex).
void write_shared_exemplar(void* slot, const Exemplar& e) noexcept;
// Reads the shared slot at `slot` into `out`; false when it is empty, or
// was being written on every try (another process in the middle of it).
bool read_shared_exemplar(const void* slot, Exemplar& out);

// Exemplar slots of one series: the latest exemplar per slot (a counter has
// one, a histogram with classic buckets one per bucket, one without them a
// few for its native form). Writes take a mutex; they happen only for
// observations that carry an exemplar.
class ExemplarSlots {
 public:
  // With `shared` (size() * kSharedExemplarBytes of a multi-process file),
  // every exemplar is also written there for other processes to read.
  explicit ExemplarSlots(std::size_t slots, void* shared = nullptr)
      : slots_(slots), shared_(static_cast<char*>(shared)) {}

  void set(std::size_t slot, Exemplar exemplar) {
    std::lock_guard<ForkSafeMutex> lock(mutex_);
    slot %= slots_.size();
    if (shared_ != nullptr) write_shared_exemplar(shared_ + slot * kSharedExemplarBytes, exemplar);
    slots_[slot] = std::move(exemplar);
    any_.store(true, std::memory_order_release);
  }

  // (slot, exemplar) for every slot that holds one. Without any exemplar
  // yet (most series) it takes no lock, so a scrape pays nothing for them.
  std::vector<std::pair<std::int32_t, Exemplar>> copy() const {
    std::vector<std::pair<std::int32_t, Exemplar>> out;
    if (!any_.load(std::memory_order_acquire)) return out;
    std::lock_guard<ForkSafeMutex> lock(mutex_);
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i].unix_nano != 0) out.emplace_back(static_cast<std::int32_t>(i), slots_[i]);
    }
    return out;
  }

  std::size_t size() const noexcept { return slots_.size(); }

 private:
  mutable ForkSafeMutex mutex_{kForkLevelSeries};  // never left locked by fork()
  std::vector<Exemplar> slots_;  // unix_nano == 0: empty
  char* const shared_;
  std::atomic<bool> any_{false};  // some slot holds an exemplar
};

}  // namespace detail
}  // namespace veda
