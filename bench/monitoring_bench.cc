// Training step time with monitoring on against off, interleaved in one process.
//
// Two identical trainers (same config, seeds and batches, each with its own in-process PS) take
// turns in blocks of --steps steps, the order alternating per block: "off" records into the
// no-op recorder; "on" records into a Registry served at /metrics by the HTTP server, with the
// table collector, and a scraper thread GETs /metrics every --scrape-interval seconds. Cross-
// process runs on this machine spread by +-15%; alternating blocks in one process cancel drift.
// Prints a table and writes --json (per-block seconds per step, medians, the ratio on/off).
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <boost/asio.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "ember/data/criteo.h"
#include "ember/monitoring/exporter.h"
#include "ember/ps/in_process.h"
#include "ember/workers/trainer.h"

namespace {
using namespace ember;
using Clock = std::chrono::steady_clock;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0 : (n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2);
}

// User + system CPU seconds of this process (all threads: the HTTP server's included).
double CpuSeconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

// GETs /metrics every `interval` until stopped; counts scrapes and the last size.
void Scrape(int port, double interval, const std::atomic<bool>* stop, int* scrapes, size_t* bytes) {
  namespace asio = boost::asio;
  const std::string req = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  while (!stop->load()) {
    try {
      asio::io_context ioc;
      asio::ip::tcp::socket s(ioc);
      s.connect({asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)});
      asio::write(s, asio::buffer(req));
      std::string body;
      boost::system::error_code ec;
      asio::read(s, asio::dynamic_buffer(body), ec);  // until the server closes
      *bytes = body.size();
      ++*scrapes;
    } catch (const std::exception&) {
    }
    for (double waited = 0; waited < interval && !stop->load(); waited += 0.05)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Training step time, monitoring on vs off (interleaved)"};
  std::string data_path, json_path;
  int blocks = 40, steps = 10, batches = 100;
  size_t batch_size = 1024;
  double scrape_interval = 1.0;
  app.add_option("--data", data_path, "Criteo-format training file")->required();
  app.add_option("--blocks", blocks, "Blocks per trainer")->capture_default_str();
  app.add_option("--steps", steps, "Steps per block")->capture_default_str();
  app.add_option("--batches", batches, "Distinct batches read (cycled)")->capture_default_str();
  app.add_option("--batch-size", batch_size, "Examples per step")->capture_default_str();
  app.add_option("--scrape-interval", scrape_interval, "Seconds between scrapes")->capture_default_str();
  app.add_option("--json", json_path, "Write the results as JSON");
  CLI11_PARSE(app, argc, argv);

  data::CriteoOptions ro;
  ro.path = data_path;
  ro.batch_size = batch_size;
  auto reader = data::CriteoReader::Open(ro);
  if (!reader.ok()) {
    std::fprintf(stderr, "%s\n", reader.status().ToString().c_str());
    return 1;
  }
  std::vector<data::Batch> data;
  for (int i = 0; i < batches; ++i) {
    data::Batch b;
    auto got = (*reader)->Next(&b);
    if (!got.ok() || !*got) break;
    data.push_back(std::move(b));
  }
  if (data.empty()) {
    std::fprintf(stderr, "no batches in %s\n", data_path.c_str());
    return 1;
  }

  workers::TrainerConfig tc;  // the demo's model (examples/synthetic_dlrm.toml), hashed rows
  tc.model.kind = models::ModelKind::kDlrm;
  tc.model.bottom_mlp = {512, 256, 64};
  tc.model.top_mlp = {512, 256};
  tc.embedding.method = embedding::Method::kHash;
  tc.embedding.rows = 200000;
  tc.embedding.dim = 16;
  tc.embedding.optimizer.lr = 0.05f;
  for (int f = 0; f < 26; ++f) tc.fields.push_back({"C" + std::to_string(f + 1), 0});

  monitoring::MetricsExporter exporter("train", 0);
  if (auto st = exporter.Start({}); !st.ok()) {
    std::fprintf(stderr, "%s\n", st.ToString().c_str());
    return 1;
  }
  ps::InProcessClient ps_off(1), ps_on(1);
  workers::LocalCollective coll;
  auto off = workers::Trainer::Create(tc, &ps_off, &coll);
  auto on = workers::Trainer::Create(tc, &ps_on, &coll, &exporter.registry());
  if (!off.ok() || !on.ok()) {
    std::fprintf(stderr, "trainer: %s\n", (off.ok() ? on.status() : off.status()).ToString().c_str());
    return 1;
  }
  const auto infos = (*on)->TableInfos();
  exporter.registry().AddCollector([&ps_on, infos](monitoring::Recorder& r) {
    auto stats = ps_on.Stats();
    if (stats.ok()) workers::RecordTableMetrics(*stats, infos, &r);
  });
  std::atomic<bool> stop{false};
  int scrapes = 0;
  size_t bytes = 0;
  std::thread scraper(Scrape, exporter.port(), scrape_interval, &stop, &scrapes, &bytes);

  size_t cursor[2] = {0, 0};
  workers::Trainer* trainers[2] = {off->get(), on->get()};
  // Seconds per step of n steps of trainer `which`; *cpu gets CPU seconds per step.
  auto run = [&](int which, int n, double* cpu) {
    const auto start = Clock::now();
    const double cpu_start = CpuSeconds();
    for (int s = 0; s < n; ++s) {
      double loss = 0;
      auto st = trainers[which]->TrainStep(data[cursor[which]++ % data.size()], &loss);
      if (!st.ok()) {
        std::fprintf(stderr, "step: %s\n", st.ToString().c_str());
        std::exit(1);
      }
    }
    *cpu = (CpuSeconds() - cpu_start) / n;
    return std::chrono::duration<double>(Clock::now() - start).count() / n;
  };
  double cpu = 0;
  run(0, 10, &cpu);  // warm-up: first rows created, allocator settled
  run(1, 10, &cpu);
  std::vector<double> t_off, t_on, ratios, cpu_ratios;
  std::printf("block  order    off ms/step  on ms/step  on/off  cpu on/off\n");
  for (int b = 0; b < blocks; ++b) {
    double t[2], c[2];
    const int first = b % 2;
    t[first] = run(first, steps, &c[first]);
    t[1 - first] = run(1 - first, steps, &c[1 - first]);
    t_off.push_back(t[0]);
    t_on.push_back(t[1]);
    ratios.push_back(t[1] / t[0]);
    cpu_ratios.push_back(c[1] / c[0]);
    std::printf("%5d  %-7s  %11.3f  %10.3f  %6.3f  %10.3f\n", b, first ? "on,off" : "off,on", t[0] * 1e3, t[1] * 1e3,
                t[1] / t[0], c[1] / c[0]);
    std::fflush(stdout);
  }
  stop = true;
  scraper.join();
  // The recording itself: the 16 calls one training step makes, into the live registry.
  const int reps = 20000;
  const monitoring::Labels phase = {{"phase", "train"}};
  auto& reg = exporter.registry();
  const auto rec_start = Clock::now();
  for (int i = 0; i < reps; ++i) {
    reg.Observe("ps_pull_seconds", 1e-4, phase);
    reg.AddCounter("ps_pull_rows_total", 1000, phase);
    reg.AddCounter("ps_pull_bytes_total", 1e5, phase);
    reg.AddCounter("lookup_keys_total", 26624, phase);
    reg.AddCounter("lookup_unique_keys_total", 9000, phase);
    reg.SetGauge("lookup_keys_per_batch", 26624);
    reg.SetGauge("lookup_unique_ratio", 0.3);
    reg.Observe("ps_push_seconds", 1e-4);
    reg.AddCounter("ps_push_rows_total", 1000);
    reg.AddCounter("ps_push_bytes_total", 1e5);
    reg.AddCounter("train_samples_total", 1024);
    reg.AddCounter("train_steps_total", 1);
    reg.Observe("train_step_seconds", 0.03);
    reg.Observe("ps_pull_seconds", 1e-4, phase);  // as often as the pulls of evaluation
    reg.AddCounter("ps_pull_rows_total", 1000, phase);
    reg.AddCounter("lookup_keys_total", 26624, phase);
  }
  const double record_us = std::chrono::duration<double>(Clock::now() - rec_start).count() / reps * 1e6;
  const double m_off = Median(t_off), m_on = Median(t_on), m_ratio = Median(ratios), m_cpu_ratio = Median(cpu_ratios);
  std::printf(
      "median ms/step: off %.3f, on %.3f; median paired ratio on/off %.4f (step time; > 1 = slower), of CPU time "
      "%.4f; %d scrapes of %zu bytes\n",
      m_off * 1e3, m_on * 1e3, m_ratio, m_cpu_ratio, scrapes, bytes);
  std::printf("recording one step's 16 metrics: %.2f us (%.4f%% of the median step)\n", record_us,
              100 * record_us * 1e-6 / m_off);
  if (!json_path.empty()) {
    nlohmann::json j = {{"off_seconds_per_step", t_off},
                        {"on_seconds_per_step", t_on},
                        {"paired_ratios", ratios},
                        {"paired_cpu_ratios", cpu_ratios},
                        {"median_cpu_ratio", m_cpu_ratio},
                        {"median_off", m_off},
                        {"median_on", m_on},
                        {"median_ratio", m_ratio},
                        {"batch_size", batch_size},
                        {"steps_per_block", steps},
                        {"scrapes", scrapes},
                        {"scrape_bytes", bytes},
                        {"scrape_interval_s", scrape_interval},
                        {"record_us_per_step", record_us}};
    std::ofstream(json_path) << j.dump(2) << "\n";
  }
  return 0;
}
