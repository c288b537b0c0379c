#include "ember/serving/model_dir.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>

namespace ember::serving {
namespace {
// A file's identity for the refusal list: a rewritten file is tried again.
std::string Identity(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return path;
  return path + ":" + std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec);
}

}  // namespace

std::vector<std::pair<int64_t, std::string>> ListModels(const std::string& dir) {
  std::vector<std::pair<int64_t, std::string>> all;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("model-", 0) != 0 || name.size() <= 11 || name.substr(name.size() - 5) != ".embx") continue;
    const std::string digits = name.substr(6, name.size() - 11);
    if (digits.empty() || digits.size() > 18 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    all.emplace_back(std::stoll(digits), e.path().string());
  }
  std::sort(all.rbegin(), all.rend());
  return all;
}

std::string NewestModel(const std::string& dir) {
  auto all = ListModels(dir);
  return all.empty() ? "" : all[0].second;
}

ModelWatcher::ModelWatcher(std::string dir, std::string device, std::string dense_precision, double poll_seconds,
                           Log log)
    : dir_(std::move(dir)),
      device_(std::move(device)),
      dense_precision_(std::move(dense_precision)),
      poll_seconds_(poll_seconds),
      log_(std::move(log)) {}

ModelWatcher::~ModelWatcher() { Stop(); }

Result<std::shared_ptr<const ServingModel>> ModelWatcher::LoadFirst() {
  if (!std::filesystem::is_directory(dir_)) return Status::NotFound("--model " + dir_ + ": not a directory");
  Status last = Status::NotFound("--model " + dir_ + ": no model-<step>.embx in it yet");
  for (const auto& [step, path] : ListModels(dir_)) {
    auto m = ServingModel::Load(path, device_, dense_precision_);
    if (m.ok()) {
      live_ = Identity(path);
      return std::shared_ptr<const ServingModel>(std::move(m).value());
    }
    failed_.insert(Identity(path));
    log_("ember serve: refused " + path + ": " + m.status().message());
    last = m.status();
  }
  return last;
}

bool ModelWatcher::PollOnce(PredictionServer* server) {
  for (const auto& [step, path] : ListModels(dir_)) {
    const std::string id = Identity(path);
    if (id == live_) return false;    // nothing newer (a rewritten file is newer)
    if (failed_.count(id)) continue;  // refused before, unchanged: an older one may still be newer than live
    auto m = ServingModel::Load(path, device_, dense_precision_);
    if (!m.ok()) {
      failed_.insert(id);
      server->registry().AddCounter("serving_failed_loads_total", 1);
      log_("ember serve: refused " + path + " (the live model stays): " + m.status().message());
      continue;
    }
    server->Swap(std::shared_ptr<const ServingModel>(std::move(m).value()));
    live_ = id;
    log_("ember serve: now serving " + path + " (step " + std::to_string(step) + ")");
    return true;
  }
  return false;
}

void ModelWatcher::Start(PredictionServer* server) {
  thread_ = std::thread([this, server] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      cv_.wait_for(lock, std::chrono::duration<double>(poll_seconds_), [this] { return stop_; });
      if (stop_) break;
      lock.unlock();
      PollOnce(server);
      lock.lock();
    }
  });
}

void ModelWatcher::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace ember::serving
