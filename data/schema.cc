#include "ember/data/schema.h"

#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

#include "ember/common/hash.h"
#include "ember/data/vocab.h"

namespace ember::data {
namespace {
constexpr uint64_t kStringSeed = 0x656d626572737472ULL;  // "emberstr"

template <typename E>
struct Names {
  E value;
  const char* name;
};
constexpr Names<ColumnRole> kRoles[] = {{ColumnRole::kLabel, "label"},
                                        {ColumnRole::kDense, "dense"},
                                        {ColumnRole::kCategorical, "categorical"},
                                        {ColumnRole::kMultiHot, "multi_hot"},
                                        {ColumnRole::kYymmddhh, "yymmddhh"},
                                        {ColumnRole::kIgnore, "ignore"}};
constexpr Names<DenseTransform> kTransforms[] = {
    {DenseTransform::kLog1p, "log1p"}, {DenseTransform::kNone, "none"}, {DenseTransform::kStandardize, "standardize"}};
constexpr Names<IdEncoding> kEncodings[] = {
    {IdEncoding::kString, "string"}, {IdEncoding::kHex, "hex"}, {IdEncoding::kInt, "int"}};
constexpr Names<BagPooling> kPoolings[] = {{BagPooling::kSum, "sum"}, {BagPooling::kMean, "mean"}};

template <typename E, size_t N>
const char* NameOf(const Names<E> (&table)[N], E v) {
  for (const auto& n : table)
    if (n.value == v) return n.name;
  return "?";
}
template <typename E, size_t N>
bool ValueOf(const Names<E> (&table)[N], const std::string& s, E* out) {
  for (const auto& n : table)
    if (s == n.name) {
      *out = n.value;
      return true;
    }
  return false;
}
template <typename E, size_t N>
std::string Choices(const Names<E> (&table)[N]) {
  std::string out;
  for (const auto& n : table) out += (out.empty() ? "" : ", ") + std::string(n.name);
  return out;
}

// Ids never read as the two reserved values (missing, out of vocabulary).
uint64_t Unreserve(uint64_t id) { return id >= kOovId ? id ^ 0x5bd1e995ULL : id; }

bool ParseDouble(std::string_view s, double* out) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return !s.empty() && ec == std::errc() && p == s.data() + s.size() && std::isfinite(*out);
}

// Days since 1970-01-01 of a civil date (H. Hinnant's algorithm).
int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

std::string Quote(std::string_view s) { return "'" + std::string(s.substr(0, 64)) + (s.size() > 64 ? "...'" : "'"); }
}  // namespace

bool ParseHexId(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 16) return false;
  uint64_t v = 0;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      d = c - 'A' + 10;
    else
      return false;
    v = (v << 4) | static_cast<uint64_t>(d);
  }
  *out = v;
  return true;
}

const char* ColumnRoleName(ColumnRole r) { return NameOf(kRoles, r); }
const char* DenseTransformName(DenseTransform t) { return NameOf(kTransforms, t); }
const char* IdEncodingName(IdEncoding e) { return NameOf(kEncodings, e); }
const char* BagPoolingName(BagPooling p) { return NameOf(kPoolings, p); }

bool ParseId(std::string_view s, IdEncoding encoding, uint64_t* id) {
  if (s.empty()) {
    *id = kMissingId;
    return true;
  }
  switch (encoding) {
    case IdEncoding::kString:
      *id = Unreserve(Hash64(s, kStringSeed));
      return true;
    case IdEncoding::kHex:
      return ParseHexId(s, id);
    case IdEncoding::kInt: {
      int64_t v = 0;
      auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
      if (ec != std::errc() || p != s.data() + s.size()) return false;
      *id = Unreserve(static_cast<uint64_t>(v));
      return true;
    }
  }
  return false;
}

int Schema::num_dense() const {
  int n = 0;
  for (const auto& c : columns) n += c.role == ColumnRole::kDense;
  return n;
}
int Schema::num_fields() const { return static_cast<int>(field_names().size()); }
std::vector<std::string> Schema::field_names() const {
  std::vector<std::string> out;
  for (const auto& c : columns) {
    if (c.role == ColumnRole::kCategorical || c.role == ColumnRole::kMultiHot) out.push_back(c.name);
    if (c.role == ColumnRole::kYymmddhh) {
      out.push_back(c.name + "_hour");
      out.push_back(c.name + "_weekday");
    }
  }
  return out;
}
std::vector<uint8_t> Schema::multi_hot_fields() const {
  std::vector<uint8_t> out;
  for (const auto& c : columns) {
    if (c.role == ColumnRole::kCategorical || c.role == ColumnRole::kMultiHot)
      out.push_back(c.role == ColumnRole::kMultiHot);
    if (c.role == ColumnRole::kYymmddhh) out.insert(out.end(), {0, 0});
  }
  return out;
}
bool Schema::has_multi_hot() const {
  for (const auto& c : columns)
    if (c.role == ColumnRole::kMultiHot) return true;
  return false;
}
bool Schema::needs_dense_stats() const {
  for (const auto& c : columns)
    if (c.role == ColumnRole::kDense && c.transform == DenseTransform::kStandardize) return true;
  return false;
}

namespace {
nlohmann::json SchemaJson(const Schema& s, bool with_stats) {
  nlohmann::json cols = nlohmann::json::array();
  for (const auto& c : s.columns) {
    nlohmann::json j = {{"name", c.name}, {"role", ColumnRoleName(c.role)}};
    if (c.role == ColumnRole::kDense) {
      j["transform"] = DenseTransformName(c.transform);
      if (c.transform == DenseTransform::kStandardize && with_stats) {
        j["mean"] = c.mean;
        j["std"] = c.stddev;
      }
    }
    if (c.role == ColumnRole::kCategorical || c.role == ColumnRole::kMultiHot)
      j["encoding"] = IdEncodingName(c.encoding);
    if (c.role == ColumnRole::kMultiHot) {
      j["separator"] = c.separator;
      j["pooling"] = BagPoolingName(c.pooling);
      j["weighted"] = c.weighted;
    }
    cols.push_back(std::move(j));
  }
  return {{"format", s.format},
          {"delimiter", std::string(1, s.delimiter)},
          {"header", s.header},
          {"detect_header", s.detect_header},
          {"max_bag_length", s.max_bag_length},
          {"columns", std::move(cols)}};
}
}  // namespace

std::string Schema::ToJson() const { return SchemaJson(*this, true).dump(); }

uint64_t Schema::Fingerprint() const {
  const std::string text = SchemaJson(*this, false).dump();
  return Hash64(text, 0);
}

Result<Schema> Schema::FromJson(std::string_view text) {
  try {
    const auto j = nlohmann::json::parse(text);
    Schema s;
    s.format = j.at("format").get<std::string>();
    const std::string d = j.at("delimiter").get<std::string>();
    if (d.size() != 1) return Status::Corruption("schema: delimiter must be one character");
    s.delimiter = d[0];
    s.header = j.at("header").get<bool>();
    s.detect_header = j.value("detect_header", false);
    s.max_bag_length = j.value("max_bag_length", uint32_t{1024});
    for (const auto& jc : j.at("columns")) {
      ColumnSpec c;
      c.name = jc.at("name").get<std::string>();
      if (!ValueOf(kRoles, jc.at("role").get<std::string>(), &c.role))
        return Status::Corruption("schema: column '" + c.name + "': unknown role");
      if (jc.contains("transform") && !ValueOf(kTransforms, jc["transform"].get<std::string>(), &c.transform))
        return Status::Corruption("schema: column '" + c.name + "': unknown transform");
      c.mean = jc.value("mean", 0.0);
      c.stddev = jc.value("std", 1.0);
      if (jc.contains("encoding") && !ValueOf(kEncodings, jc["encoding"].get<std::string>(), &c.encoding))
        return Status::Corruption("schema: column '" + c.name + "': unknown encoding");
      c.separator = jc.value("separator", std::string("|"));
      if (jc.contains("pooling") && !ValueOf(kPoolings, jc["pooling"].get<std::string>(), &c.pooling))
        return Status::Corruption("schema: column '" + c.name + "': unknown pooling");
      c.weighted = jc.value("weighted", false);
      s.columns.push_back(std::move(c));
    }
    Status st = ValidateSchema(s);
    if (!st.ok()) return Status::Corruption(st.message());
    return s;
  } catch (const std::exception& e) {
    return Status::Corruption(std::string("schema: ") + e.what());
  }
}

Schema CriteoSchema(int num_dense, int num_sparse) {
  Schema s;
  s.format = "criteo";
  s.delimiter = '\t';
  s.header = false;
  s.columns.push_back({"label", ColumnRole::kLabel});
  for (int j = 0; j < num_dense; ++j) s.columns.push_back({"I" + std::to_string(j + 1), ColumnRole::kDense});
  for (int j = 0; j < num_sparse; ++j) {
    ColumnSpec c{"C" + std::to_string(j + 1), ColumnRole::kCategorical};
    c.encoding = IdEncoding::kHex;
    s.columns.push_back(c);
  }
  return s;
}

Schema AvazuSchema() {
  Schema s;
  s.format = "avazu";
  s.delimiter = ',';
  s.header = false;
  s.detect_header = true;
  s.columns.push_back({"id", ColumnRole::kIgnore});
  s.columns.push_back({"click", ColumnRole::kLabel});
  s.columns.push_back({"hour", ColumnRole::kYymmddhh});
  for (const char* name : {"C1",
                           "banner_pos",
                           "site_id",
                           "site_domain",
                           "site_category",
                           "app_id",
                           "app_domain",
                           "app_category",
                           "device_id",
                           "device_ip",
                           "device_model",
                           "device_type",
                           "device_conn_type",
                           "C14",
                           "C15",
                           "C16",
                           "C17",
                           "C18",
                           "C19",
                           "C20",
                           "C21"})
    s.columns.push_back({name, ColumnRole::kCategorical});
  return s;
}

Status ValidateSchema(const Schema& s) {
  if (s.format != "criteo" && s.format != "avazu" && s.format != "csv" && s.format != "tsv")
    return Status::InvalidArgument("data.format: unknown format '" + s.format + "'");
  if (s.delimiter == '"' || s.delimiter == '\n' || s.delimiter == '\r')
    return Status::InvalidArgument("data.delimiter: must not be a quote or a newline");
  std::set<std::string> names;
  int labels = 0;
  for (size_t i = 0; i < s.columns.size(); ++i) {
    const ColumnSpec& c = s.columns[i];
    const std::string where = "data.columns[" + std::to_string(i) + "]";
    if (c.name.empty()) return Status::InvalidArgument(where + ": a column needs a name");
    if (!names.insert(c.name).second)
      return Status::InvalidArgument(where + ": column '" + c.name + "' is named twice");
    labels += c.role == ColumnRole::kLabel;
    if (c.role == ColumnRole::kMultiHot) {
      if (c.separator.empty()) return Status::InvalidArgument(where + " ('" + c.name + "'): separator is empty");
      if (c.separator.find(s.delimiter) != std::string::npos)
        return Status::InvalidArgument(where + " ('" + c.name + "'): separator contains the delimiter");
      if (c.weighted && c.separator.find(':') != std::string::npos)
        return Status::InvalidArgument(where + " ('" + c.name + "'): a weighted column's separator cannot hold ':'");
    }
    if (c.role == ColumnRole::kDense && c.transform == DenseTransform::kStandardize &&
        !(std::isfinite(c.mean) && std::isfinite(c.stddev) && c.stddev > 0))
      return Status::InvalidArgument(where + " ('" + c.name + "'): standardize needs a finite mean and std > 0");
  }
  if (labels != 1)
    return Status::InvalidArgument("data.columns: exactly one column must have role = \"label\" (found " +
                                   std::to_string(labels) + ")");
  if (s.num_fields() < 1) return Status::InvalidArgument("data.columns: no categorical or multi_hot column");
  if (s.num_fields() > 1000) return Status::InvalidArgument("data.columns: more than 1000 categorical fields");
  if (s.num_dense() > 1024) return Status::InvalidArgument("data.columns: more than 1024 dense columns");
  if (s.max_bag_length < 1) return Status::InvalidArgument("data.max_bag_length must be >= 1");
  return Status::Ok();
}

SchemaParser::SchemaParser(const Schema& schema) : schema_(schema) {
  int field = 0, dense = 0;
  for (const auto& c : schema_.columns) {
    field_of_.push_back(-1);
    dense_of_.push_back(-1);
    if (c.role == ColumnRole::kCategorical || c.role == ColumnRole::kMultiHot) field_of_.back() = field++;
    if (c.role == ColumnRole::kYymmddhh) {
      field_of_.back() = field;
      field += 2;
    }
    if (c.role == ColumnRole::kDense) dense_of_.back() = dense++;
  }
  for (size_t c = 0; c < schema_.columns.size(); ++c) positions_.push_back(c);
  record_fields_ = schema_.columns.size();
}

bool SchemaParser::OpenQuote(std::string_view record) {
  size_t quotes = 0;
  for (char ch : record) quotes += ch == '"';
  return quotes % 2 == 1;
}

Status SchemaParser::Split(std::string_view record) {
  if (!record.empty() && record.back() == '\r') record.remove_suffix(1);
  fields_.clear();
  const char d = schema_.delimiter;
  std::string& buf = scratch_;
  buf.clear();
  buf.reserve(record.size());  // never reallocates below: views into it stay valid
  size_t i = 0;
  for (;;) {
    if (i < record.size() && record[i] == '"') {
      const size_t start = buf.size();
      ++i;
      for (;;) {
        if (i >= record.size())
          return Status::InvalidArgument("field " + std::to_string(fields_.size() + 1) +
                                         ": a quoted field is not closed");
        if (record[i] == '"') {
          if (i + 1 < record.size() && record[i + 1] == '"') {
            buf.push_back('"');
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        buf.push_back(record[i++]);
      }
      fields_.emplace_back(buf.data() + start, buf.size() - start);
      if (i < record.size() && record[i] != d)
        return Status::InvalidArgument("field " + std::to_string(fields_.size()) +
                                       ": characters after a closing quote (RFC 4180: double a quote inside quotes)");
    } else {
      const size_t end = record.find(d, i);
      fields_.push_back(record.substr(i, end == std::string_view::npos ? end : end - i));
      i = end == std::string_view::npos ? record.size() : end;
    }
    if (i >= record.size()) break;
    ++i;  // the delimiter; a record ending in one has an empty last field
    if (i == record.size()) {
      fields_.emplace_back();
      break;
    }
  }
  return Status::Ok();
}

Status SchemaParser::SetHeader(std::string_view record) {
  EMBER_RETURN_IF_ERROR(Split(record));
  std::vector<size_t> positions(schema_.columns.size());
  for (size_t c = 0; c < schema_.columns.size(); ++c) {
    const std::string& name = schema_.columns[c].name;
    size_t at = fields_.size();
    for (size_t k = 0; k < fields_.size(); ++k)
      if (fields_[k] == name) {
        at = k;
        break;
      }
    if (at == fields_.size()) {
      std::string have;
      for (size_t k = 0; k < fields_.size() && k < 40; ++k) have += (k ? ", " : "") + std::string(fields_[k]);
      return Status::InvalidArgument("column '" + name + "' is not in the header (it has: " + have + ")");
    }
    positions[c] = at;
  }
  positions_ = std::move(positions);
  record_fields_ = fields_.size();
  return Status::Ok();
}

Status SchemaParser::ParseColumn(size_t c, std::string_view v, Batch* batch, size_t row) {
  const ColumnSpec& col = schema_.columns[c];
  const size_t stride = batch->labels.size();
  auto bad = [&](const std::string& why) { return Status::InvalidArgument("column '" + col.name + "': " + why); };
  switch (col.role) {
    case ColumnRole::kIgnore:
      return Status::Ok();
    case ColumnRole::kLabel:
      if (v == "1" || v == "1.0" || v == "true")
        batch->labels[row] = 1.0f;
      else if (v == "0" || v == "0.0" || v == "false")
        batch->labels[row] = 0.0f;
      else
        return bad("expected a label 0 or 1, got " + Quote(v));
      return Status::Ok();
    case ColumnRole::kDense: {
      double x = 0;
      if (!v.empty() && !ParseDouble(v, &x)) return bad("expected a number, got " + Quote(v));
      if (col.transform == DenseTransform::kLog1p) x = x > 0 ? std::log1p(x) : 0.0;
      if (col.transform == DenseTransform::kStandardize) x = v.empty() ? 0.0 : (x - col.mean) / col.stddev;
      batch->dense[row * static_cast<size_t>(batch->num_dense) + static_cast<size_t>(dense_of_[c])] =
          static_cast<float>(x);
      return Status::Ok();
    }
    case ColumnRole::kCategorical: {
      uint64_t id = 0;
      if (!ParseId(v, col.encoding, &id))
        return bad(std::string("expected ") +
                   (col.encoding == IdEncoding::kHex ? "a hex id of at most 16 digits" : "an integer id") + ", got " +
                   Quote(v));
      batch->sparse[static_cast<size_t>(field_of_[c]) * stride + row] = id;
      return Status::Ok();
    }
    case ColumnRole::kYymmddhh: {
      const size_t f = static_cast<size_t>(field_of_[c]);
      uint64_t hour = kMissingId, weekday = kMissingId;
      if (!v.empty()) {
        int64_t t = 0;
        auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), t);
        const int64_t hh = t % 100, dd = t / 100 % 100, mm = t / 10000 % 100, yy = t / 1000000;
        if (v.size() != 8 || ec != std::errc() || p != v.data() + v.size() || hh > 23 || dd < 1 || dd > 31 || mm < 1 ||
            mm > 12)
          return bad("expected an hour as YYMMDDHH, got " + Quote(v));
        hour = static_cast<uint64_t>(hh);
        const int64_t days = DaysFromCivil(2000 + yy, mm, dd);
        weekday = static_cast<uint64_t>(((days + 3) % 7 + 7) % 7);  // 1970-01-01 was a Thursday
      }
      batch->sparse[f * stride + row] = hour;
      batch->sparse[(f + 1) * stride + row] = weekday;
      return Status::Ok();
    }
    case ColumnRole::kMultiHot: {
      Bags& bag = batch->bags[static_cast<size_t>(field_of_[c])];
      const size_t first = bag.ids.size();
      size_t pos = 0;
      while (pos <= v.size() && !v.empty()) {
        const size_t end = v.find(col.separator, pos);
        std::string_view item = v.substr(pos, end == std::string_view::npos ? end : end - pos);
        pos = end == std::string_view::npos ? v.size() + 1 : end + col.separator.size();
        if (item.empty()) continue;
        double w = 1;
        if (col.weighted) {
          const size_t colon = item.rfind(':');
          if (colon == std::string_view::npos) return bad("expected id:weight, got " + Quote(item));
          if (!ParseDouble(item.substr(colon + 1), &w)) return bad("bad weight in " + Quote(item));
          item = item.substr(0, colon);
        }
        uint64_t id = 0;
        if (item.empty() || !ParseId(item, col.encoding, &id)) return bad("bad id " + Quote(item));
        if (bag.ids.size() - first >= schema_.max_bag_length)
          return bad("a bag of more than " + std::to_string(schema_.max_bag_length) + " ids (data.max_bag_length)");
        bag.ids.push_back(id);
        bag.weights.push_back(static_cast<float>(w));
      }
      const size_t n = bag.ids.size() - first;
      if (col.pooling == BagPooling::kMean && n > 0)
        for (size_t k = first; k < bag.ids.size(); ++k) bag.weights[k] /= static_cast<float>(n);
      bag.offsets.push_back(static_cast<uint32_t>(bag.ids.size()));
      return Status::Ok();
    }
  }
  return Status::Internal("unknown column role");
}

namespace {
// The bags' sizes before a record, to undo a record that fails halfway.
struct BagMark {
  std::vector<std::pair<size_t, size_t>> sizes;  // per field: (ids, offsets)
  void Take(const Batch& b) {
    sizes.clear();
    for (const auto& bag : b.bags) sizes.emplace_back(bag.ids.size(), bag.offsets.size());
  }
  void Restore(Batch* b) const {
    for (size_t f = 0; f < sizes.size(); ++f) {
      b->bags[f].ids.resize(sizes[f].first);
      b->bags[f].weights.resize(sizes[f].first);
      b->bags[f].offsets.resize(sizes[f].second);
    }
  }
};
}  // namespace

Status SchemaParser::Parse(std::string_view record, Batch* batch, size_t row) {
  EMBER_RETURN_IF_ERROR(Split(record));
  if (fields_.size() != record_fields_)
    return Status::InvalidArgument("expected " + std::to_string(record_fields_) + " fields" +
                                   (schema_.header ? " (the header's)" : "") + ", got " +
                                   std::to_string(fields_.size()));
  BagMark mark;
  mark.Take(*batch);
  for (size_t c = 0; c < schema_.columns.size(); ++c) {
    Status st = ParseColumn(c, fields_[positions_[c]], batch, row);
    if (!st.ok()) {
      mark.Restore(batch);
      return st;
    }
  }
  return Status::Ok();
}

std::vector<std::string> SchemaParser::input_columns() const {
  std::vector<std::string> out;
  for (const auto& c : schema_.columns)
    if (c.role != ColumnRole::kLabel && c.role != ColumnRole::kIgnore) out.push_back(c.name);
  return out;
}

Status SchemaParser::ParseValues(const std::vector<std::string_view>& values, Batch* batch, size_t row) {
  BagMark mark;
  mark.Take(*batch);
  size_t k = 0;
  for (size_t c = 0; c < schema_.columns.size(); ++c) {
    const ColumnRole role = schema_.columns[c].role;
    if (role == ColumnRole::kLabel) {
      batch->labels[row] = 0;
      continue;
    }
    if (role == ColumnRole::kIgnore) continue;
    if (k >= values.size()) {
      mark.Restore(batch);
      return Status::InvalidArgument("expected " + std::to_string(input_columns().size()) + " fields, got " +
                                     std::to_string(values.size()));
    }
    Status st = ParseColumn(c, values[k++], batch, row);
    if (!st.ok()) {
      mark.Restore(batch);
      return st;
    }
  }
  if (k != values.size()) {
    mark.Restore(batch);
    return Status::InvalidArgument("expected " + std::to_string(k) + " fields, got " + std::to_string(values.size()));
  }
  return Status::Ok();
}

}  // namespace ember::data
