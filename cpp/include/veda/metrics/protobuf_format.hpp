// The Prometheus protobuf exposition: length-delimited
// io.prometheus.client.MetricFamily messages (prometheus/client_model's
// metrics.proto), the format in which Prometheus scrapes native histograms.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "veda/metrics/names.hpp"
#include "veda/metrics/registry.hpp"

namespace veda {

// Content-Type of the protobuf exposition (also what a scraper's Accept names).
inline constexpr std::string_view kProtobufContentType =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

// Appends `families` to `out`, each one MetricFamily preceded by its length
// as a varint; families without series are left out. Per family:
// - counters: name "<name>_total" (the text formats' sample name), type
//   COUNTER, per series Counter{value, created_timestamp};
// - gauges: type GAUGE, Gauge{value};
// - histograms: type HISTOGRAM, per series the native histogram: schema =
//   the histogram's scale, zero_threshold and zero_count, positive spans and
//   deltas (bucket index = OpenTelemetry index + 1: Prometheus' bucket i is
//   (base^(i-1), base^i]), sample_count, sample_sum, created_timestamp, and
//   a histogram's classic buckets (cumulative, +Inf left out) when it has them. A
//   family whose series carry quantiles but no buckets (a snapshot from the
//   collector's history) goes out as SUMMARY{sample_count, sample_sum,
//   quantile...} instead.
// Label names and values become LabelPairs. created_timestamp is the series'
// start_unix_nano (creation or last reset), left out when unknown (0).
// Never throws but std::bad_alloc.
// Metric and label names are escaped with `escaping` (allow-utf-8: as they are).
void encode_prometheus_protobuf(const std::vector<FamilySnapshot>& families, std::string& out,
                                NameEscaping escaping = NameEscaping::underscores);

}  // namespace veda
