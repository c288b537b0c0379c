#include "ember/embedding/export.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "ember/common/file.h"
#include "ember/common/half.h"
#include "ember/embedding/sparse_store.h"
#include "export_internal.h"

namespace ember::embedding {
using export_internal::EncodedTable;
using export_internal::kEndMagic;
using export_internal::kMagic;
using export_internal::kPrologue;
using export_internal::kTrailer;
using export_internal::MaskBytes;
using export_internal::ValueBytes;
namespace {

uint64_t Crc32(const uint8_t* data, uint64_t n) {
  uLong crc = crc32(0L, Z_NULL, 0);
  while (n > 0) {
    const uInt chunk = static_cast<uInt>(std::min<uint64_t>(n, 1u << 30));
    crc = crc32(crc, data, chunk);
    data += chunk;
    n -= chunk;
  }
  return crc;
}

// Appends bytes at the next aligned offset of *out; returns {"offset", "bytes"}.
nlohmann::json AppendSection(std::string* out, const void* data, size_t bytes) {
  out->resize((out->size() + kExportAlign - 1) / kExportAlign * kExportAlign, '\0');
  const size_t offset = out->size();
  if (bytes > 0) out->append(static_cast<const char*>(data), bytes);
  return {{"offset", offset}, {"bytes", bytes}};
}

// Encodes n values of one row at precision p into out (int8: *scale, *bias set).
void EncodeRow(const float* v, size_t n, ExportPrecision p, std::string* out, float* scale, float* bias) {
  if (p == ExportPrecision::kFp32) {
    out->append(reinterpret_cast<const char*>(v), n * sizeof(float));
  } else if (p == ExportPrecision::kFp16) {
    for (size_t j = 0; j < n; ++j) {
      const uint16_t h = FloatToHalf(v[j]);
      out->append(reinterpret_cast<const char*>(&h), 2);
    }
  } else {
    float lo = 0, hi = 0;
    if (n > 0) {
      lo = *std::min_element(v, v + n);
      hi = *std::max_element(v, v + n);
    }
    *bias = lo;
    *scale = (hi - lo) / 255.0f;
    for (size_t j = 0; j < n; ++j) {
      const float q = *scale > 0 ? std::nearbyint((v[j] - lo) / *scale) : 0.0f;
      out->push_back(static_cast<char>(static_cast<uint8_t>(std::clamp(q, 0.0f, 255.0f))));
    }
  }
}

float DecodeValue(const uint8_t* values, size_t i, ExportPrecision p, float scale, float bias) {
  if (p == ExportPrecision::kFp32) {
    float f;
    std::memcpy(&f, values + i * 4, 4);
    return f;
  }
  if (p == ExportPrecision::kFp16) {
    uint16_t h;
    std::memcpy(&h, values + i * 2, 2);
    return HalfToFloat(h);
  }
  return static_cast<float>(values[i]) * scale + bias;
}

const char* KindName(TableKind k) { return k == TableKind::kSparse ? "sparse" : "dense"; }

uint64_t ReadMask(const uint8_t* masks, size_t r, size_t bytes) {
  uint64_t m = 0;
  std::memcpy(&m, masks + r * bytes, bytes);  // little-endian
  return m;
}
}  // namespace

Result<ExportPrecision> ParseExportPrecision(const std::string& name) {
  if (name == "fp32") return ExportPrecision::kFp32;
  if (name == "fp16") return ExportPrecision::kFp16;
  if (name == "int8") return ExportPrecision::kInt8;
  return Status::InvalidArgument("unknown export precision '" + name + "' (expected fp32, fp16 or int8)");
}

const char* ExportPrecisionName(ExportPrecision p) {
  return p == ExportPrecision::kFp32 ? "fp32" : p == ExportPrecision::kFp16 ? "fp16" : "int8";
}

nlohmann::json MethodConfigToJson(const MethodConfig& c) {
  std::vector<std::string> field_methods;
  for (const auto& m : c.field_methods) field_methods.push_back(m ? MethodName(*m) : "");
  return {{"method", MethodName(c.method)},
          {"dim", c.dim},
          {"rows", c.rows},
          {"tables", c.tables},
          {"chunks", c.chunks},
          {"field_chunks", c.field_chunks},
          {"sum_probes", c.sum_probes},
          {"collisionless_below", c.collisionless_below},
          {"frequent_counts", c.frequent_counts},
          {"field_methods", field_methods},
          {"density", c.density},
          {"dsl_rows", c.dsl_rows},
          {"field_widths", c.field_widths},
          {"seed", c.seed},
          {"first_table", c.first_table},
          {"init_scale", c.init_scale},
          {"precision", c.precision == Precision::kFp16 ? "fp16" : "fp32"},
          {"lifecycle",
           {{"admit_after", c.lifecycle.admit_after},
            {"admit_probability", c.lifecycle.admit_probability},
            {"sketch_width", c.lifecycle.sketch_width},
            {"sketch_depth", c.lifecycle.sketch_depth},
            {"expire_after", c.lifecycle.expire_after}}},
          {"field_admit_after", c.field_admit_after},
          {"fallback", FallbackName(c.fallback)},
          {"fallback_rows", c.fallback_rows},
          {"vocabulary", c.vocabulary}};
}

Result<MethodConfig> MethodConfigFromJson(const nlohmann::json& j) {
  MethodConfig c;
  try {
    EMBER_ASSIGN_OR_RETURN(c.method, ParseMethod(j.at("method").get<std::string>()));
    c.dim = j.at("dim").get<int>();
    c.rows = j.at("rows").get<uint64_t>();
    c.tables = j.at("tables").get<int>();
    c.chunks = j.at("chunks").get<int>();
    c.field_chunks = j.at("field_chunks").get<std::vector<int>>();
    c.sum_probes = j.value("sum_probes", false);  // descriptions before summed probes concatenate
    c.collisionless_below = j.at("collisionless_below").get<uint64_t>();
    // Older descriptions: no frequent values of their own.
    c.frequent_counts = j.value("frequent_counts", std::vector<uint64_t>{});
    for (const auto& name : j.at("field_methods").get<std::vector<std::string>>()) {
      if (name.empty()) {
        c.field_methods.emplace_back();
        continue;
      }
      EMBER_ASSIGN_OR_RETURN(const Method m, ParseMethod(name));
      c.field_methods.emplace_back(m);
    }
    c.density = j.at("density").get<float>();
    c.dsl_rows = j.value("dsl_rows", uint64_t{0});  // older descriptions: a row per value
    c.vocabulary = j.value("vocabulary", false);    // older descriptions: no vocabulary rule
    c.field_widths = j.at("field_widths").get<std::vector<int>>();
    c.seed = j.at("seed").get<uint64_t>();
    c.first_table = j.at("first_table").get<uint32_t>();
    c.init_scale = j.at("init_scale").get<float>();
    c.precision = j.at("precision").get<std::string>() == "fp16" ? Precision::kFp16 : Precision::kFp32;
    if (j.contains("lifecycle")) {  // exports before feature admission have none
      const auto& l = j.at("lifecycle");
      c.lifecycle.admit_after = l.at("admit_after").get<uint32_t>();
      c.lifecycle.admit_probability = l.at("admit_probability").get<float>();
      c.lifecycle.sketch_width = l.at("sketch_width").get<uint32_t>();
      c.lifecycle.sketch_depth = l.at("sketch_depth").get<uint32_t>();
      c.lifecycle.expire_after = l.at("expire_after").get<uint64_t>();
      c.field_admit_after = j.at("field_admit_after").get<std::vector<uint32_t>>();
      EMBER_ASSIGN_OR_RETURN(c.fallback, ParseFallback(j.at("fallback").get<std::string>()));
      c.fallback_rows = j.at("fallback_rows").get<uint64_t>();
    }
  } catch (const std::exception& e) {
    return Status::Corruption(std::string("bad method description: ") + e.what());
  }
  return c;
}

uint64_t ExportSummary::value_bytes() const {
  uint64_t b = 0;
  for (const auto& t : tables) b += t.value_bytes;
  return b;
}

uint64_t ExportSummary::other_bytes() const {
  uint64_t b = 0;
  for (const auto& t : tables) b += t.other_bytes;
  return b;
}

Status ExportWriter::AddTable(const Table& table) {
  const TableSpec& spec = table.spec();
  auto it = std::find_if(tables_.begin(), tables_.end(), [&](const TableOut& t) { return t.spec.id == spec.id; });
  if (it == tables_.end()) {
    tables_.push_back({spec, {}, {}, {}, {}});
    it = tables_.end() - 1;
  } else if (it->spec.dim != spec.dim || it->spec.kind != spec.kind) {
    return Status::InvalidArgument("export: table " + std::to_string(spec.id) + " pieces disagree on width or kind");
  }
  TableOut& t = *it;
  const size_t dim = static_cast<size_t>(spec.dim);
  if (spec.kind == TableKind::kSparse) {
    const auto* sparse = dynamic_cast<const SparseRowStore*>(&table);
    if (!sparse)
      return Status::Internal("export: sparse table " + std::to_string(spec.id) + " is not a SparseRowStore");
    table.ForEachRow([&](uint64_t key, const float* w) {
      uint64_t mask = 0;
      sparse->Mask(key, &mask);
      if (mask == 0 && spec.frozen) return;  // reads zero either way
      t.keys.push_back(key);
      t.masks.push_back(mask);
      t.starts.push_back(t.values.size());
      for (size_t j = 0; j < dim; ++j)
        if ((mask >> j) & 1) t.values.push_back(w[j]);
    });
    return Status::Ok();
  }
  table.ForEachRow([&](uint64_t key, const float* w) {
    if (spec.frozen && std::all_of(w, w + dim, [](float x) { return x == 0.0f; })) return;
    t.keys.push_back(key);
    t.values.insert(t.values.end(), w, w + dim);
  });
  return Status::Ok();
}

Status ExportWriter::AddDense(const std::string& name, const std::vector<int64_t>& shape, const float* data) {
  for (const auto& d : dense_)
    if (d.name == name) return Status::InvalidArgument("export: dense array '" + name + "' added twice");
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  dense_.push_back({name, shape, std::vector<float>(data, data + n)});
  return Status::Ok();
}

Result<std::vector<EncodedTable>> ExportWriter::Encode() const {
  std::vector<EncodedTable> out;
  std::vector<const TableOut*> order;
  for (const auto& t : tables_) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const TableOut* a, const TableOut* b) { return a->spec.id < b->spec.id; });
  for (const TableOut* tp : order) {
    const TableOut& t = *tp;
    const size_t n = t.keys.size(), dim = static_cast<size_t>(t.spec.dim);
    std::vector<size_t> perm(n);
    std::iota(perm.begin(), perm.end(), 0);
    std::sort(perm.begin(), perm.end(), [&](size_t a, size_t b) { return t.keys[a] < t.keys[b]; });
    EncodedTable e;
    e.spec = t.spec;
    const bool sparse = t.spec.kind == TableKind::kSparse;
    if (sparse) e.mask_bytes = MaskBytes(t.spec.dim);
    e.keys.resize(n);
    e.starts.reserve(n + 1);
    e.starts.push_back(0);
    for (size_t r = 0; r < n; ++r) {
      const size_t i = perm[r];
      e.keys[r] = t.keys[i];
      if (r > 0 && e.keys[r] == e.keys[r - 1])
        return Status::InvalidArgument("export: key " + std::to_string(e.keys[r]) + " appears twice in table " +
                                       std::to_string(t.spec.id));
      const float* v = sparse ? t.values.data() + t.starts[i] : t.values.data() + i * dim;
      const size_t len = sparse ? static_cast<size_t>(__builtin_popcountll(t.masks[i])) : dim;
      if (sparse) e.masks.append(reinterpret_cast<const char*>(&t.masks[i]), e.mask_bytes);
      float scale = 0, bias = 0;
      EncodeRow(v, len, precision_, &e.values, &scale, &bias);
      e.starts.push_back(e.values.size());
      if (precision_ == ExportPrecision::kInt8) {
        e.scales.push_back(scale);
        e.scales.push_back(bias);
      }
    }
    out.push_back(std::move(e));
  }
  return out;
}

Result<ExportSummary> ExportWriter::Write(const std::string& path, Env* env) const {
  EMBER_ASSIGN_OR_RETURN(const auto tables, Encode());
  ExportSummary summary;
  const std::string file = export_internal::Serialize(precision_, model_, tables, dense_, nullptr, &summary);
  EMBER_RETURN_IF_ERROR(env->WriteFileAtomic(path, file));
  return summary;
}

namespace export_internal {

size_t ValueBytes(ExportPrecision p) { return p == ExportPrecision::kFp32 ? 4 : p == ExportPrecision::kFp16 ? 2 : 1; }

size_t MaskBytes(int dim) { return dim <= 8 ? 1 : dim <= 16 ? 2 : dim <= 32 ? 4 : 8; }

uint64_t StoredCrc(const uint8_t* data, uint64_t size) {
  uint64_t crc = 0;
  std::memcpy(&crc, data + size - kTrailer, 8);
  return crc;
}

std::string Serialize(ExportPrecision precision, const nlohmann::json& model, const std::vector<EncodedTable>& in,
                      const std::vector<DenseArray>& dense_arrays, const DeltaLink* delta, ExportSummary* summary) {
  std::string body;  // sections; offsets are relative to the body, fixed up below
  nlohmann::json tables = nlohmann::json::array();
  for (const EncodedTable& t : in) {
    const TableSpec& s = t.spec;
    const size_t n = t.rows();
    nlohmann::json j = {{"id", s.id},
                        {"dim", s.dim},
                        {"kind", KindName(s.kind)},
                        {"rows", n},
                        {"capacity", s.rows},
                        {"init_scale", s.init_scale},
                        {"seed", s.seed},
                        {"density", s.density},
                        {"frozen", s.frozen},
                        {"missing", s.frozen ? "zero" : "init"}};
    ExportSummary::TableBytes tb;
    tb.id = s.id;
    tb.rows = n;
    tb.evicted = t.evicted.size();
    tb.value_bytes = t.values.size();
    tb.other_bytes =
        n * sizeof(uint64_t) + t.scales.size() * sizeof(float) + t.masks.size() + t.evicted.size() * sizeof(uint64_t);
    j["keys"] = AppendSection(&body, t.keys.data(), n * sizeof(uint64_t));
    j["values"] = AppendSection(&body, t.values.data(), t.values.size());
    if (precision == ExportPrecision::kInt8)
      j["scales"] = AppendSection(&body, t.scales.data(), t.scales.size() * sizeof(float));
    if (s.kind == TableKind::kSparse) {
      j["mask_bytes"] = MaskBytes(s.dim);
      j["masks"] = AppendSection(&body, t.masks.data(), t.masks.size());
    }
    if (delta) j["evicted"] = AppendSection(&body, t.evicted.data(), t.evicted.size() * sizeof(uint64_t));
    summary->tables.push_back(tb);
    tables.push_back(std::move(j));
  }
  nlohmann::json dense = nlohmann::json::array();
  for (const auto& d : dense_arrays) {
    dense.push_back(
        {{"name", d.name}, {"shape", d.shape}, {"data", AppendSection(&body, d.data.data(), d.data.size() * 4)}});
    summary->dense_bytes += d.data.size() * sizeof(float);
  }
  // The header's length decides where the body starts; offsets in it are absolute, so render it
  // with a reserved width, then shift every offset by the body's start.
  nlohmann::json header = {{"format", "ember-export"},
                           {"version", kExportVersion},
                           {"precision", ExportPrecisionName(precision)},
                           {"byte_order", "little"},
                           {"model", model},
                           {"tables", tables},
                           {"dense", dense}};
  if (delta)
    header["delta"] = {{"parent", delta->parent},
                       {"parent_crc32", delta->parent_crc},
                       {"base", delta->base},
                       {"base_crc32", delta->base_crc},
                       {"sequence", delta->sequence}};
  size_t start = 0;
  std::string text;
  for (int pass = 0; pass < 4; ++pass) {
    auto shift = [&](nlohmann::json& sec) { sec["offset"] = sec["offset"].get<uint64_t>() + start; };
    nlohmann::json h = header;
    for (auto& t : h["tables"])
      for (const char* k : {"keys", "values", "scales", "masks", "evicted"})
        if (t.contains(k)) shift(t[k]);
    for (auto& d : h["dense"]) shift(d["data"]);
    text = h.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    const size_t want = (kPrologue + text.size() + kExportAlign - 1) / kExportAlign * kExportAlign;
    if (want == start) break;
    start = want;
  }
  std::string file;
  file.reserve(start + body.size() + kExportAlign + kTrailer);
  file.append(kMagic, 4);
  const uint32_t version = kExportVersion;
  const uint64_t header_len = text.size();
  file.append(reinterpret_cast<const char*>(&version), 4);
  file.append(reinterpret_cast<const char*>(&header_len), 8);
  file += text;
  file.resize(start, ' ');
  file += body;
  file.resize((file.size() + 7) / 8 * 8, '\0');
  const uint64_t crc = Crc32(reinterpret_cast<const uint8_t*>(file.data()), file.size());
  file.append(reinterpret_cast<const char*>(&crc), 8);
  file.append(kEndMagic, 8);
  summary->header_bytes = kPrologue + text.size();
  summary->file_bytes = file.size();
  summary->padding_bytes = summary->file_bytes - summary->header_bytes - summary->dense_bytes - summary->value_bytes() -
                           summary->other_bytes();
  return file;
}

}  // namespace export_internal

ExportFile::~ExportFile() {
  if (!data_) return;
  if (mapped_)
    ::munmap(const_cast<uint8_t*>(data_), size_);
  else
    std::free(const_cast<uint8_t*>(data_));
}

Result<std::unique_ptr<ExportFile>> ExportFile::OpenRaw(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IoError("cannot open export " + path + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return Status::IoError("cannot stat " + path);
  }
  std::unique_ptr<ExportFile> f(new ExportFile());
  f->path_ = path;
  f->chain_ = {path};
  f->size_ = static_cast<uint64_t>(st.st_size);
  if (f->size_ < kPrologue + kTrailer) {
    ::close(fd);
    return Status::Corruption(path + ": not a valid ember export: too short (" + std::to_string(f->size_) + " bytes)");
  }
  void* m = ::mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) return Status::IoError("cannot map " + path + ": " + std::strerror(errno));
  f->data_ = static_cast<const uint8_t*>(m);
  f->mapped_ = true;
  EMBER_RETURN_IF_ERROR(f->Validate());
  f->file_crc_ = export_internal::StoredCrc(f->data_, f->size_);
  if (f->header_.contains("delta")) f->link_ = f->header_["delta"];
  return f;
}

Result<std::unique_ptr<ExportFile>> ExportFile::Open(const std::string& path) {
  EMBER_ASSIGN_OR_RETURN(auto f, OpenRaw(path));
  if (!f->header_.contains("delta")) return f;
  std::unique_ptr<ExportFile> r(new ExportFile());
  EMBER_ASSIGN_OR_RETURN(std::string bytes, export_internal::ResolveDelta(*f, &r->chain_));
  r->path_ = path;
  r->file_crc_ = f->file_crc_;
  r->link_ = f->link_;
  r->size_ = bytes.size();
  void* buf = std::aligned_alloc(kExportAlign, (bytes.size() + kExportAlign - 1) / kExportAlign * kExportAlign);
  if (!buf) return Status::Internal(path + ": out of memory resolving the delta");
  std::memcpy(buf, bytes.data(), bytes.size());
  r->data_ = static_cast<const uint8_t*>(buf);
  EMBER_RETURN_IF_ERROR(r->Validate());
  return r;
}

Status ExportFile::Validate() {
  ExportFile* f = this;
  const std::string& path = path_;
  auto bad = [&](const std::string& why) { return Status::Corruption(path + ": not a valid ember export: " + why); };
  const uint8_t* d = f->data_;
  if (f->size_ < kPrologue + kTrailer) return bad("too short (" + std::to_string(f->size_) + " bytes)");
  if (std::memcmp(d, kMagic, 4) != 0) return bad("wrong magic");
  uint32_t version;
  uint64_t header_len, crc;
  std::memcpy(&version, d + 4, 4);
  std::memcpy(&header_len, d + 8, 8);
  if (version != kExportVersion)
    return bad("format version " + std::to_string(version) + ", this build reads " + std::to_string(kExportVersion));
  if (std::memcmp(d + f->size_ - 8, kEndMagic, 8) != 0) return bad("no end marker (truncated?)");
  std::memcpy(&crc, d + f->size_ - kTrailer, 8);
  if (Crc32(d, f->size_ - kTrailer) != crc) return bad("checksum mismatch (corrupted)");
  if (header_len > f->size_ - kPrologue - kTrailer) return bad("header length past the end");
  try {
    f->header_ = nlohmann::json::parse(d + kPrologue, d + kPrologue + header_len);
  } catch (const std::exception& e) {
    return bad(std::string("header is not JSON: ") + e.what());
  }
  const auto& h = f->header_;
  if (!h.is_object() || h.value("format", "") != "ember-export" || !h.contains("tables") || !h.contains("dense") ||
      !h.contains("model"))
    return bad("header lacks format, tables, dense or model");
  auto precision = ParseExportPrecision(h.value("precision", ""));
  if (!precision.ok()) return bad(precision.status().message());
  f->precision_ = *precision;
  if (h.contains("delta")) {
    const auto& dl = h["delta"];
    auto plain = [](const nlohmann::json& n) {
      if (!n.is_string()) return false;
      const std::string s = n.get<std::string>();
      return !s.empty() && s != "." && s != ".." && s.find('/') == std::string::npos;
    };
    if (!dl.is_object() || !plain(dl.value("parent", nlohmann::json())) || !plain(dl.value("base", nlohmann::json())) ||
        !dl.value("parent_crc32", nlohmann::json()).is_number_unsigned() ||
        !dl.value("base_crc32", nlohmann::json()).is_number_unsigned() ||
        !dl.value("sequence", nlohmann::json()).is_number_unsigned() || dl["sequence"].get<uint64_t>() == 0)
      return bad("a delta's link needs parent and base file names, their crc32 and a sequence number >= 1");
  }
  const uint64_t body_end = f->size_ - kTrailer;
  auto check = [&](const nlohmann::json& sec, const std::string& what) -> Status {
    if (!sec.is_object() || !sec.contains("offset") || !sec.contains("bytes") || !sec["offset"].is_number_unsigned() ||
        !sec["bytes"].is_number_unsigned())
      return bad(what + ": bad section descriptor");
    const uint64_t off = sec["offset"], bytes = sec["bytes"];
    if (off % kExportAlign != 0 || off < kPrologue + header_len || off > body_end || bytes > body_end - off)
      return bad(what + ": section outside the file or misaligned");
    return Status::Ok();
  };
  try {
    for (const auto& t : h["tables"]) {
      const std::string what = "table " + t.at("id").dump();
      const uint64_t rows = t.at("rows"), dim = t.at("dim");
      const bool sparse = t.at("kind") == "sparse";
      if (dim == 0 || dim > 4096 || (sparse && dim > 64)) return bad(what + ": bad width");
      if (rows > body_end / 8) return bad(what + ": more rows than the file has bytes for");
      for (const char* k : {"keys", "values"}) EMBER_RETURN_IF_ERROR(check(t.at(k), what + " " + k));
      if (h.contains("delta")) {  // a delta's evicted keys: sorted, unique
        EMBER_RETURN_IF_ERROR(check(t.at("evicted"), what + " evicted"));
        const uint64_t bytes = t["evicted"]["bytes"];
        if (bytes % 8 != 0) return bad(what + ": evicted keys are not whole u64s");
        const uint8_t* ev = d + t["evicted"]["offset"].get<uint64_t>();
        uint64_t prev = 0;
        for (uint64_t i = 0; i < bytes / 8; ++i) {
          uint64_t k;
          std::memcpy(&k, ev + i * 8, 8);
          if (i > 0 && k <= prev) return bad(what + ": evicted keys are not sorted and unique");
          prev = k;
        }
      }
      if (t["keys"]["bytes"].get<uint64_t>() != rows * 8) return bad(what + ": keys do not match rows");
      const uint64_t vb = ValueBytes(f->precision_);
      if (!sparse && t["values"]["bytes"].get<uint64_t>() != rows * dim * vb)
        return bad(what + ": values do not match rows");
      if (f->precision_ == ExportPrecision::kInt8) {
        EMBER_RETURN_IF_ERROR(check(t.at("scales"), what + " scales"));
        if (t["scales"]["bytes"].get<uint64_t>() != rows * 8) return bad(what + ": scales do not match rows");
      }
      if (sparse) {
        EMBER_RETURN_IF_ERROR(check(t.at("masks"), what + " masks"));
        const uint64_t mask_bytes = t.at("mask_bytes");
        if (mask_bytes != MaskBytes(static_cast<int>(dim)) || t["masks"]["bytes"].get<uint64_t>() != rows * mask_bytes)
          return bad(what + ": masks do not match rows");
        // Each row's values lie inside the values section and match its mask.
        // The rows' masks account for every value, and no mask has a bit past the width.
        const uint8_t* masks = d + t["masks"]["offset"].get<uint64_t>();
        uint64_t kept = 0;
        for (uint64_t r = 0; r < rows; ++r) {
          const uint64_t m = ReadMask(masks, r, mask_bytes);
          if (dim < 64 && (m >> dim) != 0)
            return bad(what + ": row " + std::to_string(r) + "'s mask is wider than the table");
          kept += static_cast<uint64_t>(__builtin_popcountll(m));
        }
        if (kept * vb != t["values"]["bytes"].get<uint64_t>()) return bad(what + ": masks do not match the values");
      }
    }
    for (const auto& dn : h["dense"]) {
      EMBER_RETURN_IF_ERROR(check(dn.at("data"), "dense " + dn.at("name").get<std::string>()));
      uint64_t n = 1;
      for (int64_t s : dn.at("shape").get<std::vector<int64_t>>()) {
        if (s < 0) return bad("dense " + dn["name"].get<std::string>() + ": negative shape");
        n *= static_cast<uint64_t>(s);
      }
      if (dn["data"]["bytes"].get<uint64_t>() != n * 4)
        return bad("dense " + dn["name"].get<std::string>() + ": data does not match its shape");
    }
  } catch (const std::exception& e) {
    return bad(std::string("bad header: ") + e.what());
  }
  return Status::Ok();
}

const uint8_t* ExportFile::Section(const nlohmann::json& section) const {
  return data_ + section["offset"].get<uint64_t>();
}

const float* ExportFile::Dense(const std::string& name, std::vector<int64_t>* shape) const {
  for (const auto& d : header_["dense"]) {
    if (d["name"] != name) continue;
    *shape = d["shape"].get<std::vector<int64_t>>();
    return reinterpret_cast<const float*>(Section(d["data"]));
  }
  return nullptr;
}

Result<std::unique_ptr<ExportedTable>> ExportedTable::Open(const ExportFile& file, uint32_t id) {
  for (const auto& t : file.header()["tables"]) {
    if (t["id"].get<uint32_t>() != id) continue;
    std::unique_ptr<ExportedTable> e(new ExportedTable());
    e->spec_ = export_internal::SpecOf(t);
    const TableSpec& s = e->spec_;
    e->precision_ = file.precision();
    e->rows_ = t["rows"].get<uint64_t>();
    if (e->rows_ >= KeyIndex::kAbsent)
      return Status::InvalidArgument(file.path() + ": table " + std::to_string(id) + " has too many rows");
    e->keys_ = reinterpret_cast<const uint64_t*>(file.Section(t["keys"]));
    e->values_ = file.Section(t["values"]);
    if (t.contains("scales")) e->scales_ = reinterpret_cast<const float*>(file.Section(t["scales"]));
    if (s.kind == TableKind::kSparse) {
      // Row r's values start after the kept values of rows before it.
      e->mask_bytes_ = MaskBytes(s.dim);
      e->masks_ = file.Section(t["masks"]);
      e->starts_.resize(e->rows_ + 1, 0);
      for (uint64_t r = 0; r < e->rows_; ++r)
        e->starts_[r + 1] =
            e->starts_[r] + static_cast<uint64_t>(__builtin_popcountll(ReadMask(e->masks_, r, e->mask_bytes_)));
    }
    for (uint64_t r = 0; r < e->rows_; ++r) {
      if (e->keys_[r] == KeyIndex::kEmpty || (r > 0 && e->keys_[r] <= e->keys_[r - 1]))
        return Status::Corruption(file.path() + ": table " + std::to_string(id) + " keys are not sorted and unique");
      e->index_.Insert(e->keys_[r], static_cast<uint32_t>(r));
    }
    return e;
  }
  return Status::NotFound(file.path() + ": no table " + std::to_string(id));
}

bool ExportedTable::Lookup(uint64_t key, float* out) const {
  const size_t dim = static_cast<size_t>(spec_.dim);
  const uint32_t r = index_.Find(key);
  if (r == KeyIndex::kAbsent) {
    if (spec_.frozen) {
      std::memset(out, 0, dim * sizeof(float));
      return false;
    }
    Table::InitRow(spec_, key, out);  // what the checkpoint's evaluation reads for an unseen key
    if (spec_.kind == TableKind::kSparse) {
      const uint64_t mask = SparseRowStore::InitialMask(spec_, key);
      for (size_t j = 0; j < dim; ++j)
        if (!((mask >> j) & 1)) out[j] = 0.0f;
    }
    return false;
  }
  const float scale = scales_ ? scales_[2 * r] : 0.0f, bias = scales_ ? scales_[2 * r + 1] : 0.0f;
  if (spec_.kind == TableKind::kSparse) {
    const uint64_t mask = ReadMask(masks_, r, mask_bytes_);
    size_t v = starts_[r];
    for (size_t j = 0; j < dim; ++j)
      out[j] = ((mask >> j) & 1) ? DecodeValue(values_, v++, precision_, scale, bias) : 0.0f;
    return true;
  }
  if (precision_ == ExportPrecision::kFp32) {
    std::memcpy(out, values_ + static_cast<size_t>(r) * dim * 4, dim * sizeof(float));
    return true;
  }
  for (size_t j = 0; j < dim; ++j)
    out[j] = DecodeValue(values_, static_cast<size_t>(r) * dim + j, precision_, scale, bias);
  return true;
}

}  // namespace ember::embedding
