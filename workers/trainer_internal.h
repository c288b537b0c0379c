// Internal to workers/: the parts of Trainer that its files share (trainer.cc, the DSL
// schedule in dsl_schedule.cc, OptEmbed's search in optembed_search.cc).
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <memory>
#include <vector>

#include "ember/embedding/lookup.h"
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
  bool optembed_supernet = false;
  bool dsl = false;
  // First-order weights: pushed as gradients of the batch's summed loss (per-example units, so
  // linear.* settings mean the same at every batch size), not of its mean.
  bool first_order = false;
  uint32_t first_table = 0;
  size_t num_tables = 0;
  std::vector<int> widths;
  // One batch's lookup (embedding::BatchLookup: keys, unique keys by table, fallbacks, slots) and
  // the leaf its rows are pulled into. Two: the next batch's pull fills one while this batch
  // computes with the other.
  struct Rows {
    std::unique_ptr<embedding::BatchLookup> lookup;
    torch::Tensor rows, index;       // host: what the PS fills, and the slots
    torch::Tensor offsets, weights;  // multi-hot fields: the slots' bags (else undefined)
    torch::Tensor leaf;              // what the model reads: `rows`, or its copy on the device
  };
  Rows buffers[2];
  int current = 0;
  Rows& now() { return buffers[current]; }
};

}  // namespace ember::workers
