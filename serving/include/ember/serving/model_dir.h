// ModelWatcher: `ember serve --model DIR` — serves the newest complete export in DIR (files
// `model-<step>.embx`, written atomically by training's export.dir) and swaps in newer ones as they
// appear: each is loaded and verified beside the live model (checksum, description, tables), then
// PredictionServer::Swap makes it live; a file that fails to load is refused (counted in
// ember_serving_failed_loads_total, named in the log) and the live model stays.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "ember/common/status.h"
#include "ember/serving/model.h"
#include "ember/serving/server.h"

namespace ember::serving {

// Every `model-<step>.embx` of `dir` as (step, path), newest first (training's export.keep prunes
// by it too).
std::vector<std::pair<int64_t, std::string>> ListModels(const std::string& dir);
// The newest `model-<step>.embx` of `dir` ("" if none).
std::string NewestModel(const std::string& dir);

class ModelWatcher {
 public:
  using Log = std::function<void(const std::string&)>;
  // device, dense_precision: as ServingModel::Load takes them, for every model loaded.
  ModelWatcher(std::string dir, std::string device, std::string dense_precision, double poll_seconds, Log log);
  ~ModelWatcher();
  // The newest model that loads (refusing the ones that do not), or an error when none does.
  Result<std::shared_ptr<const ServingModel>> LoadFirst();
  // Polls DIR every poll_seconds and swaps `server`'s model for each newer one that loads.
  void Start(PredictionServer* server);
  void Stop();
  // One poll now (tests): true if a newer model was swapped in.
  bool PollOnce(PredictionServer* server);

 private:
  std::string dir_, device_, dense_precision_;
  double poll_seconds_;
  Log log_;
  std::string live_;              // the file served, as name + size + mtime
  std::set<std::string> failed_;  // files that did not load (retried when they change: name + size + mtime)
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace ember::serving
