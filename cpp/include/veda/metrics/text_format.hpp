// Text exposition: Prometheus text format 0.0.4 and OpenMetrics 1.0.
#pragma once

#include <string>
#include <string_view>
#include <vector>

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
  std::string_view name;  // "x_total" (counter), "x", "x_sum", "x_count" (summary)
  const SeriesSnapshot* series = nullptr;  // label values in the family's label-name order
  bool has_quantile = false;  // a summary quantile sample: adds the label quantile="<quantile>"
  double quantile = 0.0;
  double value = 0.0;
};

// The text format's type name of a family: "counter", "gauge" or "summary"
// (histograms are exposed as summaries).
std::string_view exposition_type(MetricType type) noexcept;

// Calls visit(sample) for each sample `family` exposes, in exposition order:
// counters as "<name>_total"; gauges as "<name>"; histograms as a summary,
// per series its quantiles (SeriesSnapshot::quantiles, else
// kSummaryQuantiles computed from the histogram), "_sum" and "_count". The
// text renderers and other writers (the prometheus_client bridge) share it.
template <class Visit>
void for_each_sample(const FamilySnapshot& family, Visit&& visit) {
  const FamilyInfo& info = family.info;
  switch (info.type) {
    case MetricType::counter: {
      const std::string name = info.name + "_total";
      for (const SeriesSnapshot& s : family.series) visit(ExposedSample{name, &s, false, 0.0, s.value});
      break;
    }
    case MetricType::gauge:
      for (const SeriesSnapshot& s : family.series) visit(ExposedSample{info.name, &s, false, 0.0, s.value});
      break;
    case MetricType::histogram: {
      const std::string sum_name = info.name + "_sum";
      const std::string count_name = info.name + "_count";
      for (const SeriesSnapshot& s : family.series) {
        const HistogramSnapshot& h = s.histogram;
        if (s.quantiles.empty()) {
          for (const double q : kSummaryQuantiles) visit(ExposedSample{info.name, &s, true, q, h.percentile(q * 100.0)});
        } else {
          for (const auto& [q, value] : s.quantiles) visit(ExposedSample{info.name, &s, true, q, value});
        }
        visit(ExposedSample{sum_name, &s, false, 0.0, h.sum});
        visit(ExposedSample{count_name, &s, false, 0.0, static_cast<double>(h.count)});
      }
      break;
    }
  }
}

// Renders families as text format 0.0.4: "# HELP" and "# TYPE" lines, counters
// with a "_total" suffix, histograms as summaries with the quantiles above plus
// "_sum" and "_count". Appends to `out`.
void render_prometheus(const std::vector<FamilySnapshot>& families, std::string& out);

// Renders the same families as OpenMetrics 1.0 text: "# TYPE" before
// "# HELP" (left out when empty; '"' escaped too), a counter's metadata named
// without "_total" and its sample with it, quantile label values in canonical
// form, summary quantiles NaN for a series with no observations, and a final
// "# EOF". Appends to `out`.
void render_openmetrics(const std::vector<FamilySnapshot>& families, std::string& out);

// OpenMetrics' canonical text of a label number (le, quantile): Go's %g with
// the shortest digits, ".0" added when it has neither '.' nor an exponent
// ("1.0", "0.95", "100000.0", "1e+06", "1e-05", "+Inf").
void append_canonical_number(std::string& out, double value);

// Appends the shortest text that parses back to the same double; "NaN", "+Inf", "-Inf".
void append_double(std::string& out, double value);
// Escapes a label value: backslash, double quote and newline.
void append_label_value(std::string& out, std::string_view value);
// Escapes HELP text: backslash and newline.
void append_help(std::string& out, std::string_view help);

}  // namespace veda
