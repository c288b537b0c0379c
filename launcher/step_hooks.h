// Internal to launcher/: what a training job does after each step besides training — periodic
// checkpoints (checkpoint.every_steps), periodic exports while training (export.dir, every
// export.every_steps or export.every_seconds, the newest export.keep kept) and a graceful stop on
// SIGTERM or SIGINT: every worker finishes the same step (they agree on it each step), the
// trainer's data position is that step's, and the job checkpoints there and exits 0. While the
// lead writes a checkpoint or an export the other workers wait, so the files hold that step.
#pragma once

#include <chrono>
#include <string>

#include "ember/launcher/config.h"
#include "ember/ps/client.h"
#include "ember/workers/collective.h"
#include "ember/workers/trainer.h"

namespace ember::launcher {

// SIGTERM and SIGINT set a flag instead of killing the process (idempotent). The second signal
// of either kills it as before.
void InstallStopSignals();
bool StopRequested();
void RequestStopForTest(bool on);      // as if a signal came (or clear it)
void StopAtStepForTest(int64_t step);  // as if a signal came during this step (0 = never)

struct StepHookState {
  bool stopped = false;  // a stop was agreed and taken
  std::chrono::steady_clock::time_point last_export = std::chrono::steady_clock::now();
  int64_t last_export_step = -1;
  std::string last_export_path;
  int64_t deltas_since_full = 0;  // export.delta: deltas written since the last full export
};

// The callback for one epoch: `skipped` examples the epoch's reader passed over (a resumed epoch),
// `workers` read a batch each per step; `lead` writes checkpoints and exports.
workers::StepCallback MakeStepHooks(workers::Trainer* trainer, ps::PsClient* ps, workers::Collective* collective,
                                    const RunConfig& c, int epoch, uint64_t skipped, bool lead, StepHookState* state);

// Writes `export.dir/model-<step>.embx` from the live trainer and PS (atomically): with
// export.delta a delta against the export before (state->last_export_path) until
// export.full_every deltas were written or the tables changed, else a full export. Then removes
// all but the newest export.keep and the exports they are deltas of; returns the path.
Result<std::string> ExportWhileTraining(workers::Trainer* trainer, ps::PsClient* ps, const RunConfig& c,
                                        StepHookState* state);
// Adds every PS table to `writer`. Remote servers write their shards into a scratch directory
// under `dir` (checkpoint.dir, the one directory they write to), read back and removed.
Status AddPsTables(ps::PsClient* ps, embedding::ExportWriter* writer, const std::string& dir, int64_t step);

}  // namespace ember::launcher
