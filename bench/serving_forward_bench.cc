// Time of one ServingModel::Predict (lookups and the dense forward, no HTTP) by batch size and
// dense precision, on rows of a tab-separated file: where a serving request's CPU time goes
// before any network, parsing or queueing.
//
//   serving_forward_bench --model M.embx --rows body.tsv [--label-first] [--batches 1,4,16,64,256]
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "ember/common/sysinfo.h"
#include "ember/serving/model.h"
#include "ember/serving/request_rows.h"

using namespace ember;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  CLI::App app{"ServingModel::Predict time by batch size and dense precision"};
  std::string model_path, rows_path, precisions = "fp32,bf16,int8";
  std::vector<int> batches = {1, 4, 16, 64, 256};
  double seconds = 1.0;
  app.add_option("--model", model_path, "Exported model (.embx)")->required();
  bool label_first = false;
  app.add_option("--rows", rows_path, "Tab-separated rows, as a request sends them")->required();
  app.add_flag("--label-first", label_first, "The rows start with a label column (ember datagen's files)");
  app.add_option("--batches", batches, "Batch sizes")->delimiter(',')->capture_default_str();
  app.add_option("--precisions", precisions, "Dense precisions")->capture_default_str();
  app.add_option("--seconds", seconds, "Seconds per case")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  std::ifstream in(rows_path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line) && lines.size() < 4096;)
    lines.push_back(label_first ? line.substr(line.find('\t') + 1) : line);
  if (lines.empty()) {
    std::fprintf(stderr, "%s: no rows\n", rows_path.c_str());
    return 1;
  }
  std::printf("| dense | batch | us per pass | rows/s |\n|---|---:|---:|---:|\n");
  std::stringstream ps(precisions);
  for (std::string p; std::getline(ps, p, ',');) {
    auto model = serving::ServingModel::Load(model_path, "cpu", p);
    if (!model.ok()) {
      std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
      return 1;
    }
    for (int b : batches) {
      std::string body;
      for (int i = 0; i < b; ++i) body += lines[static_cast<size_t>(i) % lines.size()] + "\n";
      data::Batch batch;
      Status st = serving::TsvRowsToBatch(body, (*model)->schema(), static_cast<size_t>(b), &batch);
      if (!st.ok()) {
        std::fprintf(stderr, "%s\n", st.ToString().c_str());
        return 1;
      }
      std::vector<float> probs;
      for (int i = 0; i < 3; ++i) (void)(*model)->Predict(batch, &probs);
      int64_t passes = 0;
      const auto start = Clock::now();
      double elapsed = 0;
      while (elapsed < seconds) {
        for (int i = 0; i < 8; ++i) (void)(*model)->Predict(batch, &probs);
        passes += 8;
        elapsed = std::chrono::duration<double>(Clock::now() - start).count();
      }
      std::printf("| %s | %d | %.1f | %.3g |\n", p.c_str(), b, elapsed / passes * 1e6, passes * b / elapsed);
      std::fflush(stdout);
    }
  }
  return 0;
}
