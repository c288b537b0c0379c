// Embedding gather and row-wise Adagrad update throughput on a table larger than the caches,
// against the machine's random-gather limit measured in the same run: the faster of a plain loop
// and a software-prefetched loop copying the same number of random rows out of a flat array (no
// index, no optimizer state). Prints a markdown table and, with --csv PATH, writes the numbers.
// With --memory OPTIMIZER it only builds a table of N rows with that optimizer and prints one CSV
// line: what the rows hold (weights + optimizer state), what the store counts, by part, and the
// growth of the process's resident set while it was built.
//
//   embedding_bench [--rows N] [--dim D] [--batch B] [--seconds S] [--csv PATH]
//   embedding_bench --memory rowwise_adagrad [--rows N] [--dim D]
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "ember/embedding/kernels.h"
#include "ember/embedding/row_store.h"

using namespace ember::embedding;
using Clock = std::chrono::steady_clock;

namespace {
struct Args {
  uint64_t rows = 4000000;
  int dim = 16;
  size_t batch = 65536;
  double seconds = 2.0;
  std::string csv;
  std::string memory;  // optimizer name: the memory measurement only
};

Args Parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--rows")
      a.rows = std::strtoull(argv[i + 1], nullptr, 10);
    else if (k == "--dim")
      a.dim = std::atoi(argv[i + 1]);
    else if (k == "--batch")
      a.batch = std::strtoull(argv[i + 1], nullptr, 10);
    else if (k == "--seconds")
      a.seconds = std::atof(argv[i + 1]);
    else if (k == "--csv")
      a.csv = argv[i + 1];
    else if (k == "--memory")
      a.memory = argv[i + 1];
    else {
      std::fprintf(stderr, "unknown flag %s\n", k.c_str());
      std::exit(2);
    }
  }
  return a;
}

// Runs fn(batch_index) repeatedly for about `seconds`; returns rows per second.
double Rate(double seconds, size_t rows_per_call, const std::function<void(size_t)>& fn) {
  fn(0);  // warm
  size_t calls = 0;
  const auto start = Clock::now();
  double elapsed = 0;
  while (elapsed < seconds) {
    fn(++calls);
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  }
  return static_cast<double>(calls * rows_per_call) / elapsed;
}

size_t ResidentBytes() {
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return static_cast<size_t>(resident) * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

int Memory(const Args& a) {
  TableSpec spec;
  spec.dim = a.dim;
  if (!ParseOptimizerKind(a.memory, &spec.optimizer.kind)) {
    std::fprintf(stderr, "unknown optimizer %s\n", a.memory.c_str());
    return 2;
  }
  std::vector<uint64_t> keys(1 << 16);
  std::vector<float> tmp(keys.size() * static_cast<size_t>(a.dim));
  const size_t before = ResidentBytes();
  RowStore store(spec);
  for (uint64_t s = 0; s < a.rows; s += keys.size()) {
    const size_t n = std::min<uint64_t>(keys.size(), a.rows - s);
    for (size_t i = 0; i < n; ++i) keys[i] = MakeKey(0, s + i);
    store.Pull(keys.data(), n, tmp.data());
  }
  const size_t resident = ResidentBytes() - before;
  const RowStore::MemoryParts m = store.MemoryByPart();
  std::printf("%s,%llu,%d,%zu,%zu,%zu,%zu,%zu,%zu,%zu,%zu\n", a.memory.c_str(), static_cast<unsigned long long>(a.rows),
              a.dim, m.weights + m.state, store.MemoryBytes(), resident, m.weights, m.state, m.keys, m.index, m.other);
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  const Args a = Parse(argc, argv);
  if (!a.memory.empty()) return Memory(a);
  const size_t dim = static_cast<size_t>(a.dim);
  std::mt19937_64 rng(1);

  // Batches of random, unique (within a batch) row numbers.
  const size_t num_batches = 16;
  std::vector<std::vector<uint64_t>> batches(num_batches);
  {
    std::vector<uint64_t> perm(a.rows);
    std::iota(perm.begin(), perm.end(), 0);
    for (auto& b : batches) {
      for (size_t i = 0; i < a.batch; ++i) std::swap(perm[i], perm[i + rng() % (a.rows - i)]);
      b.assign(perm.begin(), perm.begin() + static_cast<long>(a.batch));
    }
  }

  // Baseline: plain random gather from a flat array of the same rows.
  std::vector<float> flat(a.rows * dim);
  for (size_t i = 0; i < flat.size(); ++i) flat[i] = static_cast<float>(i % 1000) * 1e-3f;
  std::vector<float> out(a.batch * dim);
  const double plain = Rate(a.seconds, a.batch, [&](size_t c) {
    const auto& b = batches[c % num_batches];
    for (size_t i = 0; i < b.size(); ++i) std::memcpy(&out[i * dim], &flat[b[i] * dim], dim * sizeof(float));
  });
  const double prefetched = Rate(a.seconds, a.batch, [&](size_t c) {
    const auto& b = batches[c % num_batches];
    constexpr size_t kAhead = 8;
    for (size_t i = 0; i < b.size(); ++i) {
      if (i + kAhead < b.size()) __builtin_prefetch(&flat[b[i + kAhead] * dim]);
      std::memcpy(&out[i * dim], &flat[b[i] * dim], dim * sizeof(float));
    }
  });
  // The same loop over pointers resolved ahead (as the gather kernel gets them from the index).
  std::vector<std::vector<const float*>> flat_ptrs(num_batches);
  for (size_t i = 0; i < num_batches; ++i)
    for (uint64_t r : batches[i]) flat_ptrs[i].push_back(&flat[r * dim]);
  const double pointers = Rate(a.seconds, a.batch, [&](size_t c) {
    const auto& p = flat_ptrs[c % num_batches];
    constexpr size_t kAhead = 8;
    for (size_t i = 0; i < p.size(); ++i) {
      if (i + kAhead < p.size()) __builtin_prefetch(p[i + kAhead]);
      std::memcpy(&out[i * dim], p[i], dim * sizeof(float));
    }
  });
  const double limit = std::max({plain, prefetched, pointers});
  // The floor of any layout that finds a row through an index: two independent random accesses
  // per row, a 64-byte line of an index-sized array (8 bytes a row: the slot number and tag the
  // row's entry needs at least) and then the row, both prefetched ahead as the pull's pipeline
  // does. The pull is measured against this as well as against the one-access limit.
  const size_t index_lines = std::max<size_t>(1, a.rows * 8 / 64);
  std::vector<uint64_t> index_array(index_lines * 8, 1);
  std::vector<std::vector<size_t>> lines(num_batches);
  for (size_t i = 0; i < num_batches; ++i)
    for (size_t k = 0; k < batches[i].size(); ++k) lines[i].push_back(rng() % index_lines);
  const double two_access = Rate(a.seconds, a.batch, [&](size_t c) {
    const auto& b = batches[c % num_batches];
    const auto& l = lines[c % num_batches];
    constexpr size_t kAhead = 8;
    uint64_t sink = 0;
    for (size_t i = 0; i < b.size(); ++i) {
      if (i + 2 * kAhead < b.size()) __builtin_prefetch(&index_array[l[i + 2 * kAhead] * 8]);
      // The row's address depends on what the index line holds, as in a real lookup.
      const size_t row = b[i] + (index_array[l[i] * 8] >> 63);  // + 0, unknown to the compiler
      if (i + kAhead < b.size())
        __builtin_prefetch(&flat[(b[i + kAhead] + (index_array[l[i + kAhead] * 8] >> 63)) * dim]);
      sink += index_array[l[i] * 8];
      std::memcpy(&out[i * dim], &flat[row * dim], dim * sizeof(float));
    }
    if (sink == 0) out[0] = 1.0f;
  });
  flat.clear();
  flat.shrink_to_fit();

  TableSpec spec;
  spec.dim = a.dim;
  spec.optimizer.kind = OptimizerKind::kRowwiseAdagrad;
  RowStore store(spec);
  {
    std::vector<uint64_t> keys(1 << 16);
    std::vector<float> tmp(keys.size() * dim);
    for (uint64_t s = 0; s < a.rows; s += keys.size()) {
      const size_t n = std::min<uint64_t>(keys.size(), a.rows - s);
      for (size_t i = 0; i < n; ++i) keys[i] = MakeKey(0, s + i);
      store.Pull(keys.data(), n, tmp.data());
    }
  }
  for (auto& b : batches)
    for (auto& k : b) k = MakeKey(0, k);
  std::vector<float> grads(a.batch * dim, 0.01f);

  const double pull = Rate(a.seconds, a.batch, [&](size_t c) {
    const auto& b = batches[c % num_batches];
    store.Pull(b.data(), b.size(), out.data());
  });
  const double push = Rate(a.seconds, a.batch, [&](size_t c) {
    const auto& b = batches[c % num_batches];
    store.Push(b.data(), b.size(), grads.data());
  });
  const double pull_ref = Rate(a.seconds / 2, a.batch, [&](size_t c) {
    const auto& b = batches[c % num_batches];
    store.PullRef(b.data(), b.size(), out.data());
  });
  const double push_ref = Rate(a.seconds / 2, a.batch, [&](size_t c) {
    const auto& b = batches[c % num_batches];
    store.PushRef(b.data(), b.size(), grads.data());
  });
  // The kernels alone, rows already resolved to pointers (no hash lookup).
  std::vector<std::vector<float*>> ptrs(num_batches);
  for (size_t i = 0; i < num_batches; ++i) {
    ptrs[i].resize(a.batch);
    store.FindOrCreate(batches[i].data(), a.batch, ptrs[i].data());
  }
  const double gather_kernel = Rate(a.seconds, a.batch, [&](size_t c) {
    const auto& p = ptrs[c % num_batches];
    GatherRows(p.data(), p.size(), a.dim, out.data());
  });
  const double update_kernel = Rate(a.seconds, a.batch, [&](size_t c) {
    const auto& p = ptrs[c % num_batches];
    ApplyUpdate(spec.optimizer, p.data(), p.size(), a.dim, grads.data());
  });

  const double table_mb = static_cast<double>(store.MemoryBytes()) / (1 << 20);
  std::printf("# embedding throughput: %llu rows x %d floats (row-wise Adagrad state), table %.0f MiB, batch %zu\n\n",
              static_cast<unsigned long long>(a.rows), a.dim, table_mb, a.batch);
  std::printf("| operation | Mrows/s | of the random-gather limit |\n|---|---:|---:|\n");
  struct Row {
    const char* name;
    double rate;
  } rows[] = {
      {"random gather, plain loop (flat array)", plain},
      {"random gather, prefetched (flat array)", prefetched},
      {"random gather, prefetched pointers (flat array)", pointers},
      {"gather kernel (rows resolved)", gather_kernel},
      {"row-wise Adagrad kernel (rows resolved)", update_kernel},
      {"two random accesses per row: index line + row (flat arrays)", two_access},
      {"ember pull (hash index + gather)", pull},
      {"ember push, row-wise Adagrad (hash index + update)", push},
      {"pull, reference twin", pull_ref},
      {"push, reference twin", push_ref},
  };
  for (const auto& r : rows) std::printf("| %s | %.2f | %.2f |\n", r.name, r.rate / 1e6, r.rate / limit);
  if (!a.csv.empty()) {
    FILE* f = std::fopen(a.csv.c_str(), "w");
    if (!f) {
      std::perror(a.csv.c_str());
      return 1;
    }
    std::fprintf(f, "operation,rows_per_sec,ratio_to_limit\n");
    for (const auto& r : rows) std::fprintf(f, "\"%s\",%.0f,%.4f\n", r.name, r.rate, r.rate / limit);
    std::fclose(f);
  }
  return 0;
}
