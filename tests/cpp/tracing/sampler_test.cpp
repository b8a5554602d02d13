// Tests for veda::Sampler (OpenTelemetry's samplers) and the tracer's unsampled spans.
#include "veda/tracing/sampler.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "veda/tracing/tracer.hpp"

namespace veda {
namespace {

TraceId with_low(unsigned long long low) {
  TraceId id{};
  id[0] = 0xab;  // the upper half does not matter
  for (int i = 15; i >= 8; --i, low >>= 8) id[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(low & 0xff);
  return id;
}

SpanParent parent_with(bool sampled, bool remote) {
  SpanParent p;
  p.trace_id = with_low(0);
  p.span_id = SpanId{1};
  p.trace_flags = sampled ? kSpanFlagsSampled : 0;
  p.is_remote = remote;
  return p;
}

TEST(Sampler, TraceIdRatioComparesTheLowerEightBytesAsTheSdksDo) {
  const Sampler quarter(Sampler::Kind::traceidratio, 0.25);
  EXPECT_TRUE(quarter.should_sample(with_low(0x3fffffffffffffffull), nullptr));
  EXPECT_FALSE(quarter.should_sample(with_low(0x4000000000000000ull), nullptr));  // the bound itself is out
  EXPECT_FALSE(Sampler(Sampler::Kind::traceidratio, 0.0).should_sample(with_low(0), nullptr));
  EXPECT_TRUE(Sampler(Sampler::Kind::traceidratio, 1.0).should_sample(with_low(~0ull), nullptr));
  // A plain ratio sampler ignores the parent.
  const SpanParent unsampled = parent_with(false, true);
  EXPECT_TRUE(quarter.should_sample(with_low(0), &unsampled));
  int sampled = 0;
  for (int i = 0; i < 20000; ++i) sampled += quarter.should_sample(generate_trace_id(), nullptr);
  EXPECT_NEAR(sampled, 5000, 500);
}

TEST(Sampler, ParentBasedFollowsTheParentAndTheRootRuleOtherwise) {
  const Sampler on;  // parentbased_always_on, the default
  const Sampler off(Sampler::Kind::parentbased_always_off);
  const SpanParent sampled_remote = parent_with(true, true);
  const SpanParent unsampled_local = parent_with(false, false);
  EXPECT_TRUE(on.should_sample(with_low(1), nullptr));
  EXPECT_FALSE(off.should_sample(with_low(1), nullptr));
  EXPECT_TRUE(off.should_sample(with_low(1), &sampled_remote));
  EXPECT_FALSE(on.should_sample(with_low(1), &unsampled_local));
  SpanParent root_of_trace;  // a trace id but no parent span: a root
  root_of_trace.trace_flags = 0;
  EXPECT_TRUE(on.should_sample(with_low(1), &root_of_trace));
  EXPECT_EQ(Sampler(Sampler::Kind::parentbased_traceidratio, 0.5).description(),
            "ParentBased{root:TraceIdRatioBased{0.5}}");
  EXPECT_EQ(Sampler(Sampler::Kind::always_off).description(), "AlwaysOffSampler");
}

TEST(Sampler, NamesAndRatiosAreChecked) {
  EXPECT_EQ(Sampler::from_name("traceidratio", "0.1").ratio(), 0.1);
  EXPECT_EQ(Sampler::from_name("parentbased_traceidratio").ratio(), 1.0);
  auto message = [](auto&& f) {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message([] { Sampler::from_name("sometimes"); }),
            "unknown sampler 'sometimes'; expected one of: always_on, always_off, traceidratio, "
            "parentbased_always_on, parentbased_always_off, parentbased_traceidratio");
  EXPECT_EQ(message([] { Sampler::from_name("traceidratio", "half"); }),
            "the sampler argument must be a ratio in [0, 1], got 'half'");
  EXPECT_EQ(message([] { Sampler(Sampler::Kind::traceidratio, 1.5); }),
            "a trace id ratio sampler's ratio must be a number in [0, 1], got 1.5");
}

TEST(Sampler, AnUnsampledSpanKeepsItsIdsRecordsNothingAndIsNeverStored) {
  Tracer tracer(16, SpanLimits{}, Sampler(Sampler::Kind::parentbased_always_off));
  SpanStartOptions options;
  options.attributes.push_back({"k", std::int64_t{1}});
  Span root = tracer.start_span("root", options);
  EXPECT_FALSE(root.is_recording());
  EXPECT_TRUE(is_valid(root.data().trace_id));
  EXPECT_TRUE(is_valid(root.data().span_id));
  EXPECT_EQ(root.data().flags & kSpanFlagsSampled, 0u);
  EXPECT_TRUE(root.data().attributes.empty());
  EXPECT_FALSE(root.set_attribute("x", std::string("y")));
  {
    SpanScope scope(root);
    Span child = tracer.start_span("child");  // follows its unsampled parent
    EXPECT_FALSE(child.is_recording());
    EXPECT_EQ(child.data().trace_id, root.data().trace_id);
    EXPECT_FALSE(child.end(unix_nano_now()));
  }
  EXPECT_FALSE(root.end(unix_nano_now()));
  EXPECT_EQ(tracer.store()->size(), 0u);
  // A sampled remote parent is followed even by parentbased_always_off.
  SpanStartOptions remote;
  remote.context = parent_with(true, true);
  Span server = tracer.start_span("server", remote);
  EXPECT_TRUE(server.is_recording());
  EXPECT_TRUE(server.end(unix_nano_now()));
  EXPECT_EQ(tracer.store()->size(), 1u);
}

}  // namespace
}  // namespace veda
