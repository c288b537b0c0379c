#include "ember/ps/wire.h"

#include <cmath>

#include "ember/embedding/admission.h"

namespace ember::ps::wire {
namespace {
constexpr uint32_t kMaxSlices = 1 << 16;
// Push flags: the step is aggregated (sync mode); the keys are those of a pull named by its id.
constexpr uint32_t kPushAggregate = 1, kPushKeysOfPull = 2;
constexpr uint32_t kMaxSpecs = embedding::kMaxTables;

Status Malformed(const std::string& why) { return Status::InvalidArgument("malformed frame: " + why); }

// Every key names the slice's table (which also excludes the index's reserved key).
bool KeysOf(uint32_t table, const uint64_t* keys, size_t n) {
  bool all = true;  // no early exit: the loop vectorises
  for (size_t i = 0; i < n; ++i) all &= embedding::KeyTable(keys[i]) == table;
  return all;
}
bool KeysOf(uint32_t table, const std::vector<uint64_t>& keys) { return KeysOf(table, keys.data(), keys.size()); }

// Every value is finite (exponent bits not all set).
bool AllFinite(const float* v, size_t n) {
  uint32_t bad = 0;
  for (size_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, v + i, sizeof(bits));
    bad |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
  }
  return bad == 0;
}

// n values of T at p, in place when p is aligned for T, else copied into *owned.
template <typename T>
const T* InPlaceOrCopy(const char* p, size_t n, std::vector<T>* owned) {
  if (reinterpret_cast<uintptr_t>(p) % alignof(T) == 0) return reinterpret_cast<const T*>(p);
  owned->resize(n);
  if (n) std::memcpy(owned->data(), p, n * sizeof(T));
  return owned->data();
}

void WriteSpec(Writer<std::string>& w, const embedding::TableSpec& s) {
  w.Pod<uint32_t>(s.id);
  w.Pod<int32_t>(s.dim);
  w.Pod<uint64_t>(s.rows);
  w.Pod<float>(s.init_scale);
  w.Pod<uint64_t>(s.seed);
  w.Pod<int32_t>(static_cast<int32_t>(s.optimizer.kind));
  w.Pod<float>(s.optimizer.lr);
  w.Pod<float>(s.optimizer.eps);
  w.Pod<float>(s.optimizer.beta1);
  w.Pod<float>(s.optimizer.beta2);
  w.Pod<float>(s.optimizer.initial_accumulator);
  w.Pod<int32_t>(static_cast<int32_t>(s.kind));
  w.Pod<float>(s.density);
  w.Pod<uint8_t>(s.frozen ? 1 : 0);
  w.Pod<int32_t>(static_cast<int32_t>(s.precision));
  w.Pod<uint32_t>(s.lifecycle.admit_after);
  w.Pod<float>(s.lifecycle.admit_probability);
  w.Pod<uint32_t>(s.lifecycle.sketch_width);
  w.Pod<uint32_t>(s.lifecycle.sketch_depth);
  w.Pod<uint64_t>(s.lifecycle.expire_after);
  w.Pod<float>(s.optimizer.beta);
  w.Pod<float>(s.optimizer.l1);
  w.Pod<float>(s.optimizer.l2);
}

bool ReadSpec(Reader& r, embedding::TableSpec* s) {
  int32_t dim = 0, opt = 0, kind = 0, precision = 0;
  uint8_t frozen = 0;
  if (!(r.Pod(&s->id, "spec.id") && r.Pod(&dim, "spec.dim") && r.Pod(&s->rows, "spec.rows") &&
        r.Pod(&s->init_scale, "spec.init_scale") && r.Pod(&s->seed, "spec.seed") && r.Pod(&opt, "spec.optimizer") &&
        r.Pod(&s->optimizer.lr, "spec.lr") && r.Pod(&s->optimizer.eps, "spec.eps") &&
        r.Pod(&s->optimizer.beta1, "spec.beta1") && r.Pod(&s->optimizer.beta2, "spec.beta2") &&
        r.Pod(&s->optimizer.initial_accumulator, "spec.initial_accumulator") && r.Pod(&kind, "spec.kind") &&
        r.Pod(&s->density, "spec.density") && r.Pod(&frozen, "spec.frozen") && r.Pod(&precision, "spec.precision") &&
        r.Pod(&s->lifecycle.admit_after, "spec.admit_after") &&
        r.Pod(&s->lifecycle.admit_probability, "spec.admit_probability") &&
        r.Pod(&s->lifecycle.sketch_width, "spec.sketch_width") &&
        r.Pod(&s->lifecycle.sketch_depth, "spec.sketch_depth") &&
        r.Pod(&s->lifecycle.expire_after, "spec.expire_after") && r.Pod(&s->optimizer.beta, "spec.beta") &&
        r.Pod(&s->optimizer.l1, "spec.l1") && r.Pod(&s->optimizer.l2, "spec.l2")))
    return false;
  if (Status st = embedding::CheckLifecycle(s->lifecycle); !st.ok()) return r.Fail("spec.lifecycle", st.message());
  if (s->id >= embedding::kMaxTables) return r.Fail("spec.id", "table id out of range");
  if (dim < 1 || dim > 4096) return r.Fail("spec.dim", "width out of range");
  if (opt < 0 || opt > static_cast<int32_t>(embedding::OptimizerKind::kFtrl))
    return r.Fail("spec.optimizer", "unknown");
  const embedding::OptimizerConfig& o = s->optimizer;
  for (float v : {o.lr, o.eps, o.beta1, o.beta2, o.initial_accumulator, o.beta, o.l1, o.l2})
    if (!(std::isfinite(v) && v >= 0)) return r.Fail("spec.optimizer", "settings must be finite and >= 0");
  if (opt == static_cast<int32_t>(embedding::OptimizerKind::kFtrl) && !(o.lr > 0))
    return r.Fail("spec.lr", "ftrl needs a positive rate");
  if (kind < 0 || kind > 1) return r.Fail("spec.kind", "unknown");
  if (kind == 1 && dim > 64) return r.Fail("spec.dim", "sparse tables are at most 64 wide");
  if (precision < 0 || precision > 1) return r.Fail("spec.precision", "unknown");
  if (frozen > 1) return r.Fail("spec.frozen", "not a boolean");
  if (!(s->density > 0.0f && s->density <= 1.0f)) return r.Fail("spec.density", "outside (0, 1]");
  s->dim = dim;
  s->optimizer.kind = static_cast<embedding::OptimizerKind>(opt);
  s->kind = static_cast<embedding::TableKind>(kind);
  s->precision = static_cast<embedding::Precision>(precision);
  s->frozen = frozen != 0;
  return true;
}
}  // namespace

const char* TypeName(Type t) {
  switch (t) {
    case Type::kError:
      return "error";
    case Type::kPing:
      return "ping";
    case Type::kCreateTables:
      return "create_tables";
    case Type::kPull:
      return "pull";
    case Type::kPush:
      return "push";
    case Type::kStats:
      return "stats";
    case Type::kApply:
      return "apply";
    case Type::kSave:
      return "save";
    case Type::kLoad:
      return "load";
    case Type::kShutdown:
      return "shutdown";
    case Type::kChallenge:
      return "challenge";
    case Type::kHello:
      return "hello";
  }
  return "unknown";
}

void AppendHeader(std::string* out, Type type, uint64_t request_id, uint32_t payload_bytes) {
  Writer w(out);
  w.Pod<uint32_t>(kMagic);
  w.Pod<uint16_t>(kVersion);
  w.Pod<uint16_t>(static_cast<uint16_t>(type));
  w.Pod<uint64_t>(request_id);
  w.Pod<uint32_t>(payload_bytes);
  w.Pod<uint32_t>(0);
}

Result<Header> ParseHeader(const uint8_t* bytes, uint32_t max_payload) {
  uint32_t magic, flags;
  uint16_t version, type;
  Header h;
  std::memcpy(&magic, bytes, 4);
  std::memcpy(&version, bytes + 4, 2);
  std::memcpy(&type, bytes + 6, 2);
  std::memcpy(&h.request_id, bytes + 8, 8);
  std::memcpy(&h.payload_bytes, bytes + 16, 4);
  std::memcpy(&flags, bytes + 20, 4);
  if (magic != kMagic) return Malformed("bad magic (not an ember PS peer)");
  if (version != kVersion)
    return Malformed("protocol version " + std::to_string(version) + ", this build speaks " + std::to_string(kVersion));
  if (type > static_cast<uint16_t>(kLastType)) return Malformed("unknown frame type " + std::to_string(type));
  if (flags != 0) return Malformed("unknown flags");
  if (h.payload_bytes > max_payload)
    return Malformed("payload of " + std::to_string(h.payload_bytes) + " bytes over the limit of " +
                     std::to_string(max_payload));
  h.type = static_cast<Type>(type);
  return h;
}

bool Reader::Str(std::string* s, const char* what, uint32_t max) {
  uint32_t n = 0;
  if (!Pod(&n, what)) return false;
  if (n > max) return Fail(what, "string too long");
  if (!Need(n, what)) return false;
  s->assign(in_.data() + pos_, n);
  pos_ += n;
  return true;
}

bool Reader::End() {
  if (!ok()) return false;
  if (pos_ != in_.size()) return Fail("frame", std::to_string(in_.size() - pos_) + " trailing bytes");
  return true;
}

bool Reader::Fail(const char* what, const std::string& why) {
  if (error_.empty()) error_ = std::string(what) + ": " + why;
  return false;
}

template <typename Out>
void EncodePull(const std::vector<PullSlice>& slices, const std::vector<std::vector<size_t>>& positions,
                uint64_t wait_for, Out* out) {
  Writer w(out);
  w.Pod(static_cast<uint64_t>(wait_for));
  w.Pod(static_cast<uint32_t>(static_cast<uint32_t>(slices.size())));
  for (size_t i = 0; i < slices.size(); ++i) {
    const auto& pos = positions[i];
    w.Pod(static_cast<uint32_t>(slices[i].table));
    w.Pod(static_cast<uint8_t>(slices[i].create_missing ? 1 : 0));
    w.Pod(static_cast<uint64_t>(pos.size()));
    const size_t at = out->size();
    out->resize(at + pos.size() * sizeof(uint64_t));
    auto* k = reinterpret_cast<char*>(out->data() + at);
    for (size_t j = 0; j < pos.size(); ++j) std::memcpy(k + j * 8, &slices[i].keys[pos[j]], 8);
  }
}

Status DecodePull(std::string_view payload, PullRequest* req) {
  Reader r(payload);
  uint32_t n = 0;
  if (r.Pod(&req->wait_for, "pull.wait_for") && r.Pod(&n, "pull.slices") && n > kMaxSlices)
    r.Fail("pull.slices", "too many");
  req->slices.clear();
  for (uint32_t i = 0; r.ok() && i < n; ++i) {
    PullRequest::Slice s;
    uint8_t create = 0;
    uint64_t count = 0;
    if (r.Pod(&s.table, "pull.table") && r.Pod(&create, "pull.create_missing") && r.Pod(&count, "pull.keys") &&
        r.Array(count, &s.keys, "pull.keys")) {
      if (create > 1) r.Fail("pull.create_missing", "not a boolean");
      if (!KeysOf(s.table, s.keys)) r.Fail("pull.keys", "a key of another table (or the reserved key)");
      s.create_missing = create != 0;
      req->slices.push_back(std::move(s));
    }
  }
  r.End();
  return r.status();
}

template <typename Out>
void EncodePush(const std::vector<PushSlice>& slices, const std::vector<uint32_t>& dims,
                const std::vector<std::vector<size_t>>& positions, const PushClock& clock, Out* out,
                uint64_t keys_of_pull) {
  Writer w(out);
  w.Pod(static_cast<uint32_t>(clock.worker));
  w.Pod(static_cast<uint32_t>(clock.workers));
  w.Pod(static_cast<uint64_t>(clock.step));
  w.Pod(static_cast<uint32_t>((clock.aggregate ? kPushAggregate : 0u) | (keys_of_pull ? kPushKeysOfPull : 0u)));
  if (keys_of_pull) w.Pod(static_cast<uint64_t>(keys_of_pull));
  w.Pod(static_cast<uint32_t>(static_cast<uint32_t>(slices.size())));
  const size_t key_bytes = keys_of_pull ? 0 : sizeof(uint64_t);
  for (size_t i = 0; i < slices.size(); ++i) {
    const auto& sl = slices[i];
    const auto& pos = positions[i];
    const size_t dim = dims[i], stride = sl.stride ? sl.stride : dim;
    w.Pod(static_cast<uint32_t>(sl.table));
    w.Pod(static_cast<uint32_t>(dims[i]));
    w.Pod(static_cast<uint64_t>(pos.size()));
    const size_t at = out->size(), row = dim * sizeof(float);
    out->resize(at + pos.size() * (key_bytes + row));
    char* k = out->data() + at;
    char* g = k + pos.size() * key_bytes;
    for (size_t j = 0; j < pos.size(); ++j) {
      if (key_bytes) std::memcpy(k + j * 8, &sl.keys[pos[j]], 8);
      std::memcpy(g + j * row, sl.grads + pos[j] * stride, row);
    }
  }
}

Status DecodePush(std::string_view payload, PushRequest* req) {
  Reader r(payload);
  uint32_t n = 0, flags = 0;
  if (r.Pod(&req->clock.worker, "push.worker") && r.Pod(&req->clock.workers, "push.workers") &&
      r.Pod(&req->clock.step, "push.step") && r.Pod(&flags, "push.flags")) {
    if (flags & ~(kPushAggregate | kPushKeysOfPull))
      r.Fail("push.flags", "unknown bits");
    else if (req->clock.workers > 0 && req->clock.worker >= req->clock.workers)
      r.Fail("push.worker", "not below push.workers");
    req->clock.aggregate = (flags & kPushAggregate) != 0;
  }
  req->keys_of_pull = 0;
  if (r.ok() && (flags & kPushKeysOfPull) && r.Pod(&req->keys_of_pull, "push.keys_of_pull") && req->keys_of_pull == 0)
    r.Fail("push.keys_of_pull", "not a request id");
  const bool inline_keys = req->keys_of_pull == 0;
  if (r.ok() && r.Pod(&n, "push.slices") && n > kMaxSlices) r.Fail("push.slices", "too many");
  req->slices.clear();
  for (uint32_t i = 0; r.ok() && i < n; ++i) {
    PushRequest::Slice s;
    uint64_t count = 0;
    const char* keys = nullptr;
    if (!(r.Pod(&s.table, "push.table") && r.Pod(&s.dim, "push.dim") && r.Pod(&count, "push.keys"))) break;
    // count * 4 bytes must remain, so count * dim below cannot overflow for dim <= 4096.
    if (count > payload.size() / sizeof(float)) {
      r.Fail("push.keys", "count past the end of the frame");
      break;
    }
    if (inline_keys && !(keys = r.Skip(count * sizeof(uint64_t), "push.keys"))) break;
    if (s.dim == 0 || s.dim > 4096) {
      r.Fail("push.dim", "width out of range");
      break;
    }
    s.n = count;
    if (inline_keys) {
      s.keys = InPlaceOrCopy(keys, count, &s.owned_keys);
      if (!KeysOf(s.table, s.keys, s.n)) {
        r.Fail("push.keys", "a key of another table (or the reserved key)");
        break;
      }
    }
    const char* grads = r.Skip(count * s.dim * sizeof(float), "push.grads");
    if (!grads) break;
    s.grads = InPlaceOrCopy(grads, count * s.dim, &s.owned_grads);
    if (!AllFinite(s.grads, count * s.dim)) {
      r.Fail("push.grads", "a gradient that is not finite");
      break;
    }
    req->slices.push_back(std::move(s));
  }
  r.End();
  return r.status();
}

Status UsePullKeys(std::initializer_list<std::pair<uint64_t, const PullRequest*>> pulls, PushRequest* req) {
  if (req->keys_of_pull == 0) return Status::Ok();
  const PullRequest* named = nullptr;
  std::string known;
  for (const auto& [id, pull] : pulls) {
    if (id == 0) continue;
    if (id == req->keys_of_pull) named = pull;
    known += (known.empty() ? "" : ", ") + std::to_string(id);
  }
  const std::string pull_id = std::to_string(req->keys_of_pull);
  if (!named)
    return Status::FailedPrecondition("a push naming the keys of pull " + pull_id +
                                      ", which is not one of this connection's last pulls (" +
                                      (known.empty() ? std::string("none") : known) + ")");
  if (req->slices.size() != named->slices.size())
    return Status::InvalidArgument("a push naming the keys of pull " + pull_id + " has " +
                                   std::to_string(req->slices.size()) + " slices, the pull " +
                                   std::to_string(named->slices.size()));
  for (size_t i = 0; i < req->slices.size(); ++i) {
    PushRequest::Slice& s = req->slices[i];
    const PullRequest::Slice& p = named->slices[i];
    if (s.table != p.table || s.n != p.keys.size())
      return Status::InvalidArgument("a push naming the keys of pull " + pull_id + ": slice " + std::to_string(i) +
                                     " is " + std::to_string(s.n) + " rows of table " + std::to_string(s.table) +
                                     ", the pull's " + std::to_string(p.keys.size()) + " keys of table " +
                                     std::to_string(p.table));
    s.keys = p.keys.data();
  }
  return Status::Ok();
}

template void EncodePull(const std::vector<PullSlice>&, const std::vector<std::vector<size_t>>&, uint64_t,
                         std::string*);
template void EncodePull(const std::vector<PullSlice>&, const std::vector<std::vector<size_t>>&, uint64_t, ByteBuffer*);
template void EncodePush(const std::vector<PushSlice>&, const std::vector<uint32_t>&,
                         const std::vector<std::vector<size_t>>&, const PushClock&, std::string*, uint64_t);
template void EncodePush(const std::vector<PushSlice>&, const std::vector<uint32_t>&,
                         const std::vector<std::vector<size_t>>&, const PushClock&, ByteBuffer*, uint64_t);

void EncodeSpecs(const std::vector<embedding::TableSpec>& specs, std::string* out) {
  Writer w(out);
  w.Pod<uint32_t>(static_cast<uint32_t>(specs.size()));
  for (const auto& s : specs) WriteSpec(w, s);
}

Status DecodeSpecs(std::string_view payload, std::vector<embedding::TableSpec>* specs) {
  Reader r(payload);
  uint32_t n = 0;
  if (r.Pod(&n, "specs") && n > kMaxSpecs) r.Fail("specs", "too many");
  specs->clear();
  for (uint32_t i = 0; r.ok() && i < n; ++i) {
    embedding::TableSpec s;
    if (ReadSpec(r, &s)) specs->push_back(s);
  }
  r.End();
  return r.status();
}

void EncodeOp(const TableOp& op, std::string* out) {
  Writer w(out);
  w.Pod<int32_t>(static_cast<int32_t>(op.kind));
  w.Pod<uint32_t>(op.table);
  w.Pod<uint32_t>(op.dst_table);
  w.Pod<double>(op.value);
  w.Pod<uint8_t>(op.reinit ? 1 : 0);
  w.Pod<uint64_t>(op.seed);
}

Status DecodeOp(std::string_view payload, TableOp* op) {
  Reader r(payload);
  int32_t kind = 0;
  uint8_t reinit = 0;
  if (r.Pod(&kind, "op.kind") && r.Pod(&op->table, "op.table") && r.Pod(&op->dst_table, "op.dst_table") &&
      r.Pod(&op->value, "op.value") && r.Pod(&reinit, "op.reinit") && r.Pod(&op->seed, "op.seed")) {
    if (kind < 0 || kind > static_cast<int32_t>(TableOp::Kind::kResetRows)) r.Fail("op.kind", "unknown");
    if (reinit > 1) r.Fail("op.reinit", "not a boolean");
    if (!std::isfinite(op->value)) r.Fail("op.value", "not finite");
    if (op->table >= embedding::kMaxTables || op->dst_table >= embedding::kMaxTables)
      r.Fail("op.table", "table id out of range");
    op->kind = static_cast<TableOp::Kind>(kind);
    op->reinit = reinit != 0;
  }
  r.End();
  return r.status();
}

void EncodeLoad(const LoadRequest& req, std::string* out) {
  Writer w(out);
  w.Str(req.dir);
  EncodeFiles(req.files, out);
}

Status DecodeLoad(std::string_view payload, LoadRequest* req) {
  Reader r(payload);
  if (!r.Str(&req->dir, "load.dir", 4096)) return r.status();
  // The rest is a file list.
  const size_t used = 4 + req->dir.size();
  return DecodeFiles(payload.substr(used), &req->files);
}

Status DecodeString(std::string_view payload, std::string* s) {
  Reader r(payload);
  r.Str(s, "string", 4096);
  r.End();
  return r.status();
}

void EncodeStats(const std::vector<TableStats>& stats, std::string* out) {
  Writer w(out);
  w.Pod<uint32_t>(static_cast<uint32_t>(stats.size()));
  for (const auto& s : stats) {
    w.Pod<uint32_t>(s.table);
    w.Pod<uint64_t>(s.rows);
    w.Pod<uint64_t>(s.values);
    w.Pod<uint64_t>(s.bytes);
    w.Pod<int32_t>(s.dim);
    w.Pod<int32_t>(static_cast<int32_t>(s.kind));
    w.Pod<int32_t>(static_cast<int32_t>(s.precision));
    w.Pod<uint32_t>(static_cast<uint32_t>(s.shard_rows.size()));
    for (uint64_t x : s.shard_rows) w.Pod<uint64_t>(x);
    w.Pod<uint64_t>(s.admitted);
    w.Pod<uint64_t>(s.evicted);
    w.Pod<uint64_t>(s.fallbacks);
  }
}

Status DecodeStats(std::string_view payload, std::vector<TableStats>* stats) {
  Reader r(payload);
  uint32_t n = 0;
  if (r.Pod(&n, "stats") && n > kMaxSpecs) r.Fail("stats", "too many");
  stats->clear();
  for (uint32_t i = 0; r.ok() && i < n; ++i) {
    TableStats s;
    int32_t kind = 0, precision = 0;
    uint32_t shards = 0;
    if (r.Pod(&s.table, "stats.table") && r.Pod(&s.rows, "stats.rows") && r.Pod(&s.values, "stats.values") &&
        r.Pod(&s.bytes, "stats.bytes") && r.Pod(&s.dim, "stats.dim") && r.Pod(&kind, "stats.kind") &&
        r.Pod(&precision, "stats.precision") && r.Pod(&shards, "stats.shards") &&
        r.Array(shards, &s.shard_rows, "stats.shard_rows") && r.Pod(&s.admitted, "stats.admitted") &&
        r.Pod(&s.evicted, "stats.evicted") && r.Pod(&s.fallbacks, "stats.fallbacks")) {
      if (kind < 0 || kind > 1 || precision < 0 || precision > 1) r.Fail("stats.kind", "unknown");
      s.kind = static_cast<embedding::TableKind>(kind);
      s.precision = static_cast<embedding::Precision>(precision);
      stats->push_back(std::move(s));
    }
  }
  r.End();
  return r.status();
}

void EncodeOpResult(const TableOpResult& res, std::string* out) {
  Writer w(out);
  w.Pod<uint64_t>(res.rows);
  w.Pod<uint64_t>(res.values);
  w.Pod<uint64_t>(res.pruned);
  w.Pod<uint64_t>(res.grown);
}

Status DecodeOpResult(std::string_view payload, TableOpResult* res) {
  Reader r(payload);
  r.Pod(&res->rows, "result.rows") && r.Pod(&res->values, "result.values") && r.Pod(&res->pruned, "result.pruned") &&
      r.Pod(&res->grown, "result.grown");
  r.End();
  return r.status();
}

void EncodeFiles(const std::vector<ShardFile>& files, std::string* out) {
  Writer w(out);
  w.Pod<uint32_t>(static_cast<uint32_t>(files.size()));
  for (const auto& f : files) {
    w.Str(f.name);
    w.Pod<uint64_t>(f.bytes);
    w.Pod<uint64_t>(f.checksum);
  }
}

Status DecodeFiles(std::string_view payload, std::vector<ShardFile>* files) {
  Reader r(payload);
  uint32_t n = 0;
  if (r.Pod(&n, "files") && n > 65536) r.Fail("files", "too many");
  files->clear();
  for (uint32_t i = 0; r.ok() && i < n; ++i) {
    ShardFile f;
    if (r.Str(&f.name, "file.name", 4096) && r.Pod(&f.bytes, "file.bytes") && r.Pod(&f.checksum, "file.checksum")) {
      if (f.name.empty() || f.name.find('/') != std::string::npos || f.name == "." || f.name == "..")
        r.Fail("file.name", "not a plain file name");
      files->push_back(std::move(f));
    }
  }
  r.End();
  return r.status();
}

void EncodeError(const Status& st, std::string* out) {
  Writer w(out);
  w.Pod<int32_t>(static_cast<int32_t>(st.code()));
  w.Str(st.message());
}

Status DecodeError(std::string_view payload, Status* peer) {
  Reader r(payload);
  int32_t code = 0;
  std::string message;
  if (r.Pod(&code, "error.code") && r.Str(&message, "error.message")) {
    if (code <= 0 || code > static_cast<int32_t>(StatusCode::kInternal)) r.Fail("error.code", "unknown");
  }
  r.End();
  if (!r.ok()) return r.status();
  *peer = Status(static_cast<StatusCode>(code), "server: " + message);
  return Status::Ok();
}

void EncodeClientHello(const ClientHello& h, std::string* out) {
  Writer w(out);
  w.Bytes(h.nonce.data(), h.nonce.size());
  w.Pod<uint32_t>(h.worker);
  w.Bytes(h.mac.data(), h.mac.size());
}

Status DecodeClientHello(std::string_view payload, ClientHello* h) {
  if (payload.size() != kClientHelloBytes)
    return Malformed("a hello is " + std::to_string(kClientHelloBytes) + " bytes, not " +
                     std::to_string(payload.size()));
  std::memcpy(h->nonce.data(), payload.data(), 32);
  std::memcpy(&h->worker, payload.data() + 32, 4);
  std::memcpy(h->mac.data(), payload.data() + 36, 32);
  return Status::Ok();
}

Result<Header> ParseFrame(std::string_view frame, uint32_t max_payload) {
  if (frame.size() < kHeaderBytes) return Malformed("shorter than a header");
  EMBER_ASSIGN_OR_RETURN(Header h, ParseHeader(reinterpret_cast<const uint8_t*>(frame.data()), max_payload));
  if (frame.size() - kHeaderBytes != h.payload_bytes)
    return Malformed("payload is " + std::to_string(frame.size() - kHeaderBytes) + " bytes, header says " +
                     std::to_string(h.payload_bytes));
  const std::string_view payload = frame.substr(kHeaderBytes);
  switch (h.type) {
    case Type::kPull: {
      PullRequest r;
      EMBER_RETURN_IF_ERROR(DecodePull(payload, &r));
      break;
    }
    case Type::kPush: {
      PushRequest r;
      EMBER_RETURN_IF_ERROR(DecodePush(payload, &r));
      break;
    }
    case Type::kCreateTables: {
      std::vector<embedding::TableSpec> specs;
      EMBER_RETURN_IF_ERROR(DecodeSpecs(payload, &specs));
      break;
    }
    case Type::kApply: {
      TableOp op;
      EMBER_RETURN_IF_ERROR(DecodeOp(payload, &op));
      break;
    }
    case Type::kSave: {
      std::string dir;
      EMBER_RETURN_IF_ERROR(DecodeString(payload, &dir));
      break;
    }
    case Type::kLoad: {
      LoadRequest r;
      EMBER_RETURN_IF_ERROR(DecodeLoad(payload, &r));
      break;
    }
    case Type::kError: {
      Status peer;
      EMBER_RETURN_IF_ERROR(DecodeError(payload, &peer));
      break;
    }
    case Type::kPing:
    case Type::kStats:
    case Type::kShutdown:
      if (!payload.empty()) return Malformed(std::string(TypeName(h.type)) + " carries no payload");
      break;
    case Type::kChallenge:
      if (payload.size() != kChallengeBytes)
        return Malformed("a challenge is " + std::to_string(kChallengeBytes) + " bytes");
      break;
    case Type::kHello: {
      ClientHello hello;
      EMBER_RETURN_IF_ERROR(DecodeClientHello(payload, &hello));
      break;
    }
  }
  return h;
}

}  // namespace ember::ps::wire
