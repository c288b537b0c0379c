#include "ember/serving/request_rows.h"

#include "ember/data/criteo.h"

namespace ember::serving {

Status RowsToBatch(const std::vector<std::vector<std::string>>& rows, int num_dense, int num_sparse,
                   data::Batch* batch) {
  batch->Reset(num_dense, num_sparse, rows.size());
  const size_t expected = static_cast<size_t>(num_dense + num_sparse);
  std::string line;
  for (size_t r = 0; r < rows.size(); ++r) {
    if (rows[r].size() != expected)
      return Status::InvalidArgument("row " + std::to_string(r) + ": expected " + std::to_string(expected) +
                                     " fields, got " + std::to_string(rows[r].size()));
    line = "0";
    for (const auto& f : rows[r]) {
      if (f.find_first_of("\t\n") != std::string::npos)
        return Status::InvalidArgument("row " + std::to_string(r) + ": fields must not contain tabs or newlines");
      line += '\t';
      line += f;
    }
    Status st = data::ParseCriteoLine(line, batch, r);
    if (!st.ok()) return Status::InvalidArgument("row " + std::to_string(r) + ": " + st.message());
  }
  batch->size = rows.size();
  return Status::Ok();
}

}  // namespace ember::serving
