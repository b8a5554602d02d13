// Validation of Prometheus metric and label names.
#pragma once

#include <string_view>

namespace veda {

// [a-zA-Z_:][a-zA-Z0-9_:]*
bool is_valid_metric_name(std::string_view name) noexcept;
// [a-zA-Z_][a-zA-Z0-9_]* and not starting with "__" (reserved by Prometheus).
bool is_valid_label_name(std::string_view name) noexcept;

// Throw std::invalid_argument with a message that quotes the name and the rule.
void check_metric_name(std::string_view name);
void check_label_name(std::string_view name);

}  // namespace veda
