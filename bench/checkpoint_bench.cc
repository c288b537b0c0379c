// Checkpoint write and restore throughput against a plain copy of the same bytes.
//
// Fills an in-process PS (--shards shards) with --rows rows of a --dim-wide table trained a step
// (row-wise Adagrad state), then, --reps times, in one run:
//   write:   SaveShards into a fresh directory (serialise, CRC, temp file, fsync, rename);
//   restore: LoadShards of those files into --restore-shards shards (read, verify, re-place);
//   copy:    the same files read and written to new names with fsync (the storage's floor).
// Prints MB/s of each (bytes = the shard files) and the ratios to the plain copy.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "ember/common/file.h"
#include "ember/ps/in_process.h"

namespace {
using namespace ember;
using Clock = std::chrono::steady_clock;
double Seconds(Clock::time_point a) { return std::chrono::duration<double>(Clock::now() - a).count(); }
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"checkpoint write/restore MB/s against a plain file copy"};
  uint64_t rows = 2000000;
  int dim = 16, shards = 2, restore_shards = 3, reps = 3;
  std::string dir = "bench/results/ckpt-bench", json_out;
  app.add_option("--rows", rows)->capture_default_str();
  app.add_option("--dim", dim)->capture_default_str();
  app.add_option("--shards", shards)->capture_default_str();
  app.add_option("--restore-shards", restore_shards)->capture_default_str();
  app.add_option("--reps", reps)->capture_default_str();
  app.add_option("--dir", dir)->capture_default_str();
  app.add_option("--json", json_out, "Write the results as JSON");
  CLI11_PARSE(app, argc, argv);

  ps::InProcessClient ps(shards);
  embedding::TableSpec spec;
  spec.id = 0;
  spec.dim = dim;
  EMBER_CHECK(ps.CreateTables({spec}).ok());
  const size_t chunk = 100000;
  std::vector<uint64_t> keys;
  std::vector<float> out, grads;
  for (uint64_t b = 0; b < rows; b += chunk) {
    keys.clear();
    for (uint64_t k = b; k < std::min(rows, b + chunk); ++k) keys.push_back(embedding::MakeKey(0, k));
    out.resize(keys.size() * dim);
    grads.assign(keys.size() * dim, 0.01f);
    EMBER_CHECK(ps.Pull({{0, keys.data(), keys.size(), out.data()}}).ok());
    EMBER_CHECK(ps.Push({{0, keys.data(), keys.size(), grads.data()}}).ok());
  }
  std::printf(
      "| rep | checkpoint MB | write MB/s | restore MB/s | plain copy MB/s | write / copy | restore / copy |\n"
      "|---|---|---|---|---|---|---|\n");
  nlohmann::json results = nlohmann::json::array();
  for (int r = 0; r < reps; ++r) {
    const std::string d = dir + "/rep" + std::to_string(r);
    std::filesystem::remove_all(d);
    EMBER_CHECK(MakeDirs(d).ok());
    auto t = Clock::now();
    auto files = ps.SaveShards(d);
    EMBER_CHECK(files.ok()) << files.status().ToString();
    EMBER_CHECK(SyncDir(d).ok());
    const double write_s = Seconds(t);
    uint64_t bytes = 0;
    for (const auto& f : *files) bytes += f.bytes;
    ps::InProcessClient other(restore_shards);
    t = Clock::now();
    EMBER_CHECK(other.LoadShards(d, *files).ok());
    const double restore_s = Seconds(t);
    t = Clock::now();
    for (const auto& f : *files) {
      auto data = ReadFile(d + "/" + f.name);
      EMBER_CHECK(data.ok());
      EMBER_CHECK(WriteFileAtomic(d + "/copy-" + f.name, *data).ok());
    }
    const double copy_s = Seconds(t);
    const double mb = static_cast<double>(bytes) / 1e6;
    std::printf("| %d | %.1f | %.0f | %.0f | %.0f | %.2f | %.2f |\n", r, mb, mb / write_s, mb / restore_s, mb / copy_s,
                copy_s / write_s, copy_s / restore_s);
    results.push_back({{"rep", r},
                       {"bytes", bytes},
                       {"write_mb_s", mb / write_s},
                       {"restore_mb_s", mb / restore_s},
                       {"copy_mb_s", mb / copy_s}});
    std::filesystem::remove_all(d);
  }
  std::printf(
      "(%llu rows x %d floats + row-wise Adagrad state on %d shards, restored onto %d; ratios are speed "
      "relative to the plain copy)\n",
      static_cast<unsigned long long>(rows), dim, shards, restore_shards);
  if (!json_out.empty()) {
    EMBER_CHECK(WriteFileAtomic(json_out, results.dump(2) + "\n").ok());
  }
  return 0;
}
