// What the training job writes besides its steps: the metrics endpoint, checkpoint directories
// (with checkpoint.keep's pruning) and the test scores (commands.h).
#include <signal.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <ostream>

#include "ember/common/file.h"
#include "ember/launcher/commands.h"

namespace ember::launcher {

Result<std::unique_ptr<monitoring::MetricsExporter>> StartMetrics(const RunConfig& c, const std::string& role, int rank,
                                                                  std::ostream& out) {
  if (c.monitoring_port == 0) return std::unique_ptr<monitoring::MetricsExporter>();
  auto exporter = std::make_unique<monitoring::MetricsExporter>(role, rank);
  monitoring::HttpServerOptions o;
  o.bind = c.monitoring_bind;
  o.port = c.monitoring_port + rank;
  o.threads = 1;
  Status st = exporter->Start(o);
  if (!st.ok()) return st.WithContext("monitoring.port");
  out << "metrics: http://" << c.monitoring_bind << ":" << exporter->port() << "/metrics\n";
  return exporter;
}

Result<std::string> WriteCheckpoint(workers::Trainer* trainer, const RunConfig& c) {
  return WriteCheckpoint(c, [&](const std::string& root) { return trainer->SaveCheckpoint(root, c.text); });
}

Result<std::string> WriteCheckpoint(const RunConfig& c,
                                    const std::function<Result<std::string>(const std::string& root)>& save) {
  EMBER_RETURN_IF_ERROR(MakeDirs(c.checkpoint_dir));
  EMBER_ASSIGN_OR_RETURN(auto path, save(c.checkpoint_dir));
  // Only once the new checkpoint is complete do the oldest go.
  std::vector<std::pair<int64_t, std::string>> all;
  std::error_code ec;
  std::vector<std::string> stale;
  for (const auto& entry : std::filesystem::directory_iterator(c.checkpoint_dir, ec)) {
    const std::string name = entry.path().filename().string();
    // ckpt-N.tmp-PID of a writer that is gone (killed mid-write): never complete, removed.
    if (const size_t t = name.find(".tmp-"); name.rfind("ckpt-", 0) == 0 && t != std::string::npos) {
      const long pid = std::strtol(name.c_str() + t + 5, nullptr, 10);
      if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) stale.push_back(entry.path().string());
      continue;
    }
    if (name.rfind("ckpt-", 0) != 0 || name.size() <= 5 || name.find_first_not_of("0123456789", 5) != std::string::npos)
      continue;
    all.emplace_back(std::stoll(name.substr(5)), entry.path().string());
  }
  for (const auto& dir : stale) std::filesystem::remove_all(dir, ec);
  std::sort(all.begin(), all.end());
  for (size_t i = 0; c.checkpoint_keep > 0 && i + static_cast<size_t>(c.checkpoint_keep) < all.size(); ++i)
    std::filesystem::remove_all(all[i].second, ec);
  return path;
}

Status EvaluateTest(workers::Trainer* trainer, const RunConfig& c, RunMetrics* m, std::ostream& out) {
  EMBER_ASSIGN_OR_RETURN(auto reader, OpenReader(c, c.test, false));
  EMBER_ASSIGN_OR_RETURN(auto eval, trainer->Evaluate(reader.get()));
  m->auc = eval.auc;
  m->logloss = eval.logloss;
  m->eval_samples = eval.samples;
  char buf[160];
  std::snprintf(buf, sizeof(buf), "test: %llu samples, AUC %.5f, logloss %.5f\n",
                static_cast<unsigned long long>(eval.samples), eval.auc, eval.logloss);
  out << buf;
  return Status::Ok();
}

}  // namespace ember::launcher
