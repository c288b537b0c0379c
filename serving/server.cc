#include "ember/serving/server.h"

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "ember/common/sysinfo.h"
#include "ember/serving/request_rows.h"

namespace ember::serving {
namespace {
using Clock = std::chrono::steady_clock;
using monitoring::HttpRequest;
using monitoring::HttpResponse;

// One forward pass for many requests. Submit() queues a request's batch and returns at once;
// the worker answers through the request's callback (no thread waits for its batch).
class Batcher {
 public:
  using Done = std::function<void(Status, std::vector<float>)>;

  Batcher(size_t max_batch, double wait_ms, int workers, monitoring::Recorder* recorder)
      : max_batch_(max_batch), wait_(std::chrono::duration<double, std::milli>(wait_ms)), recorder_(recorder) {
    blas_threads_ = workers == 1 ? BlasThreads() : 1;
    blas_now_ = blas_threads_;
    for (int i = 0; i < workers; ++i) workers_.emplace_back([this] { Run(); });
  }
  // Answers every queued request, then stops.
  ~Batcher() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& w : workers_) w.join();
  }

  // A request is being parsed: a batch waits for it (up to the wait) rather than go without it.
  // Every Arriving() is followed by one Submit() or Abandon().
  void Arriving() {
    std::lock_guard<std::mutex> lock(mu_);
    ++arriving_;
  }
  void Abandon() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      --arriving_;
    }
    cv_.notify_all();
  }
  // `model`: the model the request was parsed for (requests of a swapped-out model finish on it).
  void Submit(std::shared_ptr<const ServingModel> model, data::Batch batch, Done done) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      --arriving_;
      queued_rows_ += batch.size;
      queue_.push_back({std::move(model), std::move(batch), std::move(done)});
    }
    cv_.notify_all();  // a worker waiting for arriving requests, or an idle one
  }

 private:
  struct Pending {
    std::shared_ptr<const ServingModel> model;
    data::Batch batch;
    Done done;
  };

  void Run() {
    data::Batch merged;
    std::vector<float> probs;
    for (;;) {
      std::vector<Pending> take;
      size_t rows = 0;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (stop_ && queue_.empty()) return;
        // Requests being parsed may join, for at most the wait, unless the batch is already full.
        // Nothing else is waited for: a batch that waited for requests not yet sent would add the
        // wait to every answer, and under load the requests that arrive during a forward pass
        // batch themselves.
        const auto deadline = Clock::now() + wait_;
        while (!stop_ && arriving_ > 0 && queued_rows_ < max_batch_ &&
               cv_.wait_until(lock, deadline) != std::cv_status::timeout) {
        }
        while (!queue_.empty() && (take.empty() || (rows + queue_.front().batch.size <= max_batch_ &&
                                                    queue_.front().model == take[0].model))) {
          rows += queue_.front().batch.size;
          take.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
        queued_rows_ -= rows;
      }
      if (take.empty()) continue;  // another worker took them while this one waited
      SizeBlasThreads(rows);
      const Status st = Forward(take, &merged, &probs);
      recorder_->Observe("serve_batch_rows", static_cast<double>(merged.size));
      recorder_->AddCounter("serve_batches_total", 1);
      size_t off = 0;
      for (Pending& p : take) {
        std::vector<float> mine;
        if (st.ok())
          mine.assign(probs.begin() + static_cast<long>(off), probs.begin() + static_cast<long>(off + p.batch.size));
        off += p.batch.size;
        p.done(st, std::move(mine));
      }
    }
  }

  // Small passes run on one BLAS thread: their products are too small to share, and the other
  // threads would spin between them, taking the CPU that parsing and answering need.
  void SizeBlasThreads(size_t rows) {
    if (blas_threads_ <= 1) return;
    const int want = rows <= kSmallPass ? 1 : blas_threads_;
    if (want == blas_now_) return;
    SetBlasThreads(want);
    blas_now_ = want;
  }

  // Concatenates the requests' batches (field-major ids) and runs the model once.
  Status Forward(const std::vector<Pending>& take, data::Batch* merged, std::vector<float>* probs) {
    const ServingModel& model = *take[0].model;
    if (take.size() == 1) {
      merged->size = take[0].batch.size;
      return model.Predict(take[0].batch, probs);
    }
    size_t total = 0;
    for (const Pending& p : take) total += p.batch.size;
    const int D = model.num_dense(), F = model.num_sparse();
    merged->Reset(D, F, total, &take[0].batch.multi_hot);
    size_t off = 0;
    for (const Pending& p : take) {
      const data::Batch& b = p.batch;
      std::memcpy(merged->dense.data() + off * D, b.dense.data(), b.size * D * sizeof(float));
      for (int f = 0; f < F; ++f) {
        if (merged->is_multi_hot(f)) {  // append the bags, their offsets shifted
          data::Bags& into = merged->bags[static_cast<size_t>(f)];
          const data::Bags& from = b.bags[static_cast<size_t>(f)];
          const uint32_t base = static_cast<uint32_t>(into.ids.size());
          into.ids.insert(into.ids.end(), from.ids.begin(), from.ids.end());
          into.weights.insert(into.weights.end(), from.weights.begin(), from.weights.end());
          for (size_t i = 1; i < from.offsets.size(); ++i) into.offsets.push_back(base + from.offsets[i]);
          continue;
        }
        std::memcpy(merged->sparse.data() + static_cast<size_t>(f) * total + off, b.field(f),
                    b.size * sizeof(uint64_t));
      }
      off += b.size;
    }
    merged->size = total;
    return model.Predict(*merged, probs);
  }

  const size_t max_batch_;
  const std::chrono::duration<double, std::milli> wait_;
  monitoring::Recorder* recorder_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  size_t queued_rows_ = 0;
  size_t arriving_ = 0;
  static constexpr size_t kSmallPass = 64;
  int blas_threads_ = 1, blas_now_ = 1;  // OpenBLAS's own count; the count now (one forward worker)
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

// The parsed JSON body, or a 400 response.
bool ParseBody(const HttpRequest& req, nlohmann::json* body, HttpResponse* error) {
  try {
    *body = nlohmann::json::parse(req.body);
  } catch (const std::exception& e) {
    *error = HttpResponse::Error(400, std::string("body is not valid JSON in UTF-8: ") + e.what());
    return false;
  }
  if (!body->is_object()) {
    *error = HttpResponse::Error(400, "body must be a JSON object");
    return false;
  }
  return true;
}
}  // namespace

Status ValidateServeOptions(const ServeOptions& o) {
  auto range = [](const char* flag, double v, double lo, double hi) {
    if (v >= lo && v <= hi) return Status::Ok();
    std::ostringstream m;
    m << flag << " " << v << " is outside [" << lo << ", " << hi << "]";
    return Status::InvalidArgument(m.str());
  };
  EMBER_RETURN_IF_ERROR(range("--port", o.port, 0, 65535));
  EMBER_RETURN_IF_ERROR(range("--threads", o.threads, 1, 256));
  EMBER_RETURN_IF_ERROR(range("--max-body-bytes", static_cast<double>(o.max_body_bytes), 1024, 1 << 30));
  EMBER_RETURN_IF_ERROR(range("--max-rows", static_cast<double>(o.max_rows_per_request), 1, 1 << 20));
  EMBER_RETURN_IF_ERROR(range("--max-batch", static_cast<double>(o.max_batch), 1, 1 << 20));
  EMBER_RETURN_IF_ERROR(range("--max-connections", static_cast<double>(o.max_connections), 0, 1 << 20));
  EMBER_RETURN_IF_ERROR(range("--batch-wait-ms", o.batch_wait_ms, 0, 1000));
  EMBER_RETURN_IF_ERROR(range("--forward-workers", o.forward_workers, 1, 64));
  EMBER_RETURN_IF_ERROR(range("--poll-seconds", o.poll_seconds, 0.05, 3600));
  if (o.device != "cpu" && o.device != "cuda")
    return Status::InvalidArgument("--device '" + o.device + "' is not one of cpu, cuda");
  return Status::Ok();
}

struct PredictionServer::Impl {
  mutable std::mutex model_mu;
  std::shared_ptr<const ServingModel> live;  // swapped whole; requests hold the one they began on
  uint64_t swaps = 0;
  ServeOptions options;
  std::shared_ptr<const ServingModel> Live() const {
    std::lock_guard<std::mutex> lock(model_mu);
    return live;
  }
  monitoring::MetricsExporter metrics{"serve", 0};
  std::unique_ptr<monitoring::HttpServer> server;
  std::unique_ptr<Batcher> batcher;

  // Validates and queues a predict request; the batcher answers it.
  void Predict(const HttpRequest& req, const monitoring::HttpServer::Responder& respond) {
    data::Batch batch;
    std::shared_ptr<const ServingModel> model = Live();
    batcher->Arriving();
    HttpResponse error;
    try {
      error = ParsePredict(req, *model, &batch);
    } catch (...) {
      batcher->Abandon();
      throw;
    }
    if (error.status != 200) {
      batcher->Abandon();
      respond(std::move(error));
      return;
    }
    const auto start = Clock::now();
    monitoring::Registry* reg = &metrics.registry();
    const std::string version = model->version();
    batcher->Submit(
        std::move(model), std::move(batch), [respond, start, reg, version](Status st, std::vector<float> probs) {
          if (!st.ok()) {
            respond(HttpResponse::Error(500, st.message()));
            return;
          }
          reg->Observe("serve_predict_seconds", std::chrono::duration<double>(Clock::now() - start).count());
          reg->AddCounter("serve_predictions_total", static_cast<double>(probs.size()));
          HttpResponse r;
          r.body = nlohmann::json{{"probabilities", probs}, {"model", version}}.dump() + "\n";
          respond(std::move(r));
        });
  }

  // The request's rows as a batch, or a 4xx response (status 200 = parsed).
  HttpResponse ParsePredict(const HttpRequest& req, const ServingModel& model, data::Batch* batch) {
    if (req.content_type.rfind("text/tab-separated-values", 0) == 0) {  // rows as lines, no JSON
      Status st = TsvRowsToBatch(req.body, model.schema(), options.max_rows_per_request, batch);
      if (st.code() == StatusCode::kFailedPrecondition) return HttpResponse::Error(413, st.message());
      if (!st.ok()) return HttpResponse::Error(400, st.message());
      return HttpResponse{};
    }
    nlohmann::json body;
    HttpResponse error;
    if (!ParseBody(req, &body, &error)) return error;
    if (!body.contains("rows") || !body["rows"].is_array())
      return HttpResponse::Error(400,
                                 "body must have \"rows\": an array of rows (arrays of strings, or objects by column)");
    const auto& jrows = body["rows"];
    if (jrows.empty()) return HttpResponse::Error(400, "\"rows\" is empty");
    if (jrows.size() > options.max_rows_per_request)
      return HttpResponse::Error(413, "too many rows: " + std::to_string(jrows.size()) + " (at most " +
                                          std::to_string(options.max_rows_per_request) + " per request)");
    Status st = JsonRowsToBatch(jrows, model.schema(), batch);
    if (!st.ok()) return HttpResponse::Error(400, st.message());
    return HttpResponse{};
  }

  HttpResponse Recommend(const HttpRequest& req) {
    nlohmann::json body;
    HttpResponse error;
    if (!ParseBody(req, &body, &error)) return error;
    if (!body.contains("items") || !body["items"].is_array())
      return HttpResponse::Error(400, "body must have \"items\": the session's items so far");
    if (body.contains("k") &&
        (!body["k"].is_number_integer() || body["k"].get<int64_t>() < 1 || body["k"].get<int64_t>() > 1000))
      return HttpResponse::Error(400, "\"k\" must be an integer in [1, 1000]");
    return HttpResponse::Error(400, "this model (kind " + Live()->kind() +
                                        ") predicts click probabilities at /v1/predict; /v1/recommend needs an "
                                        "exported session-recommendation model");
  }
};

PredictionServer::PredictionServer(const ServingModel* model, ServeOptions options)
    : PredictionServer(std::shared_ptr<const ServingModel>(model, [](const ServingModel*) {}), std::move(options)) {}

PredictionServer::PredictionServer(std::shared_ptr<const ServingModel> model, ServeOptions options)
    : impl_(std::make_unique<Impl>()) {
  impl_->live = std::move(model);
  impl_->options = std::move(options);
}

void PredictionServer::Swap(std::shared_ptr<const ServingModel> next) {
  auto& reg = impl_->metrics.registry();
  reg.SetGauge("serve_model_rows", static_cast<double>(next->rows()));
  reg.SetGauge("serve_model_bytes", static_cast<double>(next->file().size()));
  reg.SetGauge("serving_model_step", static_cast<double>(next->step()));
  reg.AddCounter("serving_swaps_total", 1);
  std::shared_ptr<const ServingModel> old;
  {
    std::lock_guard<std::mutex> lock(impl_->model_mu);
    old = std::move(impl_->live);
    impl_->live = std::move(next);
    ++impl_->swaps;
  }
  // `old` goes when its last queued request is answered (the batcher holds it until then).
}

std::shared_ptr<const ServingModel> PredictionServer::live() const { return impl_->Live(); }

PredictionServer::~PredictionServer() { Stop(); }

Status PredictionServer::Start() {
  EMBER_RETURN_IF_ERROR(ValidateServeOptions(impl_->options));
  auto& reg = impl_->metrics.registry();
  {
    const auto live = impl_->Live();
    reg.SetGauge("serve_model_rows", static_cast<double>(live->rows()));
    reg.SetGauge("serve_model_bytes", static_cast<double>(live->file().size()));
    reg.SetGauge("serving_model_step", static_cast<double>(live->step()));
  }
  reg.AddCounter("serving_swaps_total", 0);
  reg.AddCounter("serving_failed_loads_total", 0);
  // The live model's age: seconds since its file was written (export time), at scrape time.
  Impl* self = impl_.get();
  reg.AddCollector(
      [self](monitoring::Recorder& r) { r.SetGauge("serving_model_age_seconds", self->Live()->age_seconds()); });
  impl_->batcher = std::make_unique<Batcher>(impl_->options.max_batch, impl_->options.batch_wait_ms,
                                             impl_->options.forward_workers, &reg);
  monitoring::HttpServerOptions o;
  o.bind = impl_->options.bind;
  o.port = impl_->options.port;
  o.threads = impl_->options.threads;
  o.max_body_bytes = impl_->options.max_body_bytes;
  o.max_connections = impl_->options.max_connections;
  o.recorder = &reg;
  impl_->server = std::make_unique<monitoring::HttpServer>(o);
  Impl* impl = impl_.get();
  impl_->server->RouteAsync(
      "POST", "/v1/predict",
      [impl](monitoring::HttpRequest r, monitoring::HttpServer::Responder respond) { impl->Predict(r, respond); });
  impl_->server->Route("POST", "/v1/recommend", [impl](const HttpRequest& r) { return impl->Recommend(r); });
  impl_->server->Route("GET", "/healthz", [impl](const HttpRequest&) {
    HttpResponse r;
    const auto live = impl->Live();
    uint64_t swaps;
    {
      std::lock_guard<std::mutex> lock(impl->model_mu);
      swaps = impl->swaps;
    }
    r.body = nlohmann::json{{"status", "ok"},
                            {"model", live->file().path()},
                            {"version", live->version()},
                            {"step", live->step()},
                            {"age_seconds", live->age_seconds()},
                            {"swaps", swaps},
                            {"kind", live->kind()},
                            {"rows", live->rows()}}
                 .dump() +
             "\n";
    return r;
  });
  monitoring::AddMetricsRoute(impl_->server.get(), &reg);
  return impl_->server->Start();
}

void PredictionServer::Stop() {
  if (impl_->server) impl_->server->Stop();
  impl_->batcher.reset();
}

int PredictionServer::port() const { return impl_->server ? impl_->server->port() : 0; }

monitoring::Registry& PredictionServer::registry() { return impl_->metrics.registry(); }

}  // namespace ember::serving
