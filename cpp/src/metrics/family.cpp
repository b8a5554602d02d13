#include "veda/metrics/family.hpp"

#include <cstdio>
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

namespace {

constexpr GaugeMode kGaugeModes[] = {GaugeMode::all,     GaugeMode::liveall,    GaugeMode::min,
                                     GaugeMode::livemin, GaugeMode::max,        GaugeMode::livemax,
                                     GaugeMode::sum,     GaugeMode::livesum,    GaugeMode::mostrecent,
                                     GaugeMode::livemostrecent};

}  // namespace

const char* to_string(GaugeMode mode) noexcept {
  switch (mode) {
    case GaugeMode::all: return "all";
    case GaugeMode::liveall: return "liveall";
    case GaugeMode::min: return "min";
    case GaugeMode::livemin: return "livemin";
    case GaugeMode::max: return "max";
    case GaugeMode::livemax: return "livemax";
    case GaugeMode::sum: return "sum";
    case GaugeMode::livesum: return "livesum";
    case GaugeMode::mostrecent: return "mostrecent";
    case GaugeMode::livemostrecent: return "livemostrecent";
  }
  return "all";
}

GaugeMode gauge_mode_from(std::string_view name) {
  std::string known;
  for (const GaugeMode mode : kGaugeModes) {
    if (name == to_string(mode)) return mode;
    known += known.empty() ? "" : ", ";
    known += to_string(mode);
  }
  throw std::invalid_argument("invalid multiprocess mode '" + std::string(name) + "'; expected one of: " + known);
}

bool live_only(GaugeMode mode) noexcept {
  return mode == GaugeMode::liveall || mode == GaugeMode::livemin || mode == GaugeMode::livemax ||
         mode == GaugeMode::livesum || mode == GaugeMode::livemostrecent;
}

namespace detail {

bool same_definition(const FamilyInfo& a, const FamilyInfo& b) noexcept {
  return a.name == b.name && a.type == b.type && a.label_names == b.label_names && a.summary == b.summary &&
         a.quantiles == b.quantiles && a.unit == b.unit &&
         (a.type != MetricType::histogram ||
          (a.scale == b.scale && a.buckets == b.buckets && a.max_age_s == b.max_age_s)) &&
         (a.type != MetricType::gauge || (a.multiprocess_mode == b.multiprocess_mode && a.up_down == b.up_down));
}

std::string describe(const FamilyInfo& info) {
  std::string out = std::string(info.summary ? "summary" : to_string(info.type)) + " with label names (";
  for (std::size_t i = 0; i < info.label_names.size(); ++i) {
    out += (i ? ", '" : "'") + info.label_names[i] + "'";
  }
  out += ")";
  // ", <what> (a, b, ...)" with the numbers as %g writes them.
  auto append_numbers = [&out](const char* what, const std::vector<double>& numbers) {
    out += std::string(", ") + what + " (";
    char text[32];
    for (std::size_t i = 0; i < numbers.size(); ++i) {
      std::snprintf(text, sizeof text, "%s%g", i ? ", " : "", numbers[i]);
      out += text;
    }
    out += ")";
  };
  if (info.summary) {
    append_numbers("quantiles", info.quantiles);
  } else if (info.type == MetricType::histogram) {
    out += ", scale " + std::to_string(info.scale);
    if (info.buckets.empty()) {
      out += ", no classic buckets";
    } else {
      append_numbers("buckets", info.buckets);
    }
    if (info.max_age_s > 0) {
      char text[48];
      std::snprintf(text, sizeof text, ", max_age_seconds %g", info.max_age_s);
      out += text;
    }
  }
  if (info.type == MetricType::gauge && info.multiprocess_mode != GaugeMode::all) {
    out += std::string(", multiprocess_mode '") + to_string(info.multiprocess_mode) + "'";
  }
  return out;
}


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
