// Reader throughput: one pass over a data stream through the text reader, the cache build, and
// one pass through the binary cache (data/cache.h), each timed on its own; and whether the two
// readers' batches agree bit for bit. The stream is a config's data.train, read as training reads
// it (its format, columns and batch size). Prints one JSON object.
//   reader_bench --config run.toml [--set key=value ...] [--passes 3]
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>

#include "ember/common/file.h"
#include "ember/common/hash.h"
#include "ember/data/cache.h"
#include "ember/data/criteo.h"
#include "ember/launcher/config.h"

using namespace ember;
using Clock = std::chrono::steady_clock;

namespace {
// Rows of one full pass, and a digest of every byte the batches hold.
struct Pass {
  uint64_t rows = 0, digest = 0;
  double seconds = 0;
};

uint64_t Fold(uint64_t h, const void* p, size_t n) { return n ? Hash64(p, n, h) : h; }

Result<Pass> ReadAll(data::BatchReader* r, bool digest) {
  Pass p;
  data::Batch b;
  const auto start = Clock::now();
  for (;;) {
    EMBER_ASSIGN_OR_RETURN(bool got, r->Next(&b));
    if (!got) break;
    p.rows += b.size;
    if (!digest) continue;
    const size_t n = b.size;
    p.digest = Fold(p.digest, b.labels.data(), n * 4);
    p.digest = Fold(p.digest, b.dense.data(), n * static_cast<size_t>(b.num_dense) * 4);
    for (int f = 0; f < b.num_sparse; ++f) {
      if (b.is_multi_hot(f)) {
        const auto& bag = b.bags[static_cast<size_t>(f)];
        p.digest = Fold(p.digest, bag.ids.data(), bag.ids.size() * 8);
        p.digest = Fold(p.digest, bag.weights.data(), bag.weights.size() * 4);
        p.digest = Fold(p.digest, bag.offsets.data(), bag.offsets.size() * 4);
      } else {
        p.digest = Fold(p.digest, b.field(f), n * 8);
      }
    }
  }
  p.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return p;
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app("ember reader throughput: text against the binary cache");
  std::string config_path;
  std::vector<std::string> sets;
  int passes = 3;
  app.add_option("--config", config_path, "A run config (its data.train is read)")->required();
  app.add_option("--set", sets, "Override a config key: key=value (repeatable)");
  app.add_option("--passes", passes, "Timed passes of each reader (the best is reported)");
  CLI11_PARSE(app, argc, argv);
  auto fail = [](const Status& st) {
    std::cerr << "reader_bench: " << st.ToString() << "\n";
    return 1;
  };
  auto config = launcher::LoadConfig(config_path, sets);
  if (!config.ok()) return fail(config.status());
  const data::CriteoOptions o = launcher::MakeReaderOptions(*config, config->train, /*training=*/true);
  const std::string cache_dir = config->cache_dir;
  const std::string cache = data::CachePath(o, cache_dir);
  if (!cache_dir.empty()) {
    Status made = MakeDirs(cache_dir);
    if (!made.ok()) return fail(made);
  }
  auto built = data::BuildCache(o, cache);
  if (!built.ok()) return fail(built.status());
  Pass text, cached;
  for (int p = 0; p < passes; ++p) {
    auto r = data::CriteoReader::Open(o);
    if (!r.ok()) return fail(r.status());
    auto t = ReadAll(r->get(), /*digest=*/false);
    if (!t.ok()) return fail(t.status());
    if (p == 0 || t->seconds < text.seconds) text = *t;
    auto c = data::OpenCache(o, cache);
    if (!c.ok()) return fail(c.status());
    auto k = ReadAll(c->get(), false);
    if (!k.ok()) return fail(k.status());
    if (p == 0 || k->seconds < cached.seconds) cached = *k;
  }
  // The digests, untimed.
  auto r = data::CriteoReader::Open(o);
  auto c = data::OpenCache(o, cache);
  if (!r.ok() || !c.ok()) return fail(!r.ok() ? r.status() : c.status());
  auto td = ReadAll(r->get(), true), cd = ReadAll(c->get(), true);
  if (!td.ok() || !cd.ok()) return fail(!td.ok() ? td.status() : cd.status());
  nlohmann::json j = {{"rows", text.rows},
                      {"text_rows_per_s", static_cast<double>(text.rows) / text.seconds},
                      {"cache_rows_per_s", static_cast<double>(cached.rows) / cached.seconds},
                      {"build_rows_per_s", static_cast<double>(built->rows) / built->seconds},
                      {"cache_bytes", built->bytes},
                      {"identical", td->digest == cd->digest && td->rows == cd->rows},
                      {"cache", cache}};
  std::cout << j.dump() << "\n";
  return 0;
}
