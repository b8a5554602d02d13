// Tests for families given sample by sample (veda/metrics/sample_family.hpp)
// and for summaries (Registry::summary), in every exposition format.
#include "veda/metrics/sample_family.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/proto_reader.hpp"
#include "support/test_support.hpp"
#include "veda/metrics/registry.hpp"
#include "veda/metrics/text_format.hpp"

namespace veda {
namespace {

using test::kNoLabels;
using test::parse_proto;
using test::ProtoMessage;
using test::split_delimited;

Sample sample(std::string name, LabelList labels, double value) {
  Sample s;
  s.name = std::move(name);
  s.labels = std::move(labels);
  s.value = value;
  return s;
}

SampleFamily counter_family() {
  SampleFamily f{"jobs", "Jobs \"done\".\nAll of them.", "", SampleType::counter, {}};
  f.samples.push_back(sample("jobs_total", {{"queue", "a\"b"}}, 3));
  f.samples.push_back(sample("jobs_created", {{"queue", "a\"b"}}, 1700000000.5));
  f.samples[0].exemplar = SampleExemplar{{{"trace_id", "abc"}}, 1.0, 1700000001.25};
  return f;
}

TEST(SampleFamilyType, NamesRoundTrip) {
  for (const char* name : {"counter", "gauge", "summary", "histogram", "gaugehistogram", "info", "stateset", "unknown"}) {
    const auto type = sample_type_from(name);
    ASSERT_TRUE(type.has_value()) << name;
    EXPECT_EQ(to_string(*type), name);
  }
  EXPECT_FALSE(sample_type_from("untyped").has_value());
}

TEST(SampleFamilyText, CounterLikePrometheusClient) {
  std::string out;
  render_prometheus({counter_family()}, out);
  EXPECT_EQ(out,
            "# HELP jobs_total Jobs \"done\".\\nAll of them.\n"
            "# TYPE jobs_total counter\n"
            "jobs_total{queue=\"a\\\"b\"} 3\n"
            "# HELP jobs_created Jobs \"done\".\\nAll of them.\n"
            "# TYPE jobs_created gauge\n"
            "jobs_created{queue=\"a\\\"b\"} 1700000000.5\n");
}

TEST(SampleFamilyText, TypesMappedForTextFormat004) {
  SampleFamily info{"build", "Build.", "", SampleType::info, {sample("build_info", {{"version", "1.2"}}, 1)}};
  SampleFamily state{"mode", "Mode.", "", SampleType::stateset,
                     {sample("mode", {{"mode", "a"}}, 1), sample("mode", {{"mode", "b"}}, 0)}};
  SampleFamily unknown{"thing", "", "", SampleType::unknown, {sample("thing", {}, 2.5)}};
  unknown.samples[0].timestamp = 1700000000.1234;
  SampleFamily gh{"queue", "Q.", "", SampleType::gaugehistogram,
                  {sample("queue_bucket", {{"le", "1.0"}}, 2), sample("queue_bucket", {{"le", "+Inf"}}, 3),
                   sample("queue_gcount", {}, 3), sample("queue_gsum", {}, 4.5)}};
  std::string out;
  render_prometheus({info, state, unknown, gh}, out);
  EXPECT_EQ(out,
            "# HELP build_info Build.\n# TYPE build_info gauge\nbuild_info{version=\"1.2\"} 1\n"
            "# HELP mode Mode.\n# TYPE mode gauge\nmode{mode=\"a\"} 1\nmode{mode=\"b\"} 0\n"
            "# HELP thing \n# TYPE thing untyped\nthing 2.5 1700000000123\n"
            "# HELP queue Q.\n# TYPE queue histogram\nqueue_bucket{le=\"1.0\"} 2\nqueue_bucket{le=\"+Inf\"} 3\n"
            "# HELP queue_gcount Q.\n# TYPE queue_gcount gauge\nqueue_gcount 3\n"
            "# HELP queue_gsum Q.\n# TYPE queue_gsum gauge\nqueue_gsum 4.5\n");
}

TEST(SampleFamilyOpenMetrics, SamplesAsGivenWithUnitTimestampAndExemplar) {
  SampleFamily f = counter_family();
  f.unit = "jobs";
  f.name = "jobs";
  std::string out;
  render_openmetrics({f}, out);
  EXPECT_EQ(out,
            "# TYPE jobs counter\n"
            "# HELP jobs Jobs \\\"done\\\".\\nAll of them.\n"
            "# UNIT jobs jobs\n"
            "jobs_total{queue=\"a\\\"b\"} 3 # {trace_id=\"abc\"} 1 1700000001.25\n"
            "jobs_created{queue=\"a\\\"b\"} 1700000000.5\n");
}

TEST(SampleFamilyProtobuf, CounterWithCreatedAndExemplar) {
  std::string out;
  encode_prometheus_protobuf({counter_family()}, out);
  const auto messages = split_delimited(out);
  ASSERT_EQ(messages.size(), 1u);
  const ProtoMessage family = parse_proto(messages[0]);
  EXPECT_EQ(family.at(1)[0].bytes, "jobs_total");
  EXPECT_EQ(family.at(3)[0].number, 0u);  // COUNTER
  ASSERT_EQ(family.at(4).size(), 1u);     // _total and _created are one metric
  const ProtoMessage metric = parse_proto(family.at(4)[0].bytes);
  const ProtoMessage counter = parse_proto(metric.at(3)[0].bytes);
  EXPECT_EQ(counter.at(1)[0].as_double(), 3.0);
  const ProtoMessage exemplar = parse_proto(counter.at(2)[0].bytes);
  EXPECT_EQ(exemplar.at(2)[0].as_double(), 1.0);
  const ProtoMessage created = parse_proto(counter.at(3)[0].bytes);
  EXPECT_EQ(created.at(1)[0].number, 1700000000u);
  EXPECT_EQ(created.at(2)[0].number, 500000000u);
}

TEST(SampleFamilyProtobuf, HistogramGroupsBucketsByLabels) {
  SampleFamily f{"latency", "L.", "seconds", SampleType::histogram, {}};
  for (const char* route : {"/a", "/b"}) {
    f.samples.push_back(sample("latency_bucket", {{"route", route}, {"le", "0.5"}}, 1));
    f.samples.push_back(sample("latency_bucket", {{"route", route}, {"le", "+Inf"}}, 4));
    f.samples.push_back(sample("latency_count", {{"route", route}}, 4));
    f.samples.push_back(sample("latency_sum", {{"route", route}}, 9.5));
  }
  std::string out;
  encode_prometheus_protobuf({f}, out);
  const ProtoMessage family = parse_proto(split_delimited(out).at(0));
  EXPECT_EQ(family.at(3)[0].number, 4u);  // HISTOGRAM
  ASSERT_EQ(family.at(4).size(), 2u);
  const ProtoMessage metric = parse_proto(family.at(4)[1].bytes);
  ASSERT_EQ(metric.at(1).size(), 1u);  // route only: le is the bucket's
  EXPECT_EQ(parse_proto(metric.at(1)[0].bytes).at(2)[0].bytes, "/b");
  const ProtoMessage h = parse_proto(metric.at(7)[0].bytes);
  EXPECT_EQ(h.at(1)[0].number, 4u);
  EXPECT_EQ(h.at(2)[0].as_double(), 9.5);
  ASSERT_EQ(h.at(3).size(), 1u);  // +Inf left out
  const ProtoMessage bucket = parse_proto(h.at(3)[0].bytes);
  EXPECT_EQ(bucket.at(1)[0].number, 1u);
  EXPECT_EQ(bucket.at(2)[0].as_double(), 0.5);
}

TEST(SampleFamilyProtobuf, SummaryInfoStatesetUnknown) {
  SampleFamily summary{"rpc", "", "", SampleType::summary,
                       {sample("rpc", {{"quantile", "0.5"}}, 2), sample("rpc_count", {}, 10),
                        sample("rpc_sum", {}, 30)}};
  SampleFamily info{"build", "", "", SampleType::info, {sample("build_info", {{"v", "1"}}, 1)}};
  SampleFamily state{"mode", "", "", SampleType::stateset,
                     {sample("mode", {{"mode", "a"}}, 1), sample("mode", {{"mode", "b"}}, 0)}};
  SampleFamily unknown{"thing", "", "", SampleType::unknown, {sample("thing", {}, 7)}};
  unknown.samples[0].timestamp = 12.5;
  SampleFamily empty{"nothing", "", "", SampleType::gauge, {}};
  std::string out;
  encode_prometheus_protobuf({summary, info, state, unknown, empty}, out);
  const auto messages = split_delimited(out);
  ASSERT_EQ(messages.size(), 4u);  // the family without samples is left out
  const ProtoMessage s = parse_proto(parse_proto(parse_proto(messages[0]).at(4)[0].bytes).at(4)[0].bytes);
  EXPECT_EQ(s.at(1)[0].number, 10u);
  EXPECT_EQ(s.at(2)[0].as_double(), 30.0);
  const ProtoMessage q = parse_proto(s.at(3)[0].bytes);
  EXPECT_EQ(q.at(1)[0].as_double(), 0.5);
  EXPECT_EQ(q.at(2)[0].as_double(), 2.0);
  EXPECT_EQ(parse_proto(messages[1]).at(1)[0].bytes, "build_info");
  EXPECT_EQ(parse_proto(messages[2]).at(4).size(), 2u);  // one gauge per state
  const ProtoMessage thing = parse_proto(messages[3]);
  EXPECT_EQ(thing.at(3)[0].number, 3u);  // UNTYPED
  const ProtoMessage metric = parse_proto(thing.at(4)[0].bytes);
  EXPECT_EQ(parse_proto(metric.at(5)[0].bytes).at(1)[0].as_double(), 7.0);
  EXPECT_EQ(metric.at(6)[0].number, 12500u);  // timestamp_ms
}

TEST(RegistryExposition, CollectedFamiliesFollowTheRegistrysOwn) {
  Registry registry;
  registry.gauge("up", "Up.")->labels(kNoLabels)->set(1);
  const std::vector<SampleFamily> collected = {
      {"extra", "Extra.", "", SampleType::gauge, {sample("extra", {}, 5)}}};
  Registry::Scrape scrape;
  scrape.collected = collected;
  EXPECT_EQ(registry.render_prometheus(scrape),
            "# HELP up Up.\n# TYPE up gauge\nup 1\n# HELP extra Extra.\n# TYPE extra gauge\nextra 5\n");
  scrape.created_series = false;
  const std::string om = registry.render_openmetrics(scrape);
  EXPECT_EQ(om, "# TYPE up gauge\n# HELP up Up.\nup 1\n# TYPE extra gauge\n# HELP extra Extra.\nextra 5\n# EOF\n");
  EXPECT_EQ(split_delimited(registry.encode_protobuf(scrape)).size(), 2u);
}

TEST(RegistryExposition, OnlyNamedFamilies) {
  Registry registry;
  registry.counter("requests", "R.")->labels(kNoLabels)->inc();
  registry.gauge("up", "Up.")->labels(kNoLabels)->set(1);
  registry.histogram("latency", "L.")->labels(kNoLabels)->observe(1);
  const Registry::NameSet only = {"requests_total", "latency_count"};
  const auto families = registry.collect(&only);
  ASSERT_EQ(families.size(), 2u);
  EXPECT_EQ(families[0].info.name, "requests");
  EXPECT_EQ(families[1].info.name, "latency");
  Registry::Scrape scrape;
  scrape.only = Registry::NameSet{"nothing"};
  EXPECT_EQ(registry.render_prometheus(scrape), "");
}

TEST(Summary, CountAndSumOnlyByDefault) {
  Registry registry;
  auto family = registry.summary("rpc_seconds", "RPC time.", {"method"});
  family->labels({"get"})->observe(0.25);
  family->labels({"get"})->observe(0.75);
  EXPECT_EQ(registry.render_prometheus(),
            "# HELP rpc_seconds RPC time.\n# TYPE rpc_seconds summary\n"
            "rpc_seconds_sum{method=\"get\"} 1\nrpc_seconds_count{method=\"get\"} 2\n");
  const ProtoMessage message = parse_proto(split_delimited(registry.encode_protobuf()).at(0));
  EXPECT_EQ(message.at(3)[0].number, 2u);  // SUMMARY, never a native histogram
  const ProtoMessage s = parse_proto(parse_proto(message.at(4)[0].bytes).at(4)[0].bytes);
  EXPECT_EQ(s.at(1)[0].number, 2u);
  EXPECT_EQ(s.count(3), 0u);  // no quantiles
}

TEST(Summary, QuantilesWhenAskedSortedAndChecked) {
  Registry registry;
  auto family = registry.summary("size", "Sizes.", {}, {0.9, 0.5});
  for (int i = 1; i <= 100; ++i) family->labels(kNoLabels)->observe(i);
  const std::string text = registry.render_prometheus();
  EXPECT_NE(text.find("size{quantile=\"0.5\"} 5"), std::string::npos) << text;
  EXPECT_LT(text.find("quantile=\"0.5\""), text.find("quantile=\"0.9\""));
  EXPECT_EQ(text.find("0.99"), std::string::npos);
  // Re-registering: the same quantiles give the same family; others throw.
  EXPECT_EQ(registry.summary("size", "Sizes.", {}, {0.5, 0.9}), family);
  EXPECT_THROW(registry.summary("size", "Sizes.", {}, {0.5}), std::invalid_argument);
  EXPECT_THROW(registry.histogram("size", "Sizes."), std::invalid_argument);
  try {
    registry.summary("bad", "", {}, {1.5});
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "summary quantiles must be numbers in [0, 1] (0.5 for the median), got 1.5");
  }
  EXPECT_THROW(registry.summary("bad", "", {}, {0.5, 0.5}), std::invalid_argument);
  EXPECT_THROW(registry.summary("bad", "", {}, {std::nan("")}), std::invalid_argument);
  try {
    registry.summary("bad", "", {"quantile"});
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "label name 'quantile' is reserved for summaries ('bad' is exposed with a quantile label)");
  }
  registry.summary("with_le", "", {"le"});  // only quantile is reserved for a summary
}

TEST(RegistryAdd, AnotherRegistrysFamily) {
  Registry first, second;
  auto family = first.counter("jobs", "Jobs.");
  family->labels(kNoLabels)->inc(2);
  second.add(family);
  second.add(family);  // again: nothing
  EXPECT_EQ(second.render_prometheus(), first.render_prometheus());
  Registry third;
  third.counter("jobs", "Other.");
  EXPECT_THROW(third.add(family), std::invalid_argument);
}

}  // namespace
}  // namespace veda

namespace veda {
namespace {

// Switches the process to UTF-8 names for one test.
struct Utf8Names {
  Utf8Names() { set_name_validation(NameValidation::utf8); }
  ~Utf8Names() { set_name_validation(NameValidation::legacy); }
};

TEST(NameEscaping, SchemesAsPrometheusDefinesThem) {
  EXPECT_EQ(escaped_metric_name("http.requests", NameEscaping::underscores), "http_requests");
  EXPECT_EQ(escaped_metric_name("caf\xc3\xa9:x", NameEscaping::underscores), "caf_:x");  // one '_' per character
  EXPECT_EQ(escaped_metric_name("legacy_name", NameEscaping::underscores), "legacy_name");
  EXPECT_EQ(escaped_metric_name("http.requests_total", NameEscaping::dots), "http_dot_requests__total");
  EXPECT_EQ(escaped_metric_name("legacy_name", NameEscaping::dots), "legacy__name");  // dots escapes legacy names too
  EXPECT_EQ(escaped_metric_name("http.requests", NameEscaping::values), "U__http_2e_requests");
  EXPECT_EQ(escaped_metric_name("caf\xc3\xa9", NameEscaping::values), "U__caf_e9_");
  EXPECT_EQ(escaped_metric_name("legacy_name", NameEscaping::values), "legacy_name");
  EXPECT_EQ(escaped_metric_name("1st", NameEscaping::underscores), "_st");
  EXPECT_EQ(escaped_label_name("a:b", NameEscaping::underscores), "a_b");  // ':' is not legal in a label name
  EXPECT_EQ(escaped_metric_name("a.b", NameEscaping::allow_utf8), "a.b");
  for (const char* name : {"underscores", "dots", "values", "allow-utf-8"}) {
    ASSERT_TRUE(name_escaping_from(name).has_value()) << name;
    EXPECT_EQ(to_string(*name_escaping_from(name)), name);
  }
  EXPECT_FALSE(name_escaping_from("utf8").has_value());
}

TEST(NameValidation, Utf8NamesWhenAskedFor) {
  Registry registry;
  EXPECT_THROW(registry.gauge("http.requests", ""), std::invalid_argument);  // legacy by default
  Utf8Names utf8;
  auto family = registry.gauge("http.requests", "Requests.", {"k\xc3\xa9y"});
  family->labels({"v"})->set(2);
  EXPECT_THROW(registry.gauge("a\x01", ""), std::invalid_argument);
  EXPECT_THROW(registry.gauge("bad\xff", ""), std::invalid_argument);
  EXPECT_THROW(registry.gauge("g", "", {"__x"}), std::invalid_argument);
  try {
    registry.gauge("a\nb", "");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "invalid metric name 'a\\x0ab': a metric name must be valid UTF-8 text without control characters");
  }

  EXPECT_EQ(registry.render_prometheus(),
            "# HELP http_requests Requests.\n# TYPE http_requests gauge\nhttp_requests{k_y=\"v\"} 2\n");
  Registry::Scrape scrape;
  scrape.escaping = NameEscaping::allow_utf8;
  EXPECT_EQ(registry.render_prometheus(scrape),
            "# HELP \"http.requests\" Requests.\n# TYPE \"http.requests\" gauge\n"
            "{\"http.requests\",\"k\xc3\xa9y\"=\"v\"} 2\n");
  scrape.escaping = NameEscaping::values;
  scrape.created_series = false;
  EXPECT_EQ(registry.render_openmetrics(scrape),
            "# TYPE U__http_2e_requests gauge\n# HELP U__http_2e_requests Requests.\n"
            "U__http_2e_requests{U__k_e9_y=\"v\"} 2\n# EOF\n");
  scrape.escaping = NameEscaping::allow_utf8;
  const ProtoMessage message = parse_proto(split_delimited(registry.encode_protobuf(scrape)).at(0));
  EXPECT_EQ(message.at(1)[0].bytes, "http.requests");  // protobuf needs no quoting
  EXPECT_EQ(parse_proto(parse_proto(message.at(4)[0].bytes).at(1)[0].bytes).at(1)[0].bytes, "k\xc3\xa9y");
  scrape.escaping = NameEscaping::underscores;
  EXPECT_EQ(parse_proto(split_delimited(registry.encode_protobuf(scrape)).at(0)).at(1)[0].bytes, "http_requests");
}

TEST(NameEscaping, CollectedFamiliesToo) {
  SampleFamily f{"queue.depth", "Depth.", "", SampleType::gauge, {sample("queue.depth", {{"q.name", "a"}}, 3)}};
  std::string out;
  render_prometheus({f}, out, NameEscaping::allow_utf8);
  EXPECT_EQ(out, "# HELP \"queue.depth\" Depth.\n# TYPE \"queue.depth\" gauge\n{\"queue.depth\",\"q.name\"=\"a\"} 3\n");
  out.clear();
  render_openmetrics({f}, out, NameEscaping::dots);
  EXPECT_EQ(out, "# TYPE queue_dot_depth gauge\n# HELP queue_dot_depth Depth.\nqueue_dot_depth{q_dot_name=\"a\"} 3\n");
  out.clear();
  encode_prometheus_protobuf({f}, out, NameEscaping::underscores);
  EXPECT_EQ(parse_proto(split_delimited(out).at(0)).at(1)[0].bytes, "queue_depth");
}

}  // namespace
}  // namespace veda

namespace veda {
namespace {

TEST(RegistryUnit, OpenMetricsAndProtobufDeclareIt) {
  Registry registry;
  auto family = registry.counter("job_seconds_total", "Job time.", {}, "seconds");
  family->labels(kNoLabels)->inc(2);
  EXPECT_TRUE(registry.contains(family));
  EXPECT_FALSE(Registry().contains(family));
  const std::string om = registry.render_openmetrics(false);
  EXPECT_EQ(om, "# TYPE job_seconds counter\n# HELP job_seconds Job time.\n# UNIT job_seconds seconds\n"
                "job_seconds_total 2\n# EOF\n");
  EXPECT_EQ(registry.render_prometheus().find("UNIT"), std::string::npos);  // 0.0.4 has no unit line
  const ProtoMessage message = parse_proto(split_delimited(registry.encode_protobuf()).at(0));
  EXPECT_EQ(message.at(5)[0].bytes, "seconds");
  EXPECT_THROW(registry.counter("job_seconds", "Job time."), std::invalid_argument);  // another unit (none)
  try {
    registry.gauge("size", "", {}, "bytes");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "metric 'size' has the unit 'bytes', so its name must end in '_bytes' (OpenMetrics)");
  }
}

}  // namespace
}  // namespace veda
