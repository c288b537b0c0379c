#include "ember/embedding/admission.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "ember/common/hash.h"

namespace ember::embedding {
namespace {
constexpr uint32_t kSketchMagic = 0x534d4345;   // "ECMS"
constexpr uint32_t kMaxSketchCells = 1u << 26;  // CheckLifecycle's bound
}  // namespace

CountMinSketch::CountMinSketch(uint32_t width, uint32_t depth, uint64_t seed)
    : width_(width), depth_(width ? std::max<uint32_t>(depth, 1) : 0), seed_(seed) {
  counters_.assign(static_cast<size_t>(width_) * depth_, 0);
}

uint32_t CountMinSketch::Cell(uint32_t row, uint64_t key) const {
  const uint64_t h = Mix64(key ^ PairSeed(seed_, row + 1));
  // Multiply-shift onto [0, width): no modulo, unbiased enough for any width.
  return static_cast<uint32_t>(((h >> 32) * static_cast<uint64_t>(width_)) >> 32);
}

uint32_t CountMinSketch::Estimate(uint64_t key) const {
  uint32_t m = UINT32_MAX;
  for (uint32_t r = 0; r < depth_; ++r) m = std::min(m, counters_[static_cast<size_t>(r) * width_ + Cell(r, key)]);
  return depth_ ? m : 0;
}

uint32_t CountMinSketch::Add(uint64_t key) {
  if (depth_ == 0) return 0;
  uint32_t* cells[64];
  const uint32_t d = std::min<uint32_t>(depth_, 64);
  uint32_t m = UINT32_MAX;
  for (uint32_t r = 0; r < d; ++r) {
    cells[r] = &counters_[static_cast<size_t>(r) * width_ + Cell(r, key)];
    m = std::min(m, *cells[r]);
  }
  if (m == UINT32_MAX) return m;  // saturated
  const uint32_t next = m + 1;
  for (uint32_t r = 0; r < d; ++r) *cells[r] = std::max(*cells[r], next);
  ++total_;
  return next;
}

double CountMinSketch::ErrorBound() const {
  return width_ ? std::exp(1.0) * static_cast<double>(total_) / static_cast<double>(width_) : 0.0;
}

Status CountMinSketch::Merge(const CountMinSketch& other) {
  if (other.width_ != width_ || other.depth_ != depth_ || other.seed_ != seed_)
    return Status::InvalidArgument("count-min sketches differ in shape or seed (" + std::to_string(width_) + "x" +
                                   std::to_string(depth_) + " vs " + std::to_string(other.width_) + "x" +
                                   std::to_string(other.depth_) + ")");
  for (size_t i = 0; i < counters_.size(); ++i) {
    const uint64_t s = uint64_t{counters_[i]} + other.counters_[i];
    counters_[i] = static_cast<uint32_t>(std::min<uint64_t>(s, UINT32_MAX));
  }
  total_ += other.total_;
  return Status::Ok();
}

void CountMinSketch::AppendTo(std::string* out) const {
  auto put = [&](const void* p, size_t n) { out->append(static_cast<const char*>(p), n); };
  put(&kSketchMagic, 4);
  put(&width_, 4);
  put(&depth_, 4);
  put(&seed_, 8);
  put(&total_, 8);
  put(counters_.data(), counters_.size() * sizeof(uint32_t));
}

Result<CountMinSketch> CountMinSketch::Parse(std::string_view in) {
  uint32_t magic = 0, width = 0, depth = 0;
  uint64_t seed = 0, total = 0;
  constexpr size_t kHead = 28;
  if (in.size() < kHead) return Status::Corruption("count-min sketch: truncated header");
  std::memcpy(&magic, in.data(), 4);
  std::memcpy(&width, in.data() + 4, 4);
  std::memcpy(&depth, in.data() + 8, 4);
  std::memcpy(&seed, in.data() + 12, 8);
  std::memcpy(&total, in.data() + 20, 8);
  if (magic != kSketchMagic) return Status::Corruption("count-min sketch: bad magic");
  if (width == 0 || depth == 0 || depth > 64 || uint64_t{width} * depth > kMaxSketchCells)
    return Status::Corruption("count-min sketch: bad shape " + std::to_string(width) + "x" + std::to_string(depth));
  const size_t cells = static_cast<size_t>(width) * depth;
  if (in.size() != kHead + cells * sizeof(uint32_t))
    return Status::Corruption("count-min sketch: " + std::to_string(in.size()) + " bytes for a " +
                              std::to_string(width) + "x" + std::to_string(depth) + " sketch");
  CountMinSketch s(width, depth, seed);
  s.total_ = total;
  std::memcpy(s.counters_.data(), in.data() + kHead, cells * sizeof(uint32_t));
  return s;
}

SightingCounter::SightingCounter(uint32_t width, uint32_t depth, uint64_t seed)
    : width_(width), sketch_(width, depth, seed) {}

uint32_t SightingCounter::Add(uint64_t key) {
  if (!exact()) return sketch_.Add(key);
  const auto [pos, fresh] = index_.Insert(key, static_cast<uint32_t>(keys_.size()));
  if (fresh) {
    keys_.push_back(key);
    counts_.push_back(0);
  }
  if (counts_[pos] < UINT32_MAX) ++counts_[pos];
  return counts_[pos];
}

uint32_t SightingCounter::Count(uint64_t key) const {
  if (!exact()) return sketch_.Estimate(key);
  const uint32_t pos = index_.Find(key);
  return pos == KeyIndex::kAbsent ? 0 : counts_[pos];
}

size_t SightingCounter::MemoryBytes() const {
  return exact() ? index_.MemoryBytes() + keys_.capacity() * sizeof(uint64_t) + counts_.capacity() * sizeof(uint32_t)
                 : sketch_.MemoryBytes();
}

void SightingCounter::PutExact(uint64_t key, uint32_t count) {
  const auto [pos, fresh] = index_.Insert(key, static_cast<uint32_t>(keys_.size()));
  if (fresh) {
    keys_.push_back(key);
    counts_.push_back(0);
  }
  counts_[pos] = count;
}

std::string SightingCounter::SketchBytes() const {
  std::string out;
  if (!exact()) sketch_.AppendTo(&out);
  return out;
}

Status SightingCounter::MergeSketch(std::string_view bytes) {
  if (exact()) return Status::Corruption("a count-min sketch for a table that counts exactly");
  EMBER_ASSIGN_OR_RETURN(CountMinSketch other, CountMinSketch::Parse(bytes));
  return sketch_.Merge(other);
}

Status CheckLifecycle(const Lifecycle& life) {
  if (!(life.admit_probability > 0.0f && life.admit_probability <= 1.0f))
    return Status::InvalidArgument("admission probability " + std::to_string(life.admit_probability) +
                                   " is not in (0, 1]");
  if (life.sketch_width > 0 && (life.sketch_depth < 1 || life.sketch_depth > 64))
    return Status::InvalidArgument("sketch depth " + std::to_string(life.sketch_depth) + " is not in [1, 64]");
  if (uint64_t{life.sketch_width} * life.sketch_depth > (uint64_t{1} << 26))
    return Status::InvalidArgument("sketch of " + std::to_string(life.sketch_width) + " x " +
                                   std::to_string(life.sketch_depth) + " counters exceeds 2^26 (256 MiB)");
  return Status::Ok();
}

}  // namespace ember::embedding
