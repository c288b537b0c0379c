#include "step_hooks.h"

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <set>

#include "ember/common/file.h"
#include "ember/embedding/export.h"
#include "ember/launcher/commands.h"
#include "ember/ps/in_process.h"
#include "ember/ps/remote_client.h"
#include "ember/serving/model_dir.h"

namespace ember::launcher {
namespace {
std::atomic<bool> g_stop{false};
std::atomic<int64_t> g_stop_at{0};

void OnStopSignal(int sig) {
  if (g_stop.exchange(true)) {  // the second signal: as without the handler
    ::signal(sig, SIG_DFL);
    ::raise(sig);
  }
}
}  // namespace

void InstallStopSignals() {
  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
}

bool StopRequested() { return g_stop.load(); }
void RequestStopForTest(bool on) { g_stop.store(on); }
void StopAtStepForTest(int64_t step) { g_stop_at.store(step); }

Status AddPsTables(ps::PsClient* ps, embedding::ExportWriter* writer, const std::string& dir, int64_t step) {
  if (!dynamic_cast<ps::RemoteClient*>(ps)) return ps->ExportTables(writer);
  if (dir.empty())
    return Status::InvalidArgument(
        "export.dir with PS servers needs checkpoint.dir: the servers write their rows there for the export");
  const std::string scratch = dir + "/.export-" + std::to_string(step) + ".tmp";
  EMBER_RETURN_IF_ERROR(MakeDirs(scratch));
  auto files = ps->SaveShards(scratch);
  Status st = files.status();
  if (st.ok()) {
    std::vector<std::unique_ptr<embedding::Table>> tables;
    st = ps::ReadShardFiles(scratch, *files, &tables);
    for (size_t i = 0; st.ok() && i < tables.size(); ++i) st = writer->AddTable(*tables[i]);
  }
  std::error_code ec;
  std::filesystem::remove_all(scratch, ec);
  return st.WithContext("exporting the PS servers' tables through " + scratch);
}

Result<std::string> ExportWhileTraining(workers::Trainer* trainer, ps::PsClient* ps, const RunConfig& c,
                                        StepHookState* state) {
  EMBER_ASSIGN_OR_RETURN(auto precision, embedding::ParseExportPrecision(c.export_precision));
  EMBER_RETURN_IF_ERROR(MakeDirs(c.export_dir));
  embedding::ExportWriter writer(precision);
  EMBER_RETURN_IF_ERROR(trainer->Export(&writer));
  EMBER_RETURN_IF_ERROR(AddPsTables(ps, &writer, c.checkpoint_dir, trainer->step()));
  char name[48];
  std::snprintf(name, sizeof(name), "model-%012lld.embx", static_cast<long long>(trainer->step()));
  const std::string path = c.export_dir + "/" + name;
  const std::string& parent = state->last_export_path;
  bool written = false;
  if (c.export_delta && !parent.empty() && parent != path && state->deltas_since_full < c.export_full_every &&
      std::filesystem::exists(parent)) {
    auto delta = writer.WriteDelta(path, parent);
    if (delta.ok()) {
      ++state->deltas_since_full;
      written = true;
    } else if (delta.status().code() != StatusCode::kFailedPrecondition) {
      return delta.status();
    }  // else the tables changed: a full export starts a new chain
  }
  if (!written) {
    EMBER_RETURN_IF_ERROR(writer.Write(path).status());
    state->deltas_since_full = 0;
  }
  state->last_export_path = path;
  // The newest export.keep, and every file they resolve through.
  if (c.export_keep > 0) {
    const auto all = serving::ListModels(c.export_dir);  // newest first
    std::set<std::string> keep;
    for (size_t i = 0; i < all.size() && i < static_cast<size_t>(c.export_keep); ++i)
      for (const auto& f : embedding::ExportChainFiles(all[i].second)) keep.insert(f);
    std::error_code ec;
    for (const auto& [step, file] : all)
      if (!keep.count(file)) std::filesystem::remove(file, ec);
  }
  return path;
}

workers::StepCallback MakeStepHooks(workers::Trainer* trainer, ps::PsClient* ps, workers::Collective* collective,
                                    const RunConfig& c, int epoch, uint64_t skipped, bool lead, StepHookState* state) {
  auto steps = std::make_shared<uint64_t>(0);
  const uint64_t per_step = c.batch_size * static_cast<uint64_t>(collective->size());
  return [=, &c](int64_t step) -> Status {
    ++*steps;
    // Examples of the stream passed this epoch: every worker's full batches (an epoch's last,
    // partial batch ends it, and a position past the end resumes with the next epoch).
    trainer->set_position({epoch, skipped + *steps * per_step, trainer->trained_end()});
    // A stop, and the lead's clock saying an export is due: every worker learns both (a signal
    // reaches the ranks at different steps), so that all finish the same step and meet below.
    const int64_t stop_at = g_stop_at.load();
    const auto now = std::chrono::steady_clock::now();
    float flags[2] = {StopRequested() || (stop_at > 0 && step >= stop_at) ? 1.0f : 0.0f,
                      lead && !c.export_dir.empty() && c.export_every_seconds > 0 &&
                              std::chrono::duration<double>(now - state->last_export).count() >= c.export_every_seconds
                          ? 1.0f
                          : 0.0f};
    if (collective->size() > 1) EMBER_RETURN_IF_ERROR(collective->AllReduceSum(flags, 2));
    if (flags[0] > 0) {
      state->stopped = true;
      trainer->RequestStop();
      return Status::Ok();  // the job checkpoints and exports where it stopped
    }
    const bool checkpoint =
        !c.checkpoint_dir.empty() && c.checkpoint_every_steps > 0 && step % c.checkpoint_every_steps == 0;
    const bool exporting =
        !c.export_dir.empty() && ((c.export_every_steps > 0 && step % c.export_every_steps == 0) || flags[1] > 0);
    if (!checkpoint && !exporting) return Status::Ok();
    // The others wait while the lead reads the shards: the files hold exactly this step.
    if (collective->size() > 1) EMBER_RETURN_IF_ERROR(collective->Barrier());
    Status st;
    if (lead && checkpoint) st = WriteCheckpoint(trainer, c).status();
    if (lead && exporting && st.ok()) {
      auto path = ExportWhileTraining(trainer, ps, c, state);
      st = path.status();
      if (path.ok()) {
        state->last_export = now;
        state->last_export_step = step;
      }
    }
    // The second meeting tells every worker whether the lead's writes succeeded (none waits for a
    // lead that has left).
    if (collective->size() > 1) {
      float failed = st.ok() ? 0.0f : 1.0f;
      EMBER_RETURN_IF_ERROR(collective->AllReduceSum(&failed, 1));
      if (st.ok() && failed > 0) return Status::FailedPrecondition("the lead's checkpoint or export failed");
    }
    return st;
  };
}

}  // namespace ember::launcher
