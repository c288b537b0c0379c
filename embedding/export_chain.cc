// Delta exports (export.h): writing one against its parent, and resolving a chain of them back
// into the full export it stands for. Both work on the encoded rows (export_internal.h), so a row
// is "changed" when its bytes at the export precision differ, and a resolved chain is the same
// bytes as a full export of the same state.
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "export_internal.h"

namespace ember::embedding {
namespace export_internal {
namespace {
constexpr uint64_t kMaxChain = 10000;  // links followed before a chain is refused

std::string DirOf(const std::string& path) {
  const auto parent = std::filesystem::path(path).parent_path();
  return parent.empty() ? "." : parent.string();
}

std::string NameOf(const std::string& path) { return std::filesystem::path(path).filename().string(); }

bool SameExportedSpec(const TableSpec& a, const TableSpec& b) {
  return a.id == b.id && a.dim == b.dim && a.kind == b.kind && a.rows == b.rows && a.seed == b.seed &&
         a.init_scale == b.init_scale && a.density == b.density && a.frozen == b.frozen;
}

// Row r of `from` replaces (or adds) the row for its key; rows of `old` whose keys `delta` evicts
// go. Both inputs are sorted by key; so is the result.
EncodedTable MergeTable(const EncodedTable& old, const EncodedTable& delta, bool int8) {
  EncodedTable out;
  out.spec = old.spec;
  out.mask_bytes = old.mask_bytes;
  out.starts = {0};
  size_t i = 0, j = 0, e = 0;
  const auto& ev = delta.evicted;
  while (i < old.rows() || j < delta.rows()) {
    if (j < delta.rows() && (i >= old.rows() || delta.keys[j] <= old.keys[i])) {
      if (i < old.rows() && delta.keys[j] == old.keys[i]) ++i;
      out.AppendRow(delta, j++, int8);
      continue;
    }
    const uint64_t k = old.keys[i];
    while (e < ev.size() && ev[e] < k) ++e;
    if (e < ev.size() && ev[e] == k) {
      ++i;
      continue;
    }
    out.AppendRow(old, i++, int8);
  }
  return out;
}

// The header, read without mapping or checking the file (ExportChainFiles).
Result<nlohmann::json> ReadHeaderOnly(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char prologue[kPrologue];
  if (!in.read(prologue, kPrologue) || std::memcmp(prologue, kMagic, 4) != 0)
    return Status::Corruption(path + ": not an ember export");
  uint64_t len = 0;
  std::memcpy(&len, prologue + 8, 8);
  std::error_code ec;
  const uint64_t size = std::filesystem::file_size(path, ec);
  if (ec || len > size) return Status::Corruption(path + ": header length past the end");
  std::string text(len, '\0');
  if (!in.read(text.data(), static_cast<std::streamsize>(len))) return Status::Corruption(path + ": truncated header");
  try {
    return nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    return Status::Corruption(path + ": header is not JSON");
  }
}
}  // namespace

void EncodedTable::AppendRow(const EncodedTable& from, size_t r, bool int8) {
  keys.push_back(from.keys[r]);
  values.append(from.values, from.starts[r], from.starts[r + 1] - from.starts[r]);
  starts.push_back(values.size());
  if (int8) scales.insert(scales.end(), from.scales.begin() + 2 * r, from.scales.begin() + 2 * r + 2);
  if (mask_bytes) masks.append(from.masks, r * mask_bytes, mask_bytes);
}

bool EncodedTable::SameRow(size_t a, const EncodedTable& o, size_t b, bool int8) const {
  const uint64_t len = starts[a + 1] - starts[a];
  if (len != o.starts[b + 1] - o.starts[b]) return false;
  if (std::memcmp(values.data() + starts[a], o.values.data() + o.starts[b], len) != 0) return false;
  if (int8 && std::memcmp(scales.data() + 2 * a, o.scales.data() + 2 * b, 2 * sizeof(float)) != 0) return false;
  return mask_bytes == 0 ||
         std::memcmp(masks.data() + a * mask_bytes, o.masks.data() + b * mask_bytes, mask_bytes) == 0;
}

TableSpec SpecOf(const nlohmann::json& t) {
  TableSpec s;
  s.id = t["id"].get<uint32_t>();
  s.dim = t["dim"].get<int>();
  s.rows = t["capacity"].get<uint64_t>();
  s.init_scale = t["init_scale"].get<float>();
  s.seed = t["seed"].get<uint64_t>();
  s.kind = t["kind"] == "sparse" ? TableKind::kSparse : TableKind::kDense;
  s.density = t["density"].get<float>();
  s.frozen = t["frozen"].get<bool>();
  return s;
}

EncodedTable ReadTable(const ExportFile& file, const nlohmann::json& t) {
  EncodedTable e;
  e.spec = SpecOf(t);
  const uint64_t n = t["rows"].get<uint64_t>();
  const auto* keys = reinterpret_cast<const uint64_t*>(file.Section(t["keys"]));
  e.keys.assign(keys, keys + n);
  const uint8_t* values = file.Section(t["values"]);
  e.values.assign(reinterpret_cast<const char*>(values), t["values"]["bytes"].get<uint64_t>());
  const size_t vb = ValueBytes(file.precision());
  e.starts.resize(n + 1, 0);
  if (e.spec.kind == TableKind::kSparse) {
    e.mask_bytes = MaskBytes(e.spec.dim);
    const uint8_t* masks = file.Section(t["masks"]);
    e.masks.assign(reinterpret_cast<const char*>(masks), n * e.mask_bytes);
    for (uint64_t r = 0; r < n; ++r) {
      uint64_t m = 0;
      std::memcpy(&m, masks + r * e.mask_bytes, e.mask_bytes);
      e.starts[r + 1] = e.starts[r] + static_cast<uint64_t>(__builtin_popcountll(m)) * vb;
    }
  } else {
    for (uint64_t r = 0; r < n; ++r) e.starts[r + 1] = (r + 1) * static_cast<uint64_t>(e.spec.dim) * vb;
  }
  if (file.precision() == ExportPrecision::kInt8) {
    const auto* scales = reinterpret_cast<const float*>(file.Section(t["scales"]));
    e.scales.assign(scales, scales + 2 * n);
  }
  if (t.contains("evicted")) {
    const auto* ev = reinterpret_cast<const uint64_t*>(file.Section(t["evicted"]));
    e.evicted.assign(ev, ev + t["evicted"]["bytes"].get<uint64_t>() / 8);
  }
  return e;
}

Result<std::string> ResolveDelta(const ExportFile& head, std::vector<std::string>* chain) {
  const std::string dir = DirOf(head.path());
  std::vector<std::unique_ptr<ExportFile>> links;  // parents, newest first
  const ExportFile* cur = &head;
  while (cur->header().contains("delta")) {
    const auto& dl = cur->header()["delta"];
    const uint64_t seq = dl["sequence"].get<uint64_t>();
    if (links.size() >= kMaxChain) return Status::Corruption(head.path() + ": its chain is longer than the limit");
    const std::string parent = dir + "/" + dl["parent"].get<std::string>();
    auto p = ExportFile::OpenRaw(parent);
    if (!p.ok()) return Status(p.status().code(), head.path() + ": its parent cannot be read: " + p.status().message());
    const ExportFile& pf = **p;
    if (pf.file_crc32() != dl["parent_crc32"].get<uint64_t>())
      return Status::Corruption(head.path() + ": its parent " + parent +
                                " is not the file it was written against (checksum differs)");
    const uint64_t pseq = pf.header().contains("delta") ? pf.header()["delta"]["sequence"].get<uint64_t>() : 0;
    if (pseq + 1 != seq || pf.precision() != head.precision())
      return Status::Corruption(cur->path() + ": its parent " + parent + " has another sequence number or precision");
    links.push_back(std::move(p).value());
    cur = links.back().get();
  }
  chain->clear();
  for (size_t i = links.size(); i-- > 0;) chain->push_back(links[i]->path());
  chain->push_back(head.path());
  const ExportFile& base = *links.back();
  const auto& hl = head.header()["delta"];
  if (NameOf(base.path()) != hl["base"].get<std::string>() || base.file_crc32() != hl["base_crc32"].get<uint64_t>())
    return Status::Corruption(head.path() + ": its chain does not end at its base " + hl["base"].get<std::string>());
  const bool int8 = head.precision() == ExportPrecision::kInt8;
  std::vector<EncodedTable> tables;
  for (const auto& t : base.header()["tables"]) tables.push_back(ReadTable(base, t));
  auto apply = [&](const ExportFile& d) -> Status {
    const auto& dt = d.header()["tables"];
    if (dt.size() != tables.size())
      return Status::Corruption(d.path() + ": holds other tables than the export it applies to");
    for (size_t i = 0; i < tables.size(); ++i) {
      EncodedTable delta = ReadTable(d, dt[i]);
      if (!SameExportedSpec(delta.spec, tables[i].spec))
        return Status::Corruption(d.path() + ": table " + std::to_string(delta.spec.id) +
                                  " differs from the one it applies to");
      for (size_t r = 1; r < delta.rows(); ++r)
        if (delta.keys[r] <= delta.keys[r - 1])
          return Status::Corruption(d.path() + ": table " + std::to_string(delta.spec.id) +
                                    " keys are not sorted and unique");
      tables[i] = MergeTable(tables[i], delta, int8);
    }
    return Status::Ok();
  };
  for (size_t i = links.size() - 1; i-- > 0;) EMBER_RETURN_IF_ERROR(apply(*links[i]));
  EMBER_RETURN_IF_ERROR(apply(head));
  std::vector<DenseArray> dense;
  for (const auto& dn : head.header()["dense"]) {
    std::vector<int64_t> shape;
    const float* data = head.Dense(dn["name"].get<std::string>(), &shape);
    dense.push_back({dn["name"].get<std::string>(), shape,
                     std::vector<float>(data, data + dn["data"]["bytes"].get<uint64_t>() / sizeof(float))});
  }
  ExportSummary summary;
  return Serialize(head.precision(), head.model(), tables, dense, nullptr, &summary);
}

}  // namespace export_internal

Result<ExportSummary> ExportWriter::WriteDelta(const std::string& path, const std::string& parent, Env* env) const {
  using export_internal::EncodedTable;
  std::error_code ec;
  if (std::filesystem::weakly_canonical(export_internal::DirOf(path), ec) !=
      std::filesystem::weakly_canonical(export_internal::DirOf(parent), ec))
    return Status::InvalidArgument("a delta is written beside its parent: " + path + " and " + parent +
                                   " are in different directories");
  EMBER_ASSIGN_OR_RETURN(auto resolved, ExportFile::Open(parent));
  if (resolved->precision() != precision_)
    return Status::FailedPrecondition("a delta keeps its parent's precision: " + parent + " is " +
                                      ExportPrecisionName(resolved->precision()) + ", this export " +
                                      ExportPrecisionName(precision_));
  EMBER_ASSIGN_OR_RETURN(std::vector<EncodedTable> now, Encode());
  const auto& pt = resolved->header()["tables"];
  if (pt.size() != now.size())
    return Status::FailedPrecondition("the tables changed since " + parent + " (their number)");
  const bool int8 = precision_ == ExportPrecision::kInt8;
  std::vector<EncodedTable> out;
  for (size_t i = 0; i < now.size(); ++i) {
    const EncodedTable before = export_internal::ReadTable(*resolved, pt[i]);
    const EncodedTable& after = now[i];
    if (!export_internal::SameExportedSpec(before.spec, after.spec))
      return Status::FailedPrecondition("the tables changed since " + parent + " (table " +
                                        std::to_string(after.spec.id) + ")");
    EncodedTable d;
    d.spec = after.spec;
    d.mask_bytes = after.mask_bytes;
    d.starts = {0};
    size_t a = 0, b = 0;
    while (a < after.rows() || b < before.rows()) {
      if (b >= before.rows() || (a < after.rows() && after.keys[a] < before.keys[b])) {
        d.AppendRow(after, a++, int8);  // a new row
      } else if (a >= after.rows() || before.keys[b] < after.keys[a]) {
        d.evicted.push_back(before.keys[b++]);  // gone
      } else {
        if (!after.SameRow(a, before, b, int8)) d.AppendRow(after, a, int8);
        ++a;
        ++b;
      }
    }
    out.push_back(std::move(d));
  }
  export_internal::DeltaLink link;
  link.parent = export_internal::NameOf(parent);
  link.parent_crc = resolved->file_crc32();
  if (!resolved->link().is_null()) {
    const auto& dl = resolved->link();
    link.base = dl["base"].get<std::string>();
    link.base_crc = dl["base_crc32"].get<uint64_t>();
    link.sequence = dl["sequence"].get<uint64_t>() + 1;
  } else {
    link.base = link.parent;
    link.base_crc = link.parent_crc;
    link.sequence = 1;
  }
  ExportSummary summary;
  const std::string file = export_internal::Serialize(precision_, model_, out, dense_, &link, &summary);
  EMBER_RETURN_IF_ERROR(env->WriteFileAtomic(path, file));
  return summary;
}

Result<std::string> FlattenExport(const std::string& path) {
  EMBER_ASSIGN_OR_RETURN(auto f, ExportFile::Open(path));
  return std::string(reinterpret_cast<const char*>(f->data()), f->size());
}

std::vector<std::string> ExportChainFiles(const std::string& path) {
  std::vector<std::string> files;
  std::string cur = path;
  const std::string dir = export_internal::DirOf(path);
  while (files.size() < export_internal::kMaxChain) {
    auto h = export_internal::ReadHeaderOnly(cur);
    if (!h.ok()) break;
    files.push_back(cur);
    const auto& j = *h;
    if (!j.is_object() || !j.contains("delta") || !j["delta"].is_object() || !j["delta"].contains("parent") ||
        !j["delta"]["parent"].is_string())
      break;
    const std::string parent = j["delta"]["parent"].get<std::string>();
    if (parent.empty() || parent.find('/') != std::string::npos || parent == "." || parent == "..") break;
    cur = dir + "/" + parent;
  }
  return files;
}

}  // namespace ember::embedding
