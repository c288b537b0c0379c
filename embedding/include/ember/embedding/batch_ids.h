// PrepareLookup: a data::Batch's ids (one per example, or bags for multi-hot fields) into a
// BatchLookup — the one place the trainer and serving turn batches into lookups. Header-only, for
// targets that link ember::data as well as ember::embedding.
#pragma once

#include <vector>

#include "ember/data/batch.h"
#include "ember/embedding/lookup.h"

namespace ember::embedding {

inline void PrepareLookup(const data::Batch& batch, BatchLookup* lookup) {
  if (!batch.any_multi_hot()) {
    lookup->Prepare(batch.field(0), batch.size, batch.labels.size());
    return;
  }
  std::vector<FieldIds> fields(static_cast<size_t>(batch.num_sparse));
  for (int f = 0; f < batch.num_sparse; ++f) {
    FieldIds& fi = fields[static_cast<size_t>(f)];
    fi.ids = batch.field_ids(f, &fi.count);
    if (batch.is_multi_hot(f)) {
      const data::Bags& b = batch.bags[static_cast<size_t>(f)];
      fi.offsets = b.offsets.data();
      fi.weights = b.weights.data();
    }
  }
  lookup->Prepare(fields, batch.size);
}

}  // namespace ember::embedding
