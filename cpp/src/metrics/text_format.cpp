#include "veda/metrics/text_format.hpp"

#include <charconv>
#include <cmath>

namespace veda {
namespace {

void append_labels(std::string& out, const std::vector<std::string>& names,
                   const std::vector<std::string>& values, std::string_view extra_name = {},
                   std::string_view extra_value = {}) {
  if (names.empty() && extra_name.empty()) return;
  out += '{';
  bool first = true;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (!first) out += ',';
    first = false;
    out += names[i];
    out += "=\"";
    append_label_value(out, values[i]);
    out += '"';
  }
  if (!extra_name.empty()) {
    if (!first) out += ',';
    out += extra_name;
    out += "=\"";
    out += extra_value;
    out += '"';
  }
  out += '}';
}

void append_header(std::string& out, std::string_view name, std::string_view help, std::string_view type) {
  out += "# HELP ";
  out += name;
  out += ' ';
  append_help(out, help);
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void append_sample(std::string& out, std::string_view name, const FamilyInfo& info,
                   const std::vector<std::string>& values, double value, std::string_view extra_name = {},
                   std::string_view extra_value = {}) {
  out += name;
  append_labels(out, info.label_names, values, extra_name, extra_value);
  out += ' ';
  append_double(out, value);
  out += '\n';
}

}  // namespace

void append_double(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
  } else if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
  } else if (value == std::trunc(value) && std::fabs(value) < 9007199254740992.0) {
    // Whole numbers below 2^53 (counts, totals) in plain digits: "100000", not "1e+05".
    char buf[32];
    const auto result = std::to_chars(buf, buf + sizeof buf, static_cast<long long>(value));
    if (value == 0.0 && std::signbit(value)) out += '-';
    out.append(buf, result.ptr);
  } else {
    char buf[32];
    const auto result = std::to_chars(buf, buf + sizeof buf, value);
    out.append(buf, result.ptr);
  }
}

void append_label_value(std::string& out, std::string_view value) {
  for (const char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
}

void append_help(std::string& out, std::string_view help) {
  for (const char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

void render_prometheus(const std::vector<FamilySnapshot>& families, std::string& out) {
  for (const FamilySnapshot& family : families) {
    const FamilyInfo& info = family.info;
    switch (info.type) {
      case MetricType::counter: {
        const std::string name = info.name + "_total";
        append_header(out, name, info.help, "counter");
        for (const SeriesSnapshot& s : family.series) append_sample(out, name, info, s.label_values, s.value);
        break;
      }
      case MetricType::gauge:
        append_header(out, info.name, info.help, "gauge");
        for (const SeriesSnapshot& s : family.series) append_sample(out, info.name, info, s.label_values, s.value);
        break;
      case MetricType::histogram: {
        append_header(out, info.name, info.help, "summary");
        const std::string sum_name = info.name + "_sum";
        const std::string count_name = info.name + "_count";
        for (const SeriesSnapshot& s : family.series) {
          const HistogramSnapshot& h = s.histogram;
          auto append_quantile = [&](double q, double value) {
            std::string q_text;
            append_double(q_text, q);
            append_sample(out, info.name, info, s.label_values, value, "quantile", q_text);
          };
          if (s.quantiles.empty()) {
            for (const double q : kSummaryQuantiles) append_quantile(q, h.percentile(q * 100.0));
          } else {
            for (const auto& [q, value] : s.quantiles) append_quantile(q, value);
          }
          append_sample(out, sum_name, info, s.label_values, h.sum);
          append_sample(out, count_name, info, s.label_values, static_cast<double>(h.count));
        }
        break;
      }
    }
  }
}

}  // namespace veda
