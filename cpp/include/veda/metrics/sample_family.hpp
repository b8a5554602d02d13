// veda::SampleFamily: a metric family given sample by sample, the way a
// custom collector describes it (prometheus_client's Metric), and its
// renderings in every exposition format the registry has.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "veda/metrics/names.hpp"

namespace veda {

// The OpenMetrics family types.
enum class SampleType { counter, gauge, summary, histogram, gaugehistogram, info, stateset, unknown };

// "counter", "gauge", "summary", "histogram", "gaugehistogram", "info", "stateset", "unknown".
std::string_view to_string(SampleType type) noexcept;
// The type named `name` (one of the above), or nothing.
std::optional<SampleType> sample_type_from(std::string_view name) noexcept;

using LabelList = std::vector<std::pair<std::string, std::string>>;

// An exemplar given with a sample: its labels, value and (optional) time.
struct SampleExemplar {
  LabelList labels;
  double value = 0.0;
  std::optional<double> timestamp;  // seconds since the epoch
};

// One sample line: the full sample name ("x_total", "x_bucket", ...), its
// labels in the order given (a classic bucket's "le", a quantile's
// "quantile" included), value, and optional timestamp and exemplar.
struct Sample {
  std::string name;
  LabelList labels;
  double value = 0.0;
  std::optional<double> timestamp;  // seconds since the epoch
  std::optional<SampleExemplar> exemplar;
};

// A family as a collector yields it: `name` is the family's name (a
// counter's without "_total", an info's without "_info"), `unit` may be
// empty, and the samples come in exposition order.
struct SampleFamily {
  std::string name;
  std::string help;
  std::string unit;
  SampleType type = SampleType::unknown;
  std::vector<Sample> samples;
};

// Appends `families` as Prometheus text format 0.0.4, the way
// prometheus_client renders a collector's Metric: a counter's HELP and TYPE
// name it "<name>_total"; an info family becomes the gauge "<name>_info", a
// stateset a gauge, a gaugehistogram a histogram, unknown "untyped"; the
// OpenMetrics-only samples "<name>_created", "<name>_gsum" and
// "<name>_gcount" move into gauge families of those names after the
// family's other samples. Timestamps are written in milliseconds;
// exemplars are left out (0.0.4 has none).
// Names are escaped as in veda/metrics/text_format.hpp.
void render_prometheus(const std::vector<SampleFamily>& families, std::string& out,
                       NameEscaping escaping = NameEscaping::underscores);

// Appends `families` as OpenMetrics 1.0 text without the final "# EOF":
// "# TYPE", "# HELP" (when not empty) and "# UNIT" (when given) lines, then
// each sample as given, with its timestamp in seconds and its exemplar
// (" # {labels} value [timestamp]").
void render_openmetrics(const std::vector<SampleFamily>& families, std::string& out,
                        NameEscaping escaping = NameEscaping::underscores);

// Appends `families` as length-delimited io.prometheus.client.MetricFamily
// messages (see veda/metrics/protobuf_format.hpp), the samples regrouped
// into metrics by their labels (without "le" and "quantile"):
// - counter: "<name>_total", COUNTER{value, created_timestamp from "_created", exemplar};
// - gauge and stateset: GAUGE per sample; info: GAUGE "<name>_info";
// - summary: SUMMARY{sample_count, sample_sum, quantiles, created_timestamp};
// - histogram: HISTOGRAM with classic buckets (+Inf left out: sample_count
//   is it) and their exemplars; gaugehistogram: GAUGE_HISTOGRAM, its sum and
//   count from "_gsum" and "_gcount";
// - unknown: UNTYPED.
// A metric's timestamp_ms is its first sample's timestamp. Families without
// samples are left out. Never throws but std::bad_alloc.
// Names are escaped with `escaping` (never quoted: allow-utf-8 keeps them as they are).
void encode_prometheus_protobuf(const std::vector<SampleFamily>& families, std::string& out,
                                NameEscaping escaping = NameEscaping::underscores);

}  // namespace veda
