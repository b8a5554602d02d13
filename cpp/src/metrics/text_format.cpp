#include "veda/metrics/text_format.hpp"

#include "veda/metrics/names.hpp"

#include <charconv>
#include <cmath>
#include <cstdlib>

namespace veda {
namespace {

enum class Format { kPrometheus, kOpenMetrics };

// HELP text with the escapes each format wants: 0.0.4 escapes backslash and
// newline, OpenMetrics the double quote too.
void append_help_text(std::string& out, std::string_view help, Format format) {
  if (format == Format::kPrometheus) {
    append_help(out, help);
  } else {
    append_openmetrics_help(out, help);
  }
}

void append_header(std::string& out, std::string_view name, std::string_view help, std::string_view type,
                   Format format, std::string_view unit = {}) {
  if (format == Format::kPrometheus) {
    out += "# HELP ";
    out += name;
    out += ' ';
    append_help_text(out, help, format);
    out += '\n';
  }
  out += "# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
  if (format == Format::kOpenMetrics && !help.empty()) {
    out += "# HELP ";
    out += name;
    out += ' ';
    append_help_text(out, help, format);
    out += '\n';
  }
  if (format == Format::kOpenMetrics && !unit.empty()) {
    out += "# UNIT ";
    out += name;
    out += ' ';
    out += unit;
    out += '\n';
  }
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

void append_unix_seconds(std::string& out, std::int64_t unix_nano) {
  if (unix_nano < 0) {
    append_double(out, static_cast<double>(unix_nano) / 1e9);
    return;
  }
  char buf[32];
  auto result = std::to_chars(buf, buf + sizeof buf, unix_nano / 1000000000);
  out.append(buf, result.ptr);
  auto fraction = static_cast<std::uint32_t>(unix_nano % 1000000000);
  if (fraction == 0) return;
  char digits[10] = {'.', '0', '0', '0', '0', '0', '0', '0', '0', '0'};
  int end = 10;
  for (int i = 9; i >= 1; --i) {
    digits[i] = static_cast<char>('0' + fraction % 10);
    fraction /= 10;
  }
  while (end > 1 && digits[end - 1] == '0') --end;
  out.append(digits, static_cast<std::size_t>(end));
}

void append_openmetrics_help(std::string& out, std::string_view help) {
  std::size_t start = 0;
  for (std::size_t i = 0; i <= help.size(); ++i) {
    if (i == help.size() || help[i] == '"') {
      append_help(out, help.substr(start, i - start));
      if (i < help.size()) out += "\\\"";
      start = i + 1;
    }
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

std::string_view exposition_type(const FamilyInfo& info) noexcept {
  switch (info.type) {
    case MetricType::counter: return "counter";
    case MetricType::gauge: return "gauge";
    case MetricType::histogram: break;
  }
  return info.buckets.empty() ? "summary" : "histogram";
}

namespace {

// A family's names as one exposition writes them (escaped; quoted in
// allow-utf-8 when outside the legacy set). Built once per family.
struct FamilyNames {
  bool plain = true;  // every name as it is: the usual case, no copies
  bool quote = false;  // allow-utf-8 and a name outside the legacy set: {"name",...}
  std::vector<std::string> labels;  // escaped, and quoted when need be
  std::vector<std::pair<std::string_view, std::string>> samples;  // raw sample name -> escaped

  void reset(const FamilyInfo& info, NameEscaping escaping) {
    bool legacy_labels = true;
    for (const std::string& l : info.label_names) legacy_labels = legacy_labels && is_valid_label_name(l);
    const bool legacy = is_valid_metric_name(info.name);
    plain = escaping != NameEscaping::dots && legacy && legacy_labels;
    quote = escaping == NameEscaping::allow_utf8 && !legacy;
    samples.clear();
    labels.clear();
    if (plain) return;
    for (const std::string& l : info.label_names) labels.push_back(label(l, escaping));
  }

  static std::string label(std::string_view name, NameEscaping escaping) {
    std::string out;
    append_text_name(out, name, escaping, false);
    return out;
  }

  // A metadata line's name: escaped, and quoted when need be.
  std::string metadata(std::string_view raw, NameEscaping escaping) const {
    std::string written;
    append_text_name(written, raw, escaping, true);
    return written;
  }

  // The sample name as written, without quotes.
  const std::string& sample(std::string_view raw, NameEscaping escaping) {
    for (const auto& [name, escaped] : samples) {
      if (name.data() == raw.data() && name.size() == raw.size()) return escaped;
    }
    std::string escaped;
    if (escaping == NameEscaping::allow_utf8) {
      append_label_value(escaped, raw);  // inside quotes: backslash, quote and newline escaped
    } else {
      append_escaped_metric_name(escaped, raw, escaping);
    }
    samples.emplace_back(raw, std::move(escaped));
    return samples.back().second;
  }
};

void render(const std::vector<FamilySnapshot>& families, std::string& out, Format format, bool created,
            bool eof = true, NameEscaping escaping = NameEscaping::underscores) {
  const bool om = format == Format::kOpenMetrics;
  FamilyNames names;
  std::string quantile_text;
  // The escaped name="value" pairs of the series being rendered, built once
  // and reused by each of its samples (a summary's quantiles, a histogram's
  // buckets, _sum, _count, _created).
  std::string pairs;
  const SeriesSnapshot* pairs_of = nullptr;
  for (const FamilySnapshot& family : families) {
    const FamilyInfo& info = family.info;
    // OpenMetrics names a counter's metadata without the sample's "_total".
    const std::string metadata_name = info.type == MetricType::counter && !om ? info.name + "_total" : info.name;
    names.reset(info, escaping);
    if (names.plain) {
      append_header(out, metadata_name, info.help, exposition_type(info), format, info.unit);
    } else {
      append_header(out, names.metadata(metadata_name, escaping), info.help, exposition_type(info), format,
                    info.unit);
    }
    pairs_of = nullptr;
    for_each_sample(family, [&](const ExposedSample& sample) {
      if (sample.series != pairs_of) {
        pairs.clear();
        for (std::size_t i = 0; i < info.label_names.size(); ++i) {
          if (i) pairs += ',';
          pairs += names.plain ? info.label_names[i] : names.labels[i];
          pairs += "=\"";
          append_label_value(pairs, sample.series->label_values[i]);
          pairs += '"';
        }
        pairs_of = sample.series;
      }
      const bool quoted_name = names.quote;
      if (names.plain) {
        out += sample.name;
      } else if (quoted_name) {
        out += "{\"";
        out += names.sample(sample.name, escaping);
        out += '"';
      } else {
        out += names.sample(sample.name, escaping);
      }
      double value = sample.value;
      std::string_view extra_name;
      if (sample.has_le) {
        quantile_text.clear();
        append_canonical_number(quantile_text, sample.le);
        extra_name = "le";
      } else if (sample.has_quantile) {
        quantile_text.clear();
        if (om) {
          append_canonical_number(quantile_text, sample.quantile);
          // OpenMetrics: the quantiles of a series without observations are NaN.
          if (sample.series->histogram.count == 0) value = std::nan("");
        } else {
          append_double(quantile_text, sample.quantile);
        }
        extra_name = "quantile";
      }
      if (quoted_name || !pairs.empty() || !extra_name.empty()) {
        if (!quoted_name) {
          out += '{';
        } else if (!pairs.empty() || !extra_name.empty()) {
          out += ',';  // after {"name"
        }
        out += pairs;
        if (!extra_name.empty()) {
          if (!pairs.empty()) out += ',';
          out += extra_name;
          out += "=\"";
          out += quantile_text;
          out += '"';
        }
        out += '}';
      }
      out += ' ';
      if (sample.unix_nano != 0) {
        append_unix_seconds(out, sample.unix_nano);
      } else {
        append_double(out, value);
      }
      if (om && sample.exemplar != nullptr) {
        out += " # {";
        bool first = true;
        if (sample.exemplar->has_span) {
          out += "trace_id=\"";
          append_hex(out, sample.exemplar->trace_id);
          out += "\",span_id=\"";
          append_hex(out, sample.exemplar->span_id);
          out += '"';
          first = false;
        }
        for (const auto& [name, label_value] : sample.exemplar->labels) {
          if (!first) out += ',';
          first = false;
          out += names.plain ? name : FamilyNames::label(name, escaping);
          out += "=\"";
          append_label_value(out, label_value);
          out += '"';
        }
        out += "} ";
        append_double(out, sample.exemplar->value);
        out += ' ';
        append_unix_seconds(out, sample.exemplar->unix_nano);
      }
      out += '\n';
    }, om && created);
  }
  if (om && eof) out += "# EOF\n";
}

}  // namespace

void render_prometheus(const std::vector<FamilySnapshot>& families, std::string& out, NameEscaping escaping) {
  render(families, out, Format::kPrometheus, false, true, escaping);
}

void render_openmetrics(const std::vector<FamilySnapshot>& families, std::string& out, bool created_series,
                        NameEscaping escaping) {
  render(families, out, Format::kOpenMetrics, created_series, true, escaping);
}

void render_openmetrics_body(const std::vector<FamilySnapshot>& families, std::string& out, bool created_series,
                             NameEscaping escaping) {
  render(families, out, Format::kOpenMetrics, created_series, false, escaping);
}

void append_canonical_number(std::string& out, double value) {
  if (std::isnan(value) || std::isinf(value)) {
    append_double(out, value);
    return;
  }
  if (value == 0.0) {
    out += std::signbit(value) ? "-0.0" : "0.0";
    return;
  }
  // Shortest round-trip digits, from the scientific form "d.ddde±XX".
  char buf[40];
  const auto result = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::scientific);
  const std::string_view text(buf, static_cast<std::size_t>(result.ptr - buf));
  const std::size_t e_pos = text.find('e');
  std::string_view mantissa = text.substr(0, e_pos);
  const int exponent = std::atoi(std::string(text.substr(e_pos + 1)).c_str());
  if (!mantissa.empty() && mantissa.front() == '-') {
    out += '-';
    mantissa.remove_prefix(1);
  }
  std::string digits;
  for (const char c : mantissa) {
    if (c != '.') digits += c;
  }
  if (exponent < -4 || exponent >= 6) {  // Go's %g switches to an exponent here for shortest digits
    out += digits[0];
    if (digits.size() > 1) {
      out += '.';
      out.append(digits, 1, std::string::npos);
    }
    out += exponent < 0 ? "e-" : "e+";
    const int magnitude = std::abs(exponent);
    if (magnitude < 10) out += '0';
    out += std::to_string(magnitude);
    return;
  }
  if (exponent < 0) {
    out += "0.";
    out.append(static_cast<std::size_t>(-exponent - 1), '0');
    out += digits;
    return;
  }
  const auto whole = static_cast<std::size_t>(exponent) + 1;
  if (digits.size() <= whole) {
    out += digits;
    out.append(whole - digits.size(), '0');
    out += ".0";
  } else {
    out.append(digits, 0, whole);
    out += '.';
    out.append(digits, whole, std::string::npos);
  }
}

}  // namespace veda
