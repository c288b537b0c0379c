// OptEmbed on the trainer (docs/compression.md): the supernet's learned thresholds, the
// evolutionary search over per-field widths under the budget (stage 2), and the retraining
// trainer's adoption of the kept rows (stage 3).
#include <algorithm>
#include <cmath>
#include <map>
#include <random>

#include "checkpoint_dir.h"
#include "ember/common/metrics.h"
#include "trainer_internal.h"

namespace ember::workers {

std::vector<float> Trainer::thresholds() const {
  if (!thresholds_.defined()) return {};
  auto t = thresholds_.detach().contiguous();
  return std::vector<float>(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
}

Status Trainer::AdoptOptEmbedRows(const Trainer& supernet, const std::vector<float>& t, bool reinit) {
  if (supernet.groups_.empty() || !supernet.groups_[0]->optembed_supernet)
    return Status::InvalidArgument("optembed: the source trainer is not a supernet");
  if (t.size() != config_.fields.size())
    return Status::InvalidArgument("optembed: " + std::to_string(t.size()) + " thresholds for " +
                                   std::to_string(config_.fields.size()) + " fields");
  if (groups_.empty() || config_.embedding.field_widths.empty())
    return Status::InvalidArgument("optembed: this trainer is not a retraining stage");
  const Group& src = *supernet.groups_[0];
  const Group& dst = *groups_[0];
  for (size_t f = 0; f < t.size(); ++f) {
    ps::TableOp op;
    op.kind = ps::TableOp::Kind::kCopyRows;
    op.table = src.first_table + static_cast<uint32_t>(f);
    op.dst_table = dst.first_table + static_cast<uint32_t>(f);
    op.value = t[f];
    op.reinit = reinit;
    EMBER_RETURN_IF_ERROR(ps_->Apply(op).status());
    op.kind = ps::TableOp::Kind::kDropTable;
    EMBER_RETURN_IF_ERROR(ps_->Apply(op).status());
  }
  // The supernet's other groups (first-order weights) are not carried over: this trainer has its
  // own, fresh like its dense model.
  for (size_t gi = 1; gi < supernet.groups_.size(); ++gi)
    for (size_t i = 0; i < supernet.groups_[gi]->num_tables; ++i) {
      ps::TableOp op;
      op.kind = ps::TableOp::Kind::kDropTable;
      op.table = supernet.groups_[gi]->first_table + static_cast<uint32_t>(i);
      EMBER_RETURN_IF_ERROR(ps_->Apply(op).status());
    }
  return Status::Ok();
}

Result<OptEmbedArch> Trainer::SearchOptEmbed(data::BatchReader* validation, uint64_t budget_bytes) {
  if (!thresholds_.defined() || groups_.empty() || !groups_[0]->optembed_supernet)
    return Status::InvalidArgument("optembed search needs a supernet (embedding.method = \"optembed\")");
  const OptEmbedConfig& oc = config_.optembed;
  const Group& g = *groups_[0];
  const int F = static_cast<int>(config_.fields.size()), D = g.dim;
  const auto t = thresholds();
  OptEmbedArch arch;
  // Threshold shifts the search may add (L1 units, every field alike) and, per shift, the rows
  // each field keeps, counted where the rows live.
  const std::vector<double> shifts = {0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 8};
  const int S = static_cast<int>(shifts.size());
  std::vector<std::vector<uint64_t>> kept(static_cast<size_t>(S), std::vector<uint64_t>(static_cast<size_t>(F)));
  for (int k = 0; k < S; ++k) {
    for (int f = 0; f < F; ++f) {
      ps::TableOp op;
      op.kind = ps::TableOp::Kind::kCountAbove;
      op.table = g.first_table + static_cast<uint32_t>(f);
      op.value = t[static_cast<size_t>(f)] + shifts[static_cast<size_t>(k)];
      EMBER_ASSIGN_OR_RETURN(auto r, ps_->Apply(op));
      kept[k][f] = r.rows;
    }
  }
  EMBER_ASSIGN_OR_RETURN(auto stats, ps_->Stats());
  for (int f = 0; f < F; ++f) {
    uint64_t rows = 0;
    for (const auto& st : stats)
      if (st.table == g.first_table + static_cast<uint32_t>(f)) rows = st.rows;
    arch.total_rows.push_back(rows);
  }
  struct Cand {
    int shift = 0;
    std::vector<int> w;
    bool operator<(const Cand& o) const { return shift != o.shift ? shift < o.shift : w < o.w; }
  };
  auto bytes_of = [&](const Cand& c) {
    uint64_t b = 0;
    for (int f = 0; f < F; ++f) b += kept[c.shift][f] * static_cast<uint64_t>(c.w[f]) * sizeof(float);
    return b;
  };
  Cand narrowest{S - 1, std::vector<int>(static_cast<size_t>(F), 1)};
  if (budget_bytes && bytes_of(narrowest) > budget_bytes)
    return Status::InvalidArgument("embedding.budget: " + std::to_string(budget_bytes) +
                                   " bytes cannot be met by optembed: even pruning every row with L1 below its "
                                   "threshold + " +
                                   std::to_string(shifts.back()) + " leaves " +
                                   std::to_string(bytes_of(narrowest) / sizeof(float)) + " rows at width 1");
  // The validation examples' unmasked embeddings and row L1 norms, pulled once, held in chunks
  // of 2048 examples so that scoring keeps the model's temporaries small.
  struct Held {
    torch::Tensor dense, values, l1;
    std::vector<torch::Tensor> others;
    std::vector<float> labels;
  };
  std::vector<Held> held;
  uint64_t taken = 0;
  model_->eval();
  {
    torch::NoGradGuard no_grad;
    data::Batch batch;
    while (taken < oc.search_samples) {
      EMBER_ASSIGN_OR_RETURN(bool got, validation->Next(&batch));
      if (!got) break;
      std::vector<models::GroupInput> inputs;
      // Unmasked rows: each candidate applies its own thresholds.
      EMBER_RETURN_IF_ERROR(Lookup(batch, /*training=*/false, &inputs, /*mask_rows=*/false));
      const int64_t B = static_cast<int64_t>(batch.size);
      auto dense = torch::from_blob(batch.dense.data(), {B, batch.num_dense}, torch::kFloat);
      for (int64_t b = 0; b < B; b += 2048) {
        const int64_t n = std::min<int64_t>(2048, B - b);
        Held h;
        h.dense = dense.narrow(0, b, n).clone();
        h.values = inputs[0].values.narrow(0, b, n).clone();
        h.l1 = h.values.view({n, F, D}).abs().sum(-1);
        for (size_t i = 1; i < inputs.size(); ++i) h.others.push_back(inputs[i].values.narrow(0, b, n).clone());
        h.labels.assign(batch.labels.begin() + b, batch.labels.begin() + b + n);
        held.push_back(std::move(h));
      }
      taken += batch.size;
    }
  }
  if (taken == 0) return Status::InvalidArgument("optembed search: the validation data has no examples");
  auto base = torch::from_blob(const_cast<float*>(t.data()), {1, F}, torch::kFloat).clone();
  std::map<Cand, double> cache;
  auto fitness = [&](const Cand& c) -> Result<double> {
    auto it = cache.find(c);
    if (it != cache.end()) return it->second;
    std::vector<float> p_all, y_all;
    auto prefix = torch::zeros({1, F, D}, torch::kFloat);
    for (int f = 0; f < F; ++f) prefix[0][f].narrow(0, 0, c.w[f]).fill_(1.0f);
    auto thr = base + shifts[static_cast<size_t>(c.shift)];
    Status st = TorchCall("optembed search", [&] {
      torch::NoGradGuard no_grad;
      for (const auto& h : held) {
        const int64_t n = h.values.size(0);
        auto keep = (h.l1 > thr).to(torch::kFloat).unsqueeze(-1);  // n x F x 1
        std::vector<models::GroupInput> in(1 + h.others.size());
        in[0].values = (h.values.view({n, F, D}) * keep * prefix).view({n, F * D});
        in[0].widths = groups_[0]->widths;
        for (size_t i = 0; i < h.others.size(); ++i) {
          in[i + 1].values = h.others[i];
          in[i + 1].widths = groups_[i + 1]->widths;
        }
        auto p = torch::sigmoid(model_->Forward(h.dense, in)).contiguous();
        p_all.insert(p_all.end(), p.data_ptr<float>(), p.data_ptr<float>() + p.numel());
        y_all.insert(y_all.end(), h.labels.begin(), h.labels.end());
      }
    });
    EMBER_RETURN_IF_ERROR(st);
    const double auc = ExactAuc(p_all, y_all);
    cache[c] = auc;
    ++arch.evaluated;
    return auc;
  };
  std::mt19937_64 rng(oc.seed);
  std::uniform_int_distribution<int> width_dist(1, D);
  std::bernoulli_distribution coin(0.5);
  // Repair: until within budget, prune more (a larger shift) or narrow a field chosen in
  // proportion to the bytes it holds.
  auto repair = [&](Cand* c) {
    while (budget_bytes && bytes_of(*c) > budget_bytes) {
      bool can_narrow = false;
      for (int x : c->w) can_narrow |= x > 1;
      if (c->shift + 1 < S && (!can_narrow || coin(rng))) {
        ++c->shift;
        continue;
      }
      std::vector<double> weight(static_cast<size_t>(F));
      for (int f = 0; f < F; ++f) weight[f] = c->w[f] > 1 ? static_cast<double>(kept[c->shift][f]) * c->w[f] : 0.0;
      std::discrete_distribution<int> pick(weight.begin(), weight.end());
      --c->w[pick(rng)];
    }
  };
  std::vector<Cand> population;
  population.push_back(Cand{0, std::vector<int>(static_cast<size_t>(F), D)});
  repair(&population.back());
  std::uniform_int_distribution<int> shift_dist(0, S - 1);
  while (static_cast<int>(population.size()) < oc.population) {
    Cand c{budget_bytes ? shift_dist(rng) / 2 : 0, std::vector<int>(static_cast<size_t>(F))};
    for (auto& x : c.w) x = width_dist(rng);
    repair(&c);
    population.push_back(std::move(c));
  }
  Cand best;
  double best_auc = -1;
  const int rounds = std::max(1, oc.rounds);
  for (int round = 0; round < rounds; ++round) {
    std::vector<std::pair<double, Cand>> scored;
    for (const auto& c : population) {
      EMBER_ASSIGN_OR_RETURN(double auc, fitness(c));
      scored.emplace_back(auc, c);
    }
    std::stable_sort(scored.begin(), scored.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    if (scored.front().first > best_auc) {
      best_auc = scored.front().first;
      best = scored.front().second;  // a copy: later mutation cannot touch it
    }
    const size_t top = std::min(scored.size(), static_cast<size_t>(std::max(oc.keep, 2)));
    std::vector<Cand> next;
    for (size_t i = 0; i < std::min(scored.size(), static_cast<size_t>(oc.keep)); ++i) next.push_back(scored[i].second);
    std::bernoulli_distribution mutate(oc.mutate_prob);
    for (int m = 0; m < oc.mutants; ++m) {
      Cand c = scored[static_cast<size_t>(m) % top].second;  // a copy of a parent
      for (auto& x : c.w)
        if (mutate(rng)) x = width_dist(rng);
      if (mutate(rng)) c.shift = std::max(0, std::min(S - 1, c.shift + (coin(rng) ? 1 : -1)));
      repair(&c);
      next.push_back(std::move(c));
    }
    std::uniform_int_distribution<size_t> parent(0, top - 1);
    std::uniform_int_distribution<int> cut_dist(1, std::max(1, F - 1));
    for (int k = 0; k < oc.children && top >= 2; ++k) {
      size_t a = parent(rng), b = parent(rng);
      while (b == a) b = parent(rng);
      const int cut = cut_dist(rng);
      Cand c{scored[a].second.shift, std::vector<int>(scored[a].second.w.begin(), scored[a].second.w.begin() + cut)};
      c.w.insert(c.w.end(), scored[b].second.w.begin() + cut, scored[b].second.w.end());
      repair(&c);
      next.push_back(std::move(c));
    }
    population = std::move(next);
    std::fprintf(stderr,
                 "optembed search round %d/%d: best val AUC %.5f, %llu bytes, threshold shift %.2f, %d candidates "
                 "scored\n",
                 round + 1, rounds, best_auc, static_cast<unsigned long long>(bytes_of(best)),
                 shifts[static_cast<size_t>(best.shift)], arch.evaluated);
  }
  model_->train();
  arch.widths = best.w;
  arch.shift = shifts[static_cast<size_t>(best.shift)];
  for (int f = 0; f < F; ++f) arch.thresholds.push_back(t[f] + static_cast<float>(arch.shift));
  arch.kept_rows = kept[best.shift];
  arch.bytes = bytes_of(best);
  arch.val_auc = best_auc;
  for (int f = 0; f < F; ++f) {
    const monitoring::Labels field = {{"field", config_.fields[static_cast<size_t>(f)].name}};
    recorder_->SetGauge("optembed_kept_rows", static_cast<double>(arch.kept_rows[f]), field);
    recorder_->SetGauge("optembed_pruned_rows", static_cast<double>(arch.total_rows[f] - arch.kept_rows[f]), field);
    recorder_->SetGauge("optembed_width", arch.widths[f], field);
  }
  recorder_->SetGauge("optembed_search_val_auc", best_auc);
  return arch;
}

}  // namespace ember::workers
