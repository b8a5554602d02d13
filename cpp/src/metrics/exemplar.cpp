#include "veda/metrics/exemplar.hpp"

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

}  // namespace veda
