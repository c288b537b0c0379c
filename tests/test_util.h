// Helpers shared by the torch tests: a per-process temporary directory and a Criteo reader.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "ember/data/criteo.h"

namespace ember::testing_util {

// <tmp>/ember_<name>_<pid>, created.
inline std::string TempDir(const std::string& name) {
  auto d = std::filesystem::temp_directory_path() / ("ember_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::create_directories(d);
  return d.string();
}

inline std::unique_ptr<data::BatchReader> Reader(const std::string& path, size_t batch) {
  data::CriteoOptions o;
  o.path = path;
  o.batch_size = batch;
  return std::move(data::CriteoReader::Open(o)).value();
}

}  // namespace ember::testing_util
