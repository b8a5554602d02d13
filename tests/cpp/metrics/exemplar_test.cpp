// Tests for exemplars (veda/metrics/exemplar.hpp): kept by counters and
// histograms, rendered in OpenMetrics and the protobuf exposition.
#include "veda/metrics/exemplar.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include "support/proto_reader.hpp"
#include "support/test_support.hpp"
#include "veda/metrics/protobuf_format.hpp"
#include "veda/metrics/registry.hpp"

namespace veda {
namespace {

using test::parse_proto;
using test::ProtoMessage;
using test::split_delimited;

using test::kNoLabels;

Exemplar span_exemplar(std::int64_t unix_nano = 1700000000500000000) {
  Exemplar e;
  e.has_span = true;
  e.trace_id = {0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36};
  e.span_id = {0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7};
  e.unix_nano = unix_nano;
  return e;
}

TEST(Exemplars, LabelRuleNamesTheLengthAndTheLimit) {
  check_exemplar_labels({{"trace_id", std::string(120, 'a')}});  // 128 exactly
  try {
    check_exemplar_labels({{"trace_id", std::string(121, 'a')}});
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(),
                 "exemplar labels are 129 UTF-8 characters long (names and values together); OpenMetrics allows at "
                 "most 128");
  }
  check_exemplar_labels({{"k", std::string(63, 'x') + std::string(63, 'y')}});  // 127
  // Characters, not bytes: 100 two-byte characters are 100.
  std::string wide;
  for (int i = 0; i < 100; ++i) wide += "\xC3\xA9";
  check_exemplar_labels({{"k", wide}});
  EXPECT_THROW(check_exemplar_labels({{"bad name", "x"}}), std::invalid_argument);
}

TEST(Exemplars, CounterAndClassicBucketsInOpenMetrics) {
  Registry r;
  Counter& jobs = *r.counter("jobs", "Jobs.", {})->labels(kNoLabels);
  jobs.inc(2);
  jobs.inc(3, span_exemplar());
  Histogram& rtt = *r.histogram("rtt_seconds", "RTT.", {}, 6, {0.1, 1})->labels(kNoLabels);
  rtt.observe(0.05);
  rtt.observe(0.5, span_exemplar(1700000001000000000));
  EXPECT_THROW(rtt.observe_checked(0.5, Exemplar{{{"k", std::string(200, 'x')}}, 0, 0}), std::invalid_argument);
  EXPECT_EQ(rtt.count(), 2u);  // the refused one recorded nothing
  const std::string om = r.render_openmetrics(false);
  EXPECT_NE(om.find("jobs_total 5 # {trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\",span_id=\"00f067aa0ba902b7\"} "
                    "3 1700000000.5\n"),
            std::string::npos)
      << om;
  EXPECT_NE(om.find("rtt_seconds_bucket{le=\"0.1\"} 1\n"), std::string::npos) << om;
  EXPECT_NE(om.find("rtt_seconds_bucket{le=\"1.0\"} 2 # {trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\","
                    "span_id=\"00f067aa0ba902b7\"} 0.5 1700000001\n"),
            std::string::npos)
      << om;
  // 0.0.4 has no exemplars.
  EXPECT_EQ(r.render_prometheus().find(" # {"), std::string::npos);
}

TEST(Exemplars, InTheProtobufExposition) {
  Registry r;
  r.counter("jobs", "Jobs.", {})->labels(kNoLabels)->inc(1, span_exemplar());
  r.histogram("rtt_seconds", "RTT.", {}, 6, {0.1, 1})->labels(kNoLabels)->observe(0.05, span_exemplar());
  Histogram& native = *r.histogram("wait_ms", "Wait.", {})->labels(kNoLabels);
  for (int i = 0; i < 6; ++i) native.observe(1.0 + i, span_exemplar());  // keeps the last kNativeExemplars
  std::string out;
  encode_prometheus_protobuf(r.collect(), out);
  const auto families = split_delimited(out);
  ASSERT_EQ(families.size(), 3u);

  const ProtoMessage counter = parse_proto(parse_proto(parse_proto(families[0]).at(4)[0].bytes).at(3)[0].bytes);
  EXPECT_EQ(counter.at(1)[0].as_double(), 1.0);
  const ProtoMessage ce = parse_proto(counter.at(2)[0].bytes);
  EXPECT_EQ(parse_proto(ce.at(1)[0].bytes).at(1)[0].bytes, "trace_id");
  EXPECT_EQ(parse_proto(ce.at(1)[1].bytes).at(2)[0].bytes, "00f067aa0ba902b7");
  EXPECT_EQ(ce.at(2)[0].as_double(), 1.0);
  EXPECT_EQ(parse_proto(ce.at(3)[0].bytes).at(1)[0].number, 1700000000u);
  EXPECT_EQ(counter.count(3), 1u);  // created_timestamp still there

  const ProtoMessage hist = parse_proto(parse_proto(parse_proto(families[1]).at(4)[0].bytes).at(7)[0].bytes);
  const ProtoMessage first_bucket = parse_proto(hist.at(3)[0].bytes);
  EXPECT_EQ(first_bucket.at(1)[0].number, 1u);
  EXPECT_EQ(parse_proto(first_bucket.at(3)[0].bytes).at(2)[0].as_double(), 0.05);
  EXPECT_EQ(parse_proto(hist.at(3)[1].bytes).count(3), 0u);  // the other bucket has none
  EXPECT_EQ(hist.count(16), 0u);

  const ProtoMessage wait = parse_proto(parse_proto(parse_proto(families[2]).at(4)[0].bytes).at(7)[0].bytes);
  ASSERT_EQ(wait.at(16).size(), Histogram::kNativeExemplars);
  std::vector<double> kept;
  for (const auto& f : wait.at(16)) kept.push_back(parse_proto(f.bytes).at(2)[0].as_double());
  std::sort(kept.begin(), kept.end());
  EXPECT_EQ(kept, (std::vector<double>{3, 4, 5, 6}));
}

// Many threads record with exemplars while another renders: no torn exemplar
// (TSan checks the rest).
TEST(Exemplars, ConcurrentWritersAndReaders) {
  Registry r;
  Histogram& h = *r.histogram("c_ms", "C.", {}, 6, {1, 10})->labels(kNoLabels);
  Counter& c = *r.counter("c", "C.", {})->labels(kNoLabels);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        h.observe(0.5 + t, Exemplar{{{"thread", std::to_string(t)}}, 0, 0});
        c.inc(1, Exemplar{{{"thread", std::to_string(t)}}, 0, 0});
      }
    });
  }
  for (int i = 0; i < 50; ++i) {
    for (const auto& [slot, e] : h.exemplars()) {
      ASSERT_EQ(e.labels.size(), 1u);
      EXPECT_EQ(e.value, 0.5 + std::stoi(e.labels[0].second));
      EXPECT_GE(slot, 0);
    }
    (void)r.render_openmetrics();
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(h.count(), 8000u);
  EXPECT_EQ(c.get(), 8000.0);
}

}  // namespace
}  // namespace veda
