// Embedding-table metrics that only an embedding system can give: per table rows, bytes,
// compression against the full table and an estimated hash collision rate, plus shard skew.
//
// TableInfo says what the PS's table stats cannot: which method owns a table, whether ids are
// hashed into it (and into how many rows), and the bytes its fields would take as full fp32
// tables at the model's width (the baseline of the compression ratio).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ember/monitoring/recorder.h"
#include "ember/ps/client.h"

namespace ember::workers {

struct TableInfo {
  uint32_t table = 0;
  std::string method;
  bool hashed = false;
  uint64_t capacity = 0;    // hashed tables: rows ids are hashed into
  uint64_t ids = 0;         // distinct (field, value, probe) ids mapped to it; 0 = unknown
  uint64_t full_bytes = 0;  // 0: unknown (field vocabularies not counted)
};

// Estimated share of the n distinct ids hashed into a table of `capacity` rows that share their
// row with another id: an id collides unless the other n - 1 miss its row,
// 1 - (1 - 1/capacity)^(n - 1). n is `ids` where the field vocabularies are known; otherwise
// linear counting estimates it from the rows held so far, n = ln(1 - occupied/capacity) /
// ln(1 - 1/capacity) (1 when every row is taken: the estimate saturates).
double EstimatedCollisionRate(uint64_t occupied, uint64_t capacity, uint64_t ids = 0);

// Sets the table_*, embedding_* and shard_* gauges (metric names in docs/monitoring.md) from
// one Stats() answer. Tables without an info are reported without method, ratio or collisions.
void RecordTableMetrics(const std::vector<ps::TableStats>& stats, const std::vector<TableInfo>& infos,
                        monitoring::Recorder* recorder);

}  // namespace ember::workers
