// Dynamic Sparse Learning's schedule on the trainer (docs/compression.md): growth collection
// starts grow_window steps before a round; every `interval` steps the shards prune and regrow
// a (cosine-decayed) fraction of each sparse table's kept values.
#include <algorithm>
#include <cmath>

#include "ember/common/hash.h"
#include "trainer_internal.h"

namespace ember::workers {

namespace {
// DSL: the step after which growth collection starts (grow_window steps before a round).
bool DslStartsCollecting(const DslConfig& d, int64_t step) {
  return (step + std::min(d.grow_window, d.interval)) % d.interval == 0;
}
}  // namespace

bool Trainer::MaintenanceAfter(int64_t step) const {
  const DslConfig& d = config_.dsl;
  if (d.interval <= 0 || std::none_of(groups_.begin(), groups_.end(), [](const auto& g) { return g->dsl; }))
    return false;
  return DslStartsCollecting(d, step) || step % d.interval == 0;
}

Status Trainer::MaintainTables() {
  const DslConfig& d = config_.dsl;
  if (d.interval <= 0) return Status::Ok();
  // Table operations act on the shared servers: with several workers, the first issues them and
  // every worker waits at a barrier, so no worker pulls a table mid-round.
  bool due = false;
  for (auto& gp : groups_) {
    if (!gp->dsl) continue;
    const bool start_collect = DslStartsCollecting(d, step_);
    const bool round = step_ % d.interval == 0;
    if (!start_collect && !round) continue;
    due = true;
    if (prefetch_.batch) return Status::Internal("table maintenance while the next batch's rows are in flight");
    if (collective_->rank() != 0) continue;
    double p = d.p0;
    if (d.total_steps > 0) {
      const double x = std::min(1.0, static_cast<double>(step_) / static_cast<double>(d.total_steps));
      p = d.p_min + (d.p0 - d.p_min) * (1.0 + std::cos(M_PI * x)) / 2.0;
    }
    for (size_t t = 0; t < gp->num_tables; ++t) {
      if (gp->method->tables()[t].kind != embedding::TableKind::kSparse) continue;
      ps::TableOp op;
      op.table = gp->first_table + static_cast<uint32_t>(t);
      if (round) {
        op.kind = ps::TableOp::Kind::kPruneGrow;
        op.value = p;
        op.seed = PairSeed(config_.seed, static_cast<uint64_t>(step_));
        EMBER_ASSIGN_OR_RETURN(auto r, ps_->Apply(op));
        const monitoring::Labels table = {{"table", std::to_string(op.table)}};
        recorder_->AddCounter("dsl_pruned_values_total", static_cast<double>(r.pruned), table);
        recorder_->AddCounter("dsl_regrown_values_total", static_cast<double>(r.grown), table);
        recorder_->AddCounter("dsl_rounds_total", 1, table);
        recorder_->SetGauge("dsl_prune_fraction", p);
        op.kind = ps::TableOp::Kind::kCollectGrowth;
        op.value = 0;
        EMBER_RETURN_IF_ERROR(ps_->Apply(op).status());
      }
      if (start_collect) {
        op.kind = ps::TableOp::Kind::kCollectGrowth;
        op.value = 1;
        EMBER_RETURN_IF_ERROR(ps_->Apply(op).status());
      }
    }
  }
  if (due && collective_->size() > 1) EMBER_RETURN_IF_ERROR(collective_->Barrier());
  return Status::Ok();
}

}  // namespace ember::workers
