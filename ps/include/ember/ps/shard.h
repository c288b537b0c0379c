// Shard: the rows, optimizer state and method state of the keys placed on one server.
//
// The same class is hosted in-process (InProcessClient) and by a server rank. Thread-safe: a
// mutex serialises every call.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "ember/common/status.h"
#include "ember/embedding/table.h"
#include "ember/ps/client.h"

namespace ember::ps {

class Shard {
 public:
  Status CreateTables(const std::vector<embedding::TableSpec>& specs);
  Status Pull(uint32_t table, const uint64_t* keys, size_t n, float* out, bool create_missing = true);
  Status Push(uint32_t table, const uint64_t* keys, size_t n, const float* grads);
  std::vector<TableStats> Stats() const;
  // `seed` is mixed with the shard's own seed for randomised maintenance.
  Result<TableOpResult> Apply(const TableOp& op);
  // Serialises every table: "EMSH" magic, version, table count, then Table sections.
  std::string Serialize() const;
  // Parses a serialised shard, appending its tables to *tables. Names `source` in errors.
  static Status Parse(std::string_view bytes, const std::string& source,
                      std::vector<std::unique_ptr<embedding::Table>>* tables);
  // Inserts rows of a parsed table (restore, resharding): only keys for which keep(key) holds.
  template <typename Keep>
  Status Absorb(const embedding::Table& src, Keep&& keep) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& dst = tables_[src.spec().id];
    if (!dst) dst = embedding::Table::Make(src.spec());
    Status st = Status::Ok();
    src.ForEachRecord([&](uint64_t key, std::string_view rec) {
      if (st.ok() && keep(key)) st = dst->PutRecord(key, rec);
    });
    return st;
  }
  void Clear();
  void set_seed(uint64_t seed) { seed_ = seed; }
  const embedding::Table* table(uint32_t id) const;
  embedding::Table* mutable_table(uint32_t id);

 private:
  Status CheckTable(uint32_t table) const;
  mutable std::mutex mu_;
  std::map<uint32_t, std::unique_ptr<embedding::Table>> tables_;
  uint64_t seed_ = 0;
};

}  // namespace ember::ps
