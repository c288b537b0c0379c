#include "ember/embedding/plan.h"

#include <cmath>
#include <cstdio>

#include "ember/embedding/row_store.h"
#include "ember/embedding/sparse_store.h"

namespace ember::embedding {

Result<Budget> ParseBudget(const std::string& text) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("embedding.budget: '" + text + "' " + why +
                                   " (expected a fraction such as 0.1 or 1/100, or bytes such as 64MiB)");
  };
  Budget b;
  const size_t slash = text.find('/');
  try {
    if (slash != std::string::npos) {
      const double num = std::stod(text.substr(0, slash)), den = std::stod(text.substr(slash + 1));
      if (!(num > 0 && den > 0 && num <= den)) return bad("is not a fraction in (0, 1]");
      b.fraction = num / den;
      return b;
    }
    size_t used = 0;
    const double v = std::stod(text, &used);
    std::string unit = text.substr(used);
    while (!unit.empty() && unit.front() == ' ') unit.erase(0, 1);
    double mult = 1;
    if (unit == "" || unit == "B") {
      mult = 1;
    } else if (unit == "KB") {
      mult = 1e3;
    } else if (unit == "MB") {
      mult = 1e6;
    } else if (unit == "GB") {
      mult = 1e9;
    } else if (unit == "KiB") {
      mult = 1024.0;
    } else if (unit == "MiB") {
      mult = 1024.0 * 1024;
    } else if (unit == "GiB") {
      mult = 1024.0 * 1024 * 1024;
    } else {
      return bad("has an unknown unit '" + unit + "'");
    }
    if (!std::isfinite(v)) return bad("is not a finite number");
    if (!(v > 0)) return bad("must be positive");
    if (unit.empty() && v <= 1) {
      b.fraction = v;
    } else {
      // Past 2^63 bytes a budget cannot bound anything a machine holds: it means "at least the
      // full table" (ApplyBudget), never a wrapped-around or dropped number.
      const double bytes = v * mult;
      b.bytes = bytes >= 9.2e18 ? UINT64_MAX : std::max<uint64_t>(1, static_cast<uint64_t>(bytes));
    }
  } catch (const std::exception&) {
    return bad("is not a number");
  }
  return b;
}

std::string FormatBytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.2f %s", bytes, units[u]);
  return buf;
}

uint64_t FullTableBytes(int dim, const std::vector<FieldInfo>& fields) {
  uint64_t rows = 0;
  for (const auto& f : fields) rows += f.vocab;
  return rows * static_cast<uint64_t>(dim) * sizeof(float);
}

namespace {
uint64_t MaskBytes(int dim) { return static_cast<uint64_t>((dim + 7) / 8); }
}  // namespace

uint64_t ParamBytes(const TableSpec& spec, uint64_t rows) {
  if (spec.kind == TableKind::kSparse)
    return static_cast<uint64_t>(std::llround(static_cast<double>(rows) *
                                              (static_cast<double>(spec.density) * spec.dim * sizeof(float)))) +
           rows * MaskBytes(spec.dim);
  return rows * static_cast<uint64_t>(spec.dim) * static_cast<uint64_t>(BytesPerValue(spec.precision));
}

Status ApplyBudget(const Budget& budget, const std::vector<FieldInfo>& fields, MethodConfig* c,
                   uint64_t* budget_bytes) {
  *budget_bytes = 0;
  if (!budget.set()) return Status::Ok();
  for (size_t f = 0; f < fields.size(); ++f)
    if (fields[f].vocab == 0)
      return Status::InvalidArgument("embedding.budget: field " + fields[f].name +
                                     " has no known vocabulary (plan needs the training data's distinct values)");
  const uint64_t full = FullTableBytes(c->dim, fields);
  uint64_t bytes =
      budget.bytes ? budget.bytes : static_cast<uint64_t>(std::floor(budget.fraction * static_cast<double>(full)));
  // A budget at or above the full table is the full table's size (the plan says so): more
  // hashed rows than values would only hold empty rows.
  if (bytes >= full) bytes = full;
  *budget_bytes = bytes;
  auto cannot = [&](const std::string& why) {
    return Status::InvalidArgument("embedding.budget: " + FormatBytes(static_cast<double>(bytes)) + " (" +
                                   std::to_string(static_cast<double>(bytes) / static_cast<double>(full)) +
                                   " of the full table's " + FormatBytes(static_cast<double>(full)) +
                                   ") cannot be met by " + MethodName(c->method) + ": " + why);
  };
  // Rows cost their precision's bytes; the full table they are measured against is fp32.
  const uint64_t row_bytes = static_cast<uint64_t>(c->dim) * static_cast<uint64_t>(BytesPerValue(c->precision));
  // Per-field methods (full, hash, dsl mixes): full fields take their tables as they are, the
  // rest of the budget goes to hash and dsl fields in proportion to their vocabularies.
  if (c->method == Method::kFull || c->method == Method::kHash || c->method == Method::kDsl) {
    uint64_t fixed = 0, hash_vocab = 0, dsl_vocab = 0;
    for (size_t f = 0; f < fields.size(); ++f) {
      const Method m = FieldMethod(*c, f);
      if (m == Method::kFull) fixed += fields[f].vocab * row_bytes;
      if (m == Method::kHash) hash_vocab += fields[f].vocab;
      if (m == Method::kDsl) dsl_vocab += fields[f].vocab;
    }
    if (c->method == Method::kFull && hash_vocab + dsl_vocab == 0) {
      if (c->precision != Precision::kFp32 && bytes >= full / 2) return Status::Ok();
      if (bytes < full) return cannot("the full table needs all of it; pick hash, unified, optembed or dsl");
      return Status::Ok();
    }
    if (fixed >= bytes) return cannot("the full-table fields alone take " + FormatBytes(static_cast<double>(fixed)));
    const double rest = static_cast<double>(bytes - fixed);
    const double hash_share = rest * static_cast<double>(hash_vocab) / static_cast<double>(hash_vocab + dsl_vocab);
    if (hash_vocab) {
      c->rows = static_cast<uint64_t>(hash_share) / row_bytes;
      if (c->rows == 0) return cannot("not even one hashed row of " + std::to_string(row_bytes) + " bytes");
    }
    if (dsl_vocab) {
      const double dsl_bytes = rest - hash_share;
      const double masks = static_cast<double>(dsl_vocab * MaskBytes(c->dim));
      const double per_value = (dsl_bytes - masks) / (static_cast<double>(dsl_vocab) * static_cast<double>(c->dim) * 4);
      c->dsl_rows = 0;
      if (per_value >= c->dsl_min_density) {
        c->density = static_cast<float>(std::min(1.0, per_value));
      } else {
        // Masks of a row per value would leave too little: the values share hashed rows, each
        // kept at dsl_min_density (its mask plus its kept entries).
        c->density = c->dsl_min_density;
        const double row = static_cast<double>(MaskBytes(c->dim)) + c->density * c->dim * 4;
        c->dsl_rows = static_cast<uint64_t>(dsl_bytes / row);
        if (c->dsl_rows == 0) return cannot("not even one shared sparse row of " + std::to_string(row) + " bytes");
      }
    }
    return Status::Ok();
  }
  if (c->method == Method::kUnified) {
    if (c->chunks < 1 || (!c->sum_probes && c->dim % c->chunks))
      return Status::InvalidArgument("embedding.chunks must divide dim");
    // A probe's row: dim / chunks wide (dim % chunks == 0), or dim wide where probes are summed.
    const uint64_t chunk_bytes = c->sum_probes ? row_bytes : row_bytes / static_cast<uint64_t>(c->chunks);
    uint64_t own = 0;
    for (size_t f = 0; f < fields.size(); ++f) {
      if (fields[f].vocab > c->collisionless_below && FieldMethod(*c, f) != Method::kFull) continue;
      own += fields[f].vocab * static_cast<uint64_t>(UnifiedFieldProbes(*c, f, /*own=*/true)) * chunk_bytes;
    }
    // Frequent values' collisionless rows (docs/compression.md, *Frequent values*).
    for (size_t f = 0; f < fields.size() && f < c->frequent_counts.size(); ++f) {
      if (fields[f].vocab > 0 && fields[f].vocab <= c->collisionless_below) continue;
      if (FieldMethod(*c, f) == Method::kFull) continue;
      own += c->frequent_counts[f] * UnifiedFrequentRows(*c, f) * chunk_bytes;
    }
    if (own >= bytes) return cannot("the collisionless tables alone take " + FormatBytes(static_cast<double>(own)));
    c->rows = (bytes - own) / (static_cast<uint64_t>(c->tables) * chunk_bytes);
    if (c->rows == 0) return cannot("less than one row per shared table");
    return Status::Ok();
  }
  if (c->method == Method::kOptEmbed) return Status::Ok();  // the search honours it
  return Status::InvalidArgument(std::string("embedding.budget: unknown method ") + MethodName(c->method));
}

MemoryPlan PlanMemory(const EmbeddingMethod& method, const MethodConfig& config, const std::vector<FieldInfo>& fields) {
  MemoryPlan plan;
  plan.method = method.name();
  plan.full_bytes = FullTableBytes(config.dim, fields);
  for (const auto& spec : method.tables()) {
    TablePlan t;
    t.spec = spec;
    t.rows = spec.rows;
    t.param_bytes = ParamBytes(spec, t.rows);
    const double state_per_row =
        spec.kind == TableKind::kSparse
            ? SparseRowStore::SlotFloats(spec.optimizer.kind, static_cast<double>(spec.density) * spec.dim) -
                  static_cast<double>(spec.density) * spec.dim
            : StateFloats(spec.optimizer.kind, spec.dim);
    t.state_bytes = static_cast<uint64_t>(std::llround(static_cast<double>(t.rows) * state_per_row * sizeof(float)));
    t.resident_bytes = spec.kind == TableKind::kSparse ? SparseRowStore::EstimateBytes(spec, t.rows)
                                                       : RowStore::EstimateBytes(spec, t.rows);
    for (int f = 0; f < method.num_fields(); ++f)
      for (uint32_t id : method.layout(f).probe_tables)
        if (id == spec.id && (t.fields.empty() || t.fields.back() != f)) t.fields.push_back(f);
    plan.param_bytes += t.param_bytes;
    plan.state_bytes += t.state_bytes;
    plan.resident_bytes += t.resident_bytes;
    plan.tables.push_back(std::move(t));
  }
  return plan;
}

}  // namespace ember::embedding
