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
#include "ember/embedding/row_store.h"
#include "ember/ps/client.h"

namespace ember::ps {

class Shard {
 public:
  Status CreateTables(const std::vector<embedding::TableSpec>& specs);
  Status Pull(uint32_t table, const uint64_t* keys, size_t n, float* out, bool create_missing = true);
  Status Push(uint32_t table, const uint64_t* keys, size_t n, const float* grads);
  std::vector<TableStats> Stats() const;
  // Serialises every table: "EMSH" magic, version, table count, then RowStore sections.
  std::string Serialize() const;
  // Parses a serialised shard, appending its tables to *tables. Names `source` in errors.
  static Status Parse(std::string_view bytes, const std::string& source,
                      std::vector<std::unique_ptr<embedding::RowStore>>* tables);
  // Inserts rows of a parsed table (restore, resharding): only keys for which keep(key) holds.
  template <typename Keep>
  void Absorb(const embedding::RowStore& src, Keep&& keep) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& dst = tables_[src.spec().id];
    if (!dst) dst = std::make_unique<embedding::RowStore>(src.spec());
    src.ForEach([&](uint64_t key, const float* slot) {
      if (keep(key)) dst->Put(key, slot);
    });
  }
  void Clear();
  const embedding::RowStore* table(uint32_t id) const;

 private:
  Status CheckTable(uint32_t table) const;
  mutable std::mutex mu_;
  std::map<uint32_t, std::unique_ptr<embedding::RowStore>> tables_;
};

}  // namespace ember::ps
