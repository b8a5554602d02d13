#include "veda/metrics/exemplar.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <stdexcept>
#include <string>

#include "veda/metrics/names.hpp"

namespace veda {
namespace {

// Code points in a UTF-8 string: the bytes that do not continue a sequence.
std::size_t utf8_characters(const std::string& s) {
  std::size_t n = 0;
  for (const char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> Exemplar::all_labels() const {
  std::vector<std::pair<std::string, std::string>> out;
  if (has_span) {
    std::string trace, span;
    append_hex(trace, trace_id);
    append_hex(span, span_id);
    out.emplace_back("trace_id", std::move(trace));
    out.emplace_back("span_id", std::move(span));
  }
  out.insert(out.end(), labels.begin(), labels.end());
  return out;
}

void check_exemplar_labels(const std::vector<std::pair<std::string, std::string>>& labels) {
  std::size_t total = 0;
  for (const auto& [name, value] : labels) {
    check_label_name(name);
    total += utf8_characters(name) + utf8_characters(value);
  }
  if (total > kMaxExemplarLabelCharacters) {
    throw std::invalid_argument("exemplar labels are " + std::to_string(total) +
                                " UTF-8 characters long (names and values together); OpenMetrics allows at most " +
                                std::to_string(kMaxExemplarLabelCharacters));
  }
}

namespace detail {
namespace {

struct SharedExemplarHeader {
  std::atomic<std::uint32_t> sequence;  // odd while being written
  std::uint32_t label_bytes;            // the label text after the header
  std::int64_t unix_nano;               // 0: empty
  double value;
  std::uint8_t has_span;
  std::uint8_t trace_id[16];
  std::uint8_t span_id[8];
};
constexpr std::size_t kLabelRoom = kSharedExemplarBytes - sizeof(SharedExemplarHeader);
static_assert(kLabelRoom >= 640, "128 characters of labels and a 4-byte length per pair fit");

// Labels as (u16 length, bytes) name, value, ...: within OpenMetrics' 128
// characters, with names in the legacy character set (one byte each), at
// most 640 bytes.
std::size_t encode_labels(const Exemplar& e, char* out, std::size_t room) noexcept {
  std::size_t at = 0;
  for (const auto& [name, value] : e.labels) {
    for (const std::string* s : {&name, &value}) {
      const auto n = static_cast<std::uint16_t>(s->size());
      if (s->size() > 0xFFFF || at + 2 + s->size() > room) return 0;
      std::memcpy(out + at, &n, 2);
      std::memcpy(out + at + 2, s->data(), s->size());
      at += 2 + s->size();
    }
  }
  return at;
}

}  // namespace

void write_shared_exemplar(void* slot, const Exemplar& e) noexcept {
  char text[kLabelRoom];
  const std::size_t bytes = encode_labels(e, text, sizeof text);
  // Past the room only with many non-ASCII label names: kept in this process only.
  if (bytes == 0 && !e.labels.empty()) return;
  auto* h = static_cast<SharedExemplarHeader*>(slot);
  const std::uint32_t seq = h->sequence.load(std::memory_order_relaxed);
  h->sequence.store(seq + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  h->label_bytes = static_cast<std::uint32_t>(bytes);
  h->unix_nano = e.unix_nano;
  h->value = e.value;
  h->has_span = e.has_span ? 1 : 0;
  std::memcpy(h->trace_id, e.trace_id.data(), 16);
  std::memcpy(h->span_id, e.span_id.data(), 8);
  std::memcpy(reinterpret_cast<char*>(h + 1), text, bytes);
  std::atomic_thread_fence(std::memory_order_release);
  h->sequence.store(seq + 2, std::memory_order_release);
}

bool read_shared_exemplar(const void* slot, Exemplar& out) {
  const auto* h = static_cast<const SharedExemplarHeader*>(slot);
  for (int attempt = 0; attempt < 8; ++attempt) {
    const std::uint32_t before = h->sequence.load(std::memory_order_acquire);
    if (before == 0) return false;  // never written
    if (before % 2 != 0) continue;
    SharedExemplarHeader copy;
    std::memcpy(reinterpret_cast<char*>(&copy) + sizeof(copy.sequence),
                reinterpret_cast<const char*>(h) + sizeof(copy.sequence), sizeof copy - sizeof(copy.sequence));
    char text[kLabelRoom];
    const std::size_t bytes = std::min<std::size_t>(copy.label_bytes, kLabelRoom);
    std::memcpy(text, reinterpret_cast<const char*>(h + 1), bytes);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (h->sequence.load(std::memory_order_relaxed) != before) continue;
    if (copy.unix_nano == 0) return false;
    Exemplar e;
    e.unix_nano = copy.unix_nano;
    e.value = copy.value;
    e.has_span = copy.has_span != 0;
    std::memcpy(e.trace_id.data(), copy.trace_id, 16);
    std::memcpy(e.span_id.data(), copy.span_id, 8);
    std::size_t at = 0;
    std::string parts[2];
    int part = 0;
    bool damaged = false;
    while (at < bytes) {
      std::uint16_t n;
      if (at + 2 > bytes) { damaged = true; break; }
      std::memcpy(&n, text + at, 2);
      if (at + 2 + n > bytes) { damaged = true; break; }
      parts[part].assign(text + at + 2, n);
      at += 2 + n;
      if (part == 1) e.labels.emplace_back(std::move(parts[0]), std::move(parts[1]));
      part ^= 1;
    }
    if (damaged || part != 0) return false;
    out = std::move(e);
    return true;
  }
  return false;
}

}  // namespace detail
}  // namespace veda
