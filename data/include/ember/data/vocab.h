// Vocabularies for offline pipelines (`ember vocab`, `data.vocab`): per-field value counts over a
// data file, cut by a minimum count or to the top K values of each field, written to a text file
// the readers apply: a value outside its field's vocabulary is read as kOovId (one shared
// out-of-vocabulary row per field in a full table), the preprocessing of the Unified Embedding and
// OptEmbed papers (values seen fewer than a threshold times map to one "rare" value per field).
//
// File (UTF-8 text, one value per line, fields in order, values by descending count):
//   # ember vocabulary v1 source=<file> rows=<n> min_count=<m> top_k=<k>
//   C<f>\t<value, hex; empty = the missing value>\t<count>
#pragma once

#include <cstdint>
#include <string>
#include <unordered_set>
#include <vector>

#include "ember/common/status.h"
#include "ember/data/batch.h"

namespace ember::data {

// The id a value outside the vocabulary reads as (kMissingId is the missing value's).
inline constexpr uint64_t kOovId = kMissingId - 1;

struct VocabCut {
  uint64_t min_count = 1;  // keep values seen at least this often
  uint64_t top_k = 0;      // and at most this many per field (0 = no limit), most frequent first
};

struct FieldVocab {
  std::vector<uint64_t> values;  // kept, by descending count (ties: ascending value)
  std::vector<uint64_t> counts;
  uint64_t distinct = 0;     // values seen
  uint64_t occurrences = 0;  // ids seen: examples for a one-hot field, every id of every bag for a multi-hot one
  uint64_t kept_occurrences = 0;
};

struct Vocabulary {
  std::string source;
  uint64_t rows = 0;
  VocabCut cut;
  std::vector<FieldVocab> fields;
};

// Counts every field's values over `reader` and applies the cut.
Result<Vocabulary> CountVocabulary(BatchReader* reader, const VocabCut& cut);
// The n most frequent values of `counted` (counted with no cut) over every field together, ties
// broken by field and then by value; each field keeps its values in count order. The result's
// cut.min_count is the least count kept.
Vocabulary TopValues(const Vocabulary& counted, uint64_t n);
// Writes atomically (temp file, fsync, rename).
Status WriteVocabulary(const std::string& path, const Vocabulary& vocab);
// Reads a vocabulary file; errors name the file and line. `num_sparse` fields expected.
Result<Vocabulary> ReadVocabulary(const std::string& path, int num_sparse);

// The kept values of each field, for the readers.
class VocabFilter {
 public:
  explicit VocabFilter(const Vocabulary& vocab);
  // Replaces every value of *batch outside its field's vocabulary by kOovId.
  void Apply(Batch* batch) const;
  size_t num_fields() const { return kept_.size(); }

 private:
  std::vector<std::unordered_set<uint64_t>> kept_;
};

}  // namespace ember::data
