#include "checkpoint_dir.h"

#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>

#include "ember/common/file.h"
#include "ember/common/hash.h"
#include "ember/ps/in_process.h"

namespace ember::workers {
namespace {
constexpr const char* kManifestFormat = "ember-checkpoint";
constexpr int kManifestVersion = 1;

std::string Hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016" PRIx64, v);
  return buf;
}

}  // namespace

Result<nlohmann::json> ReadManifest(const std::string& path) {
  const std::string file = path + "/manifest.json";
  EMBER_ASSIGN_OR_RETURN(std::string text, ReadFile(file));
  nlohmann::json m;
  try {
    m = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    return Status::Corruption(file + ": not valid JSON: " + e.what());
  }
  if (!m.is_object() || m.value("format", "") != kManifestFormat)
    return Status::Corruption(file + ": not an ember checkpoint manifest");
  if (m.value("version", 0) != kManifestVersion) return Status::Corruption(file + ": unsupported manifest version");
  if (m.value("hash", "") != kHashName)
    return Status::FailedPrecondition(file + ": written with hash '" + m.value("hash", "") + "', this build uses " +
                                      kHashName);
  if (!m.contains("files") || !m["files"].is_array() || !m.contains("config") || !m["config"].is_string())
    return Status::Corruption(file + ": missing files or config");
  return m;
}

Result<std::string> ReadCheckpointConfig(const std::string& path) {
  EMBER_ASSIGN_OR_RETURN(auto m, ReadManifest(path));
  return m["config"].get<std::string>();
}

Status ApplyCheckpointEmbedding(const std::string& path, TrainerConfig* trainer) {
  EMBER_ASSIGN_OR_RETURN(auto m, ReadManifest(path));
  embedding::MethodConfig* config = &trainer->embedding;
  try {
    if (m.contains("embedding")) {
      config->rows = m["embedding"].value("rows", config->rows);
      config->density = m["embedding"].value("density", config->density);
      const auto vocab = m["embedding"].value("vocab", std::vector<uint64_t>{});
      if (vocab.size() == trainer->fields.size())
        for (size_t f = 0; f < vocab.size(); ++f) trainer->fields[f].vocab = vocab[f];
    }
    if (m.contains("optembed") && m["optembed"].contains("widths")) {
      config->field_widths = m["optembed"]["widths"].get<std::vector<int>>();
      config->first_table = m["optembed"].value("first_table", uint32_t{0});
    }
  } catch (const std::exception& e) {
    return Status::Corruption(path + "/manifest.json: bad embedding state: " + e.what());
  }
  return Status::Ok();
}

namespace {
// The files a manifest lists: shard files into *shards, the others (dense model and optimizer)
// read and verified into *dense by name; every entry into *listed if given.
Status ReadManifestFiles(const std::string& dir, const nlohmann::json& m, std::vector<ps::ShardFile>* shards,
                         std::map<std::string, std::string>* dense,
                         std::vector<CheckpointInfo::File>* listed = nullptr) {
  for (const auto& f : m["files"]) {
    ps::ShardFile sf;
    sf.name = f.value("name", "");
    sf.bytes = f.value("bytes", uint64_t{0});
    sf.checksum = std::stoull(f.value("checksum", "0"), nullptr, 16);
    const std::string kind = f.value("kind", "");
    if (sf.name.empty() || sf.name.find('/') != std::string::npos)
      return Status::Corruption(dir + "/manifest.json: bad file name '" + sf.name + "'");
    if (listed) listed->push_back({sf.name, kind, sf.bytes});
    if (kind == "shard") {
      shards->push_back(sf);
      continue;
    }
    EMBER_ASSIGN_OR_RETURN((*dense)[sf.name], ps::ReadVerifiedFile(dir, sf));
  }
  return Status::Ok();
}
}  // namespace

Result<CheckpointInfo> InspectCheckpoint(const std::string& path) {
  EMBER_ASSIGN_OR_RETURN(const std::string dir, ResolveCheckpoint(path));
  EMBER_ASSIGN_OR_RETURN(auto m, ReadManifest(dir));
  CheckpointInfo info;
  info.path = dir;
  info.step = m.value("step", int64_t{0});
  info.model = m.value("model", "");
  info.num_shards = m.value("num_shards", 0);
  if (m.contains("position") && m["position"].is_object()) {
    info.position.epoch = m["position"].value("epoch", int64_t{0});
    info.position.examples = m["position"].value("examples", uint64_t{0});
  }
  if (m.contains("embedding") && m["embedding"].is_object()) info.method = m["embedding"].value("method", "");
  std::vector<ps::ShardFile> shards;
  std::map<std::string, std::string> dense;
  EMBER_RETURN_IF_ERROR(ReadManifestFiles(dir, m, &shards, &dense, &info.files));
  for (const auto& f : info.files) info.bytes += f.bytes;
  // Every shard file is read and verified; the tables' sections are merged across shards.
  std::vector<std::unique_ptr<embedding::Table>> tables;
  EMBER_RETURN_IF_ERROR(ps::ReadShardFiles(dir, shards, &tables));
  std::map<uint32_t, CheckpointInfo::Table> by_id;
  for (const auto& t : tables) {
    auto& e = by_id[t->spec().id];
    e.spec = t->spec();
    e.rows += t->size();
    e.values += t->values();
    e.bytes += t->MemoryBytes();
  }
  for (auto& [id, t] : by_id) info.tables.push_back(t);
  return info;
}

Result<std::string> ResolveCheckpoint(const std::string& path) {
  if (PathExists(path + "/manifest.json")) return path;
  if (!PathExists(path)) return Status::NotFound("checkpoint path " + path + " does not exist");
  int64_t best = -1;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(path, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("ckpt-", 0) != 0 || name.find(".tmp") != std::string::npos) continue;
    if (!PathExists(entry.path().string() + "/manifest.json")) continue;
    try {
      best = std::max<int64_t>(best, std::stoll(name.substr(5)));
    } catch (...) {
    }
  }
  if (best < 0) return Status::NotFound("no complete checkpoint (ckpt-N/manifest.json) in " + path);
  return path + "/ckpt-" + std::to_string(best);
}

Result<std::string> WriteCheckpointDir(const std::string& root, const std::string& name, ps::PsClient* ps,
                                       torch::nn::Module& module, torch::optim::Optimizer& optimizer,
                                       const std::string& config_text, nlohmann::json manifest) {
  const std::string final_dir = root + "/" + name;
  const std::string tmp = final_dir + ".tmp-" + std::to_string(::getpid());
  std::error_code ec;
  std::filesystem::remove_all(tmp, ec);
  EMBER_RETURN_IF_ERROR(MakeDirs(tmp));
  EMBER_ASSIGN_OR_RETURN(auto files, ps->SaveShards(tmp));
  nlohmann::json jfiles = nlohmann::json::array();
  for (const auto& f : files)
    jfiles.push_back({{"name", f.name}, {"bytes", f.bytes}, {"checksum", Hex(f.checksum)}, {"kind", "shard"}});
  EMBER_ASSIGN_OR_RETURN(std::string model_bytes, models::SaveModule(module));
  std::string opt_bytes;
  EMBER_RETURN_IF_ERROR(TorchCall("saving optimizer", [&] {
    torch::serialize::OutputArchive archive;
    optimizer.save(archive);
    std::ostringstream os;
    archive.save_to(os);
    opt_bytes = os.str();
  }));
  for (const auto& [file, bytes] :
       {std::pair<std::string, const std::string*>{"dense.pt", &model_bytes}, {"dense_optimizer.pt", &opt_bytes}}) {
    EMBER_RETURN_IF_ERROR(WriteFileAtomic(tmp + "/" + file, *bytes));
    jfiles.push_back(
        {{"name", file}, {"bytes", bytes->size()}, {"checksum", Hex(Checksum(*bytes))}, {"kind", "dense"}});
  }
  manifest["format"] = kManifestFormat;
  manifest["version"] = kManifestVersion;
  manifest["hash"] = kHashName;
  manifest["num_shards"] = ps->num_shards();
  manifest["config"] = config_text;
  manifest["files"] = jfiles;
  EMBER_RETURN_IF_ERROR(WriteFileAtomic(tmp + "/manifest.json", manifest.dump(2) + "\n"));
  std::filesystem::remove_all(final_dir, ec);
  std::filesystem::rename(tmp, final_dir, ec);
  if (ec) return Status::IoError("cannot rename " + tmp + " to " + final_dir + ": " + ec.message());
  EMBER_RETURN_IF_ERROR(SyncDir(root));
  return final_dir;
}

Status LoadCheckpointDir(const std::string& path, const nlohmann::json& m, ps::PsClient* ps, torch::nn::Module& module,
                         torch::optim::Optimizer& optimizer, bool load_shards) {
  std::vector<ps::ShardFile> shards;
  std::map<std::string, std::string> dense;
  EMBER_RETURN_IF_ERROR(ReadManifestFiles(path, m, &shards, &dense));
  const std::string& model_bytes = dense["dense.pt"];
  const std::string& opt_bytes = dense["dense_optimizer.pt"];
  if (model_bytes.empty()) return Status::Corruption(path + ": checkpoint has no dense.pt");
  EMBER_RETURN_IF_ERROR(models::LoadModule(module, model_bytes, path + "/dense.pt"));
  if (!opt_bytes.empty()) {
    EMBER_RETURN_IF_ERROR(TorchCall("loading optimizer state", [&] {
                            torch::serialize::InputArchive archive;
                            std::istringstream is(opt_bytes);
                            archive.load_from(is);
                            optimizer.load(archive);
                          }).WithContext(path + "/dense_optimizer.pt"));
  }
  if (load_shards) EMBER_RETURN_IF_ERROR(ps->LoadShards(path, shards));
  return Status::Ok();
}

Result<DataPosition> ReadPosition(const std::string& path, const nlohmann::json& m) {
  DataPosition position;
  if (!m.contains("position")) return position;
  const auto& p = m["position"];
  if (!p.is_object() || !p.contains("epoch") || !p.contains("examples") || !p["epoch"].is_number_integer() ||
      !p["examples"].is_number_unsigned() || p["epoch"].get<int64_t>() < 0)
    return Status::Corruption(path + "/manifest.json: bad position (expected {\"epoch\": n, \"examples\": n})");
  position.epoch = p["epoch"].get<int64_t>();
  position.examples = p["examples"].get<uint64_t>();
  return position;
}

}  // namespace ember::workers
