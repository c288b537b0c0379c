#include "ember/monitoring/registry.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace ember::monitoring {
namespace {
constexpr const char* kPrefix = "ember_";

const char* TypeName(MetricType t) {
  switch (t) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

void AppendLabels(std::string* out, const Labels& labels, const std::string& le = "") {
  if (labels.empty() && le.empty()) return;
  out->push_back('{');
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out->push_back(',');
    first = false;
    *out += k + "=\"" + Registry::EscapeLabelValue(v) + "\"";
  }
  if (!le.empty()) {
    if (!first) out->push_back(',');
    *out += "le=\"" + le + "\"";
  }
  out->push_back('}');
}
}  // namespace

const std::vector<double>& Registry::DefaultBuckets() {
  static const std::vector<double> b = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  return b;
}

std::string Registry::SanitizeName(const std::string& name) {
  std::string s = name.empty() ? "_" : name;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (i > 0 && c >= '0' && c <= '9');
    if (!ok) s[i] = '_';
  }
  return s;
}

std::string Registry::EscapeLabelValue(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out.push_back(c);
  }
  return out;
}

std::string Registry::EscapeHelp(const std::string& help) {
  std::string out;
  for (char c : help) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out.push_back(c);
  }
  return out;
}

std::string Registry::FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[40];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {  // counts and whole numbers: plain digits
    std::snprintf(buf, sizeof(buf), "%.0f", v);
    return buf;
  }
  // Otherwise the shortest text that reads back as exactly v (as Prometheus' own clients print).
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

Labels Registry::Normalize(const Labels& labels) {
  Labels out;
  for (const auto& [k, v] : labels) {
    std::string key = SanitizeName(k);
    std::replace(key.begin(), key.end(), ':', '_');
    out.emplace_back(key, v);
  }
  std::sort(out.begin(), out.end());
  return out;
}

Registry::Family* Registry::Get(const std::string& name, MetricType type) {
  auto [it, inserted] = families_.try_emplace(SanitizeName(name));
  if (inserted) {
    it->second.type = type;
    if (type == MetricType::kHistogram) it->second.buckets = DefaultBuckets();
    return &it->second;
  }
  if (it->second.type != type) {
    ++conflicts_;
    return nullptr;
  }
  return &it->second;
}

void Registry::Describe(const std::string& name, MetricType type, const std::string& help,
                        std::vector<double> buckets) {
  std::lock_guard<std::mutex> lock(mu_);
  Family& f = families_[SanitizeName(name)];
  if (f.series.empty()) f.type = type;
  f.help = help;
  if (type == MetricType::kHistogram && f.series.empty()) {
    std::sort(buckets.begin(), buckets.end());
    buckets.erase(std::unique(buckets.begin(), buckets.end()), buckets.end());
    f.buckets = buckets.empty() ? DefaultBuckets() : buckets;
  }
}

void Registry::AddCounter(const std::string& name, double delta, const Labels& labels) {
  if (!(delta >= 0)) return;  // counters only go up
  std::lock_guard<std::mutex> lock(mu_);
  if (Family* f = Get(name, MetricType::kCounter)) f->series[Normalize(labels)].value += delta;
}

void Registry::SetGauge(const std::string& name, double value, const Labels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  if (Family* f = Get(name, MetricType::kGauge)) f->series[Normalize(labels)].value = value;
}

void Registry::Observe(const std::string& name, double value, const Labels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Family* f = Get(name, MetricType::kHistogram);
  if (!f) return;
  Series& s = f->series[Normalize(labels)];
  if (s.counts.empty()) s.counts.assign(f->buckets.size() + 1, 0);
  const size_t b = static_cast<size_t>(std::lower_bound(f->buckets.begin(), f->buckets.end(), value) -
                                       f->buckets.begin());  // first bound >= value ("le")
  ++s.counts[b];
  s.sum += value;
  ++s.count;
}

std::string Registry::Exposition() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  for (const auto& [name, f] : families_) {
    if (f.series.empty()) continue;
    const std::string full = kPrefix + name;
    if (!f.help.empty()) out += "# HELP " + full + " " + EscapeHelp(f.help) + "\n";
    out += "# TYPE " + full + " " + TypeName(f.type) + "\n";
    for (const auto& [labels, s] : f.series) {
      if (f.type != MetricType::kHistogram) {
        out += full;
        AppendLabels(&out, labels);
        out += " " + FormatValue(s.value) + "\n";
        continue;
      }
      uint64_t cumulative = 0;
      for (size_t b = 0; b <= f.buckets.size(); ++b) {
        cumulative += s.counts[b];
        out += full + "_bucket";
        AppendLabels(&out, labels, b < f.buckets.size() ? FormatValue(f.buckets[b]) : "+Inf");
        out += " " + std::to_string(cumulative) + "\n";
      }
      out += full + "_sum";
      AppendLabels(&out, labels);
      out += " " + FormatValue(s.sum) + "\n";
      out += full + "_count";
      AppendLabels(&out, labels);
      out += " " + std::to_string(s.count) + "\n";
    }
  }
  if (conflicts_ > 0) {
    out += "# TYPE ember_metrics_type_conflicts_total counter\n";
    out += "ember_metrics_type_conflicts_total " + std::to_string(conflicts_) + "\n";
  }
  return out;
}

void Registry::AddCollector(std::function<void(Recorder&)> collector) {
  std::lock_guard<std::mutex> lock(collect_mu_);
  collectors_.push_back(std::move(collector));
}

std::string Registry::Scrape() {
  {
    std::lock_guard<std::mutex> lock(collect_mu_);
    for (const auto& c : collectors_) c(*this);
  }
  return Exposition();
}

}  // namespace ember::monitoring
