// encode_otlp_metrics(): families as an OTLP ExportMetricsServiceRequest.
#include "veda/metrics/otlp.hpp"

#include <charconv>
#include <cmath>
#include <cstddef>
#include <string>

#include "detail/otlp_common.hpp"
#include "veda/metrics/text_format.hpp"
#include "veda/telemetry/catalogue.hpp"

namespace veda {
namespace {

using namespace detail::otlp;

constexpr std::uint64_t kCumulative = 2;  // AggregationTemporality

// Metric fields 5/7/9/10/11: gauge, sum, histogram, exponential_histogram, summary.
constexpr std::uint32_t kGaugeField = 5;
constexpr std::uint32_t kSumField = 7;
constexpr std::uint32_t kHistogramField = 9;
constexpr std::uint32_t kExponentialHistogramField = 10;
constexpr std::uint32_t kSummaryField = 11;

// The series' labels as KeyValue attributes `field`: strings, but an int for
// the catalogue's integer label (`int_label`) when its value is one.
void put_labels(std::string& out, std::uint32_t field, const FamilyInfo& info, const SeriesSnapshot& s,
                const RuntimeMetric* known) {
  std::string value;
  for (std::size_t i = 0; i < info.label_names.size() && i < s.label_values.size(); ++i) {
    value.clear();
    const std::string& text = s.label_values[i];
    std::int64_t number = 0;
    const char* end = text.data() + text.size();
    if (known != nullptr && !known->int_label.empty() && info.label_names[i] == known->int_label &&
        !text.empty() && std::from_chars(text.data(), end, number).ptr == end) {
      any_int(value, number);
    } else {
      any_string(value, text);
    }
    put_key_value(out, field, info.label_names[i], value);
  }
}

// Exemplar: time_unix_nano 2, as_double 3, span_id 4 and trace_id 5 (bytes),
// filtered_attributes 7 (the other labels, as strings).
std::string otlp_exemplar(const Exemplar& e) {
  std::string out;
  put_fixed64_always(out, 2, static_cast<std::uint64_t>(e.unix_nano));
  put_double(out, 3, e.value);
  if (e.has_span) {
    put_bytes(out, 4, e.span_id.data(), e.span_id.size());
    put_bytes(out, 5, e.trace_id.data(), e.trace_id.size());
  }
  std::string value;
  for (const auto& [name, text] : e.labels) {
    value.clear();
    any_string(value, text);
    put_key_value(out, 7, name, value);
  }
  return out;
}

void put_exemplars(std::string& point, std::uint32_t field, const SeriesSnapshot& s) {
  for (const auto& entry : s.exemplars) put_message(point, field, otlp_exemplar(entry.second));
}

// The start of a cumulative point: the series' start, or `now` when it is unknown (0).
std::int64_t start_of(std::int64_t start_unix_nano, std::int64_t now) { return start_unix_nano != 0 ? start_unix_nano : now; }

// NumberDataPoint: attributes 7, start 2, time 3, as_double 4 or as_int 6.
std::string number_point(const FamilyInfo& info, const SeriesSnapshot& s, bool with_start, std::int64_t now,
                         const RuntimeMetric* known) {
  std::string p;
  if (with_start) put_fixed64(p, 2, start_of(s.start_unix_nano, now));
  put_fixed64(p, 3, now);
  // In the value oneof: written even when 0.
  if (known != nullptr && known->whole) {
    put_tag(p, 6, kFixed64);
    put_fixed(p, static_cast<std::uint64_t>(std::llround(s.value)), 8);
  } else {
    put_double(p, 4, s.value);
  }
  put_exemplars(p, 5, s);
  put_labels(p, 7, info, s, known);
  return p;
}

std::string exponential_point(const FamilyInfo& info, const SeriesSnapshot& s, std::int64_t now,
                              const RuntimeMetric* known) {
  const HistogramSnapshot& h = s.histogram;
  std::string p;
  put_labels(p, 1, info, s, known);
  put_fixed64(p, 2, start_of(h.start_unix_nano != 0 ? h.start_unix_nano : s.start_unix_nano, now));
  put_fixed64(p, 3, now);
  if (h.count != 0) put_fixed64_always(p, 4, h.count);
  put_double(p, 5, h.sum);  // optional: present
  put_sint32(p, 6, h.scale);
  if (h.zero_count != 0) put_fixed64_always(p, 7, h.zero_count);
  // Buckets: the counts between the first and the last non-empty one.
  std::size_t first = 0, last = h.counts.size();
  while (first < last && h.counts[first] == 0) ++first;
  while (last > first && h.counts[last - 1] == 0) --last;
  if (first < last) {
    std::string buckets, packed;
    put_sint32(buckets, 1, h.offset + static_cast<std::int32_t>(first));
    for (std::size_t i = first; i < last; ++i) put_varint(packed, h.counts[i]);
    put_bytes(buckets, 2, packed.data(), packed.size());
    put_message(p, 8, buckets);
  }
  put_exemplars(p, 11, s);
  if (h.count > 0 && !std::isnan(h.min)) put_double(p, 12, h.min);
  if (h.count > 0 && !std::isnan(h.max)) put_double(p, 13, h.max);
  if (h.zero_threshold != 0.0) put_double(p, 14, h.zero_threshold);
  return p;
}

// HistogramDataPoint of a histogram with classic buckets: attributes 9,
// start 2, time 3, count 4, sum 5, bucket_counts 6 (one per bound, then
// the +Inf bucket), explicit_bounds 7, exemplars 8, min 11, max 12.
std::string explicit_point(const FamilyInfo& info, const SeriesSnapshot& s, std::int64_t now,
                           const RuntimeMetric* known) {
  const HistogramSnapshot& h = s.histogram;
  std::string p;
  put_fixed64(p, 2, start_of(h.start_unix_nano != 0 ? h.start_unix_nano : s.start_unix_nano, now));
  put_fixed64(p, 3, now);
  if (h.count != 0) put_fixed64_always(p, 4, h.count);
  put_double(p, 5, h.sum);  // optional: present
  std::string packed;
  for (const std::uint64_t c : h.bound_counts) put_fixed(packed, c, 8);
  put_bytes(p, 6, packed.data(), packed.size());
  packed.clear();
  for (const double bound : h.bounds) put_double_bits(packed, bound);
  put_bytes(p, 7, packed.data(), packed.size());
  put_exemplars(p, 8, s);
  put_labels(p, 9, info, s, known);
  if (h.count > 0 && !std::isnan(h.min)) put_double(p, 11, h.min);
  if (h.count > 0 && !std::isnan(h.max)) put_double(p, 12, h.max);
  return p;
}

// SummaryDataPoint: attributes 7, start 2, time 3, count 4, sum 5, quantile_values 6.
// The series' own quantiles, else kSummaryQuantiles computed from its buckets.
std::string summary_point(const FamilyInfo& info, const SeriesSnapshot& s, std::int64_t now,
                          const RuntimeMetric* known) {
  std::string p;
  put_fixed64(p, 2, start_of(s.start_unix_nano, now));
  put_fixed64(p, 3, now);
  if (s.histogram.count != 0) put_fixed64_always(p, 4, s.histogram.count);
  if (s.histogram.sum != 0.0) put_double(p, 5, s.histogram.sum);
  std::string q;
  auto put_quantile = [&](double quantile, double value) {
    if (std::isnan(value)) return;  // no data for it yet
    q.clear();
    if (quantile != 0.0) put_double(q, 1, quantile);
    if (value != 0.0) put_double(q, 2, value);
    put_message(p, 6, q);
  };
  if (!s.quantiles.empty()) {
    for (const auto& [quantile, value] : s.quantiles) put_quantile(quantile, value);
  } else if (s.histogram.count != 0) {
    for (const double quantile : kSummaryQuantiles) put_quantile(quantile, s.histogram.percentile(quantile * 100.0));
  }
  put_labels(p, 7, info, s, known);
  return p;
}

void put_metric(std::string& scope_metrics, const FamilySnapshot& f, std::int64_t now) {
  if (f.series.empty()) return;
  const FamilyInfo& info = f.info;
  const RuntimeMetric* known = find_runtime_metric(info.name);
  std::string metric;
  put_nonempty(metric, 1, known ? known->otlp_name : std::string_view(info.name));
  put_nonempty(metric, 2, info.help);
  if (known) put_nonempty(metric, 3, known->unit);
  std::string data;
  switch (info.type) {
    case MetricType::counter:
      for (const SeriesSnapshot& s : f.series) put_message(data, 1, number_point(info, s, true, now, known));
      put_uint(data, 2, kCumulative);
      put_uint(data, 3, 1);  // is_monotonic
      put_message(metric, kSumField, data);
      break;
    case MetricType::gauge:
      for (const SeriesSnapshot& s : f.series) put_message(data, 1, number_point(info, s, info.up_down, now, known));
      if (info.up_down) {  // an up-down counter: a cumulative Sum that is not monotonic
        put_uint(data, 2, kCumulative);
        put_message(metric, kSumField, data);
      } else {
        put_message(metric, kGaugeField, data);
      }
      break;
    case MetricType::histogram: {
      // Series with buckets go out as one ExponentialHistogram (as one
      // explicit-bucket Histogram when the family has classic buckets). The
      // runtime's histograms also go out as a Summary "<name>.summary" with
      // the quantile set of the text formats; a quantile-only series (a
      // snapshot from the collector's history, no buckets) has only that.
      // Other families' quantile-only series become a Summary of their name.
      std::string summary;
      for (const SeriesSnapshot& s : f.series) {
        if (!quantiles_only(s)) {
          put_message(data, 1, info.buckets.empty() ? exponential_point(info, s, now, known)
                                                    : explicit_point(info, s, now, known));
        }
        if (!s.quantiles.empty() || known != nullptr) put_message(summary, 1, summary_point(info, s, now, known));
      }
      if (!summary.empty()) {
        std::string summary_metric;
        put_nonempty(summary_metric, 1, known ? std::string(known->otlp_name) + ".summary" : info.name);
        put_nonempty(summary_metric, 2, info.help);
        if (known) put_nonempty(summary_metric, 3, known->unit);
        put_message(summary_metric, kSummaryField, summary);
        put_message(scope_metrics, 2, summary_metric);
      }
      if (!data.empty()) {
        put_uint(data, 2, kCumulative);
        put_message(metric, info.buckets.empty() ? kExponentialHistogramField : kHistogramField, data);
        put_message(scope_metrics, 2, metric);
      }
      return;
    }
  }
  put_message(scope_metrics, 2, metric);
}

}  // namespace

std::string encode_otlp_metrics(const std::vector<FamilySnapshot>& families, const Attributes& resource,
                                std::string_view scope_name, std::string_view scope_version,
                                std::int64_t time_unix_nano) {
  return export_request(resource, scope_name, scope_version, [&](std::string& scope_metrics) {
    for (const FamilySnapshot& f : families) put_metric(scope_metrics, f, time_unix_nano);
  });
}

}  // namespace veda
