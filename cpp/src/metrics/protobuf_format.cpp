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
constexpr std::uint32_t kFamilyName = 1, kFamilyHelp = 2, kFamilyType = 3, kFamilyMetric = 4, kFamilyUnit = 5;
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
constexpr std::uint32_t kSampleCount = 1, kSampleSum = 2, kBucket = 3, kSchema = 5, kZeroThreshold = 6, kZeroCount = 7,
                        kPositiveSpan = 12, kPositiveDelta = 13, kHistogramCreated = 15;
// BucketSpan
constexpr std::uint32_t kSpanOffset = 1, kSpanLength = 2;
// Bucket
constexpr std::uint32_t kCumulativeCount = 1, kUpperBound = 2, kBucketExemplar = 3;
// Counter.exemplar, Histogram.exemplars (native), Exemplar's own fields
constexpr std::uint32_t kCounterExemplar = 2, kNativeExemplars = 16;
constexpr std::uint32_t kExemplarLabel = 1, kExemplarValue = 2, kExemplarTimestamp = 3;
// google.protobuf.Timestamp
constexpr std::uint32_t kSeconds = 1, kNanos = 2;
}  // namespace field

// io.prometheus.client.MetricType.
enum PromType : std::uint64_t { kCounterType = 0, kGaugeType = 1, kSummaryType = 2, kHistogramType = 4 };

std::size_t timestamp_size(std::int64_t unix_nano) {
  if (unix_nano <= 0) return 0;
  const auto seconds = static_cast<std::uint64_t>(unix_nano / 1000000000);
  const auto nanos = static_cast<std::uint64_t>(unix_nano % 1000000000);
  return (seconds ? 1 + pb::varint_size(seconds) : 0) + (nanos ? 1 + pb::varint_size(nanos) : 0);
}

// A google.protobuf.Timestamp field; left out when the time is unknown (0).
void put_timestamp(std::string& out, std::uint32_t field_number, std::int64_t unix_nano) {
  if (unix_nano <= 0) return;
  pb::put_len_header(out, field_number, timestamp_size(unix_nano));
  pb::put_uint(out, field::kSeconds, static_cast<std::uint64_t>(unix_nano / 1000000000));
  pb::put_uint(out, field::kNanos, static_cast<std::uint64_t>(unix_nano % 1000000000));
}

std::size_t string_field_size(std::string_view s) { return pb::len_field_size(s.size()); }

// A LabelPair as field `field_number` (Metric.label, Exemplar.label).
void put_label_pair(std::string& out, std::uint32_t field_number, std::string_view name, std::string_view value) {
  pb::put_len_header(out, field_number, string_field_size(name) + string_field_size(value));
  pb::put_string(out, field::kLabelName, name);
  pb::put_string(out, field::kLabelValue, value);
}

// An Exemplar message's body: its labels, value and timestamp.
std::string exemplar_body(const Exemplar& e) {
  std::string body;
  for (const auto& [name, value] : e.all_labels()) put_label_pair(body, field::kExemplarLabel, name, value);
  pb::put_double(body, field::kExemplarValue, e.value);
  put_timestamp(body, field::kExemplarTimestamp, e.unix_nano);
  return body;
}

std::size_t labels_size(const std::vector<std::string>& label_names, const SeriesSnapshot& series) {
  std::size_t size = 0;
  for (std::size_t i = 0; i < label_names.size() && i < series.label_values.size(); ++i) {
    size += pb::len_field_size(string_field_size(label_names[i]) + string_field_size(series.label_values[i]));
  }
  return size;
}

void put_labels(std::string& out, const std::vector<std::string>& label_names, const SeriesSnapshot& series) {
  for (std::size_t i = 0; i < label_names.size() && i < series.label_values.size(); ++i) {
    put_label_pair(out, field::kLabel, label_names[i], series.label_values[i]);
  }
}

// The native histogram: spans of consecutive non-empty buckets and their deltas.
// Buffers reused from series to series.
struct Scratch {
  std::string message, value, spans, deltas;
};

// Appends the Histogram message's body (without its field header) to `body`.
// Runs of non-empty buckets separated by at most kMaxGap empty ones share a
// span (the empty ones get a delta each): fewer, longer spans are smaller.
void put_native_histogram(std::string& body, const SeriesSnapshot& series, int scale, Scratch& scratch) {
  constexpr std::size_t kMaxGap = 2;
  const HistogramSnapshot& h = series.histogram;
  pb::put_uint_always(body, field::kSampleCount, h.count);
  pb::put_double(body, field::kSampleSum, h.sum);
  // Classic buckets, cumulative, without the optional +Inf one (sample_count is it).
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < h.bounds.size(); ++i) {
    if (i < h.bound_counts.size()) cumulative += h.bound_counts[i];
    const Exemplar* exemplar = exemplar_at(series, static_cast<std::int32_t>(i));
    const std::string exemplar_message = exemplar ? exemplar_body(*exemplar) : std::string();
    pb::put_len_header(body, field::kBucket,
                       1 + pb::varint_size(cumulative) + 9 +
                           (exemplar ? pb::len_field_size(exemplar_message.size()) : 0));
    pb::put_uint_always(body, field::kCumulativeCount, cumulative);
    pb::put_double(body, field::kUpperBound, h.bounds[i]);
    if (exemplar) pb::put_message(body, field::kBucketExemplar, exemplar_message);
  }
  pb::put_sint_always(body, field::kSchema, scale);
  pb::put_double(body, field::kZeroThreshold, h.zero_threshold);
  pb::put_uint_always(body, field::kZeroCount, h.zero_count);

  std::string& spans = scratch.spans;
  std::string& deltas = scratch.deltas;
  spans.clear();
  deltas.clear();
  std::int64_t previous_count = 0;
  std::int64_t next_index = 0;  // Prometheus index right after the last span written
  bool first = true;
  const std::size_t n = h.counts.size();
  for (std::size_t i = 0; i < n;) {
    if (h.counts[i] == 0) {
      ++i;
      continue;
    }
    std::size_t end = i;  // one past the span's last non-empty bucket
    for (std::size_t k = i; k < n && k <= end + kMaxGap; ++k) {
      if (h.counts[k] != 0) end = k + 1;
    }
    const std::int64_t index = static_cast<std::int64_t>(h.offset) + static_cast<std::int64_t>(i) + 1;
    const std::uint64_t offset = pb::zigzag(first ? index : index - next_index);
    const std::uint64_t length = end - i;
    pb::put_len_header(spans, field::kPositiveSpan, 2 + pb::varint_size(offset) + pb::varint_size(length));
    pb::put_uint_always(spans, field::kSpanOffset, offset);
    pb::put_uint_always(spans, field::kSpanLength, length);
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
  // A histogram without classic buckets carries its exemplars in the native form's list.
  if (h.bounds.empty()) {
    for (const auto& entry : series.exemplars) pb::put_message(body, field::kNativeExemplars, exemplar_body(entry.second));
  }
}

// Appends the Summary message's body (without its field header) to `body`.
void put_summary(std::string& body, const FamilyInfo& info, const SeriesSnapshot& series) {
  const HistogramSnapshot& h = series.histogram;
  pb::put_uint_always(body, field::kSummaryCount, h.count);
  pb::put_double(body, field::kSummarySum, h.sum);
  auto put_quantile = [&](double q, double value) {
    pb::put_len_header(body, field::kSummaryQuantile, 18);  // two doubles
    pb::put_double(body, field::kQuantile, q);
    pb::put_double(body, field::kQuantileValue, value);
  };
  if (!series.quantiles.empty()) {
    for (const auto& [q, value] : series.quantiles) put_quantile(q, value);
  } else if (info.summary) {
    for (const double q : info.quantiles) put_quantile(q, h.percentile(q * 100.0));
  } else {
    for (const double q : kSummaryQuantiles) put_quantile(q, h.percentile(q * 100.0));
  }
  put_timestamp(body, field::kSummaryCreated, series.start_unix_nano);
}

void put_family(std::string& out, const FamilySnapshot& family, Scratch& scratch, NameEscaping escaping) {
  const FamilyInfo& info = family.info;
  std::string& message = scratch.message;
  std::string& value = scratch.value;
  message.clear();
  // Names outside the legacy set (every name, with dots) go out escaped; allow-utf-8 keeps them.
  bool plain = escaping == NameEscaping::allow_utf8 ||
               (escaping != NameEscaping::dots && is_valid_metric_name(info.name));
  for (const std::string& l : info.label_names) {
    plain = plain && (escaping == NameEscaping::allow_utf8 || (escaping != NameEscaping::dots && is_valid_label_name(l)));
  }
  std::vector<std::string> escaped_labels;
  if (!plain) {
    for (const std::string& l : info.label_names) escaped_labels.push_back(escaped_label_name(l, escaping));
  }
  const std::vector<std::string>& label_names = plain ? info.label_names : escaped_labels;
  const std::string family_name = info.type == MetricType::counter ? info.name + "_total" : info.name;
  PromType type = kGaugeType;
  switch (info.type) {
    case MetricType::counter:
      type = kCounterType;
      break;
    case MetricType::gauge:
      type = kGaugeType;
      break;
    case MetricType::histogram: {
      bool summary = info.summary;
      for (const SeriesSnapshot& s : family.series) summary = summary || quantiles_only(s);
      type = summary ? kSummaryType : kHistogramType;
      break;
    }
  }
  pb::put_string(message, field::kFamilyName, plain ? family_name : escaped_metric_name(family_name, escaping));
  pb::put_nonempty(message, field::kFamilyHelp, info.help);
  pb::put_uint_always(message, field::kFamilyType, type);
  pb::put_nonempty(message, field::kFamilyUnit, info.unit);
  for (const SeriesSnapshot& s : family.series) {
    const std::size_t labels = labels_size(label_names, s);
    std::uint32_t value_field = field::kGauge;
    std::size_t value_size = 9;  // one double
    switch (type) {
      case kGaugeType:
        break;
      case kCounterType: {
        value_field = field::kCounter;
        const std::size_t ts = timestamp_size(s.start_unix_nano);
        if (ts > 0) value_size += pb::len_field_size(ts);
        value.clear();
        if (const Exemplar* exemplar = exemplar_at(s, 0)) {
          value = exemplar_body(*exemplar);
          value_size += pb::len_field_size(value.size());
        }
        break;
      }
      case kSummaryType:
        value_field = field::kSummary;
        value.clear();
        put_summary(value, info, s);
        value_size = value.size();
        break;
      case kHistogramType:
        value_field = field::kHistogram;
        value.clear();
        put_native_histogram(value, s, s.histogram.scale, scratch);
        value_size = value.size();
        break;
    }
    pb::put_len_header(message, field::kFamilyMetric, labels + pb::len_field_size(value_size));
    put_labels(message, label_names, s);
    pb::put_len_header(message, value_field, value_size);
    if (type == kGaugeType || type == kCounterType) {
      pb::put_double(message, field::kValue, s.value);
      if (type == kCounterType) {
        if (!value.empty()) pb::put_message(message, field::kCounterExemplar, value);  // field 2, before 3
        put_timestamp(message, field::kCounterCreated, s.start_unix_nano);
      }
    } else {
      message += value;
    }
  }
  pb::put_varint(out, message.size());
  out += message;
}

}  // namespace

void encode_prometheus_protobuf(const std::vector<FamilySnapshot>& families, std::string& out, NameEscaping escaping) {
  Scratch scratch;
  for (const FamilySnapshot& family : families) {
    if (family.series.empty()) continue;
    put_family(out, family, scratch, escaping);
  }
}

}  // namespace veda
