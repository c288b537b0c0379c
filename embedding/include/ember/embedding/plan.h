// Memory budgets and plans: how many bytes each method's tables take, and how a budget becomes
// each method's sizes.
//
// Parameter bytes (the budget's basis, as the compression literature counts them): 4 bytes per
// stored weight; sparse (DSL) tables add their masks (ceil(dim / 8) bytes per row). Optimizer
// state and the row index are reported beside them (state bytes, estimated resident bytes), not
// charged to the budget. The full table is one row per distinct training value of every field.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ember/common/status.h"
#include "ember/embedding/method.h"

namespace ember::embedding {

// embedding.budget: a fraction of the full table (0 < fraction <= 1) or a byte count.
struct Budget {
  double fraction = 0;
  uint64_t bytes = 0;
  bool set() const { return fraction > 0 || bytes > 0; }
};
// Parses "0.1", "1/100", "64MiB", "2.5GB", "1000000" (bytes when > 1).
Result<Budget> ParseBudget(const std::string& text);
std::string FormatBytes(double bytes);

// Bytes of a full fp32 table of `dim` wide rows over every field's vocabulary.
uint64_t FullTableBytes(int dim, const std::vector<FieldInfo>& fields);
// Parameter bytes of a table of `rows` rows.
uint64_t ParamBytes(const TableSpec& spec, uint64_t rows);

// Turns a budget into the method's sizes: hash rows, unified rows per table, dsl density;
// full must fit as is; optembed keeps it for its search (*budget_bytes). Errors name the key
// and say why the budget cannot be met. Every field needs its vocabulary.
Status ApplyBudget(const Budget& budget, const std::vector<FieldInfo>& fields, MethodConfig* config,
                   uint64_t* budget_bytes);

struct TablePlan {
  TableSpec spec;
  uint64_t rows = 0;
  uint64_t param_bytes = 0;
  uint64_t state_bytes = 0;
  uint64_t resident_bytes = 0;  // estimated, index included
  std::vector<int> fields;      // fields reading this table
};
struct MemoryPlan {
  std::string method;
  std::vector<TablePlan> tables;
  uint64_t param_bytes = 0;
  uint64_t state_bytes = 0;
  uint64_t resident_bytes = 0;
  uint64_t full_bytes = 0;  // the full fp32 table at the method's width
};
MemoryPlan PlanMemory(const EmbeddingMethod& method, const MethodConfig& config, const std::vector<FieldInfo>& fields);

}  // namespace ember::embedding
