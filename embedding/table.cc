#include "ember/embedding/table.h"

#include <algorithm>
#include <cstring>

#include "ember/common/hash.h"
#include "ember/embedding/row_store.h"
#include "ember/embedding/sparse_store.h"

namespace ember::embedding {
namespace {
constexpr uint32_t kTableMagic = 0x52424d45;  // "EMBR"
constexpr uint32_t kTableVersion = 5;         // 3: method state after the rows; 4: lifecycle; 5: FTRL settings

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
         a.optimizer.kind == b.optimizer.kind && a.optimizer.lr == b.optimizer.lr &&
         a.optimizer.beta == b.optimizer.beta && a.optimizer.l1 == b.optimizer.l1 && a.optimizer.l2 == b.optimizer.l2 &&
         a.kind == b.kind && a.density == b.density && a.frozen == b.frozen && a.precision == b.precision &&
         a.lifecycle.admit_after == b.lifecycle.admit_after &&
         a.lifecycle.admit_probability == b.lifecycle.admit_probability &&
         a.lifecycle.sketch_width == b.lifecycle.sketch_width && a.lifecycle.sketch_depth == b.lifecycle.sketch_depth &&
         a.lifecycle.expire_after == b.lifecycle.expire_after;
}

Table::Table(const TableSpec& spec) : spec_(spec), track_(spec.lifecycle.expires() && !spec.frozen) {
  if (spec.lifecycle.admits() && !spec.frozen)
    counter_ = std::make_unique<SightingCounter>(spec.lifecycle.sketch_width, spec.lifecycle.sketch_depth,
                                                 PairSeed(spec.seed, 0xad3175));
}

bool Table::Admit(uint64_t key) {
  const uint32_t seen = counter_->Add(key);
  if (seen < std::max<uint32_t>(spec_.lifecycle.admit_after, 1)) return false;
  const float p = spec_.lifecycle.admit_probability;
  if (p < 1.0f && UnitFromHash(Mix64(key ^ PairSeed(spec_.seed ^ 0x9ad1, seen))) >= p) return false;
  ++counts_.admitted;
  return true;
}

void Table::MarkOwn(const uint64_t* keys, size_t n, uint8_t* own) const {
  if (!spec_.frozen) {
    std::memset(own, 1, n);
    return;
  }
  for (size_t i = 0; i < n; ++i) own[i] = Contains(keys[i]) ? 1 : 0;  // OptEmbed: pruned values have none
}

void Table::TrainPull(const uint64_t* keys, size_t n, float* out, uint8_t* own, uint64_t now) {
  now_ = now;
  if (!counter_) {
    Pull(keys, n, out);  // a frozen table reads zeros where it has no row
    if (own) MarkOwn(keys, n, own);
    return;
  }
  picked_.clear();
  for (size_t i = 0; i < n; ++i) {
    const bool mine = Contains(keys[i]) || Admit(keys[i]);
    if (own) own[i] = mine ? 1 : 0;
    if (mine) picked_.push_back(static_cast<uint32_t>(i));
  }
  counts_.fallbacks += n - picked_.size();
  if (picked_.size() == n) {
    Pull(keys, n, out);
    return;
  }
  const size_t dim = static_cast<size_t>(spec_.dim), m = picked_.size();
  picked_keys_.resize(m);
  for (size_t j = 0; j < m; ++j) picked_keys_[j] = keys[picked_[j]];
  picked_rows_.resize(m * dim);
  Pull(picked_keys_.data(), m, picked_rows_.data());
  std::memset(out, 0, n * dim * sizeof(float));
  for (size_t j = 0; j < m; ++j)
    std::memcpy(out + picked_[j] * dim, picked_rows_.data() + j * dim, dim * sizeof(float));
}

void Table::EvalPull(const uint64_t* keys, size_t n, float* out, uint8_t* own) const {
  PullReadOnly(keys, n, out);
  if (!own) return;
  if (!counter_) {
    MarkOwn(keys, n, own);
    return;
  }
  const size_t dim = static_cast<size_t>(spec_.dim);
  for (size_t i = 0; i < n; ++i) {
    own[i] = Contains(keys[i]) ? 1 : 0;
    if (!own[i]) std::memset(out + i * dim, 0, dim * sizeof(float));
  }
}

void Table::TrainPush(const uint64_t* keys, size_t n, const float* grads, uint64_t now) {
  now_ = now;
  if (!counter_) {
    Push(keys, n, grads);
    return;
  }
  picked_.clear();
  for (size_t i = 0; i < n; ++i)
    if (Contains(keys[i])) picked_.push_back(static_cast<uint32_t>(i));
  counts_.dropped += n - picked_.size();
  if (picked_.size() == n) {
    Push(keys, n, grads);
    return;
  }
  const size_t dim = static_cast<size_t>(spec_.dim), m = picked_.size();
  picked_keys_.resize(m);
  picked_rows_.resize(m * dim);
  for (size_t j = 0; j < m; ++j) {
    picked_keys_[j] = keys[picked_[j]];
    std::memcpy(picked_rows_.data() + j * dim, grads + picked_[j] * dim, dim * sizeof(float));
  }
  Push(picked_keys_.data(), m, picked_rows_.data());
}

uint64_t Table::Expire(uint64_t now) {
  if (!track_ || now < spec_.lifecycle.expire_after) return 0;
  const uint64_t evicted = EvictIdle(now - spec_.lifecycle.expire_after);
  counts_.evicted += evicted;
  return evicted;
}

uint64_t Table::MaybeExpire(uint64_t now) {
  if (!track_ || now < next_scan_) return 0;
  next_scan_ = now + std::max<uint64_t>(1, spec_.lifecycle.expire_after / 8);
  return Expire(now);
}

Table::LifecycleCounts Table::lifecycle_counts() const {
  LifecycleCounts c = counts_;
  c.counter_bytes = counter_ ? counter_->MemoryBytes() : 0;
  return c;
}

uint32_t Table::Sightings(uint64_t key) const { return counter_ ? counter_->Count(key) : 0; }

void Table::WriteLifecycle(std::string* out) const {
  // Sketch bytes (empty: none or exact counts), exact counts, touch steps.
  const std::string sketch = counter_ ? counter_->SketchBytes() : std::string();
  AppendPod(out, static_cast<uint32_t>(sketch.size()));
  out->append(sketch);
  const size_t at = out->size();
  uint64_t n = 0;
  AppendPod(out, n);
  if (counter_)
    counter_->ForEachExact([&](uint64_t key, uint32_t count) {
      AppendPod(out, key);
      AppendPod(out, count);
      ++n;
    });
  std::memcpy(out->data() + at, &n, sizeof(n));
  const size_t at2 = out->size();
  n = 0;
  AppendPod(out, n);
  ForEachTouched([&](uint64_t key, uint64_t step) {
    AppendPod(out, key);
    AppendPod(out, step);
    ++n;
  });
  std::memcpy(out->data() + at2, &n, sizeof(n));
}

Status Table::PutSightings(uint64_t key, uint32_t count) {
  if (!counter_ || !counter_->exact()) return Status::Corruption("exact sighting count for a table that keeps none");
  counter_->PutExact(key, count);
  return Status::Ok();
}

Status Table::MergeSketch(std::string_view bytes) {
  if (!counter_) return Status::Corruption("count-min sketch for a table without admission");
  return counter_->MergeSketch(bytes);
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
  AppendPod(out, spec_.lifecycle.admit_after);
  AppendPod(out, spec_.lifecycle.admit_probability);
  AppendPod(out, spec_.lifecycle.sketch_width);
  AppendPod(out, spec_.lifecycle.sketch_depth);
  AppendPod(out, spec_.lifecycle.expire_after);
  AppendPod(out, spec_.optimizer.beta);
  AppendPod(out, spec_.optimizer.l1);
  AppendPod(out, spec_.optimizer.l2);
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
  WriteLifecycle(out);
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
  if (version < 2 || version > kTableVersion)  // 2: no method state; 3: no lifecycle; 4: no FTRL settings
    return Status::Corruption(source + ": unsupported table version " + std::to_string(version));
  Lifecycle& life = spec.lifecycle;
  if (!ReadPod(in, &spec.id) || !ReadPod(in, &dim) || !ReadPod(in, &spec.rows) || !ReadPod(in, &spec.init_scale) ||
      !ReadPod(in, &spec.seed) || !ReadPod(in, &kind) || !ReadPod(in, &spec.optimizer.lr) ||
      !ReadPod(in, &spec.optimizer.eps) || !ReadPod(in, &spec.optimizer.beta1) || !ReadPod(in, &spec.optimizer.beta2) ||
      !ReadPod(in, &spec.optimizer.initial_accumulator) || !ReadPod(in, &table_kind) || !ReadPod(in, &spec.density) ||
      !ReadPod(in, &frozen) || !ReadPod(in, &precision) ||
      (version >= 4 &&
       (!ReadPod(in, &life.admit_after) || !ReadPod(in, &life.admit_probability) || !ReadPod(in, &life.sketch_width) ||
        !ReadPod(in, &life.sketch_depth) || !ReadPod(in, &life.expire_after))) ||
      (version >= 5 &&
       (!ReadPod(in, &spec.optimizer.beta) || !ReadPod(in, &spec.optimizer.l1) || !ReadPod(in, &spec.optimizer.l2))) ||
      !ReadPod(in, &count))
    return truncated();
  if (Status st = CheckLifecycle(life); !st.ok())
    return Status::Corruption(source + ": table " + std::to_string(spec.id) + ": " + st.message());
  if (dim <= 0 || dim > 65536 || kind < 0 || kind > static_cast<int32_t>(OptimizerKind::kFtrl) ||
      spec.id >= kMaxTables || table_kind < 0 || table_kind > 1 || (table_kind == 1 && dim > SparseRowStore::kMaxDim) ||
      !(spec.density >= 0 && spec.density <= 1) || frozen > 1 || precision < 0 || precision > 1 ||
      (precision == 1 && table_kind != 0))
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
  if (version >= 4) {
    uint32_t sketch_bytes = 0;
    if (!ReadPod(in, &sketch_bytes) || in->size() < sketch_bytes) return truncated();
    if (sketch_bytes > 0 && sink.sketch) {
      if (Status st = sink.sketch(spec, in->substr(0, sketch_bytes)); !st.ok())
        return Status::Corruption(source + ": table " + std::to_string(spec.id) + ": " + st.message());
    }
    in->remove_prefix(sketch_bytes);
    // Fixed-size keyed entries: exact sighting counts (u32), then touch steps (u64).
    auto fixed = [&](size_t value_bytes, const char* what, auto&& put) -> Status {
      uint64_t n = 0;
      if (!ReadPod(in, &n) || n > in->size() / (8 + value_bytes)) return truncated();
      for (uint64_t i = 0; i < n; ++i) {
        uint64_t key = 0, value = 0;
        ReadPod(in, &key);
        std::memcpy(&value, in->data(), value_bytes);
        in->remove_prefix(value_bytes);
        EMBER_ASSIGN_OR_RETURN(Table * t, sink.route(spec, key));
        if (!t) continue;
        if (Status st = put(t, key, value); !st.ok())
          return Status::Corruption(source + ": " + what + " " + std::to_string(i) + ": " + st.message());
      }
      return Status::Ok();
    };
    EMBER_RETURN_IF_ERROR(fixed(4, "sighting count", [](Table* t, uint64_t key, uint64_t v) {
      return t->PutSightings(key, static_cast<uint32_t>(v));
    }));
    EMBER_RETURN_IF_ERROR(
        fixed(8, "touch step", [](Table* t, uint64_t key, uint64_t v) { return t->PutTouched(key, v); }));
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
  sink.sketch = [&](const TableSpec&, std::string_view bytes) { return table->MergeSketch(bytes); };
  EMBER_RETURN_IF_ERROR(ParseInto(in, source, sink));
  return table;
}

}  // namespace ember::embedding
