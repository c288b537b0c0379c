#include "ember/models/model_kind.h"

namespace ember::models {

Result<ModelKind> ParseModelKind(const std::string& name) {
  for (ModelKind k : {ModelKind::kDlrm, ModelKind::kDeepFm, ModelKind::kLr, ModelKind::kDcnV2, ModelKind::kWideDeep,
                      ModelKind::kFm, ModelKind::kM2Trec, ModelKind::kSasRec})
    if (name == ModelKindName(k)) return k;
  return Status::InvalidArgument("model.name: unknown model '" + name +
                                 "' (expected dlrm, deepfm, lr, dcn_v2, wide_deep, fm, m2trec or sasrec)");
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
    case ModelKind::kDcnV2:
      return "dcn_v2";
    case ModelKind::kWideDeep:
      return "wide_deep";
    case ModelKind::kFm:
      return "fm";
  }
  return "?";
}

const char* CrossStructureName(CrossStructure s) { return s == CrossStructure::kStacked ? "stacked" : "parallel"; }

Result<CrossStructure> ParseCrossStructure(const std::string& name) {
  for (CrossStructure s : {CrossStructure::kStacked, CrossStructure::kParallel})
    if (name == CrossStructureName(s)) return s;
  return Status::InvalidArgument("model.cross_structure: '" + name + "' is not stacked or parallel");
}

}  // namespace ember::models
