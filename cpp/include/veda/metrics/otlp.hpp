// OTLP protobuf encoding of collected metric families
// (opentelemetry/proto/collector/metrics/v1 ExportMetricsServiceRequest).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "veda/metrics/registry.hpp"
#include "veda/tracing/span.hpp"

namespace veda {

// The serialised ExportMetricsServiceRequest for `families` (Registry::collect()
// or to_families(snapshot)): one ResourceMetrics with `resource`, one
// ScopeMetrics with the scope, and one Metric per family with at least one
// series, in order:
// - counters: a cumulative, monotonic Sum; each point starts at its series'
//   start_unix_nano (creation or last reset; `time_unix_nano` when unknown);
// - gauges: a Gauge;
// - histograms: a cumulative ExponentialHistogram copied bucket for bucket
//   (scale, zero count and threshold, offset and counts with the empty
//   buckets at either end left out, count, sum, and min/max when not empty).
//   The runtime's histograms also give a Summary "<otlp name>.summary" with
//   the text formats' quantile set (kSummaryQuantiles); a series that
//   carries only quantiles and no buckets (a snapshot from the collector's
//   history) gives only that Summary (named as the family for other
//   families).
// A series' exemplars go out as the points' exemplars (trace and span ids as
// bytes, other labels as filtered attributes). Label names and values
// become string attributes. The runtime's own
// families (veda/telemetry/catalogue.hpp) get their OTLP name and unit,
// whole-number families their points as as_int, and an integer label (the
// GPU index) an int attribute; other families keep their name ("x" for a
// counter exposed as "x_total") and have no unit. Every point is stamped
// `time_unix_nano`. Fields are written in field-number order and proto3
// defaults are left out, as the protobuf runtime does. Never throws but
// std::bad_alloc.
std::string encode_otlp_metrics(const std::vector<FamilySnapshot>& families, const Attributes& resource,
                                std::string_view scope_name, std::string_view scope_version,
                                std::int64_t time_unix_nano);

}  // namespace veda
