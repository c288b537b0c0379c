// ModelDescription: what a trained CTR model is, apart from its weights — the model's shape,
// its categorical fields (with the vocabularies the tables were sized for) and, per embedding
// group, the compression method that maps ids to rows. One struct with JSON in and out, written
// by the trainer into every checkpoint manifest ("description") and every export (the model
// block), and read back by resume (table sizes, OptEmbed's widths) and by serving (the model and
// its lookup), so that the three agree by construction. docs/formats.md.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ember/common/status.h"
#include "ember/embedding/method.h"

namespace ember::embedding {

struct GroupDescription {
  std::string name;     // the model's group ("embedding", DeepFM's "linear")
  int dim = 0;          // the model's width per field
  MethodConfig method;  // as the trainer built it (table ids, salts, sizes)
};

struct ModelDescription {
  std::string kind = "ctr";
  std::string model;  // model.name
  int num_dense = 0;
  int embedding_dim = 0;
  std::vector<int64_t> bottom_mlp, top_mlp;
  // DCN-v2 (absent from older descriptions: the defaults).
  int cross_layers = 3;
  std::string cross_structure = "stacked";
  int cross_rank = 0;
  bool first_order = false;  // DLRM and DCN-v2 with first-order weights (absent: false)
  std::vector<FieldInfo> fields;
  // How a text row reads (data::Schema's JSON: columns, roles, encodings, pooling, dense
  // statistics); "" = the Criteo layout of num_dense integers and the fields as hex ids.
  std::string input_schema;
  std::vector<GroupDescription> groups;
  int64_t step = 0;

  nlohmann::json ToJson() const;
  // Every key checked; errors are Corruption naming the key.
  static Result<ModelDescription> FromJson(const nlohmann::json& j);
};

}  // namespace ember::embedding
