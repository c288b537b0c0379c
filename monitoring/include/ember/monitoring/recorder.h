// The narrow interface through which every module records metrics (RocksDB-style
// RecordTick / RecordInHistogram), kept apart from how they are exported.
//
// Modules hold a `Recorder*` that is never null: NullRecorder() is the no-op default.
// Metric names are snake_case without the "ember_" prefix (the exporter adds it); labels are
// a short list of key=value pairs. Implementations must be thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace ember::monitoring {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Recorder {
 public:
  virtual ~Recorder() = default;
  // Adds `delta` (>= 0) to a counter.
  virtual void AddCounter(const std::string& name, double delta, const Labels& labels = {}) = 0;
  // Sets a gauge.
  virtual void SetGauge(const std::string& name, double value, const Labels& labels = {}) = 0;
  // Records one observation in a histogram.
  virtual void Observe(const std::string& name, double value, const Labels& labels = {}) = 0;
};

// A process-lifetime no-op recorder; the default wherever none is given.
Recorder* NullRecorder();

// Keeps the last gauge value, counter sums and observation counts/sums in memory; for tests
// and for the end-of-run summary.
class MemoryRecorder : public Recorder {
 public:
  void AddCounter(const std::string& name, double delta, const Labels& labels = {}) override;
  void SetGauge(const std::string& name, double value, const Labels& labels = {}) override;
  void Observe(const std::string& name, double value, const Labels& labels = {}) override;

  double Counter(const std::string& name, const Labels& labels = {}) const;
  double Gauge(const std::string& name, const Labels& labels = {}) const;
  uint64_t ObservationCount(const std::string& name, const Labels& labels = {}) const;
  double ObservationSum(const std::string& name, const Labels& labels = {}) const;

 private:
  static std::string Key(const std::string& name, const Labels& labels);
  mutable std::mutex mu_;
  std::map<std::string, double> counters_;
  std::map<std::string, double> gauges_;
  std::map<std::string, std::pair<uint64_t, double>> observations_;
};

}  // namespace ember::monitoring
