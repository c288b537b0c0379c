// Counting for feature admission (types.h Lifecycle): how often each value without its own row
// has been seen.
//
// CountMinSketch: `depth` rows of `width` u32 counters; a key increments one counter per row
// (conservative update: only the counters at the current minimum) and its estimate is the
// minimum of its counters. The estimate never under-counts; with N increments in total it
// over-counts by at most e * N / width with probability at least 1 - exp(-depth) (Cormode and
// Muthukrishnan 2005; conservative update only lowers estimates). Memory: width * depth * 4
// bytes, whatever the number of keys. Sketches of the same shape and seed add: the sum of two
// sketches is a sketch of both key streams (how shards' sketches merge on resharding).
//
// SightingCounter: the sketch, or exact counts (one entry per key ever counted) when width is 0.
// Thread-compatible.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ember/common/key_index.h"
#include "ember/common/status.h"
#include "ember/embedding/types.h"

namespace ember::embedding {

class CountMinSketch {
 public:
  CountMinSketch(uint32_t width, uint32_t depth, uint64_t seed);
  // Counts one sighting of key; returns its new estimate.
  uint32_t Add(uint64_t key);
  uint32_t Estimate(uint64_t key) const;
  uint32_t width() const { return width_; }
  uint32_t depth() const { return depth_; }
  uint64_t total() const { return total_; }  // increments so far (N of the bound)
  size_t MemoryBytes() const { return counters_.size() * sizeof(uint32_t); }
  // Upper bound on the over-count that holds with probability 1 - exp(-depth).
  double ErrorBound() const;
  // Adds another sketch's counters (same width, depth and seed, else an error).
  Status Merge(const CountMinSketch& other);
  void AppendTo(std::string* out) const;
  static Result<CountMinSketch> Parse(std::string_view bytes);

 private:
  uint32_t Cell(uint32_t row, uint64_t key) const;
  uint32_t width_, depth_;
  uint64_t seed_;
  uint64_t total_ = 0;
  std::vector<uint32_t> counters_;  // depth x width
};

class SightingCounter {
 public:
  // width 0: exact counts.
  SightingCounter(uint32_t width, uint32_t depth, uint64_t seed);
  uint32_t Add(uint64_t key);
  uint32_t Count(uint64_t key) const;
  bool exact() const { return width_ == 0; }
  size_t MemoryBytes() const;
  // Exact counts, for checkpoints (resharded by key with the rows).
  template <typename Fn>
  void ForEachExact(Fn&& fn) const {
    for (size_t i = 0; i < keys_.size(); ++i) fn(keys_[i], counts_[i]);
  }
  // Sets an exact count (restore).
  void PutExact(uint64_t key, uint32_t count);
  // The sketch (exact() false) as bytes; Merge adds such bytes into this counter's sketch.
  std::string SketchBytes() const;
  Status MergeSketch(std::string_view bytes);

 private:
  uint32_t width_;
  CountMinSketch sketch_;
  KeyIndex index_;  // exact: key -> position in keys_/counts_
  std::vector<uint64_t> keys_;
  std::vector<uint32_t> counts_;
};

// Validates a table's lifecycle settings (probability in (0, 1], sketch shape and size).
Status CheckLifecycle(const Lifecycle& life);

}  // namespace ember::embedding
