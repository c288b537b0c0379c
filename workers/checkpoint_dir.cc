#include "checkpoint_dir.h"

#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "ember/common/file.h"
#include "ember/common/hash.h"
#include "ember/ps/in_process.h"

namespace ember::workers {
namespace {
constexpr const char* kManifestFormat = "ember-checkpoint";
constexpr int kManifestVersion = 2;  // 2: the manifest's own checksum, the tables' widths and rows

std::string Hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016" PRIx64, v);
  return buf;
}

// XXH3 of the manifest without its "checksum" member, as compact JSON (keys sorted).
std::string ManifestChecksum(nlohmann::json m) {
  m.erase("checksum");
  return Hex(Checksum(m.dump()));
}

bool ParseHex(const std::string& s, uint64_t* v) {
  if (s.empty() || s.size() > 16) return false;
  *v = 0;
  for (char ch : s) {
    const int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
    if (d < 0) return false;
    *v = *v << 4 | static_cast<uint64_t>(d);
  }
  return true;
}

// Every field the readers use, checked before any of them is used.
Status CheckManifest(const std::string& file, const nlohmann::json& m) {
  auto bad = [&](const std::string& why) { return Status::Corruption(file + ": " + why); };
  if (!m.contains("step") || !m["step"].is_number_integer() || m["step"].get<int64_t>() < 0)
    return bad("step must be an integer >= 0");
  if (!m.contains("num_shards") || !m["num_shards"].is_number_integer() || m["num_shards"].get<int64_t>() < 1 ||
      m["num_shards"].get<int64_t>() > 65536)
    return bad("num_shards must be an integer in [1, 65536]");
  std::set<std::string> names;
  int64_t shards = 0;
  for (const auto& f : m["files"]) {
    if (!f.is_object() || !f.contains("name") || !f["name"].is_string() || !f.contains("bytes") ||
        !f["bytes"].is_number_unsigned() || !f.contains("checksum") || !f["checksum"].is_string() ||
        !f.contains("kind") || !f["kind"].is_string())
      return bad("a file entry needs name, bytes, checksum and kind");
    const std::string name = f["name"].get<std::string>(), kind = f["kind"].get<std::string>();
    uint64_t sum = 0;
    if (!ParseHex(f["checksum"].get<std::string>(), &sum)) return bad("file " + name + ": checksum is not hex");
    if (kind != "shard" && kind != "dense") return bad("file " + name + ": unknown kind '" + kind + "'");
    if (!names.insert(name).second) return bad("file " + name + " is listed twice");
    shards += kind == "shard";
  }
  if (shards != m["num_shards"].get<int64_t>())
    return bad(std::to_string(shards) + " shard files for num_shards " +
               std::to_string(m["num_shards"].get<int64_t>()));
  if (m.contains("tables")) {
    if (!m["tables"].is_array()) return bad("tables must be an array");
    for (const auto& t : m["tables"])
      if (!t.is_object() || !t.contains("id") || !t["id"].is_number_unsigned() || !t.contains("dim") ||
          !t["dim"].is_number_unsigned() || !t.contains("rows") || !t["rows"].is_number_unsigned())
        return bad("a table entry needs id, dim and rows");
  }
  return Status::Ok();
}
}  // namespace

Result<nlohmann::json> ReadManifest(const std::string& path, Env* env) {
  const std::string file = path + "/manifest.json";
  EMBER_ASSIGN_OR_RETURN(std::string text, env->ReadFile(file));
  nlohmann::json m;
  try {
    m = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    return Status::Corruption(file + ": not valid JSON: " + e.what());
  }
  if (!m.is_object() || m.value("format", "") != kManifestFormat)
    return Status::Corruption(file + ": not an ember checkpoint manifest");
  const auto version = m.contains("version") && m["version"].is_number_integer() ? m["version"].get<int>() : 0;
  if (version != 1 && version != kManifestVersion) return Status::Corruption(file + ": unsupported manifest version");
  if (version >= 2) {  // version 1 (no checksum) is still read, and cross-checked like the rest
    if (!m.contains("checksum") || !m["checksum"].is_string())
      return Status::Corruption(file + ": the manifest has no checksum");
    if (m["checksum"].get<std::string>() != ManifestChecksum(m))
      return Status::Corruption(file + ": checksum mismatch (the manifest was changed or damaged)");
  }
  if (m.value("hash", "") != kHashName)
    return Status::FailedPrecondition(file + ": written with hash '" + m.value("hash", "") + "', this build uses " +
                                      kHashName);
  if (!m.contains("files") || !m["files"].is_array() || !m.contains("config") || !m["config"].is_string())
    return Status::Corruption(file + ": missing files or config");
  EMBER_RETURN_IF_ERROR(CheckManifest(file, m));
  return m;
}

namespace {
// The tables the shard files hold (id -> dim, rows) against what the manifest says they hold.
Status CrossCheckTables(const std::string& dir, const nlohmann::json& m,
                        const std::map<uint32_t, std::pair<int, uint64_t>>& held) {
  if (!m.contains("tables")) return Status::Ok();  // version 1
  const std::string file = dir + "/manifest.json";
  if (m["tables"].size() != held.size())
    return Status::Corruption(file + ": lists " + std::to_string(m["tables"].size()) +
                              " tables, the shard files hold " + std::to_string(held.size()));
  for (const auto& t : m["tables"]) {
    const uint32_t id = t["id"].get<uint32_t>();
    auto it = held.find(id);
    if (it == held.end()) return Status::Corruption(file + ": table " + std::to_string(id) + " is in no shard file");
    if (it->second.first != t["dim"].get<int>() || it->second.second != t["rows"].get<uint64_t>())
      return Status::Corruption(file + ": table " + std::to_string(id) + " is " + std::to_string(t["dim"].get<int>()) +
                                " wide with " + std::to_string(t["rows"].get<uint64_t>()) + " rows by the manifest, " +
                                std::to_string(it->second.first) + " wide with " + std::to_string(it->second.second) +
                                " rows in the shard files");
  }
  return Status::Ok();
}
}  // namespace

Result<std::string> ReadCheckpointConfig(const std::string& path) {
  EMBER_ASSIGN_OR_RETURN(auto m, ReadManifest(path));
  return m["config"].get<std::string>();
}

Status ApplyCheckpointEmbedding(const std::string& path, TrainerConfig* trainer) {
  EMBER_ASSIGN_OR_RETURN(auto m, ReadManifest(path));
  embedding::MethodConfig* config = &trainer->embedding;
  if (m.contains("description")) {
    EMBER_ASSIGN_OR_RETURN(auto d, embedding::ModelDescription::FromJson(m["description"]));
    if (d.groups.empty() || d.fields.size() != trainer->fields.size())
      return Status::Corruption(path + "/manifest.json: the model description has " + std::to_string(d.fields.size()) +
                                " fields, the configuration " + std::to_string(trainer->fields.size()));
    // The model as it was built: DLRM and DCN-v2 with or without first-order weights (their
    // default changed; a configuration that leaves it unset means the checkpoint's).
    trainer->model.first_order = d.first_order;
    const embedding::MethodConfig& main = d.groups[0].method;
    // The method as the group was built: a 1-wide main group under a budget holds hashed rows
    // where DSL was asked (launcher/config.cc ResolveEmbedding).
    config->method = main.method;
    config->field_methods = main.field_methods;
    config->rows = main.rows;
    config->density = main.density;
    config->dsl_rows = main.dsl_rows;
    config->field_widths = main.field_widths;
    config->first_table = main.first_table;
    config->vocabulary = main.vocabulary;
    // Unified's frequent values: how many per field. The values themselves are counted from
    // data.train (the job's, or launcher/commands.cc's again for a checkpoint alone); counted
    // already, they must give the checkpoint's counts, or ids would read other rows.
    if (config->frequent && config->frequent_counts != main.frequent_counts)
      return Status::FailedPrecondition(path + ": the frequent values counted from data.train differ from the ones " +
                                        "the checkpoint was trained with (embedding.frequent_share or data.train "
                                        "changed)");
    const std::shared_ptr<const embedding::FrequentValues> frequent =
        main.frequent_counts.empty() ? nullptr : config->frequent;
    config->frequent_counts = main.frequent_counts;
    config->frequent = frequent;
    // OptEmbed's retrained tables with the hashed table their pruned values read.
    if (!main.field_widths.empty() && main.fallback_rows > 0) {
      config->fallback = main.fallback;
      config->fallback_rows = main.fallback_rows;
    }
    // Unified's probes as they were trained: a checkpoint whose configuration leaves
    // embedding.chunks to its default keeps the default of the ember that wrote it.
    if (main.method == embedding::Method::kUnified) config->chunks = main.chunks;
    // A first-order group as it was built (under a budget, its hashed share).
    if (d.groups.size() > 1) {
      trainer->first_order_embedding = d.groups[1].method;
      trainer->first_order_embedding->frequent = d.groups[1].method.frequent_counts.empty() ? nullptr : frequent;
    }
    for (size_t f = 0; f < d.fields.size(); ++f) trainer->fields[f].vocab = d.fields[f].vocab;
    return Status::Ok();
  }
  try {  // manifests written before the description
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
                         std::map<std::string, std::string>* dense, std::vector<CheckpointInfo::File>* listed = nullptr,
                         Env* env = PosixEnv()) {
  for (const auto& f : m["files"]) {
    ps::ShardFile sf;
    sf.name = f.value("name", "");
    sf.bytes = f.value("bytes", uint64_t{0});
    ParseHex(f.value("checksum", "0"), &sf.checksum);  // CheckManifest checked it
    const std::string kind = f.value("kind", "");
    if (sf.name.empty() || sf.name.find('/') != std::string::npos)
      return Status::Corruption(dir + "/manifest.json: bad file name '" + sf.name + "'");
    if (listed) listed->push_back({sf.name, kind, sf.bytes});
    if (kind == "shard") {
      shards->push_back(sf);
      continue;
    }
    EMBER_ASSIGN_OR_RETURN((*dense)[sf.name], ps::ReadVerifiedFile(dir, sf, env));
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
  if (m.contains("description") && m["description"].is_object()) {
    auto d = embedding::ModelDescription::FromJson(m["description"]);
    if (!d.ok()) return d.status().WithContext(info.path + "/manifest.json");
    if (!d->groups.empty()) info.method = embedding::MethodName(d->groups[0].method.method);
  } else if (m.contains("embedding") && m["embedding"].is_object()) {  // session models, older manifests
    info.method = m["embedding"].value("method", "");
  }
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
  std::map<uint32_t, std::pair<int, uint64_t>> held;
  for (auto& [id, t] : by_id) {
    info.tables.push_back(t);
    held[id] = {t.spec.dim, t.rows};
  }
  EMBER_RETURN_IF_ERROR(CrossCheckTables(dir, m, held));
  return info;
}

Result<std::string> ResolveCheckpoint(const std::string& path, Env* env) {
  if (env->Exists(path + "/manifest.json")) return path;
  if (!env->Exists(path)) return Status::NotFound("checkpoint path " + path + " does not exist");
  int64_t best = -1;
  EMBER_ASSIGN_OR_RETURN(const auto names, env->Children(path));
  for (const std::string& name : names) {
    if (name.rfind("ckpt-", 0) != 0 || name.find(".tmp") != std::string::npos) continue;
    if (!env->Exists(path + "/" + name + "/manifest.json")) continue;
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
                                       const std::string& config_text, nlohmann::json manifest, Env* env) {
  const std::string final_dir = root + "/" + name;
  const std::string tmp = final_dir + ".tmp-" + std::to_string(::getpid());
  EMBER_RETURN_IF_ERROR(env->RemoveAll(tmp));
  EMBER_RETURN_IF_ERROR(env->MakeDirs(tmp));
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
    EMBER_RETURN_IF_ERROR(env->WriteFileAtomic(tmp + "/" + file, *bytes));
    jfiles.push_back(
        {{"name", file}, {"bytes", bytes->size()}, {"checksum", Hex(Checksum(*bytes))}, {"kind", "dense"}});
  }
  manifest["format"] = kManifestFormat;
  manifest["version"] = kManifestVersion;
  manifest["hash"] = kHashName;
  manifest["num_shards"] = ps->num_shards();
  manifest["config"] = config_text;
  manifest["files"] = jfiles;
  // What the shard files must hold, for readers to cross-check (a manifest that disagrees with
  // its shards is refused rather than exporting or resuming something else).
  EMBER_ASSIGN_OR_RETURN(auto stats, ps->Stats());
  nlohmann::json jtables = nlohmann::json::array();
  for (const auto& t : stats) jtables.push_back({{"id", t.table}, {"dim", t.dim}, {"rows", t.rows}});
  manifest["tables"] = jtables;
  manifest["checksum"] = ManifestChecksum(manifest);
  EMBER_RETURN_IF_ERROR(env->WriteFileAtomic(tmp + "/manifest.json", manifest.dump(2) + "\n"));
  EMBER_RETURN_IF_ERROR(env->RemoveAll(final_dir));
  EMBER_RETURN_IF_ERROR(env->Rename(tmp, final_dir));
  EMBER_RETURN_IF_ERROR(env->SyncDir(root));
  return final_dir;
}

Status LoadCheckpointDir(const std::string& path, const nlohmann::json& m, ps::PsClient* ps, torch::nn::Module& module,
                         torch::optim::Optimizer& optimizer, bool load_shards, Env* env) {
  std::vector<ps::ShardFile> shards;
  std::map<std::string, std::string> dense;
  EMBER_RETURN_IF_ERROR(ReadManifestFiles(path, m, &shards, &dense, nullptr, env));
  const std::string& model_bytes = dense["dense.pt"];
  const std::string& opt_bytes = dense["dense_optimizer.pt"];
  if (model_bytes.empty()) return Status::Corruption(path + ": checkpoint has no dense.pt");
  EMBER_RETURN_IF_ERROR(models::LoadModule(module, model_bytes, path + "/dense.pt"));
  if (!opt_bytes.empty()) {
    EMBER_RETURN_IF_ERROR(TorchCall("loading optimizer state", [&] {
                            torch::serialize::InputArchive archive;
                            std::istringstream is(opt_bytes);
                            const auto params = module.parameters();
                            archive.load_from(is, params.empty() ? c10::optional<torch::Device>() : params[0].device());
                            optimizer.load(archive);
                          }).WithContext(path + "/dense_optimizer.pt"));
  }
  if (load_shards) {
    EMBER_RETURN_IF_ERROR(ps->LoadShards(path, shards));
    EMBER_ASSIGN_OR_RETURN(auto stats, ps->Stats());
    std::map<uint32_t, std::pair<int, uint64_t>> held;
    for (const auto& t : stats) held[t.table] = {t.dim, t.rows};
    EMBER_RETURN_IF_ERROR(CrossCheckTables(path, m, held));
  }
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
  if (p.contains("cursor")) {  // older checkpoints have none: their stream is read up to the position
    const auto& c = p["cursor"];
    if (!c.is_object() || !c.contains("file") || !c["file"].is_string() || !c.contains("offset") ||
        !c["offset"].is_number_unsigned() || !c.contains("line") || !c["line"].is_number_unsigned())
      return Status::Corruption(path +
                                "/manifest.json: bad position cursor (expected {\"file\", \"offset\", \"line\"})");
    position.cursor.valid = true;
    position.cursor.file = c["file"].get<std::string>();
    position.cursor.offset = c["offset"].get<uint64_t>();
    position.cursor.line = c["line"].get<uint64_t>();
  }
  return position;
}

}  // namespace ember::workers
