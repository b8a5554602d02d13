#include "veda/tracing/otlp.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "support/test_support.hpp"

namespace veda {
namespace {

using test::bytes;

TEST(OtlpEncode, EmptyRequestHasResourceAndScope) {
  const std::string out = encode_otlp_traces({}, "s", "1", {});
  // request{1: resource_spans{1: resource{}, 2: scope_spans{1: scope{1: "s", 2: "1"}}}}
  EXPECT_EQ(out, bytes({0x0A, 0x0C, 0x0A, 0x00, 0x12, 0x08, 0x0A, 0x06, 0x0A, 0x01, 's', 0x12, 0x01, '1'}));
}

TEST(OtlpEncode, SpanFieldsInFieldOrderDefaultsLeftOut) {
  SpanData span;
  for (std::size_t i = 0; i < span.trace_id.size(); ++i) span.trace_id[i] = static_cast<std::uint8_t>(i + 1);
  for (std::size_t i = 0; i < span.span_id.size(); ++i) span.span_id[i] = static_cast<std::uint8_t>(i + 1);
  span.name = "op";
  span.kind = SpanKind::kServer;
  span.start_time_unix_nano = 1;
  span.end_time_unix_nano = 2;
  span.attributes.push_back({"i", AttributeValue{std::int64_t{-1}}});
  span.flags = 0x101;
  const std::string out = encode_otlp_traces({}, "", "", {span});

  std::string body;
  body += bytes({0x0A, 16});
  body.append(reinterpret_cast<const char*>(span.trace_id.data()), 16);
  body += bytes({0x12, 8});
  body.append(reinterpret_cast<const char*>(span.span_id.data()), 8);
  body += bytes({0x2A, 2, 'o', 'p', 0x30, 2});
  body += bytes({0x39, 1, 0, 0, 0, 0, 0, 0, 0, 0x41, 2, 0, 0, 0, 0, 0, 0, 0});
  // attributes{1: "i", 2: {3: -1 as a 10-byte varint}}
  body += bytes({0x4A, 16, 0x0A, 1, 'i', 0x12, 11, 0x18, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01});
  body += bytes({0x85, 0x01, 0x01, 0x01, 0x00, 0x00});  // flags: field 16, fixed32
  const std::string span_field = bytes({0x12, static_cast<int>(body.size())}) + body;
  const std::string scope_spans = bytes({0x0A, 0x00}) + span_field;
  const std::string resource_spans = bytes({0x0A, 0x00, 0x12, static_cast<int>(scope_spans.size())}) + scope_spans;
  EXPECT_EQ(out, bytes({0x0A, static_cast<int>(resource_spans.size())}) + resource_spans);
}

TEST(OtlpEncode, LinksAreField13WithTheirOwnFieldsInOrder) {
  SpanData span;
  SpanLink link;
  for (std::size_t i = 0; i < link.trace_id.size(); ++i) link.trace_id[i] = static_cast<std::uint8_t>(0x10 + i);
  for (std::size_t i = 0; i < link.span_id.size(); ++i) link.span_id[i] = static_cast<std::uint8_t>(0x20 + i);
  link.trace_state = "a=b";
  link.attributes.push_back({"t", AttributeValue{true}});
  link.dropped_attributes_count = 3;
  link.flags = 0x301;
  span.links.push_back(link);
  span.flags = 0;
  const std::string out = encode_otlp_traces({}, "", "", {span});

  std::string body;
  body += bytes({0x0A, 16});
  body.append(reinterpret_cast<const char*>(link.trace_id.data()), 16);
  body += bytes({0x12, 8});
  body.append(reinterpret_cast<const char*>(link.span_id.data()), 8);
  body += bytes({0x1A, 3, 'a', '=', 'b'});
  body += bytes({0x22, 7, 0x0A, 1, 't', 0x12, 2, 0x10, 0x01});  // attributes{1: "t", 2: {2: true}}
  body += bytes({0x28, 3});                                   // dropped_attributes_count
  body += bytes({0x35, 0x01, 0x03, 0x00, 0x00});              // flags: field 6, fixed32
  const std::string link_field = bytes({0x6A, static_cast<int>(body.size())}) + body;
  EXPECT_NE(out.find(link_field), std::string::npos);
}

TEST(OtlpEncode, EmptyListIsAnEmptyArrayValue) {
  const std::string out =
      encode_otlp_traces({{"e", AttributeValue{std::vector<bool>{}}}}, "", "", {});
  // resource{1: kv{1: "e", 2: any{5: array{}}}}
  const std::string kv = bytes({0x0A, 1, 'e', 0x12, 2, 0x2A, 0});
  const std::string resource = bytes({0x0A, static_cast<int>(kv.size())}) + kv;
  const std::string rs = bytes({0x0A, static_cast<int>(resource.size())}) + resource + bytes({0x12, 2, 0x0A, 0});
  EXPECT_EQ(out, bytes({0x0A, static_cast<int>(rs.size())}) + rs);
}

}  // namespace
}  // namespace veda
