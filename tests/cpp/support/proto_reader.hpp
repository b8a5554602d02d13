// A protobuf wire-format reader for tests: splits a message into its fields
// so a test can check what an encoder wrote without a protobuf library.
#pragma once

#include <cstdint>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace veda::test {

struct ProtoField {
  std::uint32_t wire_type = 0;
  std::uint64_t number = 0;  // varint and fixed64 values
  std::string bytes;         // length-delimited values
  double as_double() const {
    double d = 0;
    std::memcpy(&d, &number, sizeof d);
    return d;
  }
  std::int64_t as_sint() const {
    return static_cast<std::int64_t>(number >> 1) ^ -static_cast<std::int64_t>(number & 1);
  }
};

inline std::uint64_t read_varint(std::string_view data, std::size_t& pos) {
  std::uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (pos >= data.size()) throw std::runtime_error("truncated varint");
    const auto byte = static_cast<unsigned char>(data[pos++]);
    v |= static_cast<std::uint64_t>(byte & 0x7F) << shift;
    if ((byte & 0x80) == 0) return v;
  }
  throw std::runtime_error("varint too long");
}

// Field number -> its occurrences, in order.
using ProtoMessage = std::map<std::uint32_t, std::vector<ProtoField>>;

inline ProtoMessage parse_proto(std::string_view data) {
  ProtoMessage out;
  std::size_t pos = 0;
  while (pos < data.size()) {
    const std::uint64_t tag = read_varint(data, pos);
    ProtoField f;
    f.wire_type = static_cast<std::uint32_t>(tag & 7);
    switch (f.wire_type) {
      case 0:
        f.number = read_varint(data, pos);
        break;
      case 1:
        if (pos + 8 > data.size()) throw std::runtime_error("truncated fixed64");
        std::memcpy(&f.number, data.data() + pos, 8);
        pos += 8;
        break;
      case 2: {
        const std::uint64_t size = read_varint(data, pos);
        if (pos + size > data.size()) throw std::runtime_error("truncated bytes");
        f.bytes.assign(data.substr(pos, size));
        pos += size;
        break;
      }
      default:
        throw std::runtime_error("unexpected wire type " + std::to_string(f.wire_type));
    }
    out[static_cast<std::uint32_t>(tag >> 3)].push_back(std::move(f));
  }
  return out;
}

// Splits a stream of varint-length-prefixed messages.
inline std::vector<std::string> split_delimited(std::string_view data) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < data.size()) {
    const std::uint64_t size = read_varint(data, pos);
    if (pos + size > data.size()) throw std::runtime_error("truncated delimited message");
    out.emplace_back(data.substr(pos, size));
    pos += size;
  }
  return out;
}

}  // namespace veda::test
