// Helpers shared by the export tests (export_test.cc, export_delta_test.cc).
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

#include "ember/embedding/types.h"

namespace ember::embedding::export_test {

// A per-process directory under the system's temp directory, created.
inline std::string Dir(const std::string& name) {
  auto d = std::filesystem::temp_directory_path() / ("ember_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::create_directories(d);
  return d.string();
}

// A table of 1000 rows updated by plain SGD at lr 1 (pushed gradients show in the rows at once).
inline TableSpec Spec(uint32_t id, int dim, TableKind kind = TableKind::kDense, bool frozen = false) {
  TableSpec s;
  s.id = id;
  s.dim = dim;
  s.rows = 1000;
  s.seed = 77 + id;
  s.init_scale = 0.5f;
  s.kind = kind;
  s.density = 0.5f;
  s.frozen = frozen;
  s.optimizer.kind = OptimizerKind::kSgd;
  s.optimizer.lr = 1.0f;
  return s;
}

}  // namespace ember::embedding::export_test
