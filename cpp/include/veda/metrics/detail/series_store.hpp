// veda::detail::SeriesStore: where the series of a family keep their cells
// when they are shared with other processes (a multi-process file, see
// veda/metrics/multiprocess.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace veda {
struct FamilyInfo;
}

namespace veda::detail {

class SeriesStore {
 public:
  virtual ~SeriesStore() = default;

  struct Cells {
    void* memory = nullptr;    // `bytes` zero bytes, aligned to a cache line, valid as long as the store
    std::uint64_t record = 0;  // names the series for retire(); never 0
  };

  // Room for the cells of a new series of `family` with these label values.
  // Throws std::length_error, naming the file and the limit, when it is full.
  virtual Cells allocate(const FamilyInfo& family, const std::vector<std::string>& label_values,
                         std::size_t bytes) = 0;

  // The series is no longer exported (remove(), clear(), or its family left
  // the registry): the aggregate leaves it out from now on.
  virtual void retire(std::uint64_t record) noexcept = 0;
};

// The store of this process's multi-process mode; null while it is off.
std::shared_ptr<SeriesStore> shared_series_store() noexcept;

}  // namespace veda::detail
