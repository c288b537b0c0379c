// Turns prediction-request rows into a data::Batch, parsed as the training reader parses text
// (data::ParseCriteoLine for the Criteo layout, data::SchemaParser for a schema), so served and
// trained features agree.
//
// A row is either an array of the input columns in order (label and ignored columns omitted) or
// an object keyed by column name (absent columns read as empty). A value is a string (the text
// the training file holds), a number, or, for a multi-hot column, an array of ids (strings) or
// the delimited string. A tab-separated body holds the array form, one row per line, parsed at the
// training reader's speed (no JSON). Criteo layout: num_dense integers (empty = missing) then num_sparse hex
// ids (empty = missing). Errors name the row and the field or column. Used by `ember serve`.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "ember/common/status.h"
#include "ember/data/batch.h"
#include "ember/data/schema.h"

namespace ember::serving {

// The Criteo layout from rows of strings.
Status RowsToBatch(const std::vector<std::vector<std::string>>& rows, int num_dense, int num_sparse,
                   data::Batch* batch);
// Any schema from a request's "rows" (a JSON array).
Status JsonRowsToBatch(const nlohmann::json& rows, const data::Schema& schema, data::Batch* batch);
// Any schema from a tab-separated body (Content-Type text/tab-separated-values): one row per line
// ('\n' or "\r\n"; a last line without one counts), its input columns in order as in the JSON
// array form, each value the text a training file holds (a multi-hot column: its delimited ids).
// At most max_rows rows (a larger body: FailedPrecondition naming the limit); blank lines and bad
// values: InvalidArgument naming the row.
Status TsvRowsToBatch(std::string_view body, const data::Schema& schema, size_t max_rows, data::Batch* batch);

}  // namespace ember::serving
