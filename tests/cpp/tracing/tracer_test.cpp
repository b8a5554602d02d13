#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

#include "veda/tracing/tracer.hpp"

namespace veda {
namespace {

SpanId id_of(const char* hex) {
  SpanId id{};
  EXPECT_TRUE(span_id_from_hex(hex, id));
  return id;
}

TraceId trace_of(const char* hex) {
  TraceId id{};
  EXPECT_TRUE(trace_id_from_hex(hex, id));
  return id;
}

TEST(Tracer, WithNoCurrentSpanAStartedSpanIsTheRootOfANewTrace) {
  Tracer tracer(8);
  Span a = tracer.start_span("a");
  Span b = tracer.start_span("b");
  EXPECT_FALSE(a.data().parent_span_id);
  EXPECT_NE(a.data().trace_id, b.data().trace_id);
  EXPECT_TRUE(a.is_recording());
}

TEST(Tracer, TheCurrentSpanOfTheThreadIsTheParentAndScopesRestoreIt) {
  Tracer tracer(8);
  Span outer = tracer.start_span("outer");
  EXPECT_EQ(SpanScope::current(), nullptr);
  {
    SpanScope in_outer(outer);
    Span inner = tracer.start_span("inner");
    EXPECT_EQ(inner.data().trace_id, outer.data().trace_id);
    EXPECT_EQ(inner.data().parent_span_id, outer.data().span_id);
    {
      SpanScope in_inner(inner);
      EXPECT_EQ(SpanScope::current(), &inner);
      Span leaf = tracer.start_span("leaf");
      EXPECT_EQ(leaf.data().parent_span_id, inner.data().span_id);
    }
    EXPECT_EQ(SpanScope::current(), &outer);
    // Another thread has its own (empty) chain.
    std::optional<SpanId> parent_elsewhere = outer.data().span_id;
    std::thread([&] { parent_elsewhere = tracer.start_span("elsewhere").data().parent_span_id; }).join();
    EXPECT_FALSE(parent_elsewhere);
  }
  EXPECT_EQ(SpanScope::current(), nullptr);
}

TEST(Tracer, ARemoteContextWinsOverTheCurrentSpan) {
  Tracer tracer(8);
  Span current = tracer.start_span("current");
  SpanScope scope(current);
  SpanStartOptions options;
  SpanParent remote;
  remote.trace_id = trace_of("0af7651916cd43dd8448eb211c80319c");
  remote.span_id = id_of("b7ad6b7169203331");
  remote.trace_flags = 0;
  remote.trace_state = "k=v";
  remote.is_remote = true;
  options.context = remote;
  options.parent_span_id = current.data().span_id;  // ignored: the context comes first
  Span s = tracer.start_span("s", options);
  EXPECT_EQ(s.data().trace_id, remote.trace_id);
  EXPECT_EQ(s.data().parent_span_id, remote.span_id);
  EXPECT_EQ(s.data().trace_state, "k=v");
  EXPECT_EQ(s.data().flags, kSpanFlagsHasIsRemote | kSpanFlagsIsRemote);  // not sampled, remote
}

TEST(Tracer, AnExplicitParentIdIsLookedUpAmongTheAncestors) {
  Tracer tracer(8);
  SpanStartOptions in_other_trace;
  SpanParent remote;
  remote.trace_id = trace_of("11111111111111111111111111111111");
  remote.span_id = id_of("2222222222222222");
  remote.trace_state = "a=1";
  in_other_trace.context = remote;
  Span grand = tracer.start_span("grand", in_other_trace);
  SpanScope g(grand);
  Span parent = tracer.start_span("parent");
  SpanScope p(parent);
  Span current = tracer.start_span("current");
  SpanScope c(current);

  SpanStartOptions options;
  options.parent_span_id = grand.data().span_id;
  Span s = tracer.start_span("s", options);
  EXPECT_EQ(s.data().parent_span_id, grand.data().span_id);
  EXPECT_EQ(s.data().trace_id, remote.trace_id);
  EXPECT_EQ(s.data().trace_state, "a=1");  // the ancestor's identity, not only its id
}

TEST(Tracer, AnUnknownParentIdJoinsTheCurrentTraceOrANewOne) {
  Tracer tracer(8);
  SpanStartOptions options;
  options.parent_span_id = id_of("00f067aa0ba902b7");
  Span alone = tracer.start_span("alone", options);
  EXPECT_EQ(alone.data().parent_span_id, options.parent_span_id);
  EXPECT_TRUE(is_valid(alone.data().trace_id));

  Span current = tracer.start_span("current");
  SpanScope scope(current);
  Span joined = tracer.start_span("joined", options);
  EXPECT_EQ(joined.data().trace_id, current.data().trace_id);
  EXPECT_EQ(joined.data().parent_span_id, options.parent_span_id);

  options.trace_id = trace_of("4bf92f3577b34da6a3ce929d0e0e4736");
  Span given = tracer.start_span("given", options);  // the trace is given: no lookup
  EXPECT_EQ(given.data().trace_id, *options.trace_id);
  EXPECT_EQ(given.data().parent_span_id, options.parent_span_id);
}

TEST(Tracer, ATraceIdAloneMakesARootInThatTraceUnlessASpanIsCurrent) {
  Tracer tracer(8);
  SpanStartOptions options;
  options.trace_id = trace_of("4bf92f3577b34da6a3ce929d0e0e4736");
  Span root = tracer.start_span("root", options);
  EXPECT_EQ(root.data().trace_id, *options.trace_id);
  EXPECT_FALSE(root.data().parent_span_id);

  SpanScope scope(root);
  SpanStartOptions other;
  other.trace_id = trace_of("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
  Span child = tracer.start_span("child", other);
  EXPECT_EQ(child.data().trace_id, root.data().trace_id);
  EXPECT_EQ(child.data().parent_span_id, root.data().span_id);
}

TEST(Tracer, OptionsAreAppliedUnderTheLimitsAndEndedSpansReachTheStore) {
  SpanLimits limits;
  limits.max_attributes = 1;
  Tracer tracer(std::make_shared<SpanStore>(4), limits);
  SpanStartOptions options;
  options.kind = SpanKind::kClient;
  options.start_time_unix_nano = 1000;
  options.attributes = {{"a", std::int64_t{1}}, {"b", true}};
  Span s = tracer.start_span("s", options);
  EXPECT_EQ(s.data().kind, SpanKind::kClient);
  EXPECT_EQ(s.data().start_time_unix_nano, 1000);
  ASSERT_EQ(s.data().attributes.size(), 1u);
  EXPECT_EQ(s.data().dropped_attributes_count, 1u);
  EXPECT_EQ(tracer.store()->size(), 0u);
  ASSERT_TRUE(s.end(2000));
  ASSERT_EQ(tracer.store()->size(), 1u);
  EXPECT_EQ(tracer.store()->records().front()->name, "s");
  EXPECT_EQ(tracer.limits().max_attributes, 1u);
}

TEST(Tracer, ANullStoreIsRejected) {
  EXPECT_THROW(Tracer(std::shared_ptr<SpanStore>(), SpanLimits{}), std::invalid_argument);
  EXPECT_THROW(Tracer(0), std::invalid_argument);
}

TEST(ExceptionEvent, CarriesTheConventionalAttributesAndExtraOnesReplaceThem) {
  ExceptionInfo info{"ValueError", std::string("bad value"), "Traceback ...\n"};
  SpanEvent e = exception_event(info, 7, {{"exception.message", std::string("mine")}, {"retry", std::int64_t{2}}});
  EXPECT_EQ(e.name, "exception");
  EXPECT_EQ(e.time_unix_nano, 7);
  ASSERT_EQ(e.attributes.size(), 4u);
  EXPECT_EQ(e.attributes[0].key, "exception.type");
  EXPECT_EQ(std::get<std::string>(e.attributes[0].value), "ValueError");
  EXPECT_EQ(e.attributes[1].key, "exception.message");
  EXPECT_EQ(std::get<std::string>(e.attributes[1].value), "mine");  // replaced in place
  EXPECT_EQ(e.attributes[2].key, "exception.stacktrace");
  EXPECT_EQ(e.attributes[3].key, "retry");
  EXPECT_EQ(exception_description(info), "ValueError: bad value");

  ExceptionInfo mute{"Odd", std::nullopt, ""};
  EXPECT_EQ(std::get<std::string>(exception_event(mute, 0).attributes[1].value), "<exception str() failed>");
  EXPECT_EQ(exception_description(mute), "Odd");
}

}  // namespace
}  // namespace veda
