// model.name: the CTR models (DLRM, DeepFM, logistic regression, DCN-v2, Wide & Deep, FM) and
// the session models (M2TRec, SASRec), parsed once where the key is read.
#pragma once

#include <string>

#include "ember/common/status.h"

namespace ember::models {

enum class ModelKind { kDlrm, kDeepFm, kLr, kM2Trec, kSasRec, kDcnV2, kWideDeep, kFm };
Result<ModelKind> ParseModelKind(const std::string& name);
const char* ModelKindName(ModelKind kind);
// model.cross_structure of DCN-v2: the cross network before the MLP, or beside it.
enum class CrossStructure { kStacked, kParallel };
const char* CrossStructureName(CrossStructure s);
Result<CrossStructure> ParseCrossStructure(const std::string& name);

inline bool IsSessionModel(ModelKind kind) { return kind == ModelKind::kM2Trec || kind == ModelKind::kSasRec; }

}  // namespace ember::models
