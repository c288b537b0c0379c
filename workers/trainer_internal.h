// Internal to workers/: the parts of Trainer that its files share (trainer.cc, the DSL
// schedule in dsl_schedule.cc, OptEmbed's search in optembed_search.cc).
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <unordered_map>
#include <vector>

#include "ember/embedding/dedup.h"
#include "ember/embedding/method.h"
#include "ember/workers/trainer.h"

namespace ember::workers {

using TrainerClock = std::chrono::steady_clock;

// One embedding group: fields that share a compression method and a slot width.
struct Trainer::Group {
  embedding::EmbeddingMethod* method = nullptr;
  embedding::MethodConfig config;  // what built `method`
  int dim = 0;                     // slot width: the group's widest table; narrower rows are zero-padded
  int max_probes = 0;              // slots per field; fields with fewer probes are padded with zero slots
  int total_probes = 0;            // real probes of all fields
  bool padded = false;             // some field has fewer probes than max_probes
  bool narrow = false;             // some table is narrower than dim
  bool optembed_supernet = false;
  bool dsl = false;
  uint32_t first_table = 0;
  size_t num_tables = 0;
  std::vector<int> probe_offset;
  std::vector<int> widths;
  // One batch's lookup: its keys, unique keys by table and the leaf they are pulled into. Two
  // buffers: the next batch's pull fills one while this batch computes with the other.
  struct Rows {
    std::vector<uint64_t> keys, scratch, sorted_unique;
    std::vector<size_t> table_begin;
    std::vector<int64_t> perm;
    // Feature admission: per leaf row whether the shards hold its own row, and for each unique
    // key of an admitting table the leaf row of its fallback (-1: none); fallback keys follow the
    // unique keys in the leaf.
    std::vector<uint8_t> own;
    std::vector<int64_t> fallback_row;
    std::unordered_map<uint64_t, size_t> fallback_slots;  // fallback key -> leaf row
    size_t unique = 0;
    embedding::KeyDeduper dedup;
    torch::Tensor inverse, slot_inverse, rows;
  };
  Rows buffers[2];
  int current = 0;
  Rows& now() { return buffers[current]; }

  // fn(table id, begin, end) for every table with rows in `r`'s leaf.
  template <typename Fn>
  void ForEachTable(const Rows& r, Fn&& fn) const {
    for (size_t t = 0; t < num_tables; ++t)
      if (r.table_begin[t] != r.table_begin[t + 1])
        fn(first_table + static_cast<uint32_t>(t), r.table_begin[t], r.table_begin[t + 1]);
  }
};

}  // namespace ember::workers
