// The layout of a multi-process file and of the archive, and the byte
// coding both use (see veda/metrics/multiprocess.hpp).
//
// A process's file: a FileHeader (one page), then records, each a
// RecordHeader, its key and, for a series, its cells on a cache line:
// - a family record: the FamilyInfo (encode_info());
// - a series record: the offset of its family record, its creation time,
//   its label values, then the cells (veda/metrics/detail/cells.hpp).
// Records are written whole before FileHeader::used moves past them
// (release), so a reader that loads `used` (acquire) sees only complete
// records. Nothing is ever moved; a removed series is only flagged.
// Integers are in the machine's byte order: the files are read on the
// machine that wrote them.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "veda/metrics/family.hpp"

namespace veda::multiprocess::detail {

inline constexpr char kFileMagic[8] = {'P', 'Y', 'V', 'E', 'D', 'A', 'M', 'P'};
inline constexpr char kArchiveMagic[8] = {'P', 'Y', 'V', 'E', 'D', 'A', 'A', 'R'};
inline constexpr std::uint32_t kVersion = 2;  // 2: FamilyInfo::up_down
inline constexpr std::size_t kHeaderBytes = 4096;
inline constexpr std::size_t kRecordAlign = 64;

inline constexpr std::string_view kFilePrefix = "pyveda-";
inline constexpr std::string_view kFileSuffix = ".mp";
inline constexpr std::string_view kArchiveName = "pyveda-archive.bin";
inline constexpr std::string_view kLockName = "pyveda.lock";
inline constexpr std::string_view kArchiveTemporaryPrefix = "pyveda-archive.tmp.";

struct FileHeader {
  char magic[8];
  std::uint32_t version;
  std::uint32_t header_bytes;
  std::uint64_t capacity;
  std::atomic<std::uint64_t> used;  // end of the last complete record
  std::int64_t pid;
  std::int64_t start_unix_nano;
  std::uint32_t service_bytes;
  char service[256];
};
static_assert(sizeof(FileHeader) <= kHeaderBytes, "the header fits its page");

enum RecordKind : std::uint32_t { kFamilyRecord = 0x464d4c59u, kSeriesRecord = 0x53524945u };

struct RecordHeader {
  std::uint32_t kind;
  std::uint32_t key_bytes;    // the key that follows this header
  std::uint64_t size;         // the whole record, a multiple of kRecordAlign
  std::uint64_t cells;        // offset of the cells from the record's start (series); 0 for a family
  std::atomic<std::uint32_t> removed;
  std::uint32_t check;        // check_of() the fields above
};

inline std::uint32_t check_of(const RecordHeader& h) noexcept {
  const std::uint64_t mix = (std::uint64_t{h.kind} * 0x9e3779b97f4a7c15ull) ^ (std::uint64_t{h.key_bytes} << 17) ^
                            (h.size * 0xbf58476d1ce4e5b9ull) ^ (h.cells * 0x94d049bb133111ebull);
  return static_cast<std::uint32_t>(mix ^ (mix >> 32));
}

inline std::size_t round_up(std::size_t n, std::size_t to) noexcept { return (n + to - 1) / to * to; }

// Appends fixed-size numbers and length-prefixed strings.
class Writer {
 public:
  template <class T>
  void put(T value) {
    static_assert(std::is_trivially_copyable_v<T>, "numbers only");
    out_.append(reinterpret_cast<const char*>(&value), sizeof value);
  }
  void put_string(std::string_view s) {
    put(static_cast<std::uint32_t>(s.size()));
    out_.append(s.data(), s.size());
  }
  void put_strings(const std::vector<std::string>& list) {
    put(static_cast<std::uint32_t>(list.size()));
    for (const std::string& s : list) put_string(s);
  }
  void put_doubles(const std::vector<double>& list) {
    put(static_cast<std::uint32_t>(list.size()));
    for (const double d : list) put(d);
  }
  std::string& bytes() noexcept { return out_; }

 private:
  std::string out_;
};

// What a damaged file gives: the reason, without the file's name (the
// reader of the directory adds it).
struct FormatError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Reads what Writer wrote, checking every length against the bytes there are.
class Reader {
 public:
  Reader(const char* data, std::size_t size) : at_(data), end_(data + size) {}

  template <class T>
  T get() {
    T value;
    need(sizeof value);
    std::memcpy(&value, at_, sizeof value);
    at_ += sizeof value;
    return value;
  }
  std::string get_string() {
    const auto n = get<std::uint32_t>();
    need(n);
    std::string s(at_, n);
    at_ += n;
    return s;
  }
  std::vector<std::string> get_strings() {
    const auto n = get<std::uint32_t>();
    need(std::size_t{n} * sizeof(std::uint32_t));
    std::vector<std::string> out;
    out.reserve(n);
    for (std::uint32_t i = 0; i < n; ++i) out.push_back(get_string());
    return out;
  }
  std::vector<double> get_doubles() {
    const auto n = get<std::uint32_t>();
    need(std::size_t{n} * sizeof(double));
    std::vector<double> out(n);
    for (double& d : out) d = get<double>();
    return out;
  }
  bool done() const noexcept { return at_ == end_; }

 private:
  void need(std::size_t n) const {
    if (static_cast<std::size_t>(end_ - at_) < n) throw FormatError("a record ends in the middle of a field");
  }
  const char* at_;
  const char* end_;
};

inline void encode_info(Writer& w, const FamilyInfo& info) {
  w.put(static_cast<std::uint32_t>(info.type));
  w.put_string(info.name);
  w.put_string(info.help);
  w.put_string(info.unit);
  w.put_strings(info.label_names);
  w.put(static_cast<std::int32_t>(info.scale));
  w.put_doubles(info.buckets);
  w.put(info.max_age_s);
  w.put(static_cast<std::uint8_t>(info.summary));
  w.put_doubles(info.quantiles);
  w.put(static_cast<std::uint32_t>(info.multiprocess_mode));
  w.put(static_cast<std::uint8_t>(info.up_down));
}

// Throws FormatError for a type, scale or mode no writer gives.
inline FamilyInfo decode_info(Reader& r) {
  FamilyInfo info;
  const auto type = r.get<std::uint32_t>();
  if (type > static_cast<std::uint32_t>(MetricType::histogram)) throw FormatError("a family record has an unknown type");
  info.type = static_cast<MetricType>(type);
  info.name = r.get_string();
  info.help = r.get_string();
  info.unit = r.get_string();
  info.label_names = r.get_strings();
  info.scale = r.get<std::int32_t>();
  if (info.scale < Histogram::kMinScale || info.scale > Histogram::kMaxScale) {
    throw FormatError("a family record has a histogram scale out of range");
  }
  info.buckets = r.get_doubles();
  info.max_age_s = r.get<double>();
  info.summary = r.get<std::uint8_t>() != 0;
  info.quantiles = r.get_doubles();
  const auto mode = r.get<std::uint32_t>();
  if (mode > static_cast<std::uint32_t>(GaugeMode::livemostrecent)) throw FormatError("a family record has an unknown gauge mode");
  info.multiprocess_mode = static_cast<GaugeMode>(mode);
  info.up_down = r.get<std::uint8_t>() != 0;
  return info;
}

}  // namespace veda::multiprocess::detail
