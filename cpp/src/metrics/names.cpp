#include "veda/metrics/names.hpp"

#include <stdexcept>
#include <string>

namespace veda {
namespace {

bool is_alpha_or_underscore(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

// `text` in single quotes for an error message, with control bytes and
// bytes >= 0x7f written as \xNN: a NUL would otherwise end the message
// (what() is a C string) and a terminal escape would reach the user's screen.
std::string quoted(std::string_view text) {
  static const char kHex[] = "0123456789abcdef";
  std::string out = "'";
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c >= 0x7f || c == '\\' || c == '\'') {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += ch;
    }
  }
  out += '\'';
  return out;
}

}  // namespace

bool is_valid_metric_name(std::string_view name) noexcept {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = is_alpha_or_underscore(c) || c == ':' || (i > 0 && is_digit(c));
    if (!ok) return false;
  }
  return true;
}

bool is_valid_label_name(std::string_view name) noexcept {
  if (name.empty() || name.substr(0, 2) == "__") return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (!(is_alpha_or_underscore(c) || (i > 0 && is_digit(c)))) return false;
  }
  return true;
}

void check_metric_name(std::string_view name) {
  if (name.empty()) throw std::invalid_argument("metric name must not be empty");
  if (!is_valid_metric_name(name)) {
    throw std::invalid_argument("invalid metric name " + quoted(name) +
                                ": a metric name must match [a-zA-Z_:][a-zA-Z0-9_:]*");
  }
}

void check_label_name(std::string_view name) {
  if (name.empty()) throw std::invalid_argument("label name must not be empty");
  if (name.substr(0, 2) == "__") {
    throw std::invalid_argument("invalid label name " + quoted(name) +
                                ": names starting with '__' are reserved for Prometheus");
  }
  if (!is_valid_label_name(name)) {
    throw std::invalid_argument("invalid label name " + quoted(name) +
                                ": a label name must match [a-zA-Z_][a-zA-Z0-9_]*");
  }
}

}  // namespace veda
