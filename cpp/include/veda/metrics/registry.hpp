// veda::Registry: the set of metrics one exposition renders.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>

#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "veda/detail/fork.hpp"
#include "veda/metrics/family.hpp"
#include "veda/metrics/names.hpp"
#include "veda/metrics/sample_family.hpp"

namespace veda {

// One series of a collected family.
struct SeriesSnapshot {
  std::vector<std::string> label_values;
  double value = 0.0;                // counters and gauges
  std::int64_t start_unix_nano = 0;  // creation or last reset of the series
  HistogramSnapshot histogram;       // histograms only
  // Histograms only: (quantile, value) pairs to expose as they are. When
  // empty, the exposition computes kSummaryQuantiles from `histogram`.
  std::vector<std::pair<double, double>> quantiles;
  // Histograms only: `histogram` holds count and sum but no buckets (see quantiles_only()).
  bool no_buckets = false;
  // The exemplars kept: (0, e) for a counter; (classic bucket index, e) for a
  // histogram with classic buckets, (slot, e) for one without.
  std::vector<std::pair<std::int32_t, Exemplar>> exemplars;
};

// A histogram series that has quantiles, count and sum but no buckets (a
// snapshot from the collector's history): every format exposes it as a
// summary only, never as a (native or exponential) histogram.
inline bool quantiles_only(const SeriesSnapshot& s) { return s.no_buckets; }

// A family and its series as they were at collection time.
struct FamilySnapshot {
  FamilyInfo info;
  std::vector<SeriesSnapshot> series;
};

// Holds metric families by name.
//
// Registering a name that exists with the same type, label names, help (and
// scale for histograms) returns the existing family, so the same definition can
// be evaluated twice (a re-imported module, a notebook cell run again) and both
// handles feed one series. Any difference throws std::invalid_argument, as does
// a name whose exposed samples would clash with another family's (a counter
// "x" exposes "x_total"; a histogram "x" exposes "x", "x_sum" and "x_count").
//
// Thread-safety: all methods may be called concurrently.
class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // A trailing "_total" in a counter name is dropped; the exposition adds it back.
  // `unit` (every type): what OpenMetrics declares with "# UNIT"; the name
  // must end in "_<unit>" (std::invalid_argument otherwise).
  std::shared_ptr<CounterFamily> counter(std::string name, std::string help,
                                         std::vector<std::string> label_names = {}, std::string unit = {});
  // `multiprocess_mode`: how the multi-process aggregate combines processes;
  // `up_down`: an up-down sum (FamilyInfo::up_down).
  std::shared_ptr<GaugeFamily> gauge(std::string name, std::string help,
                                     std::vector<std::string> label_names = {}, std::string unit = {},
                                     GaugeMode multiprocess_mode = GaugeMode::all, bool up_down = false);
  // `buckets`: classic bucket bounds (see Histogram::check_bounds); empty for
  // none. `max_age_s` > 0: the summary quantiles describe about that many
  // recent seconds (Histogram::recent()). Re-registering must give the same
  // scale, buckets and max age.
  std::shared_ptr<HistogramFamily> histogram(std::string name, std::string help,
                                             std::vector<std::string> label_names = {},
                                             int scale = Histogram::kDefaultScale, std::vector<double> buckets = {},
                                             double max_age_s = 0.0, std::string unit = {});
  // A summary: a histogram (default scale, no classic buckets) exposed in
  // every format as a summary with exactly `quantiles` (each in [0, 1],
  // sorted here; none: only "_count" and "_sum", as prometheus_client's
  // Summary). The label name "quantile" is reserved.
  std::shared_ptr<HistogramFamily> summary(std::string name, std::string help,
                                           std::vector<std::string> label_names = {},
                                           std::vector<double> quantiles = {}, double max_age_s = 0.0,
                                           std::string unit = {});

  // Whether this registry exposes exactly `family`.
  bool contains(const std::shared_ptr<FamilyBase>& family) const;

  // Adds a family made elsewhere (another registry's, a metric created
  // unregistered), so this registry exposes it too. Adding it twice does
  // nothing; a clash with another family's name or samples throws
  // std::invalid_argument.
  void add(const std::shared_ptr<FamilyBase>& family);

  // Removes a family by name (a counter's with or without "_total"); returns
  // false if there was none.
  // Handles held elsewhere keep working but are no longer exported (in
  // multi-process mode, by this process: the family is retired).
  bool unregister(std::string_view name);
  void clear();

  std::vector<std::string> names() const;
  // Every sample name the families expose or may expose (the names the clash
  // checks of registration compare), sorted.
  std::vector<std::string> exposed_sample_names() const;
  std::size_t size() const;

  // Sample names, to restrict a collection to some families.
  using NameSet = std::unordered_set<std::string>;

  // Copies every family, in registration order; with `only`, just the
  // families exposing at least one of those sample names (a counter "x" is
  // named by "x", "x_total" or "x_created"; a histogram by "x", "x_sum",
  // "x_count", "x_bucket", "x_created").
  // With a multi-process directory (set_multiprocess_directory()), each
  // family whose series are in a multi-process file is collected as the
  // aggregate of every process's (multiprocess::aggregate()), and the
  // aggregate's families this registry lacks (other processes made them)
  // follow its own. Throws what multiprocess::aggregate() throws.
  std::vector<FamilySnapshot> collect(const NameSet* only = nullptr) const;

  // Makes collect() and every rendering report the aggregate of the
  // processes recording in `directory` (see collect()); empty: this
  // process's values only. multiprocess::enable() sets it on the default
  // registry.
  void set_multiprocess_directory(std::string directory);
  std::string multiprocess_directory() const;

  // What one scrape asks for.
  struct Scrape {
    // Families a caller gathered sample by sample (custom collectors),
    // rendered after the registry's own.
    std::vector<SampleFamily> collected;
    // Only the registry's families exposing one of these sample names (see collect()).
    std::optional<NameSet> only;
    // How names outside the legacy character set are written.
    NameEscaping escaping = NameEscaping::underscores;
    // OpenMetrics: a "_created" sample per counter, histogram and summary series.
    bool created_series = true;
  };

  // The expositions of one scrape: collect(only), then the collected families.
  // Prometheus text format 0.0.4 (1.0.0 with allow-utf-8 escaping):
  std::string render_prometheus(const Scrape& scrape) const;
  std::string render_prometheus() const { return render_prometheus(Scrape{}); }
  // OpenMetrics 1.0 text (see render_openmetrics()), ending in "# EOF":
  std::string render_openmetrics(const Scrape& scrape) const;
  std::string render_openmetrics(bool created_series = true) const;
  // The Prometheus protobuf exposition (see veda/metrics/protobuf_format.hpp): native histograms.
  std::string encode_protobuf(const Scrape& scrape) const;
  std::string encode_protobuf() const { return encode_protobuf(Scrape{}); }

 private:
  template <class M>
  std::shared_ptr<Family<M>> register_family(FamilyInfo info);
  std::shared_ptr<FamilyBase> find_or_check(const FamilyInfo& info);
  void insert(const std::shared_ptr<FamilyBase>& family);

  mutable detail::ForkSafeMutex mutex_{detail::kForkLevelRegistry};  // never left locked by fork()
  std::vector<std::shared_ptr<FamilyBase>> families_;
  std::unordered_map<std::string, std::string> exposed_;  // sample name -> family name
  std::string multiprocess_directory_;
};

// The process-wide registry every metric registers in unless told otherwise.
Registry& default_registry();

}  // namespace veda
