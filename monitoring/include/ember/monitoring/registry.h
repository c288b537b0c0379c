// Registry: a Recorder that keeps every series and renders the Prometheus text exposition
// format, version 0.0.4 (what GET /metrics serves).
//
// Families are named "ember_" + the recorded name; their type comes from Describe() or, if
// undescribed, from the first call (AddCounter -> counter, SetGauge -> gauge, Observe ->
// histogram with Prometheus' default buckets). Each label set is one series; label order does
// not matter (sets are kept sorted by label name). Names and label names outside Prometheus'
// alphabet have the offending characters replaced by '_'; label values and help texts are
// escaped as the format requires (\\, \", \n). A call whose type contradicts the family's is
// counted in ember_metrics_type_conflicts_total and otherwise ignored. Thread-safe.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "ember/monitoring/recorder.h"

namespace ember::monitoring {

enum class MetricType { kCounter, kGauge, kHistogram };

class Registry final : public Recorder {
 public:
  static const std::vector<double>& DefaultBuckets();

  // Declares a family's type, help text and (histograms) upper bucket bounds, ascending.
  void Describe(const std::string& name, MetricType type, const std::string& help, std::vector<double> buckets = {});

  void AddCounter(const std::string& name, double delta, const Labels& labels = {}) override;
  void SetGauge(const std::string& name, double value, const Labels& labels = {}) override;
  void Observe(const std::string& name, double value, const Labels& labels = {}) override;

  // The exposition text of every family, in name order.
  std::string Exposition() const;

  // Adds a function that Scrape() runs (outside the registry's lock, one scrape at a time)
  // before rendering: for values cheaper to read on demand than to push (table sizes, memory).
  void AddCollector(std::function<void(Recorder&)> collector);
  // Runs the collectors, then returns Exposition(). What GET /metrics serves.
  std::string Scrape();

  // Helpers of the format, public for tests and other exporters.
  static std::string SanitizeName(const std::string& name);
  static std::string EscapeLabelValue(const std::string& value);
  static std::string EscapeHelp(const std::string& help);
  static std::string FormatValue(double v);

 private:
  struct Series {
    double value = 0;              // counter or gauge
    std::vector<uint64_t> counts;  // histogram: per bucket (not cumulative), then +Inf
    double sum = 0;
    uint64_t count = 0;
  };
  struct Family {
    MetricType type = MetricType::kCounter;
    std::string help;
    std::vector<double> buckets;
    std::map<Labels, Series> series;
  };
  // The family of name, created with `type` if absent; nullptr (and a conflict counted) if it
  // exists with another type. Caller holds mu_.
  Family* Get(const std::string& name, MetricType type);
  static Labels Normalize(const Labels& labels);

  mutable std::mutex mu_;
  std::map<std::string, Family> families_;
  std::mutex collect_mu_;
  std::vector<std::function<void(Recorder&)>> collectors_;
  uint64_t conflicts_ = 0;
};

}  // namespace ember::monitoring
