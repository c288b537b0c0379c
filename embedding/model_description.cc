#include "ember/embedding/model_description.h"

#include "ember/embedding/export.h"

namespace ember::embedding {

nlohmann::json ModelDescription::ToJson() const {
  nlohmann::json gs = nlohmann::json::array(), fs = nlohmann::json::array();
  for (const auto& g : groups)
    gs.push_back({{"name", g.name}, {"dim", g.dim}, {"method", MethodConfigToJson(g.method)}});
  for (const auto& f : fields) fs.push_back({{"name", f.name}, {"vocab", f.vocab}});
  nlohmann::json j = {{"kind", kind},
                      {"name", model},
                      {"num_dense", num_dense},
                      {"num_fields", fields.size()},
                      {"embedding_dim", embedding_dim},
                      {"bottom_mlp", bottom_mlp},
                      {"top_mlp", top_mlp},
                      {"cross_layers", cross_layers},
                      {"cross_structure", cross_structure},
                      {"cross_rank", cross_rank},
                      {"first_order", first_order},
                      {"fields", fs},
                      {"groups", gs},
                      {"step", step}};
  if (!input_schema.empty()) j["input"] = nlohmann::json::parse(input_schema);
  return j;
}

Result<ModelDescription> ModelDescription::FromJson(const nlohmann::json& j) {
  ModelDescription d;
  std::string key;
  try {
    auto at = [&](const char* k) -> const nlohmann::json& {
      key = k;
      return j.at(k);
    };
    d.kind = j.value("kind", "ctr");
    d.model = at("name").get<std::string>();
    d.num_dense = at("num_dense").get<int>();
    d.embedding_dim = at("embedding_dim").get<int>();
    d.bottom_mlp = at("bottom_mlp").get<std::vector<int64_t>>();
    d.top_mlp = at("top_mlp").get<std::vector<int64_t>>();
    if (j.contains("cross_layers")) d.cross_layers = at("cross_layers").get<int>();
    if (j.contains("cross_structure")) d.cross_structure = at("cross_structure").get<std::string>();
    if (j.contains("cross_rank")) d.cross_rank = at("cross_rank").get<int>();
    if (j.contains("first_order")) d.first_order = at("first_order").get<bool>();
    for (const auto& f : at("fields"))
      d.fields.push_back({f.at("name").get<std::string>(), f.at("vocab").get<uint64_t>()});
    if (at("num_fields").get<size_t>() != d.fields.size())
      return Status::Corruption("model description: num_fields does not match its fields");
    for (const auto& g : at("groups")) {
      GroupDescription gd;
      gd.name = g.at("name").get<std::string>();
      gd.dim = g.at("dim").get<int>();
      auto method = MethodConfigFromJson(g.at("method"));
      if (!method.ok()) return method.status().WithContext("model description: group '" + gd.name + "'");
      gd.method = *method;
      d.groups.push_back(std::move(gd));
    }
    d.step = j.value("step", int64_t{0});
    if (j.contains("input")) d.input_schema = at("input").dump();
  } catch (const std::exception& e) {
    return Status::Corruption("model description: bad '" + key + "': " + e.what());
  }
  return d;
}

}  // namespace ember::embedding
