#include "veda/metrics/names.hpp"

#include <atomic>
#include <cstdint>
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

namespace {

std::atomic<NameValidation> g_validation{NameValidation::legacy};

// Decodes the UTF-8 code point at text[i], advancing i; -1 for a malformed
// sequence (overlong, surrogate, past U+10FFFF or cut short), which advances one byte.
std::int32_t next_code_point(std::string_view text, std::size_t& i) noexcept {
  const auto lead = static_cast<unsigned char>(text[i]);
  if (lead < 0x80) {
    ++i;
    return lead;
  }
  int extra = 0;
  std::int32_t cp = 0;
  if ((lead & 0xE0) == 0xC0) {
    extra = 1;
    cp = lead & 0x1F;
  } else if ((lead & 0xF0) == 0xE0) {
    extra = 2;
    cp = lead & 0x0F;
  } else if ((lead & 0xF8) == 0xF0) {
    extra = 3;
    cp = lead & 0x07;
  } else {
    ++i;
    return -1;
  }
  if (i + static_cast<std::size_t>(extra) >= text.size()) {  // cut short
    ++i;
    return -1;
  }
  for (int k = 1; k <= extra; ++k) {
    const auto c = static_cast<unsigned char>(text[i + static_cast<std::size_t>(k)]);
    if ((c & 0xC0) != 0x80) {
      ++i;
      return -1;
    }
    cp = (cp << 6) | (c & 0x3F);
  }
  static constexpr std::int32_t kMin[] = {0, 0x80, 0x800, 0x10000};
  if (cp < kMin[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    ++i;
    return -1;
  }
  i += static_cast<std::size_t>(extra) + 1;
  return cp;
}

// Non-empty valid UTF-8 without control characters (C0, DEL, C1).
bool is_utf8_name(std::string_view name) noexcept {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size();) {
    const std::int32_t cp = next_code_point(name, i);
    if (cp < 0x20 || (cp >= 0x7F && cp < 0xA0)) return false;
  }
  return true;
}

bool legacy_char(char c, std::size_t i, bool metric) noexcept {
  return is_alpha_or_underscore(c) || (metric && c == ':') || (i > 0 && is_digit(c));
}

void append_escaped(std::string& out, std::string_view name, NameEscaping escaping, bool metric) {
  const bool legacy = metric ? is_valid_metric_name(name) : is_valid_label_name(name) || name.substr(0, 2) == "__";
  switch (escaping) {
    case NameEscaping::allow_utf8:
      out += name;
      return;
    case NameEscaping::underscores:
      if (legacy) {
        out += name;
        return;
      }
      for (std::size_t i = 0, index = 0; i < name.size(); ++index) {
        const char c = name[i];
        const std::size_t at = i;
        next_code_point(name, i);
        out += (i == at + 1 && legacy_char(c, index, metric)) ? c : '_';
      }
      return;
    case NameEscaping::dots:
      for (std::size_t i = 0, index = 0; i < name.size(); ++index) {
        const char c = name[i];
        const std::size_t at = i;
        next_code_point(name, i);
        if (c == '_') {
          out += "__";
        } else if (c == '.') {
          out += "_dot_";
        } else if (i == at + 1 && legacy_char(c, index, metric)) {
          out += c;
        } else {
          out += "__";
        }
      }
      return;
    case NameEscaping::values: {
      if (legacy) {
        out += name;
        return;
      }
      static const char kHex[] = "0123456789abcdef";
      out += "U__";
      for (std::size_t i = 0, index = 0; i < name.size(); ++index) {
        const char c = name[i];
        const std::size_t at = i;
        const std::int32_t cp = next_code_point(name, i);
        if (c == '_') {
          out += "__";
        } else if (i == at + 1 && legacy_char(c, index, metric)) {
          out += c;
        } else if (cp < 0) {
          out += "_FFFD_";
        } else {
          out += '_';
          char digits[8];
          int n = 0;
          auto v = static_cast<std::uint32_t>(cp);
          do {
            digits[n++] = kHex[v & 0xF];
            v >>= 4;
          } while (v != 0);
          while (n > 0) out += digits[--n];
          out += '_';
        }
      }
      return;
    }
  }
}

}  // namespace

void set_name_validation(NameValidation validation) noexcept { g_validation.store(validation); }
NameValidation name_validation() noexcept { return g_validation.load(); }

void check_metric_name(std::string_view name) {
  if (name.empty()) throw std::invalid_argument("metric name must not be empty");
  if (name_validation() == NameValidation::utf8) {
    if (!is_utf8_name(name)) {
      throw std::invalid_argument("invalid metric name " + quoted(name) +
                                  ": a metric name must be valid UTF-8 text without control characters");
    }
    return;
  }
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
  if (name_validation() == NameValidation::utf8) {
    if (!is_utf8_name(name)) {
      throw std::invalid_argument("invalid label name " + quoted(name) +
                                  ": a label name must be valid UTF-8 text without control characters");
    }
    return;
  }
  if (!is_valid_label_name(name)) {
    throw std::invalid_argument("invalid label name " + quoted(name) +
                                ": a label name must match [a-zA-Z_][a-zA-Z0-9_]*");
  }
}

std::string_view to_string(NameEscaping escaping) noexcept {
  switch (escaping) {
    case NameEscaping::underscores: return "underscores";
    case NameEscaping::dots: return "dots";
    case NameEscaping::values: return "values";
    case NameEscaping::allow_utf8: return "allow-utf-8";
  }
  return "underscores";
}

std::optional<NameEscaping> name_escaping_from(std::string_view name) noexcept {
  for (const NameEscaping e :
       {NameEscaping::underscores, NameEscaping::dots, NameEscaping::values, NameEscaping::allow_utf8}) {
    if (to_string(e) == name) return e;
  }
  return std::nullopt;
}

void append_escaped_metric_name(std::string& out, std::string_view name, NameEscaping escaping) {
  append_escaped(out, name, escaping, true);
}

void append_escaped_label_name(std::string& out, std::string_view name, NameEscaping escaping) {
  append_escaped(out, name, escaping, false);
}

void append_text_name(std::string& out, std::string_view name, NameEscaping escaping, bool metric) {
  const bool legacy = metric ? is_valid_metric_name(name) : is_valid_label_name(name);
  if (escaping != NameEscaping::dots && legacy) {
    out += name;
  } else if (escaping == NameEscaping::allow_utf8) {
    out += '"';
    for (const char c : name) {
      if (c == '\\' || c == '"') out += '\\';
      if (c == '\n') {
        out += "\\n";
      } else {
        out += c;
      }
    }
    out += '"';
  } else {
    append_escaped(out, name, escaping, metric);
  }
}

std::string escaped_metric_name(std::string_view name, NameEscaping escaping) {
  std::string out;
  append_escaped(out, name, escaping, true);
  return out;
}

std::string escaped_label_name(std::string_view name, NameEscaping escaping) {
  std::string out;
  append_escaped(out, name, escaping, false);
  return out;
}

}  // namespace veda
