#include "ember/workers/table_metrics.h"

#include <algorithm>
#include <cmath>

namespace ember::workers {

double EstimatedCollisionRate(uint64_t occupied, uint64_t capacity, uint64_t ids) {
  if (ids == 0 && (capacity <= 1 || occupied == 0)) return occupied > 1 ? 1.0 : 0.0;
  if (capacity <= 1) return ids > 1 ? 1.0 : 0.0;
  const double m = static_cast<double>(capacity);
  const double log_miss = std::log1p(-1.0 / m);  // ln(1 - 1/m)
  if (ids == 0 && occupied >= capacity) return 1.0;
  const double n = ids > 0 ? static_cast<double>(ids) : std::log1p(-static_cast<double>(occupied) / m) / log_miss;
  return n <= 1 ? 0.0 : -std::expm1((n - 1) * log_miss);
}

void RecordTableMetrics(const std::vector<ps::TableStats>& stats, const std::vector<TableInfo>& infos,
                        monitoring::Recorder* recorder) {
  uint64_t rows = 0, bytes = 0, params = 0, full = 0, full_params = 0;
  std::vector<uint64_t> shard_rows;
  for (const auto& s : stats) {
    const auto it = std::find_if(infos.begin(), infos.end(), [&](const TableInfo& i) { return i.table == s.table; });
    monitoring::Labels labels = {{"table", std::to_string(s.table)}};
    if (it != infos.end()) labels.emplace_back("method", it->method);
    const uint64_t p = s.param_bytes();
    recorder->SetGauge("table_rows", static_cast<double>(s.rows), labels);
    recorder->SetGauge("table_values", static_cast<double>(s.values), labels);
    recorder->SetGauge("table_bytes", static_cast<double>(s.bytes), labels);
    recorder->SetGauge("table_param_bytes", static_cast<double>(p), labels);
    if (it != infos.end() && it->full_bytes > 0) {
      recorder->SetGauge("table_full_bytes", static_cast<double>(it->full_bytes), labels);
      if (p > 0) recorder->SetGauge("table_compression_ratio", static_cast<double>(it->full_bytes) / p, labels);
      full += it->full_bytes;
      full_params += p;
    }
    if (it != infos.end() && it->hashed && it->capacity > 0) {
      recorder->SetGauge("table_capacity_rows", static_cast<double>(it->capacity), labels);
      recorder->SetGauge("table_collision_rate", EstimatedCollisionRate(s.rows, it->capacity, it->ids), labels);
    }
    if (s.admitted + s.evicted + s.fallbacks > 0) {  // feature admission and expiry: the shards' totals
      recorder->SetGauge("table_admitted_values", static_cast<double>(s.admitted), labels);
      recorder->SetGauge("table_evicted_rows", static_cast<double>(s.evicted), labels);
      recorder->SetGauge("table_fallback_lookups", static_cast<double>(s.fallbacks), labels);
    }
    rows += s.rows;
    bytes += s.bytes;
    params += p;
    if (shard_rows.size() < s.shard_rows.size()) shard_rows.resize(s.shard_rows.size(), 0);
    for (size_t i = 0; i < s.shard_rows.size(); ++i) shard_rows[i] += s.shard_rows[i];
  }
  recorder->SetGauge("embedding_rows", static_cast<double>(rows));
  recorder->SetGauge("embedding_bytes", static_cast<double>(bytes));
  recorder->SetGauge("embedding_param_bytes", static_cast<double>(params));
  if (full > 0) {
    recorder->SetGauge("embedding_full_bytes", static_cast<double>(full));
    if (full_params > 0)
      recorder->SetGauge("embedding_compression_ratio", static_cast<double>(full) / static_cast<double>(full_params));
  }
  uint64_t max_rows = 0, sum_rows = 0;
  for (size_t i = 0; i < shard_rows.size(); ++i) {
    recorder->SetGauge("shard_rows", static_cast<double>(shard_rows[i]), {{"shard", std::to_string(i)}});
    max_rows = std::max(max_rows, shard_rows[i]);
    sum_rows += shard_rows[i];
  }
  // Skew: the fullest shard against the mean (1 = perfectly even).
  if (sum_rows > 0)
    recorder->SetGauge("shard_skew", static_cast<double>(max_rows) * static_cast<double>(shard_rows.size()) /
                                         static_cast<double>(sum_rows));
}

}  // namespace ember::workers
