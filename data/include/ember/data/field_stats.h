// Field statistics of a training file: rows and exact distinct values per categorical field
// (a missing value counts as one value: it has its own row in a full table).
//
// The full table's size, and so every memory budget given as a fraction of it, comes from these
// counts. They are cached beside the data as "<file>.fields.json" and reused while the file's
// size and modification time match (the cache is skipped where the directory is not writable or
// is marked read-only, as the shared data samples are).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ember/common/status.h"
#include "ember/data/criteo.h"
#include "ember/data/vocab.h"

namespace ember::data {

struct FieldStats {
  uint64_t rows = 0;
  std::vector<uint64_t> distinct;  // per categorical field (a multi-hot field: distinct ids of its bags)
  // Per dense feature, as the reader gives it (a standardized column unstandardized: missing
  // reads 0): mean and standard deviation over the rows.
  std::vector<double> dense_mean, dense_std;
};

Result<FieldStats> CountFields(BatchReader* reader);
// Reads the cache or counts (under the schema's fingerprint, standardization off) (logging a line when it has to count)
// and writes the cache.
Result<FieldStats> LoadOrCountFields(const CriteoOptions& options);
// TopValues(CountVocabulary(all of `options`' data), n) (vocab.h), cached beside the data as
// "<file>.top-<n>.json" under the same key (not where `options.vocab` maps the values first).
Result<Vocabulary> LoadOrCountTopValues(const CriteoOptions& options, uint64_t n);

}  // namespace ember::data
