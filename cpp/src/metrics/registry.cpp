#include "veda/metrics/registry.hpp"

#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "veda/metrics/multiprocess.hpp"
#include "veda/metrics/names.hpp"
#include "veda/metrics/protobuf_format.hpp"
#include "veda/metrics/text_format.hpp"

namespace veda {
namespace {

constexpr std::string_view kTotalSuffix = "_total";

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Sample names a family exposes (or may expose in OpenMetrics), for clash checks.
std::vector<std::string> exposed_names(const FamilyInfo& info) {
  switch (info.type) {
    case MetricType::counter:
      return {info.name, info.name + "_total", info.name + "_created"};
    case MetricType::gauge:
      return {info.name};
    case MetricType::histogram:
      return {info.name, info.name + "_sum", info.name + "_count", info.name + "_created",
              info.name + "_bucket"};
  }
  return {info.name};
}

FamilyInfo make_info(std::string name, std::string help, std::vector<std::string> label_names,
                     MetricType type, int scale, std::vector<double> buckets = {}, double max_age_s = 0.0,
                     bool summary = false) {
  check_metric_name(name);
  if (type == MetricType::counter && ends_with(name, kTotalSuffix)) {
    name.resize(name.size() - kTotalSuffix.size());
    if (name.empty()) throw std::invalid_argument("counter name '_total' leaves an empty name");
  }
  for (std::size_t i = 0; i < label_names.size(); ++i) {
    check_label_name(label_names[i]);
    if (summary && label_names[i] == "quantile") {
      throw std::invalid_argument("label name 'quantile' is reserved for summaries ('" + name +
                                  "' is exposed with a quantile label)");
    }
    if (type == MetricType::histogram && !summary && (label_names[i] == "quantile" || label_names[i] == "le")) {
      throw std::invalid_argument("label name '" + label_names[i] + "' is reserved for histograms ('" +
                                  name + "' is exposed with quantile and bucket labels)");
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (label_names[j] == label_names[i]) {
        throw std::invalid_argument("label name '" + label_names[i] + "' appears twice in the label names of '" +
                                    name + "'");
      }
    }
  }
  if (type == MetricType::histogram && (scale < Histogram::kMinScale || scale > Histogram::kMaxScale)) {
    throw std::invalid_argument("histogram scale must be an integer in [" + std::to_string(Histogram::kMinScale) +
                                ", " + std::to_string(Histogram::kMaxScale) + "], got " + std::to_string(scale));
  }
  if (!buckets.empty()) buckets = Histogram::check_bounds(std::move(buckets));
  if (!(max_age_s >= 0.0) || !(max_age_s <= 1e9)) {
    throw std::invalid_argument("max_age_seconds must be a number of seconds in (0, 1e9] (0 or None: no window)");
  }
  FamilyInfo info;
  info.name = std::move(name);
  info.help = std::move(help);
  info.label_names = std::move(label_names);
  info.type = type;
  info.scale = scale;
  info.buckets = std::move(buckets);
  info.max_age_s = max_age_s;
  info.summary = summary;
  return info;
}

std::vector<double> check_quantiles(std::vector<double> quantiles) {
  std::sort(quantiles.begin(), quantiles.end());
  for (std::size_t i = 0; i < quantiles.size(); ++i) {
    if (!(quantiles[i] >= 0.0 && quantiles[i] <= 1.0)) {
      char text[64];
      std::snprintf(text, sizeof text, "%g", quantiles[i]);
      throw std::invalid_argument(std::string("summary quantiles must be numbers in [0, 1] (0.5 for the median), got ") +
                                  text);
    }
    if (i > 0 && quantiles[i] == quantiles[i - 1]) {
      char text[64];
      std::snprintf(text, sizeof text, "%g", quantiles[i]);
      throw std::invalid_argument(std::string("summary quantiles must differ from each other; ") + text +
                                  " is given twice");
    }
  }
  return quantiles;
}

template <class M>
std::shared_ptr<Family<M>> as_family(const std::shared_ptr<FamilyBase>& base) {
  return std::static_pointer_cast<Family<M>>(base);
}

// The quantiles a histogram family's text and protobuf forms show as a summary.
const std::vector<double>& summary_quantiles(const FamilyInfo& info) {
  static const std::vector<double> kDefault(std::begin(kSummaryQuantiles), std::end(kSummaryQuantiles));
  return info.summary ? info.quantiles : kDefault;
}

template <class M>
SeriesSnapshot snapshot_series(const FamilyInfo& info, const std::vector<std::string>& labels, const M& metric) {
  SeriesSnapshot s;
  s.label_values = labels;
  s.start_unix_nano = metric.created_unix_nano();
  if constexpr (!std::is_same_v<M, Gauge>) s.exemplars = metric.exemplars();
  if constexpr (std::is_same_v<M, Histogram>) {
    s.histogram = metric.snapshot();
    if (metric.max_age_seconds() > 0) {
      // A windowed histogram's summary quantiles describe its recent window.
      const HistogramSnapshot recent = metric.recent(s.histogram);
      for (const double q : summary_quantiles(info)) s.quantiles.emplace_back(q, recent.percentile(q * 100.0));
    }
  } else {
    s.value = metric.get();
  }
  return s;
}

template <class M>
void collect_family(const FamilyBase& base, FamilySnapshot& out) {
  const auto& family = static_cast<const Family<M>&>(base);
  out.series.reserve(family.size());
  family.for_each([&](const std::vector<std::string>& labels, const M& metric) {
    out.series.push_back(snapshot_series(family.info(), labels, metric));
  });
}

}  // namespace

template <class M>
std::shared_ptr<Family<M>> Registry::register_family(FamilyInfo info) {
  {
    std::lock_guard<detail::ForkSafeMutex> lock(mutex_);
    if (auto existing = find_or_check(info)) return as_family<M>(existing);
  }
  // Made without the lock: a family's own lock joins the fork-safe list, and
  // no fork-safe lock may be made while one is held (veda/detail/fork.hpp);
  // in multi-process mode it also writes to this process's file.
  auto family = std::make_shared<Family<M>>(info);
  std::lock_guard<detail::ForkSafeMutex> lock(mutex_);
  if (auto existing = find_or_check(info)) {  // another thread registered it meanwhile
    family->retire();
    return as_family<M>(existing);
  }
  insert(family);
  return family;
}

std::shared_ptr<FamilyBase> Registry::find_or_check(const FamilyInfo& info) {
  for (const auto& family : families_) {
    const FamilyInfo& have = family->info();
    if (have.name != info.name) continue;
    if (!detail::same_definition(have, info)) {
      throw std::invalid_argument("metric '" + info.name + "' is already registered as a " + detail::describe(have) +
                                  "; cannot register it again as a " + detail::describe(info));
    }
    if (have.help != info.help) {
      throw std::invalid_argument("metric '" + info.name + "' is already registered with help '" + have.help +
                                  "'; cannot register it again with help '" + info.help + "'");
    }
    return family;
  }
  for (const std::string& sample : exposed_names(info)) {
    auto it = exposed_.find(sample);
    if (it != exposed_.end()) {
      throw std::invalid_argument("metric '" + info.name + "' would expose the sample name '" + sample +
                                  "', which metric '" + it->second + "' already uses");
    }
  }
  return nullptr;
}

void Registry::insert(const std::shared_ptr<FamilyBase>& family) {
  for (const std::string& sample : exposed_names(family->info())) exposed_[sample] = family->info().name;
  families_.push_back(family);
}

namespace {

void set_unit(FamilyInfo& info, std::string unit) {
  if (unit.empty()) return;
  const std::string suffix = "_" + unit;
  if (!ends_with(info.name, suffix)) {
    throw std::invalid_argument("metric '" + info.name + "' has the unit '" + unit + "', so its name must end in '" +
                                suffix + "' (OpenMetrics)");
  }
  info.unit = std::move(unit);
}

}  // namespace

std::shared_ptr<CounterFamily> Registry::counter(std::string name, std::string help,
                                                 std::vector<std::string> label_names, std::string unit) {
  FamilyInfo info = make_info(std::move(name), std::move(help), std::move(label_names), MetricType::counter, 0);
  set_unit(info, std::move(unit));
  return register_family<Counter>(std::move(info));
}

std::shared_ptr<GaugeFamily> Registry::gauge(std::string name, std::string help,
                                             std::vector<std::string> label_names, std::string unit,
                                             GaugeMode multiprocess_mode, bool up_down) {
  FamilyInfo info = make_info(std::move(name), std::move(help), std::move(label_names), MetricType::gauge, 0);
  set_unit(info, std::move(unit));
  info.multiprocess_mode = multiprocess_mode;
  info.up_down = up_down;
  return register_family<Gauge>(std::move(info));
}

std::shared_ptr<HistogramFamily> Registry::histogram(std::string name, std::string help,
                                                     std::vector<std::string> label_names, int scale,
                                                     std::vector<double> buckets, double max_age_s,
                                                     std::string unit) {
  FamilyInfo info = make_info(std::move(name), std::move(help), std::move(label_names), MetricType::histogram, scale,
                              std::move(buckets), max_age_s);
  set_unit(info, std::move(unit));
  return register_family<Histogram>(std::move(info));
}

std::shared_ptr<HistogramFamily> Registry::summary(std::string name, std::string help,
                                                   std::vector<std::string> label_names,
                                                   std::vector<double> quantiles, double max_age_s,
                                                   std::string unit) {
  FamilyInfo info = make_info(std::move(name), std::move(help), std::move(label_names), MetricType::histogram,
                              Histogram::kDefaultScale, {}, max_age_s, true);
  set_unit(info, std::move(unit));
  info.quantiles = check_quantiles(std::move(quantiles));
  return register_family<Histogram>(std::move(info));
}

void Registry::add(const std::shared_ptr<FamilyBase>& family) {
  std::lock_guard<detail::ForkSafeMutex> lock(mutex_);
  for (const auto& have : families_) {
    if (have == family) return;
  }
  if (auto existing = find_or_check(family->info())) {
    throw std::invalid_argument("metric '" + family->info().name +
                                "' is already registered in this registry (another metric of the same definition)");
  }
  insert(family);
}

bool Registry::contains(const std::shared_ptr<FamilyBase>& family) const {
  std::lock_guard<detail::ForkSafeMutex> lock(mutex_);
  return std::find(families_.begin(), families_.end(), family) != families_.end();
}

bool Registry::unregister(std::string_view name) {
  std::shared_ptr<FamilyBase> gone;  // dropped after the lock: its series' locks leave the fork list
  std::lock_guard<detail::ForkSafeMutex> lock(mutex_);
  // A counter is stored without "_total"; accept the name with it too.
  auto it = std::find_if(families_.begin(), families_.end(), [&](const auto& f) {
    const FamilyInfo& info = f->info();
    return info.name == name ||
           (info.type == MetricType::counter && ends_with(name, kTotalSuffix) &&
            name.substr(0, name.size() - kTotalSuffix.size()) == info.name);
  });
  if (it == families_.end()) return false;
  for (const std::string& sample : exposed_names((*it)->info())) exposed_.erase(sample);
  (*it)->retire();
  gone = std::move(*it);
  families_.erase(it);
  return true;
}

void Registry::clear() {
  std::vector<std::shared_ptr<FamilyBase>> gone;  // dropped after the lock, as in unregister()
  std::lock_guard<detail::ForkSafeMutex> lock(mutex_);
  for (const auto& family : families_) family->retire();
  gone.swap(families_);
  exposed_.clear();
}

void Registry::set_multiprocess_directory(std::string directory) {
  std::lock_guard<detail::ForkSafeMutex> lock(mutex_);
  multiprocess_directory_ = std::move(directory);
}

std::string Registry::multiprocess_directory() const {
  std::lock_guard<detail::ForkSafeMutex> lock(mutex_);
  return multiprocess_directory_;
}

std::vector<std::string> Registry::names() const {
  std::lock_guard<detail::ForkSafeMutex> lock(mutex_);
  std::vector<std::string> out;
  out.reserve(families_.size());
  for (const auto& f : families_) out.push_back(f->info().name);
  return out;
}

std::vector<std::string> Registry::exposed_sample_names() const {
  std::lock_guard<detail::ForkSafeMutex> lock(mutex_);
  std::vector<std::string> out;
  out.reserve(exposed_.size());
  for (const auto& entry : exposed_) out.push_back(entry.first);
  std::sort(out.begin(), out.end());
  return out;
}

std::size_t Registry::size() const {
  std::lock_guard<detail::ForkSafeMutex> lock(mutex_);
  return families_.size();
}

namespace {

bool named_by(const FamilyInfo& info, const Registry::NameSet* only) {
  if (only == nullptr) return true;
  for (const std::string& sample : exposed_names(info)) {
    if (only->count(sample) != 0) return true;
  }
  return false;
}

FamilySnapshot collect_one(const FamilyBase& family) {
  FamilySnapshot out;
  out.info = family.info();
  switch (out.info.type) {
    case MetricType::counter:
      collect_family<Counter>(family, out);
      break;
    case MetricType::gauge:
      collect_family<Gauge>(family, out);
      break;
    case MetricType::histogram:
      collect_family<Histogram>(family, out);
      break;
  }
  return out;
}

}  // namespace

std::vector<FamilySnapshot> Registry::collect(const NameSet* only) const {
  std::vector<std::shared_ptr<FamilyBase>> families;
  std::string directory;
  {
    std::lock_guard<detail::ForkSafeMutex> lock(mutex_);
    directory = multiprocess_directory_;
    for (const auto& family : families_) {
      if (named_by(family->info(), only)) families.push_back(family);
    }
  }
  std::vector<FamilySnapshot> out;
  out.reserve(families.size());
  if (directory.empty()) {
    for (const auto& family : families) out.push_back(collect_one(*family));
    return out;
  }
  std::vector<FamilySnapshot> aggregate = multiprocess::aggregate(directory).families;
  std::unordered_map<std::string, std::size_t> by_name;
  for (std::size_t i = 0; i < aggregate.size(); ++i) by_name.emplace(aggregate[i].info.name, i);
  std::vector<bool> used(aggregate.size(), false);
  for (const auto& family : families) {
    auto it = by_name.find(family->info().name);
    if (it != by_name.end()) used[it->second] = true;
    if (!family->shared()) {
      out.push_back(collect_one(*family));
    } else if (it != by_name.end()) {
      out.push_back(std::move(aggregate[it->second]));
    } else {
      FamilySnapshot empty;  // its series were all removed
      empty.info = family->info();
      out.push_back(std::move(empty));
    }
  }
  for (std::size_t i = 0; i < aggregate.size(); ++i) {
    if (!used[i] && named_by(aggregate[i].info, only)) out.push_back(std::move(aggregate[i]));
  }
  return out;
}

std::string Registry::render_prometheus(const Scrape& scrape) const {
  std::string out;
  const NameSet* only = scrape.only ? &*scrape.only : nullptr;
  veda::render_prometheus(collect(only), out, scrape.escaping);
  veda::render_prometheus(scrape.collected, out, scrape.escaping);
  return out;
}

std::string Registry::render_openmetrics(const Scrape& scrape) const {
  std::string out;
  const NameSet* only = scrape.only ? &*scrape.only : nullptr;
  render_openmetrics_body(collect(only), out, scrape.created_series, scrape.escaping);
  veda::render_openmetrics(scrape.collected, out, scrape.escaping);
  out += "# EOF\n";
  return out;
}

std::string Registry::render_openmetrics(bool created_series) const {
  Scrape scrape;
  scrape.created_series = created_series;
  return render_openmetrics(scrape);
}

std::string Registry::encode_protobuf(const Scrape& scrape) const {
  std::string out;
  const NameSet* only = scrape.only ? &*scrape.only : nullptr;
  veda::encode_prometheus_protobuf(collect(only), out, scrape.escaping);
  veda::encode_prometheus_protobuf(scrape.collected, out, scrape.escaping);
  return out;
}

Registry& default_registry() {
  // Never destroyed, so metrics may be recorded during static destruction.
  static Registry* registry = new Registry;
  return *registry;
}

}  // namespace veda
