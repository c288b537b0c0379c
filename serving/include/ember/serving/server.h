// PredictionServer: `ember serve`'s HTTP endpoints over a ServingModel, on monitoring's
// HttpServer (so /metrics shares the serving port).
//
//   POST /v1/predict    {"rows": [[field, ...], ...]}  ->  {"probabilities": [...], "model": version}
//                       each row the training format's fields as strings, label omitted
//   POST /v1/recommend  {"items": [...], "k": 20}      ->  {"items": [...], "scores": [...]}
//                       (session models; a CTR model answers 400 saying so)
//   GET  /healthz       {"status": "ok", "model": path, "version": file name, "step": ..., "age_seconds": ...,
//                        "swaps": ..., "kind": ..., "rows": ...}
//   GET  /metrics       Prometheus text format
//
// Concurrent predict requests are batched: one worker runs a forward pass over every request
// queued (up to max_batch rows, waiting at most batch_wait_ms for requests being parsed, never
// for requests not yet received) and answers each with its slice; with one forward worker a
// pass of at most 64 rows runs OpenBLAS on one thread. Bad requests (not JSON, wrong shape,
// wrong field count, too many rows, bodies over max_body_bytes) get 4xx with {"error": "..."}
// naming the row or field; the server keeps serving.
#pragma once

#include <memory>
#include <string>

#include "ember/common/status.h"
#include "ember/monitoring/exporter.h"
#include "ember/serving/model.h"

namespace ember::serving {

struct ServeOptions {
  std::string bind = "127.0.0.1";
  int port = 8080;                     // 0: ephemeral
  int threads = 2;                     // I/O threads (parsing, responses); requests wait for their batch without one
  size_t max_body_bytes = 4 << 20;     // 1 KiB .. 1 GiB
  size_t max_rows_per_request = 4096;  // 1 .. 1M
  size_t max_batch = 1024;             // 1 .. 1M rows per forward pass
  size_t max_connections = 0;          // 0 (4096 within the open-files limit) .. 1M: HttpServerOptions
  double batch_wait_ms = 0.5;          // 0 .. 1000
  // Forward passes run at once (1 .. 64). With more than one, `ember serve` sets the BLAS and
  // LibTorch's intra-op pools to one thread each, so that passes run side by side instead of one
  // pass's threads waiting for each other: more rows per second at large requests, a higher p99
  // for single rows (docs/performance.md).
  int forward_workers = 1;
  std::string device = "cpu";            // --device: "cpu" or "cuda" (ServingModel::Load)
  std::string dense_precision = "fp32";  // --dense-precision: "fp32", "bf16" or "int8" (ServingModel::Load)
  double poll_seconds = 1;               // --poll-seconds: --model DIR is checked for newer models (0.05 .. 3600)
};
// Every option inside its documented range, or an error naming the flag.
Status ValidateServeOptions(const ServeOptions& o);

class PredictionServer {
 public:
  // `model` must outlive the server.
  PredictionServer(const ServingModel* model, ServeOptions options);
  PredictionServer(std::shared_ptr<const ServingModel> model, ServeOptions options);
  // Makes `next` the live model: requests parsed from now on use it; those already queued finish
  // on the model they began with, which goes when the last of them is answered. No request fails.
  void Swap(std::shared_ptr<const ServingModel> next);
  std::shared_ptr<const ServingModel> live() const;
  ~PredictionServer();
  Status Start();
  void Stop();
  int port() const;
  monitoring::Registry& registry();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ember::serving
