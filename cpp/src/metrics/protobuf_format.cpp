// Prometheus protobuf exposition (see veda/metrics/protobuf_format.hpp).
#include "veda/metrics/protobuf_format.hpp"

#include <cstddef>
#include <cstdint>
#include <string>

#include "detail/protobuf.hpp"
#include "veda/metrics/text_format.hpp"

namespace veda {
namespace {

namespace pb = detail::pb;

// io.prometheus.client field numbers.
namespace field {
// MetricFamily
constexpr std::uint32_t kFamilyName = 1, kFamilyHelp = 2, kFamilyType = 3, kFamilyMetric = 4;
// Metric
constexpr std::uint32_t kLabel = 1, kGauge = 2, kCounter = 3, kSummary = 4, kHistogram = 7;
// LabelPair
constexpr std::uint32_t kLabelName = 1, kLabelValue = 2;
// Gauge / Counter
constexpr std::uint32_t kValue = 1, kCounterCreated = 3;
// Summary
constexpr std::uint32_t kSummaryCount = 1, kSummarySum = 2, kSummaryQuantile = 3, kSummaryCreated = 4;
// Quantile
constexpr std::uint32_t kQuantile = 1, kQuantileValue = 2;
// Histogram
constexpr std::uint32_t kSampleCount = 1, kSampleSum = 2, kSchema = 5, kZeroThreshold = 6, kZeroCount = 7,
                        kPositiveSpan = 12, kPositiveDelta = 13, kHistogramCreated = 15;
// BucketSpan
constexpr std::uint32_t kSpanOffset = 1, kSpanLength = 2;
// google.protobuf.Timestamp
constexpr std::uint32_t kSeconds = 1, kNanos = 2;
}  // namespace field

// io.prometheus.client.MetricType.
enum PromType : std::uint64_t { kCounterType = 0, kGaugeType = 1, kSummaryType = 2, kHistogramType = 4 };

void put_timestamp(std::string& out, std::uint32_t field_number, std::int64_t unix_nano) {
  if (unix_nano <= 0) return;
  std::string ts;
  pb::put_uint(ts, field::kSeconds, static_cast<std::uint64_t>(unix_nano / 1000000000));
  pb::put_uint(ts, field::kNanos, static_cast<std::uint64_t>(unix_nano % 1000000000));
  pb::put_message(out, field_number, ts);
}

void put_labels(std::string& out, const FamilyInfo& info, const SeriesSnapshot& series) {
  std::string pair;
  for (std::size_t i = 0; i < info.label_names.size() && i < series.label_values.size(); ++i) {
    pair.clear();
    pb::put_string(pair, field::kLabelName, info.label_names[i]);
    pb::put_string(pair, field::kLabelValue, series.label_values[i]);
    pb::put_message(out, field::kLabel, pair);
  }
}

// The native histogram: spans of consecutive non-empty buckets and their deltas.
void put_native_histogram(std::string& out, const SeriesSnapshot& series, int scale) {
  const HistogramSnapshot& h = series.histogram;
  std::string body;
  pb::put_uint_always(body, field::kSampleCount, h.count);
  pb::put_double(body, field::kSampleSum, h.sum);
  pb::put_sint_always(body, field::kSchema, scale);
  pb::put_double(body, field::kZeroThreshold, h.zero_threshold);
  pb::put_uint_always(body, field::kZeroCount, h.zero_count);

  std::string spans, span, deltas;
  std::int64_t previous_count = 0;
  std::int64_t next_index = 0;  // Prometheus index right after the last span written
  bool first = true;
  const std::size_t n = h.counts.size();
  for (std::size_t i = 0; i < n;) {
    if (h.counts[i] == 0) {
      ++i;
      continue;
    }
    std::size_t end = i;
    while (end < n && h.counts[end] != 0) ++end;
    const std::int64_t index = static_cast<std::int64_t>(h.offset) + static_cast<std::int64_t>(i) + 1;
    span.clear();
    pb::put_sint_always(span, field::kSpanOffset, first ? index : index - next_index);
    pb::put_uint_always(span, field::kSpanLength, end - i);
    pb::put_message(spans, field::kPositiveSpan, span);
    for (std::size_t k = i; k < end; ++k) {
      const auto count = static_cast<std::int64_t>(h.counts[k]);
      pb::put_sint_always(deltas, field::kPositiveDelta, count - previous_count);
      previous_count = count;
    }
    next_index = index + static_cast<std::int64_t>(end - i);
    first = false;
    i = end;
  }
  body += spans;
  body += deltas;
  put_timestamp(body, field::kHistogramCreated, series.start_unix_nano);
  pb::put_message(out, field::kHistogram, body);
}

void put_summary(std::string& out, const SeriesSnapshot& series) {
  const HistogramSnapshot& h = series.histogram;
  std::string body, quantile;
  pb::put_uint_always(body, field::kSummaryCount, h.count);
  pb::put_double(body, field::kSummarySum, h.sum);
  auto put_quantile = [&](double q, double value) {
    quantile.clear();
    pb::put_double(quantile, field::kQuantile, q);
    pb::put_double(quantile, field::kQuantileValue, value);
    pb::put_message(body, field::kSummaryQuantile, quantile);
  };
  if (series.quantiles.empty()) {
    for (const double q : kSummaryQuantiles) put_quantile(q, h.percentile(q * 100.0));
  } else {
    for (const auto& [q, value] : series.quantiles) put_quantile(q, value);
  }
  put_timestamp(body, field::kSummaryCreated, series.start_unix_nano);
  pb::put_message(out, field::kSummary, body);
}

// Quantiles but no buckets: the series cannot be a native histogram.
bool summary_only(const SeriesSnapshot& s) { return !s.quantiles.empty() && s.histogram.counts.empty(); }

void put_family(std::string& out, const FamilySnapshot& family, std::string& message, std::string& metric) {
  const FamilyInfo& info = family.info;
  message.clear();
  PromType type = kGaugeType;
  switch (info.type) {
    case MetricType::counter:
      type = kCounterType;
      pb::put_string(message, field::kFamilyName, info.name + "_total");
      break;
    case MetricType::gauge:
      type = kGaugeType;
      pb::put_string(message, field::kFamilyName, info.name);
      break;
    case MetricType::histogram: {
      bool summary = false;
      for (const SeriesSnapshot& s : family.series) summary = summary || summary_only(s);
      type = summary ? kSummaryType : kHistogramType;
      pb::put_string(message, field::kFamilyName, info.name);
      break;
    }
  }
  pb::put_nonempty(message, field::kFamilyHelp, info.help);
  pb::put_uint_always(message, field::kFamilyType, type);
  std::string value;
  for (const SeriesSnapshot& s : family.series) {
    metric.clear();
    put_labels(metric, info, s);
    value.clear();
    switch (type) {
      case kGaugeType:
        pb::put_double(value, field::kValue, s.value);
        pb::put_message(metric, field::kGauge, value);
        break;
      case kCounterType:
        pb::put_double(value, field::kValue, s.value);
        put_timestamp(value, field::kCounterCreated, s.start_unix_nano);
        pb::put_message(metric, field::kCounter, value);
        break;
      case kSummaryType:
        put_summary(metric, s);
        break;
      case kHistogramType:
        put_native_histogram(metric, s, s.histogram.scale);
        break;
    }
    pb::put_message(message, field::kFamilyMetric, metric);
  }
  pb::put_varint(out, message.size());
  out += message;
}

}  // namespace

void encode_prometheus_protobuf(const std::vector<FamilySnapshot>& families, std::string& out) {
  std::string message, metric;
  for (const FamilySnapshot& family : families) {
    if (family.series.empty()) continue;
    put_family(out, family, message, metric);
  }
}

}  // namespace veda
