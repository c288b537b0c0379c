// Row keys and table descriptions shared by embedding/, ps/ and workers/.
//
// A row key is a u64: the table id in the top kTableBits bits, the row's local key in the
// rest. Local keys are raw ids (full tables), bucket numbers (hashed and shared tables) or
// anything a method derives; all-ones is reserved as the empty-slot marker, so table id
// kMaxTables - 1 is never used.
#pragma once

#include <cstdint>
#include <string>

namespace ember::embedding {

inline constexpr int kTableBits = 10;
inline constexpr int kLocalBits = 64 - kTableBits;
inline constexpr uint32_t kMaxTables = (1u << kTableBits) - 1;
inline constexpr uint64_t kLocalMask = (uint64_t{1} << kLocalBits) - 1;

inline constexpr uint64_t MakeKey(uint32_t table, uint64_t local) {
  return (static_cast<uint64_t>(table) << kLocalBits) | (local & kLocalMask);
}
inline constexpr uint32_t KeyTable(uint64_t key) { return static_cast<uint32_t>(key >> kLocalBits); }
inline constexpr uint64_t KeyLocal(uint64_t key) { return key & kLocalMask; }

enum class OptimizerKind { kSgd, kAdagrad, kRowwiseAdagrad, kAdam, kFtrl };

// Sparse optimizer settings. Defaults follow common practice for embedding tables.
struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::kRowwiseAdagrad;
  float lr = 0.05f;
  float eps = 1e-8f;                 // Adagrad / row-wise Adagrad / Adam denominator term
  float beta1 = 0.9f;                // Adam
  float beta2 = 0.999f;              // Adam
  float initial_accumulator = 0.0f;  // Adagrad / row-wise Adagrad / FTRL starting state
  // FTRL-proximal (lr is its alpha): per-coordinate rate alpha / (beta + sqrt(n)), L1 and L2
  // strengths in units of the batch-mean loss.
  float beta = 1.0f;
  float l1 = 0.0f;
  float l2 = 0.0f;
};

const char* OptimizerName(OptimizerKind kind);
// Parses "sgd", "adagrad", "rowwise_adagrad", "adam", "ftrl"; false if unknown.
bool ParseOptimizerKind(const std::string& name, OptimizerKind* kind);
// Floats of optimizer state stored after the row's `dim` weights.
int StateFloats(OptimizerKind kind, int dim);

// How a table stores its rows.
//   kDense:  every row holds `dim` floats (RowStore).
//   kSparse: element-masked rows (Dynamic Sparse Learning): a row holds a `dim`-bit mask and only
//            the values under it, packed (SparseRowStore); pulls read masked entries as zero.
enum class TableKind : int32_t { kDense = 0, kSparse = 1 };

// How dense rows store their weights: fp32, or fp16 (IEEE binary16, round to nearest even on
// every write; optimizer state stays fp32 and the update is computed in fp32).
enum class Precision : int32_t { kFp32 = 0, kFp16 = 1 };
inline int BytesPerValue(Precision p) { return p == Precision::kFp16 ? 2 : 4; }

// Feature admission and expiry of a table's rows (docs/admission.md). A value without its own
// row is counted at every training pull that carries it; at its `admit_after`-th sighting (and
// then with probability `admit_probability` per sighting) it gets its own row. Until then the
// shard answers "no row" and the worker reads the field's fallback row instead. Rows that no
// training pull or push touched in the last `expire_after` steps of the shard's clock are
// evicted with their optimizer state; a later sighting of the value is counted on from where
// its count stood (counts never decrease).
struct Lifecycle {
  uint32_t admit_after = 0;        // 0 or 1: a value gets its row at its first sighting
  float admit_probability = 1.0f;  // < 1: probabilistic admission (deterministic per key and sighting)
  uint32_t sketch_width = 0;       // counters per row of the count-min sketch; 0 = exact counts
  uint32_t sketch_depth = 4;       // rows of the sketch
  uint64_t expire_after = 0;       // steps; 0 = rows never expire
  bool admits() const { return admit_after > 1 || admit_probability < 1.0f; }
  bool expires() const { return expire_after > 0; }
  bool any() const { return admits() || expires(); }
};

// One table: its id (< kMaxTables), row width, and how rows start.
struct TableSpec {
  uint32_t id = 0;
  int dim = 16;
  // Expected number of rows (the bucket count of hashed tables; 0 = unbounded keyed table).
  // Used for memory planning and pre-sizing only.
  uint64_t rows = 0;
  // New rows are uniform in [-init_scale, init_scale], derived from (seed, key) so that a row
  // has the same initial value whatever shard or process creates it.
  float init_scale = 0.01f;
  uint64_t seed = 0;
  OptimizerConfig optimizer;
  TableKind kind = TableKind::kDense;
  // kSparse: share of the `dim` entries a new row keeps (its allotment: floor(density * dim),
  // plus one with probability equal to the remainder, drawn from a hash of the key).
  float density = 1.0f;
  // A frozen table holds a fixed set of rows (OptEmbed retraining keeps only unpruned rows):
  // pulls of absent keys read zeros and pushes to them are dropped; no row is ever created.
  bool frozen = false;
  Precision precision = Precision::kFp32;  // kDense only
  Lifecycle lifecycle;
};

// True when two specs describe the same table (CreateTables accepts repeats of one spec).
bool SameSpec(const TableSpec& a, const TableSpec& b);

}  // namespace ember::embedding
