#include "ember/monitoring/exporter.h"

#include <sys/resource.h>

#include <chrono>

#include "ember/common/sysinfo.h"

namespace ember::monitoring {
namespace {
// Seconds: 10 µs .. 10 s, about 2.5x apart (PS calls are µs in-process, ms over the network).
const std::vector<double> kLatencyBuckets = {1e-5,  2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01,
                                             0.025, 0.05,   0.1,  0.25, 0.5,    1,    2.5,  5,      10};
}  // namespace

void DescribeMetrics(Registry* r) {
  using T = MetricType;
  // Training.
  r->Describe("train_samples_total", T::kCounter, "Training examples consumed.");
  r->Describe("train_steps_total", T::kCounter, "Training steps taken.");
  r->Describe("train_step_seconds", T::kHistogram, "Wall time of one training step.", kLatencyBuckets);
  r->Describe("train_samples_per_second", T::kGauge,
              "Training throughput over the last second (per epoch at its end).");
  r->Describe("train_loss", T::kGauge, "Moving average (0.98) of the training log loss.");
  r->Describe("train_epoch_loss", T::kGauge, "Mean training log loss of the last finished epoch.");
  r->Describe("train_epoch", T::kGauge, "Current epoch, from 1.");
  r->Describe("train_step", T::kGauge, "Global step of this worker.");
  r->Describe("train_staleness_steps", T::kGauge,
              "Steps of the slowest worker's pushes the rows just read may lack (0 in sync mode).");
  r->Describe("train_staleness_bound", T::kGauge, "Allowed staleness in steps (0 sync, train.staleness, +Inf async).");
  r->Describe("eval_auc", T::kGauge, "AUC of the last evaluation.");
  r->Describe("eval_logloss", T::kGauge, "Log loss of the last evaluation.");
  r->Describe("eval_samples", T::kGauge, "Examples scored by the last evaluation.");
  // Lookups and the parameter server.
  r->Describe("lookup_keys_total", T::kCounter, "Row keys looked up (every probe of every id).");
  r->Describe("lookup_unique_keys_total", T::kCounter, "Distinct row keys per batch, summed over batches.");
  r->Describe("lookup_keys_per_batch", T::kGauge, "Row keys of the last training batch.");
  r->Describe("lookup_unique_ratio", T::kGauge, "Distinct over all row keys in the last training batch.");
  r->Describe("ps_pull_seconds", T::kHistogram, "Latency of one pull (all shards) of a batch's rows.", kLatencyBuckets);
  r->Describe("ps_push_seconds", T::kHistogram, "Latency of one push (all shards) of a batch's gradients.",
              kLatencyBuckets);
  r->Describe("ps_pull_rows_total", T::kCounter, "Rows pulled.");
  r->Describe("ps_push_rows_total", T::kCounter, "Gradient rows pushed.");
  r->Describe("ps_pull_bytes_total", T::kCounter, "Keys and row values moved by pulls.");
  r->Describe("ps_push_bytes_total", T::kCounter, "Keys and gradient values moved by pushes.");
  // Tables.
  r->Describe("table_rows", T::kGauge, "Rows held by a table (all shards).");
  r->Describe("table_values", T::kGauge, "Weight values held by a table (sparse tables: kept entries).");
  r->Describe("table_bytes", T::kGauge, "Memory held by a table: rows, optimizer state, index.");
  r->Describe("table_param_bytes", T::kGauge, "Parameter bytes held by a table (weights at their precision, masks).");
  r->Describe("table_full_bytes", T::kGauge, "Bytes of the full fp32 tables of the fields a table serves.");
  r->Describe("table_compression_ratio", T::kGauge, "table_full_bytes over table_param_bytes.");
  r->Describe("table_capacity_rows", T::kGauge, "Rows a hashed table's ids are hashed into.");
  r->Describe("table_collision_rate", T::kGauge,
              "Estimated share of a hashed table's ids that share their row with another id.");
  r->Describe("embedding_rows", T::kGauge, "Rows held over all tables.");
  r->Describe("embedding_bytes", T::kGauge, "Memory held by all tables.");
  r->Describe("embedding_param_bytes", T::kGauge, "Parameter bytes held by all tables.");
  r->Describe("embedding_full_bytes", T::kGauge, "Bytes of the full fp32 tables of every field.");
  r->Describe("embedding_compression_ratio", T::kGauge, "embedding_full_bytes over the parameter bytes held.");
  r->Describe("embedding_budget_bytes", T::kGauge, "The embedding.budget in bytes (0 = none).");
  r->Describe("ps_server_connections_total", T::kCounter, "Connections a PS server accepted.");
  r->Describe("ps_server_auth_failures_total", T::kCounter,
              "PS connections refused by the handshake (no hello, wrong secret, unknown worker).");
  r->Describe("ps_server_refused_frames_total", T::kCounter,
              "Requests of authenticated PS peers answered with an error (malformed or refused).");
  r->Describe("ps_server_timeouts_total", T::kCounter, "PS connections closed by a read deadline.");
  r->Describe("ps_server_handshake_evictions_total", T::kCounter,
              "PS connections closed in their handshake to make room for a new one (past 1024 handshaking).");
  r->Describe("ps_server_buffered_bytes", T::kGauge, "Request payload bytes a PS server holds for its connections.");
  r->Describe("shard_rows", T::kGauge, "Rows held by a shard, over all tables.");
  r->Describe("shard_skew", T::kGauge, "Rows of the fullest shard over the mean (1 = even).");
  // Compression methods.
  r->Describe("dsl_pruned_values_total", T::kCounter, "Values pruned by Dynamic Sparse Learning rounds.");
  r->Describe("dsl_regrown_values_total", T::kCounter, "Values regrown by Dynamic Sparse Learning rounds.");
  r->Describe("dsl_rounds_total", T::kCounter, "Prune-and-grow rounds run.");
  r->Describe("dsl_prune_fraction", T::kGauge, "Fraction of kept values the last round pruned and regrew.");
  r->Describe("optembed_threshold", T::kGauge, "OptEmbed's learned row-pruning threshold of a field.");
  r->Describe("optembed_kept_rows", T::kGauge, "Rows of a field OptEmbed's search keeps.");
  r->Describe("optembed_pruned_rows", T::kGauge, "Rows of a field OptEmbed's search prunes.");
  r->Describe("optembed_width", T::kGauge, "Embedding width OptEmbed's search chose for a field.");
  r->Describe("optembed_search_val_auc", T::kGauge, "Validation AUC of OptEmbed's best architecture.");
  // Serving and HTTP.
  r->Describe("serve_predictions_total", T::kCounter, "Rows scored by /v1/predict.");
  r->Describe("serve_batches_total", T::kCounter, "Forward passes run by the batcher.");
  r->Describe("serve_batch_rows", T::kHistogram, "Rows per forward pass (concurrent requests batched).",
              {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096});
  r->Describe("serve_predict_seconds", T::kHistogram,
              "Time a predict request waits for and spends in its batched forward pass.", kLatencyBuckets);
  r->Describe("serve_model_rows", T::kGauge, "Embedding rows of the served model.");
  r->Describe("serve_model_bytes", T::kGauge, "Size of the served model file.");
  r->Describe("http_requests_total", T::kCounter, "HTTP requests answered, by path and status code.");
  r->Describe("http_request_seconds", T::kHistogram, "HTTP request latency (parse to response).", kLatencyBuckets);
  r->Describe("http_connections_open", T::kGauge, "HTTP connections open now.");
  r->Describe("http_connections_evicted_total", T::kCounter,
              "HTTP connections closed at the connection cap to make room (the longest waiting for a request).");
  r->Describe("http_connections_refused_total", T::kCounter,
              "HTTP connections closed unanswered at the connection cap (every open one busy, or 64 closing).");
  r->Describe("http_accept_errors_total", T::kCounter,
              "Failed accepts for want of descriptors or memory (accepting resumes 50 ms later).");
  // Process.
  r->Describe("process_resident_bytes", T::kGauge, "Resident memory of this process.");
  r->Describe("process_peak_resident_bytes", T::kGauge, "Peak resident memory of this process.");
  r->Describe("process_cpu_seconds_total", T::kCounter, "User and system CPU time of this process.");
  r->Describe("process_start_time_seconds", T::kGauge, "Start of this process, in seconds since the epoch.");
  r->Describe("info", T::kGauge, "Role, rank and version of this process (always 1).");
}

void AddProcessCollector(Registry* registry, const std::string& role, int rank) {
  const double start = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  registry->SetGauge("info", 1, {{"role", role}, {"rank", std::to_string(rank)}, {"version", EMBER_VERSION}});
  registry->SetGauge("process_start_time_seconds", start);
  auto cpu_seen = std::make_shared<double>(0);
  registry->AddCollector([cpu_seen](Recorder& r) {
    r.SetGauge("process_resident_bytes", static_cast<double>(CurrentRssBytes()));
    r.SetGauge("process_peak_resident_bytes", static_cast<double>(PeakRssBytes()));
    rusage u{};
    if (::getrusage(RUSAGE_SELF, &u) == 0) {
      const double cpu = static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
                         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
      r.AddCounter("process_cpu_seconds_total", std::max(0.0, cpu - *cpu_seen));
      *cpu_seen = std::max(cpu, *cpu_seen);
    }
  });
}

void AddMetricsRoute(HttpServer* server, Registry* registry) {
  server->Route("GET", "/metrics", [registry](const HttpRequest&) {
    HttpResponse r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = registry->Scrape();
    return r;
  });
}

MetricsExporter::MetricsExporter(const std::string& role, int rank) {
  DescribeMetrics(&registry_);
  AddProcessCollector(&registry_, role, rank);
}

MetricsExporter::~MetricsExporter() { Stop(); }

Status MetricsExporter::Start(HttpServerOptions options) {
  options.recorder = &registry_;
  server_ = std::make_unique<HttpServer>(options);
  AddMetricsRoute(server_.get(), &registry_);
  server_->Route("GET", "/healthz", [](const HttpRequest&) {
    HttpResponse r;
    r.body = "{\"status\": \"ok\"}\n";
    return r;
  });
  Status st = server_->Start();
  if (!st.ok()) server_.reset();
  return st;
}

void MetricsExporter::Stop() {
  if (server_) server_->Stop();
}

}  // namespace ember::monitoring
