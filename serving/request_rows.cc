#include "ember/serving/request_rows.h"

#include <algorithm>

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

namespace {
// One request value as the text a file would hold; a multi-hot column's array joined.
Status ValueText(const nlohmann::json& v, const data::ColumnSpec& col, std::string* out) {
  if (v.is_string()) {
    *out = v.get<std::string>();
  } else if (v.is_number_integer()) {
    *out = std::to_string(v.get<int64_t>());
  } else if (v.is_number()) {
    *out = v.dump();
  } else if (v.is_null()) {
    out->clear();
  } else if (v.is_array() && col.role == data::ColumnRole::kMultiHot) {
    out->clear();
    for (size_t k = 0; k < v.size(); ++k) {
      if (!v[k].is_string()) return Status::InvalidArgument("column '" + col.name + "': ids must be strings");
      const std::string id = v[k].get<std::string>();
      if (id.find(col.separator) != std::string::npos)
        return Status::InvalidArgument("column '" + col.name + "': id '" + id + "' holds the separator");
      if (k) *out += col.separator;
      *out += id;
    }
  } else {
    return Status::InvalidArgument("column '" + col.name + "': expected a string" +
                                   (col.role == data::ColumnRole::kMultiHot ? " or an array of strings" : ""));
  }
  return Status::Ok();
}
}  // namespace

Status JsonRowsToBatch(const nlohmann::json& rows, const data::Schema& schema, data::Batch* batch) {
  const size_t n = rows.size();
  if (schema.criteo()) {  // the Criteo layout: rows of strings
    std::vector<std::vector<std::string>> text(n);
    const int F = schema.num_fields(), D = schema.num_dense();
    for (size_t r = 0; r < n; ++r) {
      if (!rows[r].is_array()) return Status::InvalidArgument("row " + std::to_string(r) + " is not an array");
      for (size_t f = 0; f < rows[r].size(); ++f) {
        if (!rows[r][f].is_string())
          return Status::InvalidArgument("row " + std::to_string(r) + ", field " + std::to_string(f) +
                                         ": expected a string (the training format's text)");
        text[r].push_back(rows[r][f].get<std::string>());
      }
    }
    return RowsToBatch(text, D, F, batch);
  }
  data::SchemaParser parser(schema);
  const std::vector<std::string> columns = parser.input_columns();
  std::vector<const data::ColumnSpec*> specs;
  for (const auto& c : schema.columns)
    if (c.role != data::ColumnRole::kLabel && c.role != data::ColumnRole::kIgnore) specs.push_back(&c);
  const auto multi = schema.multi_hot_fields();
  batch->Reset(schema.num_dense(), schema.num_fields(), n, &multi);
  std::vector<std::string> text(columns.size());
  std::vector<std::string_view> views(columns.size());
  for (size_t r = 0; r < n; ++r) {
    const auto& row = rows[r];
    auto bad = [&](const Status& st) {
      return Status::InvalidArgument("row " + std::to_string(r) + ": " + st.message());
    };
    for (auto& t : text) t.clear();
    if (row.is_array()) {
      if (row.size() != columns.size())
        return bad(Status::InvalidArgument("expected " + std::to_string(columns.size()) + " fields, got " +
                                           std::to_string(row.size())));
      for (size_t k = 0; k < columns.size(); ++k) {
        Status st = ValueText(row[k], *specs[k], &text[k]);
        if (!st.ok()) return bad(st);
      }
    } else if (row.is_object()) {
      for (const auto& [key, value] : row.items()) {
        size_t k = 0;
        while (k < columns.size() && columns[k] != key) ++k;
        if (k == columns.size()) return bad(Status::InvalidArgument("no input column named '" + key + "'"));
        Status st = ValueText(value, *specs[k], &text[k]);
        if (!st.ok()) return bad(st);
      }
    } else {
      return bad(Status::InvalidArgument("a row is an array of fields or an object of columns"));
    }
    for (size_t k = 0; k < columns.size(); ++k) views[k] = text[k];
    Status st = parser.ParseValues(views, batch, r);
    if (!st.ok()) return bad(st);
  }
  batch->size = n;
  return Status::Ok();
}

Status TsvRowsToBatch(std::string_view body, const data::Schema& schema, size_t max_rows, data::Batch* batch) {
  std::vector<std::string_view> lines;
  for (size_t at = 0; at < body.size();) {
    size_t nl = body.find('\n', at);
    if (nl == std::string_view::npos) nl = body.size();
    std::string_view line = body.substr(at, nl - at);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) return Status::InvalidArgument("row " + std::to_string(lines.size()) + " is an empty line");
    if (lines.size() == max_rows)
      return Status::FailedPrecondition("too many rows: more than " + std::to_string(max_rows) + " per request");
    lines.push_back(line);
    at = nl + 1;
  }
  if (lines.empty()) return Status::InvalidArgument("the body holds no rows");
  const size_t n = lines.size();
  auto bad = [](size_t r, const Status& st) {
    return Status::InvalidArgument("row " + std::to_string(r) + ": " + st.message());
  };
  if (schema.criteo()) {  // the training reader's own parser, behind a label it ignores
    batch->Reset(schema.num_dense(), schema.num_fields(), n);
    std::string line;
    const size_t expected = static_cast<size_t>(schema.num_dense() + schema.num_fields());
    for (size_t r = 0; r < n; ++r) {
      const size_t fields = static_cast<size_t>(std::count(lines[r].begin(), lines[r].end(), '\t')) + 1;
      if (fields != expected)
        return bad(r, Status::InvalidArgument("expected " + std::to_string(expected) + " fields, got " +
                                              std::to_string(fields)));
      line.assign("0\t");
      line.append(lines[r]);
      Status st = data::ParseCriteoLine(line, batch, r);
      if (!st.ok()) return bad(r, st);
    }
    batch->size = n;
    return Status::Ok();
  }
  data::SchemaParser parser(schema);
  const size_t columns = parser.input_columns().size();
  const auto multi = schema.multi_hot_fields();
  batch->Reset(schema.num_dense(), schema.num_fields(), n, &multi);
  std::vector<std::string_view> views;
  for (size_t r = 0; r < n; ++r) {
    views.clear();
    std::string_view line = lines[r];
    for (size_t at = 0;;) {
      const size_t tab = line.find('\t', at);
      views.push_back(line.substr(at, tab == std::string_view::npos ? std::string_view::npos : tab - at));
      if (tab == std::string_view::npos) break;
      at = tab + 1;
    }
    if (views.size() != columns)
      return bad(r, Status::InvalidArgument("expected " + std::to_string(columns) + " tab-separated fields, got " +
                                            std::to_string(views.size())));
    Status st = parser.ParseValues(views, batch, r);
    if (!st.ok()) return bad(r, st);
  }
  batch->size = n;
  return Status::Ok();
}

}  // namespace ember::serving
