#include "ember/ps/in_process.h"

#include <algorithm>
#include <cstring>

#include "ember/common/file.h"

namespace ember::ps {

InProcessClient::InProcessClient(int num_shards, Env* env) : env_(env) {
  EMBER_CHECK(num_shards >= 1) << num_shards;
  for (int i = 0; i < num_shards; ++i) {
    shards_.push_back(std::make_unique<Shard>());
    shards_.back()->set_seed(static_cast<uint64_t>(i));
  }
  order_.resize(num_shards);
}

Status InProcessClient::CreateTables(const std::vector<embedding::TableSpec>& specs) {
  for (auto& s : shards_) EMBER_RETURN_IF_ERROR(s->CreateTables(specs));
  std::lock_guard<std::mutex> lock(scratch_mu_);
  for (const auto& s : specs) {
    if (table_dims_.size() <= s.id) table_dims_.resize(s.id + 1, 0);
    table_dims_[s.id] = static_cast<uint32_t>(s.dim);
  }
  return Status::Ok();
}

Status InProcessClient::ForEachShard(uint32_t table, const uint64_t* keys, size_t n, const char* what,
                                     const ShardFn& fn) {
  if (table >= table_dims_.size() || table_dims_[table] == 0)
    return Status::NotFound(std::string(what) + " undeclared table " + std::to_string(table));
  const size_t dim = table_dims_[table];
  for (auto& o : order_) o.clear();
  const int num = num_shards();
  for (size_t i = 0; i < n; ++i) order_[ShardOf(keys[i], num)].push_back(i);
  for (int s = 0; s < num; ++s) {
    const auto& idx = order_[s];
    if (idx.empty()) continue;
    keys_scratch_.resize(idx.size());
    rows_scratch_.resize(idx.size() * dim);
    for (size_t i = 0; i < idx.size(); ++i) keys_scratch_[i] = keys[idx[i]];
    EMBER_RETURN_IF_ERROR(fn(*shards_[s], idx, dim));
  }
  return Status::Ok();
}

Status InProcessClient::Pull(const std::vector<PullSlice>& slices, const PullClock& clock) {
  // Clocked pushes reach every shard, so every shard's clock counts the step: wait on each
  // (before taking the scratch lock, which the other workers' pushes need).
  uint64_t lowest = UINT64_MAX;
  for (auto& shard : shards_) {
    if (clock.wait_for > 0) shard->WaitClock(clock.wait_for);
    lowest = std::min(lowest, shard->clock());
  }
  if (clock.clock) *clock.clock = lowest;
  std::lock_guard<std::mutex> lock(scratch_mu_);
  for (const auto& sl : slices) {
    if (sl.table >= table_dims_.size() || table_dims_[sl.table] == 0)
      return Status::NotFound("pull from undeclared table " + std::to_string(sl.table));
    const size_t dim = table_dims_[sl.table];
    const size_t stride = sl.stride ? sl.stride : dim;
    if (shards_.size() == 1 && stride == dim) {
      EMBER_RETURN_IF_ERROR(shards_[0]->Pull(sl.table, sl.keys, sl.n, sl.out, sl.create_missing, sl.own));
      continue;
    }
    EMBER_RETURN_IF_ERROR(
        ForEachShard(sl.table, sl.keys, sl.n, "pull from", [&](Shard& shard, const std::vector<size_t>& idx, size_t) {
          own_scratch_.resize(idx.size());
          EMBER_RETURN_IF_ERROR(shard.Pull(sl.table, keys_scratch_.data(), idx.size(), rows_scratch_.data(),
                                           sl.create_missing, own_scratch_.data()));
          for (size_t i = 0; i < idx.size(); ++i)
            std::memcpy(sl.out + idx[i] * stride, rows_scratch_.data() + i * dim, dim * sizeof(float));
          if (sl.own)
            for (size_t i = 0; i < idx.size(); ++i) sl.own[idx[i]] = own_scratch_[i];
          return Status::Ok();
        }));
  }
  return Status::Ok();
}

Status InProcessClient::Push(const std::vector<PushSlice>& slices, const PushClock& clock) {
  std::lock_guard<std::mutex> lock(scratch_mu_);
  if (clock.workers > 0) return PushClocked(slices, clock);
  for (const auto& sl : slices) {
    if (sl.table >= table_dims_.size() || table_dims_[sl.table] == 0)
      return Status::NotFound("push to undeclared table " + std::to_string(sl.table));
    const size_t dim = table_dims_[sl.table];
    const size_t stride = sl.stride ? sl.stride : dim;
    if (shards_.size() == 1 && stride == dim) {
      EMBER_RETURN_IF_ERROR(shards_[0]->Push(sl.table, sl.keys, sl.n, sl.grads));
      continue;
    }
    EMBER_RETURN_IF_ERROR(
        ForEachShard(sl.table, sl.keys, sl.n, "push to", [&](Shard& shard, const std::vector<size_t>& idx, size_t) {
          for (size_t i = 0; i < idx.size(); ++i)
            std::memcpy(rows_scratch_.data() + i * dim, sl.grads + idx[i] * stride, dim * sizeof(float));
          return shard.Push(sl.table, keys_scratch_.data(), idx.size(), rows_scratch_.data());
        }));
  }
  return Status::Ok();
}

Status InProcessClient::PushClocked(const std::vector<PushSlice>& slices, const PushClock& clock) {
  const size_t S = shards_.size();
  std::vector<std::vector<Shard::Rows>> rows(S);
  // Each shard's share of each slice, rows made contiguous (one shard, unstrided: as they are).
  std::vector<std::vector<uint64_t>> keys(S * slices.size());
  std::vector<std::vector<float>> grads(S * slices.size());
  for (size_t i = 0; i < slices.size(); ++i) {
    const PushSlice& sl = slices[i];
    if (sl.table >= table_dims_.size() || table_dims_[sl.table] == 0)
      return Status::NotFound("push to undeclared table " + std::to_string(sl.table));
    const size_t dim = table_dims_[sl.table];
    const size_t stride = sl.stride ? sl.stride : dim;
    if (S == 1 && stride == dim) {
      rows[0].push_back({sl.table, sl.keys, sl.n, sl.grads});
      continue;
    }
    for (size_t k = 0; k < sl.n; ++k) {
      const size_t at = static_cast<size_t>(ShardOf(sl.keys[k], static_cast<int>(S))) * slices.size() + i;
      keys[at].push_back(sl.keys[k]);
      grads[at].insert(grads[at].end(), sl.grads + k * stride, sl.grads + k * stride + dim);
    }
    for (size_t s = 0; s < S; ++s) {
      const size_t at = s * slices.size() + i;
      if (!keys[at].empty()) rows[s].push_back({sl.table, keys[at].data(), keys[at].size(), grads[at].data()});
    }
  }
  for (size_t s = 0; s < S; ++s) EMBER_RETURN_IF_ERROR(shards_[s]->PushStep(clock, rows[s]));
  return Status::Ok();
}

Result<TableOpResult> InProcessClient::Apply(const TableOp& op) {
  TableOpResult total;
  for (auto& s : shards_) {
    EMBER_ASSIGN_OR_RETURN(auto r, s->Apply(op));
    total.rows += r.rows;
    total.values += r.values;
    total.pruned += r.pruned;
    total.grown += r.grown;
  }
  if (op.kind == TableOp::Kind::kDropTable) {
    std::lock_guard<std::mutex> lock(scratch_mu_);
    if (op.table < table_dims_.size()) table_dims_[op.table] = 0;
  }
  return total;
}

Result<std::vector<TableStats>> InProcessClient::Stats() {
  std::vector<TableStats> total;
  for (size_t i = 0; i < shards_.size(); ++i)
    MergeShardStats(static_cast<int>(i), num_shards(), shards_[i]->Stats(), &total);
  return total;
}

Result<std::vector<ShardFile>> InProcessClient::SaveShards(const std::string& dir) {
  std::vector<ShardFile> files;
  for (int i = 0; i < num_shards(); ++i) {
    const std::string bytes = shards_[i]->Serialize();
    ShardFile f;
    f.name = "shard-" + std::to_string(i) + ".bin";
    f.bytes = bytes.size();
    f.checksum = Checksum(bytes);
    EMBER_RETURN_IF_ERROR(env_->WriteFileAtomic(dir + "/" + f.name, bytes));
    files.push_back(f);
  }
  return files;
}

Result<std::string> ReadVerifiedFile(const std::string& dir, const ShardFile& f, Env* env) {
  const std::string path = dir + "/" + f.name;
  EMBER_ASSIGN_OR_RETURN(std::string bytes, env->ReadFile(path));
  if (bytes.size() != f.bytes)
    return Status::Corruption(path + ": size " + std::to_string(bytes.size()) + " bytes, manifest says " +
                              std::to_string(f.bytes));
  if (Checksum(bytes) != f.checksum) return Status::Corruption(path + ": checksum mismatch (file is corrupted)");
  return bytes;
}

Status ReadShardFiles(const std::string& dir, const std::vector<ShardFile>& files,
                      std::vector<std::unique_ptr<embedding::Table>>* tables, Env* env) {
  for (const auto& f : files) {
    EMBER_ASSIGN_OR_RETURN(std::string bytes, ReadVerifiedFile(dir, f, env));
    EMBER_RETURN_IF_ERROR(Shard::Parse(bytes, dir + "/" + f.name, tables));
  }
  return Status::Ok();
}

Status BuildShardTables(const std::string& dir, const std::vector<ShardFile>& files, int num_shards, int only,
                        std::vector<ShardTables>* out, Env* env) {
  out->clear();
  out->resize(only >= 0 ? 1 : static_cast<size_t>(num_shards));
  auto slot = [&](int shard) -> ShardTables* {
    if (only >= 0) return shard == only ? &(*out)[0] : nullptr;
    return &(*out)[static_cast<size_t>(shard)];
  };
  embedding::Table::Sink sink;
  sink.begin = [&](const embedding::TableSpec& spec) -> Status {
    for (auto& tables : *out) {  // every shard declares every table, rows or not
      auto& t = tables[spec.id];
      if (!t)
        t = embedding::Table::Make(spec);
      else if (!embedding::SameSpec(t->spec(), spec))
        return Status::Corruption("table " + std::to_string(spec.id) + " appears with different specs");
    }
    return Status::Ok();
  };
  sink.route = [&](const embedding::TableSpec& spec, uint64_t key) -> Result<embedding::Table*> {
    ShardTables* tables = slot(ShardOf(key, num_shards));
    return tables ? (*tables)[spec.id].get() : nullptr;
  };
  sink.flags = [&](const embedding::TableSpec& spec, uint32_t flags) -> Status {
    for (auto& tables : *out) EMBER_RETURN_IF_ERROR(tables[spec.id]->PutStateFlags(flags));
    return Status::Ok();
  };
  // A file's sketch counted the keys its shard held; which shard holds a key now is unknown to
  // a sketch, so every destination adds every file's sketch (counts only ever over-estimate).
  sink.sketch = [&](const embedding::TableSpec& spec, std::string_view bytes) -> Status {
    for (auto& tables : *out) EMBER_RETURN_IF_ERROR(tables[spec.id]->MergeSketch(bytes));
    return Status::Ok();
  };
  for (const auto& f : files) {
    EMBER_ASSIGN_OR_RETURN(std::string bytes, ReadVerifiedFile(dir, f, env));
    EMBER_RETURN_IF_ERROR(Shard::Scan(bytes, dir + "/" + f.name, sink));
  }
  return Status::Ok();
}

Status InProcessClient::ExportTables(embedding::ExportWriter* writer) {
  EMBER_ASSIGN_OR_RETURN(auto stats, Stats());
  for (auto& shard : shards_)
    for (const auto& s : stats)
      if (const embedding::Table* t = shard->table(s.table)) EMBER_RETURN_IF_ERROR(writer->AddTable(*t));
  return Status::Ok();
}

Status InProcessClient::LoadShards(const std::string& dir, const std::vector<ShardFile>& files) {
  std::vector<ShardTables> tables;
  EMBER_RETURN_IF_ERROR(BuildShardTables(dir, files, num_shards(), /*only=*/-1, &tables, env_));
  std::lock_guard<std::mutex> lock(scratch_mu_);
  for (const auto& [id, t] : tables[0]) {
    if (table_dims_.size() <= id) table_dims_.resize(id + 1, 0);
    table_dims_[id] = static_cast<uint32_t>(t->dim());
  }
  for (size_t s = 0; s < shards_.size(); ++s) shards_[s]->Replace(std::move(tables[s]));
  return Status::Ok();
}

void MergeShardStats(int shard, int num_shards, const std::vector<TableStats>& part, std::vector<TableStats>* total) {
  for (const auto& t : part) {
    auto it = std::find_if(total->begin(), total->end(), [&](const TableStats& x) { return x.table == t.table; });
    if (it == total->end()) {
      total->push_back(t);
      total->back().rows = total->back().values = total->back().bytes = 0;
      total->back().admitted = total->back().evicted = total->back().fallbacks = 0;
      total->back().shard_rows.assign(static_cast<size_t>(num_shards), 0);
      it = total->end() - 1;
    }
    it->rows += t.rows;
    it->values += t.values;
    it->bytes += t.bytes;
    it->shard_rows[static_cast<size_t>(shard)] = t.rows;
    it->admitted += t.admitted;
    it->evicted += t.evicted;
    it->fallbacks += t.fallbacks;
  }
}

}  // namespace ember::ps
