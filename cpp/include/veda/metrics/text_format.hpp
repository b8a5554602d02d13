// Text exposition: Prometheus text format 0.0.4 and OpenMetrics 1.0.
#pragma once

#include <cmath>
#include <string>
#include <string_view>
#include <vector>

#include "veda/metrics/names.hpp"
#include "veda/metrics/registry.hpp"

namespace veda {

// Content-Type of the 0.0.4 text format.
inline constexpr std::string_view kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

// Content-Type of OpenMetrics 1.0 text.
inline constexpr std::string_view kOpenMetricsContentType =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

// Quantiles every histogram is exposed with, as a Prometheus summary.
inline constexpr double kSummaryQuantiles[] = {0.5, 0.9, 0.95, 0.99};

// One sample line of an exposition, as for_each_sample() visits them.
struct ExposedSample {
  // "x_total" (counter), "x", "x_sum", "x_count" (summary), "x_bucket" (histogram), "x_created"
  std::string_view name;
  const SeriesSnapshot* series = nullptr;  // label values in the family's label-name order
  bool has_quantile = false;  // a summary quantile sample: adds the label quantile="<quantile>"
  double quantile = 0.0;
  double value = 0.0;
  bool has_le = false;  // a classic bucket: adds the label le="<le>" (canonical form, "+Inf")
  double le = 0.0;
  const Exemplar* exemplar = nullptr;  // a counter's or a classic bucket's exemplar, if it has one
  // A "_created" sample: its time exactly (value is the same time as a double).
  std::int64_t unix_nano = 0;
};

// The exemplar kept in `slot` of a series, or null.
inline const Exemplar* exemplar_at(const SeriesSnapshot& s, std::int32_t slot) {
  for (const auto& [at, exemplar] : s.exemplars) {
    if (at == slot) return &exemplar;
  }
  return nullptr;
}

// The text format's type name of a family: "counter", "gauge", "histogram"
// (a histogram with classic buckets) or "summary" (one without).
std::string_view exposition_type(const FamilyInfo& info) noexcept;

// Seconds since the epoch of a series' start, for "_created" samples.
// (Whole seconds and the fraction apart: the nanoseconds as one double would round.)
inline double unix_seconds(std::int64_t unix_nano) {
  return static_cast<double>(unix_nano / 1000000000) + static_cast<double>(unix_nano % 1000000000) / 1e9;
}
inline double created_seconds(const SeriesSnapshot& s) { return unix_seconds(s.start_unix_nano); }

// Calls visit(sample) for each sample `family` exposes, in exposition order:
// counters as "<name>_total"; gauges as "<name>"; histograms with classic
// buckets (FamilyInfo::buckets) per series as cumulative "<name>_bucket"
// samples, one per bound and one for le="+Inf", then "_sum" and "_count";
// histograms without them as a summary, per series its quantiles
// (SeriesSnapshot::quantiles, else kSummaryQuantiles computed from the
// histogram; a summary's FamilyInfo::quantiles), "_sum" and "_count". With `created`, each counter, histogram
// and summary series whose start is known ends with "<name>_created" (its
// start in seconds since the epoch), as OpenMetrics has it. A counter's
// sample and a classic bucket carry their exemplar, if any. The text
// renderers and other writers (the prometheus_client bridge) share it.
template <class Visit>
void for_each_sample(const FamilySnapshot& family, Visit&& visit, bool created = false) {
  const FamilyInfo& info = family.info;
  const std::string created_name = info.name + "_created";
  auto visit_created = [&](const SeriesSnapshot& s) {
    if (created && s.start_unix_nano > 0) {
      visit(ExposedSample{created_name, &s, false, 0.0, created_seconds(s), false, 0.0, nullptr, s.start_unix_nano});
    }
  };
  switch (info.type) {
    case MetricType::counter: {
      const std::string name = info.name + "_total";
      for (const SeriesSnapshot& s : family.series) {
        visit(ExposedSample{name, &s, false, 0.0, s.value, false, 0.0, exemplar_at(s, 0)});
        visit_created(s);
      }
      break;
    }
    case MetricType::gauge:
      for (const SeriesSnapshot& s : family.series) visit(ExposedSample{info.name, &s, false, 0.0, s.value});
      break;
    case MetricType::histogram: {
      const std::string sum_name = info.name + "_sum";
      const std::string count_name = info.name + "_count";
      const std::string bucket_name = info.name + "_bucket";
      for (const SeriesSnapshot& s : family.series) {
        const HistogramSnapshot& h = s.histogram;
        if (!info.buckets.empty()) {
          double cumulative = 0.0;
          for (std::size_t i = 0; i <= info.buckets.size(); ++i) {
            if (i < h.bound_counts.size()) cumulative += static_cast<double>(h.bound_counts[i]);
            const double le = i < info.buckets.size() ? info.buckets[i] : HUGE_VAL;
            visit(ExposedSample{bucket_name, &s, false, 0.0, cumulative, true, le,
                                exemplar_at(s, static_cast<std::int32_t>(i))});
          }
        } else if (!s.quantiles.empty()) {
          for (const auto& [q, value] : s.quantiles) visit(ExposedSample{info.name, &s, true, q, value});
        } else if (info.summary) {
          for (const double q : info.quantiles) visit(ExposedSample{info.name, &s, true, q, h.percentile(q * 100.0)});
        } else {
          for (const double q : kSummaryQuantiles) visit(ExposedSample{info.name, &s, true, q, h.percentile(q * 100.0)});
        }
        visit(ExposedSample{sum_name, &s, false, 0.0, h.sum});
        visit(ExposedSample{count_name, &s, false, 0.0, static_cast<double>(h.count)});
        visit_created(s);
      }
      break;
    }
  }
}

// Renders families as text format 0.0.4: "# HELP" and "# TYPE" lines, the
// samples of for_each_sample() (no "_created"). Appends to `out`.
// Names outside the legacy character set (and every name, with dots) are
// written as `escaping` has them; with allow-utf-8 such a name is quoted
// inside the braces: {"name",label="value"}.
void render_prometheus(const std::vector<FamilySnapshot>& families, std::string& out,
                       NameEscaping escaping = NameEscaping::underscores);

// Renders the same families as OpenMetrics 1.0 text: "# TYPE" before
// "# HELP" (left out when empty; '"' escaped too), a counter's metadata named
// without "_total" and its sample with it, quantile label values in canonical
// form, summary quantiles NaN for a series with no observations, with
// `created_series` a "_created" sample per counter, histogram and summary
// series, exemplars after counter samples and classic buckets
// (` # {labels} value timestamp`), and a final "# EOF". Appends to `out`.
void render_openmetrics(const std::vector<FamilySnapshot>& families, std::string& out, bool created_series = true,
                        NameEscaping escaping = NameEscaping::underscores);
// render_openmetrics() without the final "# EOF", for an exposition that goes on.
void render_openmetrics_body(const std::vector<FamilySnapshot>& families, std::string& out, bool created_series = true,
                             NameEscaping escaping = NameEscaping::underscores);

// OpenMetrics' canonical text of a label number (le, quantile): Go's %g with
// the shortest digits, ".0" added when it has neither '.' nor an exponent
// ("1.0", "0.95", "100000.0", "1e+06", "1e-05", "+Inf").
void append_canonical_number(std::string& out, double value);

// Appends the shortest text that parses back to the same double; "NaN", "+Inf", "-Inf".
void append_double(std::string& out, double value);
// Appends a time in seconds since the epoch, exactly: "1700000000.25" (no
// fraction when whole). Faster than append_double for timestamps.
void append_unix_seconds(std::string& out, std::int64_t unix_nano);
// Escapes a label value: backslash, double quote and newline.
void append_label_value(std::string& out, std::string_view value);
// Escapes HELP text: backslash and newline.
void append_help(std::string& out, std::string_view help);
// Escapes HELP text for OpenMetrics: backslash, newline and double quote.
void append_openmetrics_help(std::string& out, std::string_view help);

}  // namespace veda
