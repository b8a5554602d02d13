// Prometheus text format 0.0.4 read into sample families (see veda/metrics/text_parser.hpp).
#include "veda/metrics/text_parser.hpp"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <set>
#include <stdexcept>
#include <unordered_map>

#include "veda/metrics/text_format.hpp"

namespace veda {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

bool is_blank(char c) { return c == ' ' || c == '\t'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':'; }
bool is_name_char(char c) { return is_name_start(c) || (c >= '0' && c <= '9'); }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const char x = (a[i] >= 'A' && a[i] <= 'Z') ? static_cast<char>(a[i] - 'A' + 'a') : a[i];
    if (x != b[i]) return false;
  }
  return true;
}

// A 0.0.4 value: a Go float ("1", "-2.5e3", "+Inf", "-Inf", "NaN", any case).
std::optional<double> parse_value(std::string_view token) {
  std::string_view body = token;
  bool negative = false;
  if (!body.empty() && (body.front() == '+' || body.front() == '-')) {
    negative = body.front() == '-';
    body.remove_prefix(1);
  }
  if (iequals(body, "inf") || iequals(body, "infinity")) {
    return negative ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
  }
  if (iequals(body, "nan")) return kNaN;
  if (body.empty() || !((body.front() >= '0' && body.front() <= '9') || body.front() == '.')) return std::nullopt;
  double value = 0.0;
  const auto result = std::from_chars(body.data(), body.data() + body.size(), value);
  if (result.ec != std::errc() || result.ptr != body.data() + body.size()) return std::nullopt;
  return negative ? -value : value;
}

std::string canonical(std::string_view text) {
  const std::optional<double> value = parse_value(text);
  if (!value) return std::string(text);
  std::string out;
  append_canonical_number(out, *value);
  return out;
}

// The help text of a HELP line without its 0.0.4 escapes (\\ and \n).
std::string unescape_help(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size() && (text[i + 1] == '\\' || text[i + 1] == 'n')) {
      out += text[i + 1] == 'n' ? '\n' : '\\';
      ++i;
    } else {
      out += text[i];
    }
  }
  return out;
}

class LineError {
 public:
  LineError(std::size_t number, std::string_view line) : number_(number), line_(line) {}
  [[noreturn]] void fail(std::string_view what) const {
    std::string message = "Prometheus text line " + std::to_string(number_) + ": ";
    message += what;
    message += ": '";
    message += line_.size() > 200 ? std::string(line_.substr(0, 200)) + "..." : std::string(line_);
    message += "' (expected name{label=\"value\",...} value [timestamp_ms])";
    throw std::invalid_argument(message);
  }

 private:
  std::size_t number_;
  std::string_view line_;
};

// name{labels} value [timestamp]
Sample parse_sample(std::string_view line, const LineError& error) {
  Sample sample;
  std::size_t i = 0;
  const auto skip_blanks = [&] {
    while (i < line.size() && is_blank(line[i])) ++i;
  };
  if (i >= line.size() || !is_name_start(line[i])) error.fail("a sample line must start with a metric name");
  while (i < line.size() && is_name_char(line[i])) ++i;
  sample.name = std::string(line.substr(0, i));
  if (i < line.size() && line[i] == '{') {
    ++i;
    for (;;) {
      skip_blanks();
      if (i < line.size() && line[i] == '}') {
        ++i;
        break;
      }
      const std::size_t start = i;
      if (i >= line.size() || !(is_name_start(line[i]) && line[i] != ':')) error.fail("expected a label name");
      while (i < line.size() && is_name_char(line[i]) && line[i] != ':') ++i;
      std::string name(line.substr(start, i - start));
      skip_blanks();
      if (i >= line.size() || line[i] != '=') error.fail("expected '=' after label name '" + name + "'");
      ++i;
      skip_blanks();
      if (i >= line.size() || line[i] != '"') error.fail("label '" + name + "' needs a quoted value");
      ++i;
      std::string value;
      for (;;) {
        if (i >= line.size()) error.fail("unterminated value of label '" + name + "'");
        const char c = line[i++];
        if (c == '"') break;
        if (c != '\\') {
          value += c;
          continue;
        }
        if (i >= line.size()) error.fail("unterminated value of label '" + name + "'");
        const char escaped = line[i++];
        if (escaped == '\\' || escaped == '"') {
          value += escaped;
        } else if (escaped == 'n') {
          value += '\n';
        } else {
          error.fail(std::string("invalid escape '\\") + escaped + "' in label '" + name +
                     "' (allowed: \\\\, \\\" and \\n)");
        }
      }
      sample.labels.emplace_back(std::move(name), std::move(value));
      skip_blanks();
      if (i < line.size() && line[i] == ',') {
        ++i;
      } else if (i >= line.size() || line[i] != '}') {
        error.fail("expected ',' or '}' after a label value");
      }
    }
  }
  if (i >= line.size() || !is_blank(line[i])) error.fail("expected a blank and a value after the name and labels");
  skip_blanks();
  std::size_t start = i;
  while (i < line.size() && !is_blank(line[i])) ++i;
  const std::optional<double> value = parse_value(line.substr(start, i - start));
  if (!value) error.fail("the value '" + std::string(line.substr(start, i - start)) + "' is not a number");
  sample.value = *value;
  skip_blanks();
  if (i < line.size()) {
    start = i;
    while (i < line.size() && !is_blank(line[i])) ++i;
    const std::string_view token = line.substr(start, i - start);
    std::int64_t ms = 0;
    const auto result = std::from_chars(token.data(), token.data() + token.size(), ms);
    if (result.ec != std::errc() || result.ptr != token.data() + token.size()) {
      error.fail("the timestamp '" + std::string(token) + "' is not whole milliseconds");
    }
    sample.timestamp = static_cast<double>(ms) / 1000.0;
    skip_blanks();
    if (i < line.size()) error.fail("unexpected text after the timestamp");
  }
  return sample;
}

std::optional<SampleType> type_from_004(std::string_view name) {
  if (name == "counter") return SampleType::counter;
  if (name == "gauge") return SampleType::gauge;
  if (name == "histogram") return SampleType::histogram;
  if (name == "summary") return SampleType::summary;
  if (name == "untyped") return SampleType::unknown;
  return std::nullopt;
}

std::vector<std::string_view> suffixes(SampleType type) {
  switch (type) {
    case SampleType::counter:
      return {"_total", "_created"};
    case SampleType::summary:
      return {"_sum", "_count", "_created"};
    case SampleType::histogram:
      return {"_bucket", "_sum", "_count", "_created"};
    default:
      return {};
  }
}

struct OpenFamily {
  std::string exposed_name;  // as the TYPE line (or a lone sample) gives it
  bool typed = false;
};

bool belongs(const SampleFamily& family, const OpenFamily& open, std::string_view sample) {
  if (sample == open.exposed_name || sample == family.name) return true;
  for (const std::string_view suffix : suffixes(family.type)) {
    if (sample.size() == family.name.size() + suffix.size() && sample.substr(0, family.name.size()) == family.name &&
        sample.substr(family.name.size()) == suffix) {
      return true;
    }
  }
  return false;
}

}  // namespace

std::vector<SampleFamily> parse_prometheus_text(std::string_view text) {
  std::vector<SampleFamily> families;
  std::vector<OpenFamily> open;
  std::unordered_map<std::string, std::size_t> by_name;  // exposed name -> index
  std::unordered_map<std::string, std::string> helps;    // HELP lines seen before their TYPE line
  std::optional<std::size_t> current;
  std::size_t number = 0;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const LineError error(number, line);
    std::size_t first = 0;
    while (first < line.size() && is_blank(line[first])) ++first;
    if (first == line.size()) continue;
    if (line[first] == '#') {
      // "# HELP name text" / "# TYPE name type"; any other comment is skipped.
      std::size_t i = first + 1;
      const auto token = [&] {
        while (i < line.size() && is_blank(line[i])) ++i;
        const std::size_t start = i;
        while (i < line.size() && !is_blank(line[i])) ++i;
        return line.substr(start, i - start);
      };
      const std::string_view keyword = token();
      if (keyword != "HELP" && keyword != "TYPE") continue;
      const std::string name(token());
      if (name.empty()) continue;
      if (i < line.size()) ++i;  // the one blank before the help text
      if (keyword == "HELP") {
        std::string help = unescape_help(line.substr(std::min(i, line.size())));
        const auto found = by_name.find(name);
        if (found != by_name.end() && open[found->second].typed) {
          families[found->second].help = std::move(help);
        } else {
          helps[name] = std::move(help);
        }
        continue;
      }
      std::string_view type_name = line.substr(std::min(i, line.size()));
      while (!type_name.empty() && is_blank(type_name.back())) type_name.remove_suffix(1);
      while (!type_name.empty() && is_blank(type_name.front())) type_name.remove_prefix(1);
      const std::optional<SampleType> type = type_from_004(type_name);
      if (!type) {
        error.fail("unknown metric type '" + std::string(type_name) +
                   "' (allowed: counter, gauge, histogram, summary, untyped)");
      }
      if (by_name.count(name) != 0) error.fail("a second TYPE line for '" + name + "'");
      SampleFamily family;
      family.type = *type;
      family.name = name;
      if (*type == SampleType::counter && name.size() > 6 && name.compare(name.size() - 6, 6, "_total") == 0) {
        family.name.resize(name.size() - 6);
      }
      if (const auto help = helps.find(name); help != helps.end()) {
        family.help = std::move(help->second);
        helps.erase(help);
      }
      by_name.emplace(name, families.size());
      current = families.size();
      families.push_back(std::move(family));
      open.push_back(OpenFamily{name, true});
      continue;
    }
    Sample sample = parse_sample(line.substr(first), error);
    if (!current || !belongs(families[*current], open[*current], sample.name)) {
      // A sample without a TYPE line: an untyped family of its own name.
      const auto found = by_name.find(sample.name);
      if (found != by_name.end()) {
        current = found->second;
      } else {
        SampleFamily family;
        family.name = sample.name;
        if (const auto help = helps.find(sample.name); help != helps.end()) {
          family.help = std::move(help->second);
          helps.erase(help);
        }
        by_name.emplace(sample.name, families.size());
        current = families.size();
        families.push_back(std::move(family));
        open.push_back(OpenFamily{sample.name, false});
      }
    }
    SampleFamily& family = families[*current];
    if (family.type == SampleType::counter && sample.name == family.name) sample.name += "_total";
    if (family.type == SampleType::histogram || family.type == SampleType::summary) {
      const std::string_view bound = family.type == SampleType::histogram ? "le" : "quantile";
      for (auto& [label, value] : sample.labels) {
        if (label == bound) value = canonical(value);
      }
    }
    family.samples.push_back(std::move(sample));
  }
  return families;
}

void render_openmetrics_from_text(std::string_view prometheus_text, std::string& out) {
  std::vector<SampleFamily> families = parse_prometheus_text(prometheus_text);
  for (SampleFamily& family : families) {
    if (family.type != SampleType::summary) continue;
    // OpenMetrics: the quantiles of a series with no observations are NaN.
    const auto series_key = [](const LabelList& labels) {
      LabelList key;
      for (const auto& pair : labels) {
        if (pair.first != "quantile") key.push_back(pair);
      }
      return key;
    };
    std::set<LabelList> empty;
    const std::string count_name = family.name + "_count";
    for (const Sample& s : family.samples) {
      if (s.name == count_name && s.value == 0.0) empty.insert(series_key(s.labels));
    }
    if (empty.empty()) continue;
    for (Sample& s : family.samples) {
      if (s.name == family.name && empty.count(series_key(s.labels)) != 0) s.value = kNaN;
    }
  }
  render_openmetrics(families, out);
  out += "# EOF\n";
}

}  // namespace veda
