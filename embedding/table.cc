#include "ember/embedding/table.h"

#include <cstring>

#include "ember/common/hash.h"
#include "ember/embedding/row_store.h"
#include "ember/embedding/sparse_store.h"

namespace ember::embedding {
namespace {
constexpr uint32_t kTableMagic = 0x52424d45;  // "EMBR"
constexpr uint32_t kTableVersion = 3;         // 3: method state after the rows

template <typename T>
void AppendPod(std::string* out, const T& v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(T));
}
template <typename T>
bool ReadPod(std::string_view* in, T* v) {
  if (in->size() < sizeof(T)) return false;
  std::memcpy(v, in->data(), sizeof(T));
  in->remove_prefix(sizeof(T));
  return true;
}
}  // namespace

bool SameSpec(const TableSpec& a, const TableSpec& b) {
  return a.id == b.id && a.dim == b.dim && a.seed == b.seed && a.init_scale == b.init_scale &&
         a.optimizer.kind == b.optimizer.kind && a.optimizer.lr == b.optimizer.lr && a.kind == b.kind &&
         a.density == b.density && a.frozen == b.frozen && a.precision == b.precision;
}

std::unique_ptr<Table> Table::Make(const TableSpec& spec) {
  if (spec.kind == TableKind::kSparse) return std::make_unique<SparseRowStore>(spec);
  return std::make_unique<RowStore>(spec);
}

void Table::InitRow(const TableSpec& spec, uint64_t key, float* w) {
  uint64_t h = Mix64(key ^ Mix64(spec.seed + 0x51ed2701));
  for (int j = 0; j < spec.dim; ++j) {
    h = Mix64(h + 0x9e3779b97f4a7c15ULL);
    w[j] = static_cast<float>((2.0 * UnitFromHash(h) - 1.0) * spec.init_scale);
  }
}

void Table::AppendTo(std::string* out) const {
  AppendPod(out, kTableMagic);
  AppendPod(out, kTableVersion);
  AppendPod(out, spec_.id);
  AppendPod(out, static_cast<int32_t>(spec_.dim));
  AppendPod(out, spec_.rows);
  AppendPod(out, spec_.init_scale);
  AppendPod(out, spec_.seed);
  AppendPod(out, static_cast<int32_t>(spec_.optimizer.kind));
  AppendPod(out, spec_.optimizer.lr);
  AppendPod(out, spec_.optimizer.eps);
  AppendPod(out, spec_.optimizer.beta1);
  AppendPod(out, spec_.optimizer.beta2);
  AppendPod(out, spec_.optimizer.initial_accumulator);
  AppendPod(out, static_cast<int32_t>(spec_.kind));
  AppendPod(out, spec_.density);
  AppendPod(out, static_cast<uint8_t>(spec_.frozen));
  AppendPod(out, static_cast<int32_t>(spec_.precision));
  AppendPod(out, static_cast<uint64_t>(size()));
  ForEachRecord([&](uint64_t key, std::string_view rec) {
    AppendPod(out, key);
    AppendPod(out, static_cast<uint32_t>(rec.size()));
    out->append(rec);
  });
  AppendPod(out, StateFlags());
  std::string entries;
  uint64_t n = 0;
  ForEachStateEntry([&](uint64_t key, std::string_view entry) {
    AppendPod(&entries, key);
    AppendPod(&entries, static_cast<uint32_t>(entry.size()));
    entries.append(entry);
    ++n;
  });
  AppendPod(out, n);
  out->append(entries);
}

Status Table::ParseInto(std::string_view* in, const std::string& source, const Sink& sink) {
  uint32_t magic = 0, version = 0;
  TableSpec spec;
  int32_t dim = 0, kind = 0, table_kind = 0, precision = 0;
  uint8_t frozen = 0;
  uint64_t count = 0;
  const std::string_view start = *in;
  auto at = [&] { return std::to_string(start.size() - in->size()); };
  auto truncated = [&] { return Status::Corruption(source + ": truncated table section at byte " + at()); };
  if (!ReadPod(in, &magic) || !ReadPod(in, &version)) return truncated();
  if (magic != kTableMagic) return Status::Corruption(source + ": bad table magic");
  if (version != kTableVersion && version != 2)  // 2: no method state
    return Status::Corruption(source + ": unsupported table version " + std::to_string(version));
  if (!ReadPod(in, &spec.id) || !ReadPod(in, &dim) || !ReadPod(in, &spec.rows) || !ReadPod(in, &spec.init_scale) ||
      !ReadPod(in, &spec.seed) || !ReadPod(in, &kind) || !ReadPod(in, &spec.optimizer.lr) ||
      !ReadPod(in, &spec.optimizer.eps) || !ReadPod(in, &spec.optimizer.beta1) || !ReadPod(in, &spec.optimizer.beta2) ||
      !ReadPod(in, &spec.optimizer.initial_accumulator) || !ReadPod(in, &table_kind) || !ReadPod(in, &spec.density) ||
      !ReadPod(in, &frozen) || !ReadPod(in, &precision) || !ReadPod(in, &count))
    return truncated();
  if (dim <= 0 || dim > 65536 || kind < 0 || kind > 3 || spec.id >= kMaxTables || table_kind < 0 || table_kind > 1 ||
      (table_kind == 1 && dim > SparseRowStore::kMaxDim) || !(spec.density >= 0 && spec.density <= 1) || frozen > 1 ||
      precision < 0 || precision > 1 || (precision == 1 && table_kind != 0))
    return Status::Corruption(source + ": bad table header (table " + std::to_string(spec.id) + ", dim " +
                              std::to_string(dim) + ")");
  spec.dim = dim;
  spec.optimizer.kind = static_cast<OptimizerKind>(kind);
  spec.kind = static_cast<TableKind>(table_kind);
  spec.frozen = frozen != 0;
  spec.precision = static_cast<Precision>(precision);
  // `n` keyed entries (u64 key, u32 bytes, bytes), each handed to put(key, bytes).
  auto entries = [&](uint64_t n, const char* what, auto&& put) -> Status {
    if (n > in->size() / 12) return truncated();
    for (uint64_t i = 0; i < n; ++i) {
      uint64_t key = 0;
      uint32_t len = 0;
      if (!ReadPod(in, &key) || !ReadPod(in, &len) || in->size() < len) return truncated();
      Status st = put(key, in->substr(0, len));
      if (!st.ok()) return Status::Corruption(source + ": " + what + " " + std::to_string(i) + ": " + st.message());
      in->remove_prefix(len);
    }
    return Status::Ok();
  };
  EMBER_RETURN_IF_ERROR(sink.begin(spec));
  EMBER_RETURN_IF_ERROR(entries(count, "row", [&](uint64_t key, std::string_view rec) -> Status {
    EMBER_ASSIGN_OR_RETURN(Table * t, sink.route(spec, key));
    return t ? t->PutRecord(key, rec) : Status::Ok();
  }));
  if (version >= 3) {
    uint32_t flags = 0;
    uint64_t n = 0;
    if (!ReadPod(in, &flags) || !ReadPod(in, &n)) return truncated();
    if (Status st = sink.flags(spec, flags); !st.ok()) return Status::Corruption(source + ": " + st.message());
    EMBER_RETURN_IF_ERROR(entries(n, "state entry", [&](uint64_t key, std::string_view e) -> Status {
      EMBER_ASSIGN_OR_RETURN(Table * t, sink.route(spec, key));
      return t ? t->PutStateEntry(key, e) : Status::Ok();
    }));
  }
  return Status::Ok();
}

Result<std::unique_ptr<Table>> Table::ParseFrom(std::string_view* in, const std::string& source) {
  std::unique_ptr<Table> table;
  Sink sink;
  sink.begin = [&](const TableSpec& spec) {
    table = Make(spec);
    return Status::Ok();
  };
  sink.route = [&](const TableSpec&, uint64_t) -> Result<Table*> { return table.get(); };
  sink.flags = [&](const TableSpec&, uint32_t flags) { return table->PutStateFlags(flags); };
  EMBER_RETURN_IF_ERROR(ParseInto(in, source, sink));
  return table;
}

}  // namespace ember::embedding
