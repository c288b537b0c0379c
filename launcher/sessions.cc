// `ember train` for session models (m2trec, sasrec): data protocol, training with validation-
// selected epoch, Recall@20 / MRR@20 overall, cold and rare. docs/sessions.md.
#include <algorithm>
#include <numeric>
#include <ostream>
#include <random>

#include "ember/common/progress.h"
#include "ember/common/sysinfo.h"
#include "ember/launcher/commands.h"
#include "ember/ps/in_process.h"
#include "ember/workers/session_trainer.h"

namespace ember::launcher {
namespace {

std::string Pct(double x) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f", 100 * x);
  return buf;
}

// "Recall@20 R, MRR@20 M over N examples; cold R / M (N); rare R / M (N)".
std::string RankSummary(const RunMetrics& m) {
  return "Recall@20 " + Pct(m.recall_at_20) + ", MRR@20 " + Pct(m.mrr_at_20) + " over " +
         std::to_string(m.test_examples) + " examples; cold " + Pct(m.cold_recall_at_20) + " / " +
         Pct(m.cold_mrr_at_20) + " (" + std::to_string(m.cold_examples) + "); rare " + Pct(m.rare_recall_at_20) +
         " / " + Pct(m.rare_mrr_at_20) + " (" + std::to_string(m.rare_examples) + ")";
}

constexpr uint64_t kFullSoftmaxItems = 50000, kSampledCandidates = 8192;

Result<workers::SessionTrainerConfig> MakeSessionTrainerConfig(const RunConfig& c, const data::SessionData& d) {
  EMBER_ASSIGN_OR_RETURN(auto tc, MakeTrainerConfig(c));
  if (tc.device == workers::DeviceKind::kCuda)
    return Status::InvalidArgument("train.device = \"cuda\": session models train on the CPU only");
  workers::SessionTrainerConfig sc;
  sc.embedding = tc.embedding;
  sc.model = c.session_model;
  sc.model.kind = c.model();
  if (c.category_heads_set) {
    sc.heads = c.category_heads;
  } else if (c.model() == models::ModelKind::kM2Trec) {  // the multi-task head of M2TRec: the item's category
    const auto& names = d.items.attribute_names;
    if (std::find(names.begin(), names.end(), "category") != names.end())
      sc.heads = {"category"};
    else if (std::find(names.begin(), names.end(), "categoryId") != names.end())
      sc.heads = {"categoryId"};
  }
  if (!c.head_weights.empty() && c.head_weights.size() != sc.heads.size())
    return Status::InvalidArgument("model.head_weights: " + std::to_string(c.head_weights.size()) + " weights for " +
                                   std::to_string(sc.heads.size()) + " category heads");
  sc.head_weights = c.head_weights;
  sc.dense_optimizer = tc.dense_optimizer;
  sc.dense_lr = tc.dense_lr;
  sc.batch_size = c.batch_size;
  // The full softmax scores (and, for the ID model, pulls and pushes) every item each step:
  // past 50k items the default turns to 8192 sampled candidates.
  sc.candidates = c.candidates == 0 && d.num_items() > kFullSoftmaxItems ? kSampledCandidates : c.candidates;
  sc.seed = tc.seed;
  sc.sync = tc.sync;
  // Evaluation scores the whole catalogue per example: [batch, items] floats, held to 256 MiB.
  const uint64_t cap = std::max<uint64_t>(1, (uint64_t{256} << 20) / (4 * std::max<uint64_t>(1, d.num_items())));
  sc.eval_batch_size = std::min<uint64_t>(c.eval_batch_size, cap);
  sc.rare_max_count = c.sessions.rare_max_count;
  return sc;
}

void Fill(const workers::SessionEval& ev, RunMetrics* m) {
  m->recall_at_20 = ev.all.recall;
  m->mrr_at_20 = ev.all.mrr;
  m->cold_recall_at_20 = ev.cold.recall;
  m->cold_mrr_at_20 = ev.cold.mrr;
  m->rare_recall_at_20 = ev.rare.recall;
  m->rare_mrr_at_20 = ev.rare.mrr;
  m->test_examples = ev.all.n;
  m->cold_examples = ev.cold.n;
  m->rare_examples = ev.rare.n;
}

}  // namespace

bool IsSessionModel(const RunConfig& c) { return models::IsSessionModel(c.model()); }

Status CheckSessionConfig(const RunConfig& c) {
  const bool session_data = c.format == "diginetica" || c.format == "yoochoose";
  if (IsSessionModel(c) && !session_data)
    return Status::InvalidArgument(std::string("model.name = \"") + models::ModelKindName(c.model()) +
                                   "\" needs session data: data.format = \"diginetica\" or \"yoochoose\"");
  if (!IsSessionModel(c) && session_data)
    return Status::InvalidArgument("data.format = \"" + c.format +
                                   "\" is session data: model.name = \"m2trec\" or \"sasrec\"");
  if (IsSessionModel(c) && c.resume && c.checkpoint_dir.empty())
    return Status::InvalidArgument("--resume needs checkpoint.dir");
  return Status::Ok();
}

Result<data::SessionData> LoadSessionData(const RunConfig& c, std::ostream& log) {
  data::SessionProtocol p = c.sessions;
  p.format = c.format;
  EMBER_ASSIGN_OR_RETURN(auto d, data::LoadSessions(c.train, c.test, c.items, p));
  uint64_t rare_items = 0;
  for (uint32_t i = 1; i <= d.num_train_items; ++i)
    rare_items += d.train_count[i] <= static_cast<uint32_t>(p.rare_max_count);
  log << "sessions: " << d.clicks << " clicks; " << d.train_sessions.size() << " train / " << d.test_sessions.size()
      << " test sessions (" << d.dropped_short << " too short, " << d.boundary_sessions
      << " on the boundary day dropped); " << d.num_items() << " items (" << d.num_items() - d.num_train_items
      << " cold, " << rare_items << " rare, " << d.dropped_rare_items << " seen < " << p.min_item_count
      << " times dropped); " << d.train.size() << " train / " << d.test.size() << " test examples (" << d.cold_examples
      << " with a cold target)";
  for (size_t a = 0; a < d.items.attribute_names.size(); ++a)
    log << (a ? ", " : "; attributes ") << d.items.attribute_names[a] << " (" << d.items.cardinality[a] - 1 << ")";
  log << "\n";
  return d;
}

Status RunSessionWorker(const RunConfig& c, const data::SessionData& d, ps::PsClient* ps,
                        workers::Collective* collective, monitoring::Recorder* recorder, std::ostream& log,
                        RunMetrics* m) {
  EMBER_ASSIGN_OR_RETURN(auto sc, MakeSessionTrainerConfig(c, d));
  EMBER_ASSIGN_OR_RETURN(auto trainer, workers::SessionTrainer::Create(sc, &d, ps, collective, recorder));
  const bool lead = collective->rank() == 0;
  m->session = true;
  m->method = embedding::MethodName(sc.embedding.method);
  // The validation split: a seeded random share of the training examples (the same on every worker).
  std::vector<data::SessionExample> train = d.train, valid;
  if (c.valid_fraction > 0) {
    std::mt19937_64 rng(c.trainer.seed ^ 0x5eed5eedULL);
    std::shuffle(train.begin(), train.end(), rng);
    const size_t nv = static_cast<size_t>(static_cast<double>(train.size()) * c.valid_fraction);
    valid.assign(train.end() - static_cast<long>(nv), train.end());
    train.resize(train.size() - nv);
  }
  if (train.empty()) return Status::InvalidArgument("no training example is left after the validation split");
  log << models::ModelKindName(c.model()) << ": item width " << trainer->model()->config().item_dim << ", "
      << trainer->method().tables().size() << " PS tables (" << embedding::MethodName(sc.embedding.method) << "), "
      << (sc.candidates ? std::to_string(sc.candidates) + " sampled candidates" : std::string("full softmax")) << ", "
      << train.size() << " train / " << valid.size() << " validation examples\n";
  workers::ProgressOptions progress = Progress(c);
  progress.enabled = progress.enabled && lead;
  // The run's state: where training stands and what validation chose, kept in every checkpoint.
  workers::SessionRunState state;
  if (c.resume) {
    auto path = workers::ResolveCheckpoint(c.checkpoint_dir);
    if (!path.ok()) return path.status().WithContext("--resume");
    // The first worker loads the rows onto the servers; every worker restores the dense model.
    EMBER_ASSIGN_OR_RETURN(state, trainer->RestoreCheckpoint(*path, /*load_shards=*/lead));
    if (state.items != d.num_items())
      return Status::FailedPrecondition("--resume: " + *path + " was trained on " + std::to_string(state.items) +
                                        " items; the data now gives " + std::to_string(d.num_items()) +
                                        " (the data files or the data.* protocol keys changed)");
    EMBER_RETURN_IF_ERROR(collective->Barrier());
    log << "resumed from " << *path << " at step " << trainer->step() << " (epoch " << state.position.epoch + 1 << ", "
        << state.position.examples << " examples in; best epoch so far " << state.best_epoch << ")\n";
  }
  const bool checkpoints = !c.checkpoint_dir.empty();
  auto save = [&](const std::string& name) -> Result<std::string> {
    return WriteCheckpoint(c,
                           [&](const std::string& root) { return trainer->SaveCheckpoint(root, c.text, state, name); });
  };
  // Examples of an epoch's shuffled order that one step takes (all workers together).
  const uint64_t per_step = c.batch_size * static_cast<uint64_t>(collective->size());
  for (int e = static_cast<int>(state.position.epoch); e < c.epochs; ++e) {
    const uint64_t first_step = e == state.position.epoch ? state.position.examples / per_step : 0;
    workers::SessionStepCallback on_step;
    if (checkpoints && c.checkpoint_every_steps > 0)
      on_step = [&, e](uint64_t steps_done) -> Status {
        if (trainer->step() % c.checkpoint_every_steps != 0) return Status::Ok();
        state.position = {e, steps_done * per_step, {}};
        return lead ? save("").status() : Status::Ok();
      };
    EMBER_ASSIGN_OR_RETURN(auto stats, trainer->TrainEpoch(train, e, c.epochs, progress, first_step, on_step));
    m->train_samples += stats.samples;
    m->train_seconds += stats.seconds;
    state.position = {e + 1, 0, {}};
    // The first worker evaluates; the others wait at the all-reduce that shares whether to stop.
    float stop = 0;
    if (lead) {
      double val_recall = 0;
      if (!valid.empty()) {
        EMBER_ASSIGN_OR_RETURN(auto v, trainer->Evaluate(d.train_sessions, valid));
        val_recall = v.all.recall;
      }
      const bool better = valid.empty() || val_recall > state.best_valid;
      log << "epoch " << e + 1 << ": loss " << stats.mean_loss << ", "
          << static_cast<uint64_t>(stats.seconds > 0 ? static_cast<double>(stats.samples) / stats.seconds : 0)
          << " examples/s" << (valid.empty() ? "" : ", validation Recall@20 " + Pct(val_recall));
      if (better) {
        state.best_valid = val_recall;
        state.since_best = 0;
        state.best_epoch = e + 1;
        if (!d.test.empty()) {
          EMBER_ASSIGN_OR_RETURN(state.best_test, trainer->Evaluate(d.test_sessions, d.test));
          log << "; test Recall@20 " << Pct(state.best_test.all.recall) << ", MRR@20 " << Pct(state.best_test.all.mrr);
        }
      } else {
        ++state.since_best;
      }
      log << "\n";
      if (checkpoints) {
        EMBER_ASSIGN_OR_RETURN(m->checkpoint, save(""));
        log << "checkpoint written to " << m->checkpoint;
        // The validation-chosen model, beside the newest (ember eval <checkpoint.dir>/best).
        if (better) {
          EMBER_ASSIGN_OR_RETURN(auto best, save("best"));
          log << " and " << best;
        }
        log << "\n";
      }
      stop = c.patience > 0 && state.since_best >= c.patience ? 1.0f : 0.0f;
    }
    EMBER_RETURN_IF_ERROR(collective->AllReduceSum(&stop, 1));
    if (stop > 0) {
      log << "no validation gain for " << c.patience << " epochs: stopping\n";
      break;
    }
  }
  m->best_epoch = state.best_epoch;
  m->valid_recall_at_20 = state.best_valid < 0 ? 0 : state.best_valid;
  if (lead) {
    Fill(state.best_test, m);
    EMBER_RETURN_IF_ERROR(RecordTables(ps, m));
    log << "test (epoch " << m->best_epoch << ", chosen on validation): " << RankSummary(*m) << "\n";
    log << "tables hold " << m->table_rows << " rows, " << m->param_bytes << " parameter bytes\n";
  }
  return Status::Ok();
}

Result<RunMetrics> RunSessionEval(const std::string& path, RunConfig c, const std::string& test_path, int threads,
                                  std::ostream& out) {
  ConfigureThreads(threads > 0 ? threads : c.threads);
  // The training log defines the catalogue (item numbering, cold and rare items); --data replaces
  // the test sessions.
  if (!test_path.empty()) c.test = test_path;
  EMBER_ASSIGN_OR_RETURN(auto d, LoadSessionData(c, out));
  if (d.test.empty()) return Status::InvalidArgument("no test examples in the data of " + path);
  EMBER_ASSIGN_OR_RETURN(auto sc, MakeSessionTrainerConfig(c, d));
  ps::InProcessClient ps(c.shards);
  workers::LocalCollective collective;
  EMBER_ASSIGN_OR_RETURN(auto trainer, workers::SessionTrainer::Create(sc, &d, &ps, &collective, nullptr));
  EMBER_ASSIGN_OR_RETURN(auto state, trainer->RestoreCheckpoint(path, /*load_shards=*/true));
  EMBER_ASSIGN_OR_RETURN(auto ev, trainer->Evaluate(d.test_sessions, d.test));
  RunMetrics m;
  m.session = true;
  m.method = embedding::MethodName(sc.embedding.method);
  Fill(ev, &m);
  m.best_epoch = state.best_epoch;
  m.eval_samples = ev.all.n;
  m.samples_per_sec = ev.seconds > 0 ? static_cast<double>(ev.all.n) / ev.seconds : 0;
  m.peak_rss_bytes = PeakRssBytes();
  out << path << " (" << models::ModelKindName(c.model()) << ", step " << trainer->step() << ", epoch "
      << state.position.epoch << " trained) on " << (c.test.empty() ? c.train + " (time split)" : c.test) << ": "
      << RankSummary(m) << "\n";
  return m;
}

}  // namespace ember::launcher
