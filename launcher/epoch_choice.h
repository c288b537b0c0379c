// The training job's choice of epoch on data.valid (docs/quality.md): every epoch scored by the
// lead, the best one's checkpoint written (checkpoint.dir/best, or for one worker without a
// checkpoint directory a scratch directory of the job, removed with this object),
// train.patience's early stop agreed by all workers, and the best restored at the end where a
// later epoch was worse. The choice so far travels in checkpoints (Trainer::run_state), so a
// resumed run continues it.
#pragma once

#include <ostream>
#include <string>

#include "ember/launcher/commands.h"
#include "ember/workers/collective.h"
#include "ember/workers/trainer.h"

namespace ember::launcher {

class EpochChoice {
 public:
  EpochChoice(const RunConfig& c, workers::Collective* collective, std::ostream& log);
  ~EpochChoice();
  EpochChoice(const EpochChoice&) = delete;
  EpochChoice& operator=(const EpochChoice&) = delete;

  // Continues the choice a restored checkpoint recorded.
  void Resume(const workers::Trainer& trainer);
  // After epoch e (from 0), on every worker: the lead scores it; *stop when patience ran out.
  Status Validate(workers::Trainer* trainer, int e, bool* stop);
  // At the end: the best epoch into *m, and its model restored where a later epoch was worse.
  Status KeepBest(workers::Trainer* trainer, RunMetrics* m);

 private:
  std::string BestRoot();

  const RunConfig& c_;
  workers::Collective* coll_;
  const bool lead_;
  std::ostream& log_;
  double best_auc_ = -1, best_logloss_ = -1;
  int best_epoch_ = 0, since_best_ = 0, last_epoch_ = 0;
  std::string best_path_;
  std::string scratch_;  // BestRoot() without checkpoint.dir
};

}  // namespace ember::launcher
