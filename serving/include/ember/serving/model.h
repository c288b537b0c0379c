// ServingModel: an exported CTR model (embedding/export.h) loaded for prediction: the export's
// tables (mapped, not copied), each group's compression method rebuilt from the file, and the
// LibTorch model with the exported dense weights. Predictions equal the checkpoint's evaluation
// (exactly at fp32; within the rounding of fp16 / int8 rows).
//
// Predict() is const and thread-safe (lookups read the mapping; the forward pass runs without
// gradients and mutates nothing).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ember/common/status.h"
#include "ember/data/batch.h"
#include "ember/data/schema.h"
#include "ember/embedding/export.h"

namespace ember::serving {

class ServingModel {
 public:
  // `device`: "cpu" or "cuda" (the dense model on the GPU; the rows are looked up on the host
  // and copied); "cuda" without a CUDA LibTorch or a visible GPU is an error saying so.
  // `dense_precision`: "fp32", or "bf16" / "int8" for the dense layers' products on the CPU
  // (models/dense_linear.h; the rows keep the export's precision).
  static Result<std::unique_ptr<ServingModel>> Load(const std::string& path, const std::string& device = "cpu",
                                                    const std::string& dense_precision = "fp32");
  ~ServingModel();

  std::string kind() const;  // "ctr"
  int num_dense() const { return num_dense_; }
  // The training step the export was written at, its file name (the version `ember serve` reports)
  // and the seconds since the file was written.
  int64_t step() const { return step_; }
  std::string version() const;
  double age_seconds() const;
  int num_sparse() const { return num_sparse_; }
  // How request rows read: the training data's schema (the Criteo layout when the export has none).
  const data::Schema& schema() const { return schema_; }
  const embedding::ExportFile& file() const { return *file_; }
  // The dense layers' precision: "fp32", "bf16" or "int8" (Load's dense_precision).
  const std::string& dense_precision() const { return dense_precision_; }
  // Rows held over all tables.
  uint64_t rows() const;

  // Click probabilities of every example of `batch`.
  Status Predict(const data::Batch& batch, std::vector<float>* probabilities) const;

 private:
  struct Impl;
  ServingModel() = default;
  std::unique_ptr<embedding::ExportFile> file_;
  std::unique_ptr<Impl> impl_;
  int num_dense_ = 0;
  int num_sparse_ = 0;
  int64_t step_ = 0;
  int64_t written_ns_ = 0;  // the file's modification time
  std::string dense_precision_ = "fp32";
  data::Schema schema_;
};

}  // namespace ember::serving
