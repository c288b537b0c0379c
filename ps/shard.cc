#include "ember/ps/shard.h"

#include <cstring>

namespace ember::ps {
namespace {
constexpr uint32_t kShardMagic = 0x48534d45;  // "EMSH"
constexpr uint32_t kShardVersion = 1;

bool SameSpec(const embedding::TableSpec& a, const embedding::TableSpec& b) {
  return a.id == b.id && a.dim == b.dim && a.seed == b.seed && a.init_scale == b.init_scale &&
         a.optimizer.kind == b.optimizer.kind && a.optimizer.lr == b.optimizer.lr;
}
}  // namespace

Status Shard::CreateTables(const std::vector<embedding::TableSpec>& specs) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& s : specs) {
    if (s.id >= embedding::kMaxTables)
      return Status::InvalidArgument("table id " + std::to_string(s.id) + " out of range");
    auto& t = tables_[s.id];
    if (!t) {
      t = std::make_unique<embedding::RowStore>(s);
    } else if (!SameSpec(t->spec(), s)) {
      return Status::FailedPrecondition("table " + std::to_string(s.id) + " already exists with a different spec");
    }
  }
  return Status::Ok();
}

Status Shard::CheckTable(uint32_t table) const {
  auto it = tables_.find(table);
  if (it == tables_.end() || !it->second)
    return Status::NotFound("table " + std::to_string(table) + " does not exist on this shard");
  return Status::Ok();
}

Status Shard::Pull(uint32_t table, const uint64_t* keys, size_t n, float* out, bool create_missing) {
  std::lock_guard<std::mutex> lock(mu_);
  EMBER_RETURN_IF_ERROR(CheckTable(table));
  if (create_missing)
    tables_[table]->Pull(keys, n, out);
  else
    tables_[table]->PullReadOnly(keys, n, out);
  return Status::Ok();
}

Status Shard::Push(uint32_t table, const uint64_t* keys, size_t n, const float* grads) {
  std::lock_guard<std::mutex> lock(mu_);
  EMBER_RETURN_IF_ERROR(CheckTable(table));
  tables_[table]->Push(keys, n, grads);
  return Status::Ok();
}

std::vector<TableStats> Shard::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<TableStats> out;
  for (const auto& [id, t] : tables_) out.push_back({id, t->size(), t->MemoryBytes()});
  return out;
}

std::string Shard::Serialize() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  auto put32 = [&](uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); };
  put32(kShardMagic);
  put32(kShardVersion);
  put32(static_cast<uint32_t>(tables_.size()));
  for (const auto& [id, t] : tables_) t->AppendTo(&out);
  return out;
}

Status Shard::Parse(std::string_view bytes, const std::string& source,
                    std::vector<std::unique_ptr<embedding::RowStore>>* tables) {
  uint32_t head[3];
  if (bytes.size() < sizeof(head)) return Status::Corruption(source + ": truncated shard header");
  std::memcpy(head, bytes.data(), sizeof(head));
  bytes.remove_prefix(sizeof(head));
  if (head[0] != kShardMagic) return Status::Corruption(source + ": not an ember shard file");
  if (head[1] != kShardVersion)
    return Status::Corruption(source + ": unsupported shard version " + std::to_string(head[1]));
  for (uint32_t i = 0; i < head[2]; ++i) {
    auto store = embedding::RowStore::ParseFrom(&bytes, source);
    if (!store.ok()) return store.status();
    tables->push_back(std::move(store).value());
  }
  if (!bytes.empty()) return Status::Corruption(source + ": trailing bytes after tables");
  return Status::Ok();
}

void Shard::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  tables_.clear();
}

const embedding::RowStore* Shard::table(uint32_t id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tables_.find(id);
  return it == tables_.end() ? nullptr : it->second.get();
}

}  // namespace ember::ps
