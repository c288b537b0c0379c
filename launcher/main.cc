// ember: the command-line entry point. Only this file reads argv and the environment.
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdlib>
#include <iostream>

#include "ember/data/sessions.h"
#include "ember/launcher/commands.h"
#include "step_hooks.h"

namespace {
int Fail(const ember::Status& st) {
  std::cerr << "ember: error: " << st.ToString() << "\n";
  return 1;
}

// Exit status of a command that computed metrics, writing them as JSON when asked.
int Report(const ember::Result<ember::launcher::RunMetrics>& metrics, const std::string& metrics_json) {
  if (!metrics.ok()) return Fail(metrics.status());
  if (!metrics_json.empty() && metrics->report) {
    ember::Status st = ember::launcher::WriteMetricsJson(metrics_json, *metrics);
    if (!st.ok()) return Fail(st);
  }
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  // LibTorch's OpenMP threads spin-wait by default and then fight OpenBLAS's own threads for
  // the cores (measured on 2 cores: 2.5x slower training). libgomp reads OMP_WAIT_POLICY when
  // it is loaded, before main, so set it and re-execute once; an explicit value is respected.
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    ::execv("/proc/self/exe", argv);  // returns only on failure: carry on as we are
  }
  // Servers hold a descriptor per connection: the soft open-files limit is raised towards the
  // hard one (as Go's runtime does), at most to 65536 (enough for HttpServer's default cap of
  // 4096 connections and the rest, without making helpers that close every descriptor up to
  // the limit slow), and HttpServer caps its connections within it.
  constexpr rlim_t kOpenFiles = 65536;
  if (struct rlimit files{};
      ::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < kOpenFiles && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = std::min(files.rlim_max, kOpenFiles);
    ::setrlimit(RLIMIT_NOFILE, &files);  // best effort
  }
  CLI::App app{"ember: recommendation models with compressed, sharded embedding tables"};
  app.require_subcommand(1);

  std::string config_path, metrics_json;
  std::vector<std::string> sets;
  auto* train = app.add_subcommand("train", "Train a model from a TOML config");
  train->add_option("--config", config_path, "TOML config file")->required()->check(CLI::ExistingFile);
  train->add_option("--set", sets, "Override a config key: --set train.epochs=2 (repeatable)");
  train->add_option("--metrics-json", metrics_json, "Write metrics (auc, logloss, samples_per_sec, ...) as JSON");
  bool resume = false;
  train->add_flag("--resume", resume,
                  "Continue from the newest complete checkpoint in checkpoint.dir (rows, dense model, optimizers, "
                  "step, data position); the cluster size may differ");

  std::string plan_config;
  std::vector<std::string> plan_sets;
  auto* plan = app.add_subcommand("plan", "Print the embedding memory plan of a config (per field, per table)");
  plan->add_option("--config", plan_config, "TOML config file")->required()->check(CLI::ExistingFile);
  plan->add_option("--set", plan_sets, "Override a config key (repeatable)");

  std::string checkpoint, eval_data, eval_precision = "fp32";
  int eval_threads = 0;
  auto* eval = app.add_subcommand("eval", "Score a checkpoint or an exported model on a data file");
  eval->add_option("--checkpoint,--model", checkpoint,
                   "ckpt-N directory, a checkpoint.dir (newest is used), or an exported model file")
      ->required();
  eval->add_option("--data", eval_data, "Data file (default: the checkpoint config's data.test)");
  eval->add_option("--threads", eval_threads, "Threads (default: the checkpoint config's train.threads)");
  eval->add_option("--metrics-json", metrics_json, "Write metrics as JSON");
  eval->add_option("--dense-precision", eval_precision,
                   "An exported model's dense layers: fp32, bf16 or int8 (as ember serve --dense-precision)")
      ->capture_default_str();

  std::string export_checkpoint, export_out, export_precision = "fp32", export_delta, export_flatten;
  auto* exp = app.add_subcommand("export", "Write the compact model of a checkpoint (for ember serve)");
  auto* exp_ckpt =
      exp->add_option("--checkpoint", export_checkpoint, "ckpt-N directory, or a checkpoint.dir (newest is used)");
  exp->add_option("--out", export_out, "Output file")->required();
  exp->add_option("--delta", export_delta,
                  "Write a delta against this export (full or delta, in the --out file's directory): the rows "
                  "changed since it, the keys it holds that the checkpoint does not, and the dense weights")
      ->needs(exp_ckpt);
  exp->add_option("--flatten", export_flatten,
                  "Instead of a checkpoint, write the full export this export (a delta: its whole chain) stands for")
      ->excludes(exp_ckpt);
  exp->add_option("--precision", export_precision, "Row precision: fp32, fp16 or int8 (per-row scale and bias)")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "fp16", "int8"}));

  std::string serve_model;
  ember::serving::ServeOptions serve_opts;
  auto* serve = app.add_subcommand("serve", "Serve predictions from an exported model over HTTP");
  serve
      ->add_option("--model", serve_model,
                   "Exported model file (ember export), or a directory of model-<step>.embx (export.dir): its newest, "
                   "swapped for newer ones as they appear")
      ->required()
      ->check(CLI::ExistingPath);
  serve->add_option("--port", serve_opts.port, "Port (0: any free port)")->capture_default_str();
  serve->add_option("--bind", serve_opts.bind, "Address to bind (loopback unless told otherwise)")
      ->capture_default_str();
  serve->add_option("--threads", serve_opts.threads, "I/O threads (requests wait for their batch without one)")
      ->capture_default_str();
  serve->add_option("--max-batch", serve_opts.max_batch, "Most rows per batched forward pass")->capture_default_str();
  serve
      ->add_option("--forward-workers", serve_opts.forward_workers,
                   "Forward passes run at once, one thread each (1: one pass on every core)")
      ->capture_default_str();
  serve->add_option("--batch-wait-ms", serve_opts.batch_wait_ms, "How long a batch waits for more requests")
      ->capture_default_str();
  serve->add_option("--device", serve_opts.device, "cpu, or cuda (the dense model on the GPU)")->capture_default_str();
  serve
      ->add_option("--dense-precision", serve_opts.dense_precision,
                   "The dense layers' products: fp32, bf16 (fast with AVX512-BF16) or int8 (weights per channel, "
                   "inputs quantised per call); CPU only")
      ->capture_default_str();
  serve->add_option("--max-body-bytes", serve_opts.max_body_bytes, "Largest request body (larger: 413)")
      ->capture_default_str();
  serve
      ->add_option("--poll-seconds", serve_opts.poll_seconds,
                   "With --model DIR: how often DIR is checked for a newer model")
      ->capture_default_str();
  serve->add_option("--max-rows", serve_opts.max_rows_per_request, "Most rows per request (more: 413)")
      ->capture_default_str();
  serve
      ->add_option("--max-connections", serve_opts.max_connections,
                   "Connections open at once (0: 4096, within the open-files limit); past it a new one closes "
                   "the longest idle")
      ->capture_default_str();

  auto* datagen = app.add_subcommand("datagen", "Write synthetic data with a planted ground truth");
  datagen->require_subcommand(1);
  ember::data::SyntheticCtrOptions gen;
  std::string out_path;
  auto* ctr = datagen->add_subcommand("ctr", "CTR data in the Criteo text format, plus <out>.oracle.json");
  ctr->add_option("--rows", gen.rows, "Rows to write")->required();
  ctr->add_option("--seed", gen.seed, "Sampling seed (train and test files: different seeds)")->capture_default_str();
  ctr->add_option("--teacher-seed", gen.teacher_seed, "Seed of the hidden teacher (same for train and test)")
      ->capture_default_str();
  ctr->add_option("--out", out_path, "Output file")->required();
  ctr->add_option("--fields", gen.num_sparse, "Categorical fields")->capture_default_str();
  ctr->add_option("--dense", gen.num_dense, "Integer features")->capture_default_str();
  ctr->add_option("--min-vocab", gen.min_vocab, "Smallest field vocabulary")->capture_default_str();
  ctr->add_option("--max-vocab", gen.max_vocab, "Largest field vocabulary")->capture_default_str();
  ctr->add_option("--zipf", gen.zipf, "Zipf exponent of categorical values")->capture_default_str();
  ctr->add_option("--ctr", gen.ctr, "Target click-through rate")->capture_default_str();
  ctr->add_option("--teacher", gen.teacher,
                  "default (rare values' effects shrink with rank) or longtail (every value's effect as strong)")
      ->check(CLI::IsMember({"default", "longtail"}))
      ->capture_default_str();
  ctr->add_option("--tail-rank", gen.tail_rank, "Rank scale over which value effects shrink")->capture_default_str();
  ctr->add_option("--tail-power", gen.tail_power, "Power of the shrinkage of rare values' effects")
      ->capture_default_str();
  ctr->add_option("--first-order-scale", gen.first_order_scale, "Scale of per-value effects")->capture_default_str();
  ctr->add_option("--interaction-scale", gen.interaction_scale, "Scale of pairwise interactions")
      ->capture_default_str();
  ctr->add_option("--dense-scale", gen.dense_scale, "Scale of the dense-feature effects")->capture_default_str();
  ctr->add_option("--multi-hot", gen.multi_hot,
                  "Multi-hot fields (bags of ids after the categorical ones; <out>.schema.toml gives the columns)")
      ->capture_default_str();
  ctr->add_option("--bag-mean", gen.bag_mean, "Mean bag length (Poisson)")->capture_default_str();
  ctr->add_option("--bag-max", gen.bag_max, "Longest bag")->capture_default_str();
  ctr->add_option("--multi-hot-vocab", gen.multi_hot_vocab, "Values of each multi-hot field")->capture_default_str();
  ctr->add_option("--multi-hot-scale", gen.multi_hot_scale, "Scale of the bags' effects")->capture_default_str();

  ember::data::SyntheticSessionOptions sgen;
  std::string sessions_out, items_out;
  auto* sessions = datagen->add_subcommand(
      "sessions", "Session logs (SessionId, ItemId, Time) driven by item metadata, plus an items file");
  sessions->add_option("--out", sessions_out, "Session log to write (data.train, data.format = \"yoochoose\")")
      ->required();
  sessions->add_option("--items-out", items_out, "Item metadata file to write (data.items)")->required();
  sessions->add_option("--sessions", sgen.sessions, "Sessions")->capture_default_str();
  sessions->add_option("--items", sgen.items, "Catalog size")->capture_default_str();
  sessions->add_option("--categories", sgen.categories, "Categories")->capture_default_str();
  sessions->add_option("--subcategories", sgen.subcategories, "Subcategories per category")->capture_default_str();
  sessions->add_option("--brands", sgen.brands, "Brands")->capture_default_str();
  sessions->add_option("--price-buckets", sgen.price_buckets, "Price buckets")->capture_default_str();
  sessions->add_option("--cold-fraction", sgen.cold_fraction, "Share of items seen only in the last --test-days")
      ->capture_default_str();
  sessions->add_option("--mean-length", sgen.mean_length, "Mean session length (>= 2)")->capture_default_str();
  sessions->add_option("--days", sgen.days, "Days the log spans")->capture_default_str();
  sessions->add_option("--test-days", sgen.test_days, "Final days in which cold items appear")->capture_default_str();
  sessions->add_option("--seed", sgen.seed, "Seed")->capture_default_str();

  std::string inspect_path;
  bool inspect_json = false;
  auto* inspect = app.add_subcommand("inspect", "Print what a checkpoint holds (and verify its files)");
  inspect->add_option("PATH", inspect_path, "A ckpt-N directory, or a checkpoint.dir root (its newest checkpoint)")
      ->required();
  inspect->add_flag("--json", inspect_json, "Print JSON");

  ember::launcher::VocabOptions vocab_opts;
  auto* vocab = app.add_subcommand("vocab", "Per-field value counts over a data file, cut to a vocabulary file");
  vocab->add_option("--data", vocab_opts.data, "A data file (Criteo text format, or as --config says)")->required();
  vocab->add_option("--out", vocab_opts.out, "Vocabulary file to write (data.vocab reads it)")->required();
  vocab->add_option("--min-count", vocab_opts.cut.min_count, "Keep values seen at least this often")
      ->capture_default_str();
  vocab->add_option("--top-k", vocab_opts.cut.top_k, "Keep at most this many values per field (0: no limit)")
      ->capture_default_str();
  vocab->add_option("--config", vocab_opts.config, "Read --data as this config's data.format and data.columns say");
  vocab->add_option("--dense", vocab_opts.num_dense, "Integer features")->capture_default_str();
  vocab->add_option("--fields", vocab_opts.num_sparse, "Categorical fields")->capture_default_str();

  std::string prepare_config;
  std::vector<std::string> prepare_sets;
  auto* prepare = app.add_subcommand(
      "prepare", "Parse data.train, data.valid and data.test once into their binary caches (data.cache reads them)");
  prepare->add_option("--config", prepare_config, "TOML config file")->required()->check(CLI::ExistingFile);
  prepare->add_option("--set", prepare_sets, "Override a config key: key=value (repeatable)");

  // Command-line errors exit 1 like every other error (CLI11's own codes are 100+); --help 0.
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 1;
  }

  if (prepare->parsed()) {
    auto config = ember::launcher::LoadConfig(prepare_config, prepare_sets);
    if (!config.ok()) return Fail(config.status());
    auto st = ember::launcher::RunPrepare(*config, std::cout);
    if (!st.ok()) return Fail(st);
    return 0;
  }
  if (vocab->parsed()) {
    auto st = ember::launcher::RunVocab(vocab_opts, std::cout);
    if (!st.ok()) return Fail(st);
    return 0;
  }

  if (inspect->parsed()) {
    auto st = ember::launcher::RunInspect(inspect_path, inspect_json, std::cout);
    if (!st.ok()) return Fail(st);
    return 0;
  }

  if (train->parsed()) {
    // SIGTERM / SIGINT: finish the step, checkpoint, exit 0 (a second signal kills).
    ember::launcher::InstallStopSignals();
    auto config = ember::launcher::LoadConfig(config_path, sets);
    if (!config.ok()) return Fail(config.status());
    config->resume = resume;
    return Report(ember::launcher::RunTrain(*config, std::cout), metrics_json);
  }
  if (plan->parsed()) {
    auto config = ember::launcher::LoadConfig(plan_config, plan_sets);
    if (!config.ok()) return Fail(config.status());
    auto st = ember::launcher::RunPlan(*config, std::cout);
    if (!st.ok()) return Fail(st);
    return 0;
  }
  if (eval->parsed()) {
    return Report(ember::launcher::RunEval(checkpoint, eval_data, eval_threads, std::cout, eval_precision),
                  metrics_json);
  }
  if (exp->parsed()) {
    if (!export_flatten.empty()) {
      auto st = ember::launcher::RunFlatten(export_flatten, export_out, std::cout);
      if (!st.ok()) return Fail(st);
      return 0;
    }
    if (export_checkpoint.empty())
      return Fail(ember::Status::InvalidArgument("ember export needs --checkpoint (or --flatten)"));
    auto st = ember::launcher::RunExport(export_checkpoint, export_out, export_precision, std::cout, export_delta);
    if (!st.ok()) return Fail(st.status());
    return 0;
  }
  if (serve->parsed()) {
    // SIGINT / SIGTERM end the server cleanly: blocked here (inherited by every thread) and
    // taken with sigwait once serving.
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, nullptr);
    auto st = ember::launcher::RunServe(serve_model, serve_opts, std::cout, [&](int) {
      int sig = 0;
      sigwait(&stop, &sig);
    });
    if (!st.ok()) return Fail(st);
    return 0;
  }
  if (sessions->parsed()) {
    auto st = ember::data::WriteSyntheticSessions(sgen, sessions_out, items_out);
    if (!st.ok()) return Fail(st.status());
    std::cout << "wrote " << st->clicks << " clicks in " << st->sessions << " sessions to " << sessions_out << " and "
              << sgen.items << " items (" << st->cold_items << " cold: only in the last " << sgen.test_days
              << " days) to " << items_out << "\n";
    return 0;
  }
  if (ctr->parsed()) {
    auto st = ember::launcher::RunDatagenCtr(gen, out_path, std::cout);
    if (!st.ok()) return Fail(st.status());
    return 0;
  }
  return 2;
}
