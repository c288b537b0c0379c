#include "ember/models/model_kind.h"

namespace ember::models {

Result<ModelKind> ParseModelKind(const std::string& name) {
  for (ModelKind k : {ModelKind::kDlrm, ModelKind::kDeepFm, ModelKind::kLr, ModelKind::kM2Trec, ModelKind::kSasRec})
    if (name == ModelKindName(k)) return k;
  return Status::InvalidArgument("model.name: unknown model '" + name +
                                 "' (expected dlrm, deepfm, lr, m2trec or sasrec)");
}

const char* ModelKindName(ModelKind kind) {
  switch (kind) {
    case ModelKind::kDlrm:
      return "dlrm";
    case ModelKind::kDeepFm:
      return "deepfm";
    case ModelKind::kLr:
      return "lr";
    case ModelKind::kM2Trec:
      return "m2trec";
    case ModelKind::kSasRec:
      return "sasrec";
  }
  return "?";
}

}  // namespace ember::models
