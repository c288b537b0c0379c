// The checkpoint directory both trainers write (docs/formats.md, "Checkpoints"): the PS shards,
// the dense module and its optimizer, and manifest.json listing every file with its checksum.
// Private to the workers library.
#pragma once

#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>

#include "ember/common/status.h"
#include "ember/ps/client.h"
#include "ember/workers/trainer.h"

namespace ember::workers {

// Runs fn, turning a LibTorch exception into an Internal status naming `what`.
template <typename Fn>
Status TorchCall(const char* what, Fn&& fn) {
  try {
    fn();
    return Status::Ok();
  } catch (const std::exception& e) {
    return Status::Internal(std::string(what) + ": " + e.what());
  }
}

// Writes <root>/<name>: every PS shard, dense.pt (`module`), dense_optimizer.pt (`optimizer`) and
// manifest.json = `manifest` plus the keys every checkpoint has (format, version, hash,
// num_shards, config, files). Files go into a temporary directory that is renamed when complete;
// the root is then synced. Returns the directory.
Result<std::string> WriteCheckpointDir(const std::string& root, const std::string& name, ps::PsClient* ps,
                                       torch::nn::Module& module, torch::optim::Optimizer& optimizer,
                                       const std::string& config_text, nlohmann::json manifest, Env* env = PosixEnv());

// Reads <path>/manifest.json, refusing another format, version or hash.
Result<nlohmann::json> ReadManifest(const std::string& path, Env* env = PosixEnv());

// Restores `module` and `optimizer` and, with `load_shards`, the PS rows from the files the
// manifest `m` of `path` lists, each verified against its checksum.
Status LoadCheckpointDir(const std::string& path, const nlohmann::json& m, ps::PsClient* ps, torch::nn::Module& module,
                         torch::optim::Optimizer& optimizer, bool load_shards, Env* env = PosixEnv());

// The manifest's data position ({"epoch": n, "examples": n}; none = the start).
Result<DataPosition> ReadPosition(const std::string& path, const nlohmann::json& manifest);

}  // namespace ember::workers
