// Turns prediction-request rows into a data::Batch.
//
// A row is the training format's feature fields as strings, in order, label omitted:
// num_dense integers (empty = missing) then num_sparse hex ids (empty = missing). Parsing is
// the training reader's (data::ParseCriteoLine), so served and trained features agree.
// Errors name the row and field. Used by `ember serve` (export-and-serve issue) and by tests.
#pragma once

#include <string>
#include <vector>

#include "ember/common/status.h"
#include "ember/data/batch.h"

namespace ember::serving {

Status RowsToBatch(const std::vector<std::vector<std::string>>& rows, int num_dense, int num_sparse,
                   data::Batch* batch);

}  // namespace ember::serving
