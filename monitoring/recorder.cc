#include "ember/monitoring/recorder.h"

namespace ember::monitoring {
namespace {
class NoOpRecorder final : public Recorder {
 public:
  void AddCounter(const std::string&, double, const Labels&) override {}
  void SetGauge(const std::string&, double, const Labels&) override {}
  void Observe(const std::string&, double, const Labels&) override {}
};
}  // namespace

Recorder* NullRecorder() {
  static NoOpRecorder recorder;
  return &recorder;
}

std::string MemoryRecorder::Key(const std::string& name, const Labels& labels) {
  std::string key = name;
  for (const auto& [k, v] : labels) key += "|" + k + "=" + v;
  return key;
}

void MemoryRecorder::AddCounter(const std::string& name, double delta, const Labels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  counters_[Key(name, labels)] += delta;
}

void MemoryRecorder::SetGauge(const std::string& name, double value, const Labels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  gauges_[Key(name, labels)] = value;
}

void MemoryRecorder::Observe(const std::string& name, double value, const Labels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& o = observations_[Key(name, labels)];
  o.first += 1;
  o.second += value;
}

double MemoryRecorder::Counter(const std::string& name, const Labels& labels) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = counters_.find(Key(name, labels));
  return it == counters_.end() ? 0 : it->second;
}

double MemoryRecorder::Gauge(const std::string& name, const Labels& labels) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = gauges_.find(Key(name, labels));
  return it == gauges_.end() ? 0 : it->second;
}

uint64_t MemoryRecorder::ObservationCount(const std::string& name, const Labels& labels) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = observations_.find(Key(name, labels));
  return it == observations_.end() ? 0 : it->second.first;
}

double MemoryRecorder::ObservationSum(const std::string& name, const Labels& labels) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = observations_.find(Key(name, labels));
  return it == observations_.end() ? 0 : it->second.second;
}

}  // namespace ember::monitoring
