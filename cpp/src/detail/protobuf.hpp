// veda::detail::pb: the protobuf wire-format writer behind every binary
// encoder of the core (OTLP traces and metrics). Fields are appended to a
// std::string in the order the caller writes them; a nested message is
// encoded into its own string and written with put_message(). No protobuf
// library is involved.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace veda::detail::pb {

// Wire types.
inline constexpr std::uint32_t kVarint = 0;
inline constexpr std::uint32_t kFixed64 = 1;
inline constexpr std::uint32_t kLen = 2;
inline constexpr std::uint32_t kFixed32 = 5;

inline void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

// Bytes put_varint() writes for v.
inline std::size_t varint_size(std::uint64_t v) {
  std::size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

// Bytes of a length-delimited field (tag of a field number below 16, length, body).
inline std::size_t len_field_size(std::size_t body) { return 1 + varint_size(body) + body; }

inline void put_tag(std::string& out, std::uint32_t field, std::uint32_t wire_type) {
  put_varint(out, (static_cast<std::uint64_t>(field) << 3) | wire_type);
}

// Starts a length-delimited field whose body of `size` bytes the caller writes next.
inline void put_len_header(std::string& out, std::uint32_t field, std::size_t size) {
  put_tag(out, field, kLen);
  put_varint(out, size);
}

inline void put_fixed(std::string& out, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

inline void put_bytes(std::string& out, std::uint32_t field, const void* data, std::size_t size) {
  put_tag(out, field, kLen);
  put_varint(out, size);
  out.append(static_cast<const char*>(data), size);
}

inline void put_string(std::string& out, std::uint32_t field, std::string_view s) {
  put_bytes(out, field, s.data(), s.size());
}

// A proto3 scalar field: left out when it holds the default.
inline void put_nonempty(std::string& out, std::uint32_t field, std::string_view s) {
  if (!s.empty()) put_string(out, field, s);
}

inline void put_uint(std::string& out, std::uint32_t field, std::uint64_t v) {
  if (v == 0) return;
  put_tag(out, field, kVarint);
  put_varint(out, v);
}

inline void put_fixed64(std::string& out, std::uint32_t field, std::int64_t v) {
  if (v == 0) return;
  put_tag(out, field, kFixed64);
  put_fixed(out, static_cast<std::uint64_t>(v), 8);
}

inline void put_message(std::string& out, std::uint32_t field, const std::string& body) {
  put_bytes(out, field, body.data(), body.size());
}

// A double's 8 bytes as protobuf writes them (one element of a packed repeated double).
inline void put_double_bits(std::string& out, double v) {
  std::uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof bits);
  put_fixed(out, bits, 8);
}

// A double field (wire type fixed64), written even when 0 (for fields that
// are `optional` or in a oneof, whose presence matters).
inline void put_double(std::string& out, std::uint32_t field, double v) {
  put_tag(out, field, kFixed64);
  put_double_bits(out, v);
}

// A sint32 field (zigzag varint); left out when 0.
inline void put_sint32(std::string& out, std::uint32_t field, std::int32_t v) {
  if (v == 0) return;
  const auto u = static_cast<std::uint32_t>(v);
  put_tag(out, field, kVarint);
  put_varint(out, (u << 1) ^ static_cast<std::uint32_t>(-(static_cast<std::int32_t>(u >> 31))));
}

// Zigzag encodings of sint32/sint64.
inline std::uint64_t zigzag(std::int64_t v) {
  return (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(-(static_cast<std::int64_t>(static_cast<std::uint64_t>(v) >> 63)));
}

// proto2 `optional` fields: written even when 0, since presence is part of the value.
inline void put_uint_always(std::string& out, std::uint32_t field, std::uint64_t v) {
  put_tag(out, field, kVarint);
  put_varint(out, v);
}
inline void put_sint_always(std::string& out, std::uint32_t field, std::int64_t v) {
  put_tag(out, field, kVarint);
  put_varint(out, zigzag(v));
}

// A fixed64 field written even when 0.
inline void put_fixed64_always(std::string& out, std::uint32_t field, std::uint64_t v) {
  put_tag(out, field, kFixed64);
  put_fixed(out, v, 8);
}

}  // namespace veda::detail::pb
