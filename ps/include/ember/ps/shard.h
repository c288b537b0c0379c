// Shard: the rows, optimizer state and method state of the keys placed on one server.
//
// The same class is hosted in-process (InProcessClient) and by a server rank. Thread-safe: a
// mutex serialises every call.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
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
  // Training pulls (create_missing) and pushes go through the tables' admission and expiry
  // (Table::TrainPull/TrainPush at the shard's clock); `own`, if given, receives per key whether
  // it has its own row (0: not admitted, its out row zero).
  Status Pull(uint32_t table, const uint64_t* keys, size_t n, float* out, bool create_missing = true,
              uint8_t* own = nullptr);
  Status Push(uint32_t table, const uint64_t* keys, size_t n, const float* grads);
  // One step's push to this shard (rows contiguous, n x the table's dim), under a training
  // clock (client.h PushClock): applied now, or buffered until the step's last worker arrives.
  struct Rows {
    uint32_t table = 0;
    const uint64_t* keys = nullptr;
    size_t n = 0;
    const float* grads = nullptr;
  };
  // The world is fixed once (FixWorld, or the first clocked push): a push naming another worker
  // count or a worker outside it is refused, and each worker's step only moves forward.
  Status PushStep(const PushClock& clock, const std::vector<Rows>& rows);
  // Fixes the number of workers pushing with clocks (1 .. kMaxWorkers); once only.
  Status FixWorld(uint32_t workers);
  uint32_t world() const;
  static constexpr uint32_t kMaxWorkers = 1u << 16;
  // The step below which every worker's pushes are applied (see PushClock).
  uint64_t clock() const;
  // Blocks until clock() >= step (in-process workers).
  void WaitClock(uint64_t step);
  // Runs `fn` once clock() >= step: now, on this thread, or on the thread whose push completes
  // the step (servers park pulls this way instead of blocking a thread).
  void WhenClock(uint64_t step, std::function<void()> fn);
  // Forgets parked callbacks without running them (a server stopping).
  void DropWaiters();
  std::vector<TableStats> Stats() const;
  // `seed` is mixed with the shard's own seed for randomised maintenance.
  Result<TableOpResult> Apply(const TableOp& op);
  // Serialises every table: "EMSH" magic, version, table count, then Table sections.
  std::string Serialize() const;
  // Parses a serialised shard, appending its tables to *tables. Names `source` in errors.
  static Status Parse(std::string_view bytes, const std::string& source,
                      std::vector<std::unique_ptr<embedding::Table>>* tables);
  // Parses a serialised shard into `sink` (Table::ParseInto per table section).
  static Status Scan(std::string_view bytes, const std::string& source, const embedding::Table::Sink& sink);
  // Installs `tables` in place of every table (a verified restore).
  void Replace(std::map<uint32_t, std::unique_ptr<embedding::Table>> tables);
  void set_seed(uint64_t seed) { seed_ = seed; }
  const embedding::Table* table(uint32_t id) const;
  embedding::Table* mutable_table(uint32_t id);

 private:
  Status CheckTable(uint32_t table) const;
  // Sums the open step's buffered pushes (worker order) and applies them; clock_mu_ held.
  Status ApplyOpenStep();
  void AdvanceClock(uint64_t clock, std::unique_lock<std::mutex>* lock);
  // Expiry scans of the tables that expire rows, at the new clock (takes mu_).
  void ExpireRows(uint64_t clock);

  mutable std::mutex mu_;
  std::map<uint32_t, std::unique_ptr<embedding::Table>> tables_;
  uint64_t seed_ = 0;
  std::atomic<uint64_t> now_{0};  // clock_, readable under mu_ alone (rows' touch steps)

  // Training clock (clock_mu_; taken before mu_ when both are needed).
  struct Buffered {
    uint32_t table = 0;
    std::vector<uint64_t> keys;
    std::vector<float> grads;
  };
  mutable std::mutex clock_mu_;
  std::condition_variable clock_cv_;
  uint64_t clock_ = 0;
  uint32_t workers_ = 0;                // fixed world (0: not yet)
  bool started_ = false;                // a clocked push arrived (clocks start at its step)
  bool aggregate_ = false;              // its mode (sync aggregates), fixed from then on
  std::vector<uint64_t> worker_clock_;  // async/bounded: steps each worker has pushed
  bool open_ = false;                   // sync: a step has buffered pushes
  uint64_t open_step_ = 0;
  std::vector<std::vector<Buffered>> pending_;  // sync: by worker
  std::vector<bool> arrived_;
  uint32_t arrived_count_ = 0;
  std::vector<std::pair<uint64_t, std::function<void()>>> waiters_;
};

}  // namespace ember::ps
