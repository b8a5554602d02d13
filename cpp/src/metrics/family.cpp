#include "veda/metrics/family.hpp"

#include <stdexcept>
#include <string>

namespace veda {
namespace {

std::string quoted_names(const std::vector<std::string>& names) {
  std::string out = "(";
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += ", ";
    out += "'" + names[i] + "'";
  }
  if (names.size() == 1) out += ",";
  return out + ")";
}

}  // namespace

const char* to_string(MetricType type) noexcept {
  switch (type) {
    case MetricType::counter:
      return "counter";
    case MetricType::gauge:
      return "gauge";
    case MetricType::histogram:
      return "histogram";
  }
  return "unknown";
}

namespace detail {

void check_label_count(const FamilyInfo& info, std::size_t given) {
  const std::size_t expected = info.label_names.size();
  if (given == expected) return;
  if (expected == 0) {
    throw std::invalid_argument(std::string(to_string(info.type)) + " '" + info.name +
                                "' has no label names, so labels() takes no values; got " +
                                std::to_string(given));
  }
  throw std::invalid_argument(std::string(to_string(info.type)) + " '" + info.name + "' expects " +
                              std::to_string(expected) + " label value(s) for " +
                              quoted_names(info.label_names) + ", got " + std::to_string(given));
}

std::string label_key(const std::vector<std::string>& values) {
  // Length-prefixed, so no choice of bytes in a value can make two lists collide.
  std::string key;
  for (const std::string& v : values) {
    key += std::to_string(v.size());
    key += ':';
    key += v;
  }
  return key;
}

std::vector<std::string> order_labels(const FamilyInfo& info,
                                      const std::vector<std::pair<std::string, std::string>>& pairs) {
  check_label_count(info, pairs.size());
  std::vector<std::string> values(info.label_names.size());
  std::vector<bool> filled(info.label_names.size(), false);
  for (const auto& [name, value] : pairs) {
    std::size_t i = 0;
    while (i < info.label_names.size() && info.label_names[i] != name) ++i;
    if (i == info.label_names.size()) {
      throw std::invalid_argument(std::string(to_string(info.type)) + " '" + info.name +
                                  "' has no label named '" + name + "'; its label names are " +
                                  quoted_names(info.label_names));
    }
    if (filled[i]) {
      throw std::invalid_argument("label '" + name + "' given twice for " + to_string(info.type) +
                                  " '" + info.name + "'");
    }
    values[i] = value;
    filled[i] = true;
  }
  return values;
}

void throw_labelled_access(const FamilyInfo& info) {
  throw std::invalid_argument(std::string(to_string(info.type)) + " '" + info.name +
                              "' has label names " + quoted_names(info.label_names) +
                              ": select a series with .labels(...) first");
}

void throw_unlabelled_remove(const FamilyInfo& info) {
  throw std::invalid_argument(std::string(to_string(info.type)) + " '" + info.name +
                              "' has no label names: its one series cannot be removed "
                              "(unregister the metric instead)");
}

void throw_too_many_series(const FamilyInfo& info, std::size_t limit) {
  throw std::length_error(std::string(to_string(info.type)) + " '" + info.name + "' already has " +
                          std::to_string(limit) +
                          " label sets, its limit; remove() unused series or use fewer distinct "
                          "label values");
}

}  // namespace detail
}  // namespace veda
