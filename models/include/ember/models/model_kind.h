// model.name: the CTR models (DLRM, DeepFM, logistic regression) and the session models
// (M2TRec, SASRec), parsed once where the key is read.
#pragma once

#include <string>

#include "ember/common/status.h"

namespace ember::models {

enum class ModelKind { kDlrm, kDeepFm, kLr, kM2Trec, kSasRec };
Result<ModelKind> ParseModelKind(const std::string& name);
const char* ModelKindName(ModelKind kind);
inline bool IsSessionModel(ModelKind kind) { return kind == ModelKind::kM2Trec || kind == ModelKind::kSasRec; }

}  // namespace ember::models
