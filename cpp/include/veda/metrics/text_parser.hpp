// veda::parse_prometheus_text: Prometheus text format 0.0.4 read back into
// sample families, and the OpenMetrics rendering of such text.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "veda/metrics/sample_family.hpp"

namespace veda {

// Reads Prometheus text format 0.0.4 into families, in the order their TYPE
// lines (or, for samples without one, their first samples) appear:
// - "# TYPE name type" opens a family (counter, gauge, histogram, summary or
//   untyped; untyped becomes SampleType::unknown) and "# HELP name text"
//   gives its help, before or after the TYPE line; other comments and blank
//   lines are skipped;
// - a sample belongs to the open family when its name is the family's name
//   or the family's name plus one of its type's suffixes (_total/_created for
//   counters; _bucket/_sum/_count/_created for histograms; _sum/_count/_created
//   for summaries), else to an untyped family of its own name;
// - a counter family's name loses "_total" (its samples are named
//   "<name>_total", as OpenMetrics has them), label values and help are
//   unescaped (\\, \" and \n), "le" and "quantile" values are written in
//   OpenMetrics' canonical form ("1.0", "1e+06", "+Inf"), and timestamps turn
//   from milliseconds into seconds.
// Throws std::invalid_argument naming the line (1-based) and what is wrong
// for a malformed sample line, an unknown TYPE or a second TYPE line for a name.
std::vector<SampleFamily> parse_prometheus_text(std::string_view text);

// Appends `prometheus_text` rendered as OpenMetrics 1.0 text, "# EOF" last:
// the families parse_prometheus_text() reads, with a summary's quantiles NaN
// for a series whose "_count" is 0 (OpenMetrics' rule for an empty window).
// Only the formatting changes; values and label sets are the input's.
// Throws as parse_prometheus_text() does.
void render_openmetrics_from_text(std::string_view prometheus_text, std::string& out);

}  // namespace veda
