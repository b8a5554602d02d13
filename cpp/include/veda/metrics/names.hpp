// Metric and label names: validation (the legacy character set or UTF-8)
// and the escaping schemes an exposition writes them in.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace veda {

// The legacy character set: [a-zA-Z_:][a-zA-Z0-9_:]*.
bool is_valid_metric_name(std::string_view name) noexcept;
// The legacy character set, [a-zA-Z_][a-zA-Z0-9_]*, and not starting with
// "__" (reserved by Prometheus).
bool is_valid_label_name(std::string_view name) noexcept;

// Which names check_metric_name() and check_label_name() accept.
enum class NameValidation {
  legacy,  // the legacy character sets above (the default)
  utf8,    // any non-empty valid UTF-8 text without control characters
           // (label names still not starting with "__"), as Prometheus 3
};
// Process-wide; set it before creating metrics. Thread-safe.
void set_name_validation(NameValidation validation) noexcept;
NameValidation name_validation() noexcept;

// Throw std::invalid_argument with a message that quotes the name and the
// rule, unless the name is valid under name_validation().
void check_metric_name(std::string_view name);
void check_label_name(std::string_view name);

// How an exposition writes names outside the legacy character set
// (Prometheus' escaping schemes, negotiated with "escaping=" in Accept).
enum class NameEscaping {
  underscores,  // each character outside the legacy set becomes '_' (the default)
  dots,         // '_' -> "__", '.' -> "_dot_", others outside the set -> "__"; legacy names too
  values,       // "U__" + the name, '_' -> "__", others outside the set -> "_<hex code point>_"
  allow_utf8,   // names as they are; the text formats quote those outside the set
};
// "underscores", "dots", "values", "allow-utf-8".
std::string_view to_string(NameEscaping escaping) noexcept;
// The scheme of that name, or nothing.
std::optional<NameEscaping> name_escaping_from(std::string_view name) noexcept;

// Appends `name` escaped under `escaping` (allow_utf8: as it is, unquoted).
// A metric name keeps ':' as legal; a label name does not.
void append_escaped_metric_name(std::string& out, std::string_view name, NameEscaping escaping);
void append_escaped_label_name(std::string& out, std::string_view name, NameEscaping escaping);
std::string escaped_metric_name(std::string_view name, NameEscaping escaping);
// A name as the text formats write it: as it is inside the legacy set (not
// with dots), escaped with `escaping`, or in allow-utf-8 quoted ("a.b", with
// backslash, quote and newline escaped). `metric`: a metric name (':' legal).
void append_text_name(std::string& out, std::string_view name, NameEscaping escaping, bool metric);
std::string escaped_label_name(std::string_view name, NameEscaping escaping);

}  // namespace veda
