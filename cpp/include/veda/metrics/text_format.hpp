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
