// Renderings of sample families (see veda/metrics/sample_family.hpp).
#include "veda/metrics/sample_family.hpp"

#include <cmath>
#include <cstdint>
#include <map>
#include <unordered_map>

#include "detail/protobuf.hpp"
#include "veda/metrics/text_format.hpp"

namespace veda {

namespace {

constexpr std::string_view kTypeNames[] = {"counter", "gauge",    "summary",  "histogram",
                                           "gaugehistogram", "info", "stateset", "unknown"};

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

void append_label_name(std::string& out, std::string_view name, NameEscaping escaping) {
  append_text_name(out, name, escaping, false);
}

void append_metadata_name(std::string& out, std::string_view name, NameEscaping escaping) {
  append_text_name(out, name, escaping, true);
}

void append_pairs(std::string& out, const LabelList& labels, NameEscaping escaping, bool first = true) {
  for (const auto& [name, value] : labels) {
    if (!first) out += ',';
    first = false;
    append_label_name(out, name, escaping);
    out += "=\"";
    append_label_value(out, value);
    out += '"';
  }
}

// name{labels}, or {"name",labels} for a name allow-utf-8 must quote.
void append_name_and_labels(std::string& out, std::string_view name, const LabelList& labels,
                            NameEscaping escaping) {
  if (escaping == NameEscaping::allow_utf8 && !is_valid_metric_name(name)) {
    out += '{';
    append_text_name(out, name, escaping, true);  // quoted
    append_pairs(out, labels, escaping, false);
    out += '}';
    return;
  }
  append_metadata_name(out, name, escaping);
  if (labels.empty()) return;
  out += '{';
  append_pairs(out, labels, escaping);
  out += '}';
}

void append_header_004(std::string& out, std::string_view name, std::string_view help, std::string_view type,
                       NameEscaping escaping) {
  out += "# HELP ";
  append_metadata_name(out, name, escaping);
  out += ' ';
  append_help(out, help);
  out += "\n# TYPE ";
  append_metadata_name(out, name, escaping);
  out += ' ';
  out += type;
  out += '\n';
}

void append_sample_004(std::string& out, const Sample& s, NameEscaping escaping) {
  append_name_and_labels(out, s.name, s.labels, escaping);
  out += ' ';
  append_double(out, s.value);
  if (s.timestamp) {
    out += ' ';
    append_double(out, std::trunc(*s.timestamp * 1000.0));  // milliseconds, as 0.0.4 has them
  }
  out += '\n';
}

}  // namespace

std::string_view to_string(SampleType type) noexcept { return kTypeNames[static_cast<int>(type)]; }

std::optional<SampleType> sample_type_from(std::string_view name) noexcept {
  for (int i = 0; i < static_cast<int>(std::size(kTypeNames)); ++i) {
    if (kTypeNames[i] == name) return static_cast<SampleType>(i);
  }
  return std::nullopt;
}

void render_prometheus(const std::vector<SampleFamily>& families, std::string& out, NameEscaping escaping) {
  std::string metadata_name;
  for (const SampleFamily& family : families) {
    std::string_view type = to_string(family.type);
    metadata_name = family.name;
    switch (family.type) {
      case SampleType::counter:
        metadata_name += "_total";
        break;
      case SampleType::info:
        metadata_name += "_info";
        type = "gauge";
        break;
      case SampleType::stateset:
        type = "gauge";
        break;
      case SampleType::gaugehistogram:
        type = "histogram";
        break;
      case SampleType::unknown:
        type = "untyped";
        break;
      default:
        break;
    }
    append_header_004(out, metadata_name, family.help, type, escaping);
    // The OpenMetrics-only samples, each suffix's moved into a gauge family after this one.
    static constexpr std::string_view kMoved[] = {"_created", "_gcount", "_gsum"};  // sorted, as prometheus_client
    std::vector<const Sample*> moved[std::size(kMoved)];
    for (const Sample& s : family.samples) {
      bool is_moved = false;
      for (std::size_t k = 0; k < std::size(kMoved); ++k) {
        if (s.name.size() == family.name.size() + kMoved[k].size() && ends_with(s.name, kMoved[k]) &&
            std::string_view(s.name).substr(0, family.name.size()) == family.name) {
          moved[k].push_back(&s);
          is_moved = true;
          break;
        }
      }
      if (!is_moved) append_sample_004(out, s, escaping);
    }
    for (std::size_t k = 0; k < std::size(kMoved); ++k) {
      if (moved[k].empty()) continue;
      append_header_004(out, family.name + std::string(kMoved[k]), family.help, "gauge", escaping);
      for (const Sample* s : moved[k]) append_sample_004(out, *s, escaping);
    }
  }
}

void render_openmetrics(const std::vector<SampleFamily>& families, std::string& out, NameEscaping escaping) {
  for (const SampleFamily& family : families) {
    out += "# TYPE ";
    append_metadata_name(out, family.name, escaping);
    out += ' ';
    out += to_string(family.type);
    out += '\n';
    if (!family.help.empty()) {
      out += "# HELP ";
      append_metadata_name(out, family.name, escaping);
      out += ' ';
      append_openmetrics_help(out, family.help);
      out += '\n';
    }
    if (!family.unit.empty()) {
      out += "# UNIT ";
      append_metadata_name(out, family.name, escaping);
      out += ' ';
      out += family.unit;
      out += '\n';
    }
    for (const Sample& s : family.samples) {
      append_name_and_labels(out, s.name, s.labels, escaping);
      out += ' ';
      append_double(out, s.value);
      if (s.timestamp) {
        out += ' ';
        append_double(out, *s.timestamp);
      }
      if (s.exemplar) {
        out += " # {";
        append_pairs(out, s.exemplar->labels, escaping);
        out += "} ";
        append_double(out, s.exemplar->value);
        if (s.exemplar->timestamp) {
          out += ' ';
          append_double(out, *s.exemplar->timestamp);
        }
      }
      out += '\n';
    }
  }
}

namespace {

namespace pb = detail::pb;

// io.prometheus.client field numbers (client_model's metrics.proto).
namespace field {
constexpr std::uint32_t kFamilyName = 1, kFamilyHelp = 2, kFamilyType = 3, kFamilyMetric = 4, kFamilyUnit = 5;
constexpr std::uint32_t kLabel = 1, kGauge = 2, kCounter = 3, kSummary = 4, kUntyped = 5, kHistogram = 7,
                        kTimestampMs = 6;
constexpr std::uint32_t kLabelName = 1, kLabelValue = 2;
constexpr std::uint32_t kValue = 1, kCounterExemplar = 2, kCounterCreated = 3;
constexpr std::uint32_t kSummaryCount = 1, kSummarySum = 2, kSummaryQuantile = 3, kSummaryCreated = 4;
constexpr std::uint32_t kQuantile = 1, kQuantileValue = 2;
constexpr std::uint32_t kSampleCount = 1, kSampleSum = 2, kBucket = 3, kSampleCountFloat = 4, kHistogramCreated = 15;
constexpr std::uint32_t kCumulativeCount = 1, kUpperBound = 2, kBucketExemplar = 3, kCumulativeCountFloat = 4;
constexpr std::uint32_t kExemplarLabel = 1, kExemplarValue = 2, kExemplarTimestamp = 3;
constexpr std::uint32_t kSeconds = 1, kNanos = 2;
}  // namespace field

enum PromType : std::uint64_t {
  kCounterType = 0,
  kGaugeType = 1,
  kSummaryType = 2,
  kUntypedType = 3,
  kHistogramType = 4,
  kGaugeHistogramType = 5
};

void put_label_pair(std::string& out, std::uint32_t field_number, std::string_view name, std::string_view value) {
  std::string pair;
  pb::put_string(pair, field::kLabelName, name);
  pb::put_string(pair, field::kLabelValue, value);
  pb::put_message(out, field_number, pair);
}

// A google.protobuf.Timestamp from seconds since the epoch.
void put_timestamp(std::string& out, std::uint32_t field_number, double seconds) {
  if (!std::isfinite(seconds)) return;
  double whole = std::floor(seconds);
  auto nanos = static_cast<std::int64_t>(std::llround((seconds - whole) * 1e9));
  if (nanos >= 1000000000) {
    whole += 1;
    nanos -= 1000000000;
  }
  std::string ts;
  if (whole != 0) {
    pb::put_tag(ts, field::kSeconds, pb::kVarint);
    pb::put_varint(ts, static_cast<std::uint64_t>(static_cast<std::int64_t>(whole)));
  }
  if (nanos != 0) pb::put_uint(ts, field::kNanos, static_cast<std::uint64_t>(nanos));
  pb::put_message(out, field_number, ts);
}

std::string exemplar_message(const SampleExemplar& e) {
  std::string body;
  for (const auto& [name, value] : e.labels) put_label_pair(body, field::kExemplarLabel, name, value);  // as given
  pb::put_double(body, field::kExemplarValue, e.value);
  if (e.timestamp) put_timestamp(body, field::kExemplarTimestamp, *e.timestamp);
  return body;
}

// The samples of one metric (one label set, without le and quantile).
struct Group {
  const LabelList* labels = nullptr;  // the first sample's, minus le/quantile (in `own`)
  LabelList own;
  std::vector<const Sample*> samples;
};

std::string group_key(const LabelList& labels) {
  std::map<std::string_view, std::string_view> sorted;
  for (const auto& [name, value] : labels) {
    if (name != "le" && name != "quantile") sorted.emplace(name, value);
  }
  std::string key;
  for (const auto& [name, value] : sorted) {
    key += name;
    key += '\0';
    key += value;
    key += '\0';
  }
  return key;
}

std::string_view label_of(const Sample& s, std::string_view name) {
  for (const auto& [n, v] : s.labels) {
    if (n == name) return v;
  }
  return {};
}

double parse_bound(std::string_view text) {
  if (text == "+Inf" || text == "Inf" || text == "inf" || text == "+inf") return HUGE_VAL;
  if (text == "-Inf" || text == "-inf") return -HUGE_VAL;
  return std::strtod(std::string(text).c_str(), nullptr);
}

// A name as the protobuf exposition carries it: escaped unless allow-utf-8.
std::string wire_name(std::string_view name, NameEscaping escaping, bool metric) {
  if (escaping == NameEscaping::allow_utf8) return std::string(name);
  return metric ? escaped_metric_name(name, escaping) : escaped_label_name(name, escaping);
}

void put_metric(std::string& out, const Group& group, std::uint32_t value_field, const std::string& value,
                NameEscaping escaping) {
  std::string metric;
  for (const auto& [name, v] : group.own) put_label_pair(metric, field::kLabel, wire_name(name, escaping, false), v);
  pb::put_message(metric, value_field, value);
  const Sample* first = group.samples.front();
  if (first->timestamp) {
    pb::put_tag(metric, field::kTimestampMs, pb::kVarint);
    pb::put_varint(metric, static_cast<std::uint64_t>(static_cast<std::int64_t>(std::trunc(*first->timestamp * 1e3))));
  }
  pb::put_message(out, field::kFamilyMetric, metric);
}

void put_sample_family(std::string& out, const SampleFamily& family, NameEscaping escaping) {
  std::string message;
  PromType type = kUntypedType;
  std::string name = family.name;
  switch (family.type) {
    case SampleType::counter:
      type = kCounterType;
      name += "_total";
      break;
    case SampleType::gauge:
    case SampleType::stateset:
      type = kGaugeType;
      break;
    case SampleType::info:
      type = kGaugeType;
      name += "_info";
      break;
    case SampleType::summary:
      type = kSummaryType;
      break;
    case SampleType::histogram:
      type = kHistogramType;
      break;
    case SampleType::gaugehistogram:
      type = kGaugeHistogramType;
      break;
    case SampleType::unknown:
      type = kUntypedType;
      break;
  }
  pb::put_string(message, field::kFamilyName, wire_name(name, escaping, true));
  pb::put_nonempty(message, field::kFamilyHelp, family.help);
  pb::put_uint_always(message, field::kFamilyType, type);
  pb::put_nonempty(message, field::kFamilyUnit, family.unit);

  // Group the samples into metrics by label set, in order of first appearance.
  std::vector<Group> groups;
  std::unordered_map<std::string, std::size_t> index;
  const bool one_per_sample = type == kGaugeType || type == kUntypedType;
  for (const Sample& s : family.samples) {
    std::size_t at = groups.size();
    if (!one_per_sample) {
      auto [it, added] = index.emplace(group_key(s.labels), groups.size());
      at = it->second;
      if (!added) {
        groups[at].samples.push_back(&s);
        continue;
      }
    }
    Group group;
    for (const auto& pair : s.labels) {
      if (one_per_sample || (pair.first != "le" && pair.first != "quantile")) group.own.push_back(pair);
    }
    group.samples.push_back(&s);
    groups.push_back(std::move(group));
  }

  const std::string created = family.name + "_created";
  std::string value;
  for (const Group& group : groups) {
    value.clear();
    switch (type) {
      case kGaugeType:
      case kUntypedType:
        pb::put_double(value, field::kValue, group.samples.front()->value);
        put_metric(message, group, type == kGaugeType ? field::kGauge : field::kUntyped, value, escaping);
        break;
      case kCounterType: {
        const Sample* total = nullptr;
        const Sample* created_at = nullptr;
        for (const Sample* s : group.samples) {
          if (s->name == created) {
            created_at = s;
          } else if (total == nullptr) {
            total = s;
          }
        }
        if (total == nullptr) break;  // only a _created sample: nothing to count
        pb::put_double(value, field::kValue, total->value);
        if (total->exemplar) pb::put_message(value, field::kCounterExemplar, exemplar_message(*total->exemplar));
        if (created_at) put_timestamp(value, field::kCounterCreated, created_at->value);
        put_metric(message, group, field::kCounter, value, escaping);
        break;
      }
      case kSummaryType: {
        double count = 0.0, sum = 0.0;
        const Sample* created_at = nullptr;
        std::string quantiles;
        for (const Sample* s : group.samples) {
          if (s->name == family.name + "_count") {
            count = s->value;
          } else if (s->name == family.name + "_sum") {
            sum = s->value;
          } else if (s->name == created) {
            created_at = s;
          } else if (s->name == family.name) {
            std::string q;
            pb::put_double(q, field::kQuantile, parse_bound(label_of(*s, "quantile")));
            pb::put_double(q, field::kQuantileValue, s->value);
            pb::put_message(quantiles, field::kSummaryQuantile, q);
          }
        }
        pb::put_uint_always(value, field::kSummaryCount, static_cast<std::uint64_t>(count < 0 ? 0 : count));
        pb::put_double(value, field::kSummarySum, sum);
        value += quantiles;
        if (created_at) put_timestamp(value, field::kSummaryCreated, created_at->value);
        put_metric(message, group, field::kSummary, value, escaping);
        break;
      }
      case kHistogramType:
      case kGaugeHistogramType: {
        const bool gauge = type == kGaugeHistogramType;
        const std::string count_name = family.name + (gauge ? "_gcount" : "_count");
        const std::string sum_name = family.name + (gauge ? "_gsum" : "_sum");
        double count = -1.0, sum = 0.0, inf_bucket = 0.0;
        const Sample* created_at = nullptr;
        std::string buckets;
        for (const Sample* s : group.samples) {
          if (s->name == count_name) {
            count = s->value;
          } else if (s->name == sum_name) {
            sum = s->value;
          } else if (s->name == created) {
            created_at = s;
          } else if (s->name == family.name + "_bucket") {
            const double le = parse_bound(label_of(*s, "le"));
            if (std::isinf(le) && le > 0) {
              inf_bucket = s->value;
              continue;
            }
            std::string bucket;
            const bool whole = s->value >= 0 && s->value == std::trunc(s->value) && s->value < 1.8446744073709552e19;
            if (whole) {
              pb::put_uint_always(bucket, field::kCumulativeCount, static_cast<std::uint64_t>(s->value));
            } else {
              pb::put_double(bucket, field::kCumulativeCountFloat, s->value);
            }
            pb::put_double(bucket, field::kUpperBound, le);
            if (s->exemplar) pb::put_message(bucket, field::kBucketExemplar, exemplar_message(*s->exemplar));
            pb::put_message(buckets, field::kBucket, bucket);
          }
        }
        if (count < 0) count = inf_bucket;
        if (count >= 0 && count == std::trunc(count) && count < 1.8446744073709552e19) {
          pb::put_uint_always(value, field::kSampleCount, static_cast<std::uint64_t>(count));
        } else {
          pb::put_double(value, field::kSampleCountFloat, count);
        }
        pb::put_double(value, field::kSampleSum, sum);
        value += buckets;
        if (created_at) put_timestamp(value, field::kHistogramCreated, created_at->value);
        put_metric(message, group, field::kHistogram, value, escaping);
        break;
      }
    }
  }
  pb::put_varint(out, message.size());
  out += message;
}

}  // namespace

void encode_prometheus_protobuf(const std::vector<SampleFamily>& families, std::string& out, NameEscaping escaping) {
  for (const SampleFamily& family : families) {
    if (family.samples.empty()) continue;
    put_sample_family(out, family, escaping);
  }
}

}  // namespace veda
