#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "veda/tracing/otlp.hpp"
#include "veda/tracing/span.hpp"
#include "veda/tracing/span_store.hpp"

namespace veda {
namespace {

std::vector<std::string> keys(const SpanData& d) {
  std::vector<std::string> out;
  for (const auto& a : d.attributes) out.push_back(a.key);
  return out;
}

TEST(Span, RootStartsANewTrace) {
  Span a = Span::start("op", SpanKind::kServer, nullptr, 42, nullptr);
  Span b = Span::start("op", SpanKind::kServer, nullptr, 42, nullptr);
  const SpanData& d = a.data();
  EXPECT_TRUE(is_valid(d.trace_id));
  EXPECT_TRUE(is_valid(d.span_id));
  EXPECT_NE(d.trace_id, b.data().trace_id);
  EXPECT_FALSE(d.parent_span_id.has_value());
  EXPECT_EQ(d.flags, kSpanFlagsSampled | kSpanFlagsHasIsRemote);
  EXPECT_EQ(d.name, "op");
  EXPECT_EQ(d.kind, SpanKind::kServer);
  EXPECT_EQ(d.start_time_unix_nano, 42);
  EXPECT_TRUE(a.is_recording());
}

TEST(Span, AnEndBeforeTheStartIsClampedToTheStart) {
  Span s = Span::start("op", SpanKind::kInternal, nullptr, 1000, nullptr);
  ASSERT_TRUE(s.end(400));
  EXPECT_EQ(s.data().start_time_unix_nano, 1000);
  EXPECT_EQ(s.data().end_time_unix_nano, 1000);
  Span t = Span::start("op", SpanKind::kInternal, nullptr, 1000, nullptr);
  ASSERT_TRUE(t.end(1500));
  EXPECT_EQ(t.data().end_time_unix_nano, 1500);
}

TEST(Span, ChildJoinsItsParentsTrace) {
  Span parent = Span::start("parent", SpanKind::kInternal, nullptr, 1, nullptr);
  const SpanParent inherited = parent.as_parent();
  Span child = Span::start("child", SpanKind::kInternal, &inherited, 2, nullptr);
  EXPECT_EQ(child.data().trace_id, parent.data().trace_id);
  ASSERT_TRUE(child.data().parent_span_id.has_value());
  EXPECT_EQ(*child.data().parent_span_id, parent.data().span_id);
  EXPECT_NE(child.data().span_id, parent.data().span_id);
  EXPECT_EQ(child.data().flags, kSpanFlagsSampled | kSpanFlagsHasIsRemote);
}

TEST(Span, RemoteParentSetsTheRemoteBitsAndKeepsTraceState) {
  SpanParent remote;
  remote.trace_id = generate_trace_id();
  remote.span_id = generate_span_id();
  remote.trace_flags = 0x00;  // not sampled upstream
  remote.trace_state = "vendor=1";
  remote.is_remote = true;
  // The tracer's sampler (parentbased) decides "not sampled" after such a parent.
  Span span = Span::start("server", SpanKind::kServer, &remote, 5, nullptr, SpanLimits{}, false);
  EXPECT_FALSE(span.is_recording());
  EXPECT_EQ(span.data().trace_id, remote.trace_id);
  EXPECT_EQ(span.data().parent_span_id, remote.span_id);
  EXPECT_EQ(span.data().trace_state, "vendor=1");
  EXPECT_EQ(span.data().flags, kSpanFlagsHasIsRemote | kSpanFlagsIsRemote);
  // A root in a known trace: the parent has a trace but no span.
  SpanParent trace_only;
  trace_only.trace_id = remote.trace_id;
  Span root = Span::start("root", SpanKind::kInternal, &trace_only, 6, nullptr);
  EXPECT_EQ(root.data().trace_id, remote.trace_id);
  EXPECT_FALSE(root.data().parent_span_id.has_value());
}

TEST(Span, SetAttributeReplacesInPlace) {
  Span span = Span::start("op", SpanKind::kInternal, nullptr, 1, nullptr);
  EXPECT_TRUE(span.set_attributes({{"a", std::int64_t{1}}, {"b", std::string("x")}, {"a", std::int64_t{2}}}));
  EXPECT_EQ(keys(span.data()), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(std::get<std::int64_t>(span.data().attributes[0].value), 2);
  EXPECT_TRUE(span.set_attribute("b", true));
  EXPECT_TRUE(span.set_attribute("c", 1.5));
  EXPECT_EQ(keys(span.data()), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(std::get<bool>(span.data().attributes[1].value));
  // Given at start, with no repeats: taken as they are.
  Span fresh = Span::start("op", SpanKind::kInternal, nullptr, 1, nullptr);
  EXPECT_TRUE(fresh.set_attributes({{"x", std::int64_t{1}}, {"y", std::int64_t{2}}}));
  EXPECT_EQ(keys(fresh.data()), (std::vector<std::string>{"x", "y"}));
}

TEST(Span, StatusFollowsOpenTelemetryRules) {
  Span span = Span::start("op", SpanKind::kInternal, nullptr, 1, nullptr);
  EXPECT_TRUE(span.set_status(StatusCode::kError, "broken"));
  EXPECT_EQ(span.data().status_message, "broken");
  EXPECT_TRUE(span.set_status(StatusCode::kUnset, "dropped"));  // a description only with ERROR
  EXPECT_EQ(span.data().status_message, "");
  EXPECT_TRUE(span.set_status(StatusCode::kOk, "dropped too"));
  EXPECT_EQ(span.data().status_code, StatusCode::kOk);
  EXPECT_EQ(span.data().status_message, "");
  EXPECT_FALSE(span.set_status(StatusCode::kError, "too late"));  // OK is final
  EXPECT_EQ(span.data().status_code, StatusCode::kOk);
}

TEST(Span, EndSharesTheRecordWithTheStoreAndFreezesIt) {
  auto store = std::make_shared<SpanStore>(4);
  Span span = Span::start("op", SpanKind::kInternal, nullptr, 10, store);
  span.set_attribute("k", std::int64_t{1});
  span.add_event({11, "ev", {}, 0});
  EXPECT_EQ(store->size(), 0u);
  EXPECT_TRUE(span.end(20));
  EXPECT_FALSE(span.is_recording());
  EXPECT_EQ(span.data().end_time_unix_nano, 20);
  const auto records = store->records();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].get(), span.record().get());  // shared, not copied
  EXPECT_FALSE(span.end(30));
  EXPECT_FALSE(span.set_attribute("late", true));
  EXPECT_FALSE(span.set_attributes({{"late", true}}));
  EXPECT_FALSE(span.add_event({31, "late", {}, 0}));
  EXPECT_FALSE(span.set_status(StatusCode::kError, "late"));
  EXPECT_EQ(store->size(), 1u);
  EXPECT_EQ(span.data().end_time_unix_nano, 20);
  EXPECT_EQ(keys(span.data()), (std::vector<std::string>{"k"}));
  EXPECT_EQ(span.data().events.size(), 1u);
  EXPECT_EQ(span.data().status_code, StatusCode::kUnset);

  Span view(records[0]);
  EXPECT_FALSE(view.is_recording());
  EXPECT_EQ(view.data().span_id, span.data().span_id);
  EXPECT_FALSE(view.end(40));
}

TEST(Span, WithoutAStoreEndKeepsTheRecordHere) {
  Span span = Span::start("op", SpanKind::kInternal, nullptr, 1, nullptr);
  EXPECT_TRUE(span.end(2));
  EXPECT_EQ(span.data().end_time_unix_nano, 2);
  EXPECT_EQ(span.record().use_count(), 1);
}

TEST(Span, LimitsDropAndCountAsOpenTelemetryDoes) {
  SpanLimits limits;
  limits.max_attributes = 2;
  limits.max_events = 1;
  limits.max_event_attributes = 1;
  limits.max_attribute_length = 3;
  Span span = Span::start("op", SpanKind::kInternal, nullptr, 1, nullptr, limits);
  span.set_attributes({{"a", std::string("abcdef")}, {"b", std::vector<std::string>{"xyzw", "q"}}, {"c", true}});
  EXPECT_TRUE(span.set_attribute("d", std::int64_t{4}));  // dropped, still recording
  EXPECT_TRUE(span.set_attribute("a", std::string("replaced")));  // an existing key is not new
  const SpanData& d = span.data();
  EXPECT_EQ(keys(d), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(std::get<std::string>(d.attributes[0].value), "rep");
  EXPECT_EQ(std::get<std::vector<std::string>>(d.attributes[1].value), (std::vector<std::string>{"xyz", "q"}));
  EXPECT_EQ(d.dropped_attributes_count, 2u);

  EXPECT_TRUE(span.add_event({2, "first", {{"k", std::string("long value")}, {"k2", true}, {"k3", 1.0}}, 0}));
  EXPECT_TRUE(span.add_event({3, "second", {}, 0}));
  ASSERT_EQ(d.events.size(), 1u);
  EXPECT_EQ(d.dropped_events_count, 1u);
  ASSERT_EQ(d.events[0].attributes.size(), 1u);
  EXPECT_EQ(std::get<std::string>(d.events[0].attributes[0].value), "lon");
  EXPECT_EQ(d.events[0].dropped_attributes_count, 2u);
}

TEST(Span, LinksFollowTheLinkLimitsAndStopAtTheEnd) {
  SpanLimits limits;
  limits.max_links = 2;
  limits.max_link_attributes = 1;
  limits.max_attribute_length = 2;
  Span span = Span::start("op", SpanKind::kInternal, nullptr, 1, nullptr, limits);
  SpanLink first;
  first.trace_id = generate_trace_id();
  first.span_id = generate_span_id();
  first.trace_state = "k=v";
  first.attributes = {{"why", std::string("retry")}, {"n", std::int64_t{2}}};
  EXPECT_TRUE(span.add_link(first));
  EXPECT_TRUE(span.add_link(SpanLink{}));
  EXPECT_TRUE(span.add_link(SpanLink{}));  // past max_links: counted
  const SpanData& d = span.data();
  ASSERT_EQ(d.links.size(), 2u);
  EXPECT_EQ(d.dropped_links_count, 1u);
  EXPECT_EQ(d.links[0].trace_id, first.trace_id);
  EXPECT_EQ(d.links[0].span_id, first.span_id);
  EXPECT_EQ(d.links[0].trace_state, "k=v");
  ASSERT_EQ(d.links[0].attributes.size(), 1u);
  EXPECT_EQ(std::get<std::string>(d.links[0].attributes[0].value), "re");
  EXPECT_EQ(d.links[0].dropped_attributes_count, 1u);
  EXPECT_TRUE(span.end(2));
  EXPECT_FALSE(span.add_link(first));
  EXPECT_EQ(span.data().links.size(), 2u);
}

TEST(Span, UpdateNameRenamesUntilTheEnd) {
  Span span = Span::start("first", SpanKind::kInternal, nullptr, 1, nullptr);
  EXPECT_TRUE(span.update_name("second"));
  EXPECT_EQ(span.data().name, "second");
  span.end(2);
  EXPECT_FALSE(span.update_name("third"));
  EXPECT_EQ(span.data().name, "second");
}

TEST(Span, AnUnsampledSpanTakesNoLinksAndKeepsItsName) {
  Span span = Span::start("op", SpanKind::kInternal, nullptr, 1, nullptr, {}, /*sampled=*/false);
  EXPECT_FALSE(span.add_link(SpanLink{}));
  EXPECT_FALSE(span.update_name("other"));
  EXPECT_TRUE(span.data().links.empty());
  EXPECT_EQ(span.data().name, "op");
}

TEST(Span, LengthLimitCountsCodePointsNotBytes) {
  AttributeValue value = std::string("h\xc3\xa9llo \xe2\x82\xac!");  // "héllo €!"
  truncate_strings(value, 2);
  EXPECT_EQ(std::get<std::string>(value), "h\xc3\xa9");
  value = std::string("ab\xe2\x82\xac");
  truncate_strings(value, 3);
  EXPECT_EQ(std::get<std::string>(value), "ab\xe2\x82\xac");  // exactly three: unchanged
  truncate_strings(value, 0);
  EXPECT_EQ(std::get<std::string>(value), "");
  AttributeValue number = std::int64_t{123456};
  truncate_strings(number, 1);
  EXPECT_EQ(std::get<std::int64_t>(number), 123456);
}

TEST(Span, DefaultLimitsAreOpenTelemetrysAndKeepEveryValueWhole) {
  const SpanLimits limits;
  EXPECT_EQ(limits.max_attributes, 128u);
  EXPECT_EQ(limits.max_events, 128u);
  EXPECT_EQ(limits.max_event_attributes, 128u);
  Span span = Span::start("op", SpanKind::kInternal, nullptr, 1, nullptr);
  for (int i = 0; i < 200; ++i) span.set_attribute("k" + std::to_string(i), std::string(1000, 'x'));
  for (int i = 0; i < 200; ++i) span.add_event({i, "e", {}, 0});
  EXPECT_EQ(span.data().attributes.size(), 128u);
  EXPECT_EQ(span.data().dropped_attributes_count, 72u);
  EXPECT_EQ(span.data().events.size(), 128u);
  EXPECT_EQ(span.data().dropped_events_count, 72u);
  EXPECT_EQ(std::get<std::string>(span.data().attributes[0].value).size(), 1000u);
}

TEST(Span, SharedAndCopiedRecordsEncodeTheSame) {
  auto store = std::make_shared<SpanStore>(8);
  for (int i = 0; i < 3; ++i) {
    Span span = Span::start("op" + std::to_string(i), SpanKind::kClient, nullptr, i, store);
    span.set_attribute("i", std::int64_t{i});
    span.end(i + 1);
  }
  const Attributes resource{{"service.name", std::string("svc")}};
  auto records = store->records();
  EXPECT_EQ(encode_otlp_trace_records(resource, "s", "1", records), encode_otlp_traces(resource, "s", "1", store->snapshot()));
  records.insert(records.begin() + 1, nullptr);  // skipped
  EXPECT_EQ(encode_otlp_trace_records(resource, "s", "1", records), encode_otlp_traces(resource, "s", "1", store->snapshot()));
}

TEST(Span, ConcurrentSpansAndReadersShareRecordsSafely) {
  auto store = std::make_shared<SpanStore>(64);
  std::atomic<bool> done{false};
  std::thread reader([&] {
    std::size_t seen = 0;
    while (!done.load(std::memory_order_acquire)) {
      for (const auto& r : store->records()) seen += r->attributes.size() + r->name.size();
    }
    EXPECT_GE(seen, 0u);
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < 3; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        Span span = Span::start("w" + std::to_string(t), SpanKind::kInternal, nullptr, i, store);
        span.set_attribute("i", std::int64_t{i});
        span.add_event({i, "ev", {}, 0});
        span.end(i + 1);
        span.set_attribute("late", true);  // ignored: never races with the reader
      }
    });
  }
  for (auto& w : writers) w.join();
  done.store(true, std::memory_order_release);
  reader.join();
  EXPECT_EQ(store->size(), 64u);
  EXPECT_EQ(store->dropped(), 3u * 2000u - 64u);
  for (const auto& r : store->records()) EXPECT_EQ(r->attributes.size(), 1u);
}

}  // namespace
}  // namespace veda
