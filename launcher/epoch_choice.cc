// The training job's choice of epoch on data.valid (epoch_choice.h).
#include "epoch_choice.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "ember/common/env.h"
#include "ember/common/file.h"

namespace ember::launcher {
namespace {
// The lead's `data` on every worker (the others' contribute zeros to the sum).
Status ShareFromLead(workers::Collective* collective, float* data, size_t n) {
  if (collective->rank() != 0) std::fill(data, data + n, 0.0f);
  return collective->AllReduceSum(data, n);
}
}  // namespace

EpochChoice::EpochChoice(const RunConfig& c, workers::Collective* collective, std::ostream& log)
    : c_(c), coll_(collective), lead_(collective->rank() == 0), log_(log) {}

EpochChoice::~EpochChoice() {
  if (!scratch_.empty()) (void)PosixEnv()->RemoveAll(scratch_);
}

Status EpochChoice::Validate(workers::Trainer* trainer, int e, bool* stop) {
  EMBER_RETURN_IF_ERROR(coll_->Barrier());  // every worker's pushes of the epoch are in
  last_epoch_ = e + 1;
  float flags[2] = {0, 0};  // stop, failed
  if (lead_) {
    Status st = [&]() -> Status {
      EMBER_ASSIGN_OR_RETURN(auto reader, OpenReader(c_, c_.valid, false));
      EMBER_ASSIGN_OR_RETURN(auto v, trainer->Evaluate(reader.get()));
      char buf[160];
      std::snprintf(buf, sizeof(buf), "epoch %d: validation AUC %.5f, logloss %.5f", e + 1, v.auc, v.logloss);
      log_ << buf;
      if (v.auc > best_auc_) {
        best_auc_ = v.auc;
        best_logloss_ = v.logloss;
        best_epoch_ = e + 1;
        since_best_ = 0;
        const std::string root = BestRoot();
        if (!root.empty()) {
          trainer->set_position({e + 1, 0, {}});
          EMBER_RETURN_IF_ERROR(MakeDirs(root));
          EMBER_ASSIGN_OR_RETURN(best_path_, trainer->SaveCheckpoint(root, c_.text, "best"));
          log_ << " (best so far" << (c_.checkpoint_dir.empty() ? "" : ": " + best_path_) << ")";
        } else {
          log_ << " (best so far; set checkpoint.dir to keep it)";
        }
      } else {
        ++since_best_;
      }
      log_ << std::endl;
      trainer->set_run_state({{"best_epoch", best_epoch_},
                              {"best_valid_auc", best_auc_},
                              {"best_valid_logloss", best_logloss_},
                              {"since_best", since_best_}});
      return Status::Ok();
    }();
    flags[1] = st.ok() ? 0.0f : 1.0f;
    flags[0] = c_.patience > 0 && since_best_ >= c_.patience ? 1.0f : 0.0f;
    EMBER_RETURN_IF_ERROR(coll_->AllReduceSum(flags, 2));
    EMBER_RETURN_IF_ERROR(st);
  } else {
    EMBER_RETURN_IF_ERROR(coll_->AllReduceSum(flags, 2));
    if (flags[1] > 0)
      return Status::FailedPrecondition("validating epoch " + std::to_string(e + 1) + " failed on the lead worker");
  }
  *stop = flags[0] > 0;
  if (*stop) log_ << "no validation gain for " << c_.patience << " epochs: stopping" << std::endl;
  return Status::Ok();
}

// The best epoch so far, and its checkpoint.dir/best where that is still there.
void EpochChoice::Resume(const workers::Trainer& trainer) {
  const auto& run = trainer.run_state();
  if (!run.is_object() || !run.contains("best_epoch")) return;
  best_epoch_ = run.value("best_epoch", 0);
  best_auc_ = run.value("best_valid_auc", -1.0);
  best_logloss_ = run.value("best_valid_logloss", -1.0);
  since_best_ = run.value("since_best", 0);
  const std::string best = c_.checkpoint_dir + "/best";
  std::error_code ec;
  if (!c_.checkpoint_dir.empty() && std::filesystem::exists(best + "/manifest.json", ec)) best_path_ = best;
}

// Restored on every worker; the lead reloads the rows.
Status EpochChoice::KeepBest(workers::Trainer* trainer, RunMetrics* m) {
  m->best_epoch = best_epoch_;
  m->valid_auc = best_auc_;
  m->valid_logloss = best_logloss_;
  float restore = lead_ && !best_path_.empty() && best_epoch_ < last_epoch_ ? 1.0f : 0.0f;
  EMBER_RETURN_IF_ERROR(ShareFromLead(coll_, &restore, 1));
  if (restore == 0) return Status::Ok();
  std::string path = BestRoot() + "/best";
  EMBER_RETURN_IF_ERROR(trainer->RestoreCheckpoint(path, /*load_shards=*/lead_));
  EMBER_RETURN_IF_ERROR(coll_->Barrier());
  log_ << "kept epoch " << best_epoch_ << " (the best validation AUC" << (c_.checkpoint_dir.empty() ? "" : ", " + path)
       << ")" << std::endl;
  return Status::Ok();
}

// Where the best epoch's checkpoint goes: checkpoint.dir, or (one worker without one) a scratch
// directory of this job. Several workers without checkpoint.dir share no such place: the run then
// ends with its last epoch.
std::string EpochChoice::BestRoot() {
  if (!c_.checkpoint_dir.empty()) return c_.checkpoint_dir;
  if (coll_->size() > 1) return "";
  if (scratch_.empty()) {
    std::error_code ec;
    const auto tmp = std::filesystem::temp_directory_path(ec);
    if (ec) return "";
    scratch_ = (tmp / ("ember-best-" + std::to_string(::getpid()) + "-" +
                       std::to_string(std::chrono::steady_clock::now().time_since_epoch().count())))
                   .string();
  }
  return scratch_;
}

}  // namespace ember::launcher
