// Prometheus text exposition format 0.0.4.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "veda/metrics/registry.hpp"

namespace veda {

// Content-Type of the 0.0.4 text format.
inline constexpr std::string_view kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

// Quantiles every histogram is exposed with, as a Prometheus summary.
inline constexpr double kSummaryQuantiles[] = {0.5, 0.9, 0.95, 0.99};

// Renders families as text format 0.0.4: "# HELP" and "# TYPE" lines, counters
// with a "_total" suffix, histograms as summaries with the quantiles above plus
// "_sum" and "_count". Appends to `out`.
void render_prometheus(const std::vector<FamilySnapshot>& families, std::string& out);

// Appends the shortest text that parses back to the same double; "NaN", "+Inf", "-Inf".
void append_double(std::string& out, double value);
// Escapes a label value: backslash, double quote and newline.
void append_label_value(std::string& out, std::string_view value);
// Escapes HELP text: backslash and newline.
void append_help(std::string& out, std::string_view help);

}  // namespace veda
