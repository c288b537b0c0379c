#include "ember/data/field_stats.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "ember/common/file.h"
#include "ember/common/key_index.h"
#include "sources.h"

namespace ember::data {
namespace {
// Exact distinct count of u64 values; all-ones (a missing value) is counted out of band.
class DistinctCounter {
 public:
  void Insert(uint64_t v) {
    if (v == KeyIndex::kEmpty)
      has_empty_ = true;
    else
      index_.Insert(v, 0);
  }
  uint64_t size() const { return index_.size() + (has_empty_ ? 1 : 0); }

 private:
  KeyIndex index_;
  bool has_empty_ = false;
};
}  // namespace

Result<FieldStats> CountFields(BatchReader* reader) {
  FieldStats st;
  std::vector<DistinctCounter> sets(static_cast<size_t>(reader->num_sparse()));
  const size_t D = static_cast<size_t>(reader->num_dense());
  std::vector<double> sum(D), sum2(D);
  Batch batch;
  for (;;) {
    EMBER_ASSIGN_OR_RETURN(bool got, reader->Next(&batch));
    if (!got) break;
    st.rows += batch.size;
    for (int f = 0; f < batch.num_sparse; ++f) {
      size_t n = 0;
      const uint64_t* ids = batch.field_ids(f, &n);
      for (size_t i = 0; i < n; ++i) sets[f].Insert(ids[i]);
    }
    for (size_t i = 0; i < batch.size; ++i)
      for (size_t j = 0; j < D; ++j) {
        const double x = batch.dense[i * D + j];
        sum[j] += x;
        sum2[j] += x * x;
      }
  }
  for (const auto& s : sets) st.distinct.push_back(s.size());
  const double n = static_cast<double>(std::max<uint64_t>(st.rows, 1));
  for (size_t j = 0; j < D; ++j) {
    const double mean = sum[j] / n;
    st.dense_mean.push_back(mean);
    st.dense_std.push_back(std::sqrt(std::max(0.0, sum2[j] / n - mean * mean)));
  }
  return st;
}

Result<FieldStats> LoadOrCountFields(const CriteoOptions& given) {
  CriteoOptions options = given;
  std::string fingerprint = "criteo";
  if (options.schema && !options.schema->criteo()) {
    auto raw = std::make_shared<Schema>(*options.schema);
    for (auto& c : raw->columns) {  // the statistics are counted on raw values
      c.mean = 0;
      c.stddev = 1;
    }
    options.schema = raw;
    char buf[20];
    std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(raw->Fingerprint()));
    fingerprint = buf;
  }
  EMBER_ASSIGN_OR_RETURN(const nlohmann::json sources, SourcesJson(options));  // the cache's key
  if (sources.empty()) return Status::InvalidArgument("no data file to count the fields of");
  const std::string first = sources[0][0].get<std::string>();
  const std::string cache = first + ".fields.json";
  if (!options.vocab.empty() ||
      options.vocab_filter) {  // the counts are the vocabulary's, which the cache does not know
    EMBER_ASSIGN_OR_RETURN(auto reader, CriteoReader::Open(options));
    return CountFields(reader.get());
  }
  if (PathExists(cache)) {
    auto text = ReadFile(cache);
    if (text.ok()) {
      try {
        auto j = nlohmann::json::parse(*text);
        if (j.value("sources", nlohmann::json()) == sources && j.value("max_rows", uint64_t{0}) == options.max_rows &&
            j.value("schema", std::string("criteo")) == fingerprint &&
            j["distinct"].size() == static_cast<size_t>(options.num_sparse) &&
            j.value("dense_mean", std::vector<double>{}).size() == static_cast<size_t>(options.num_dense)) {
          FieldStats st;
          st.rows = j["rows"].get<uint64_t>();
          st.distinct = j["distinct"].get<std::vector<uint64_t>>();
          st.dense_mean = j["dense_mean"].get<std::vector<double>>();
          st.dense_std = j["dense_std"].get<std::vector<double>>();
          return st;
        }
      } catch (const std::exception&) {
        // A damaged cache is recounted and rewritten.
      }
    }
  }
  std::fprintf(stderr, "counting distinct values per field in %s%s (cached in %s)\n", first.c_str(),
               sources.size() > 1 ? (" and " + std::to_string(sources.size() - 1) + " more files").c_str() : "",
               cache.c_str());
  CriteoOptions o = options;
  o.batch_size = 65536;
  EMBER_ASSIGN_OR_RETURN(auto reader, CriteoReader::Open(o));
  EMBER_ASSIGN_OR_RETURN(FieldStats st, CountFields(reader.get()));
  nlohmann::json j = {{"sources", sources},       {"rows", st.rows},       {"max_rows", options.max_rows},
                      {"distinct", st.distinct},  {"schema", fingerprint}, {"dense_mean", st.dense_mean},
                      {"dense_std", st.dense_std}};
  // Best effort, and never into a directory marked read-only (shared data samples), even as root.
  const size_t slash = first.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : first.substr(0, slash + 1);
  struct stat db {};
  if (::stat(dir.c_str(), &db) == 0 && (db.st_mode & 0222) != 0) (void)WriteFileAtomic(cache, j.dump(1) + "\n");
  return st;
}

}  // namespace ember::data
