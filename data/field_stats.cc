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

namespace {
// What a cache beside the data is keyed on: the files (paths, sizes, modification times), the
// schema's fingerprint (counted on raw values, standardization off) and data.max_rows.
struct CacheKey {
  CriteoOptions options;  // as counted: standardization off
  nlohmann::json sources;
  std::string fingerprint = "criteo";
  std::string first;  // the first file: caches are named after it
};

Result<CacheKey> MakeCacheKey(const CriteoOptions& given) {
  CacheKey k;
  k.options = given;
  if (k.options.schema && !k.options.schema->criteo()) {
    auto raw = std::make_shared<Schema>(*k.options.schema);
    for (auto& c : raw->columns) {  // the statistics are counted on raw values
      c.mean = 0;
      c.stddev = 1;
    }
    k.options.schema = raw;
    char buf[20];
    std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(raw->Fingerprint()));
    k.fingerprint = buf;
  }
  EMBER_ASSIGN_OR_RETURN(k.sources, SourcesJson(k.options));
  if (k.sources.empty()) return Status::InvalidArgument("no data file to count the fields of");
  k.first = k.sources[0][0].get<std::string>();
  return k;
}

bool Matches(const nlohmann::json& j, const CacheKey& k) {
  return j.value("sources", nlohmann::json()) == k.sources && j.value("max_rows", uint64_t{0}) == k.options.max_rows &&
         j.value("schema", std::string("criteo")) == k.fingerprint;
}

// Best effort, and never into a directory marked read-only (shared data samples), even as root.
void WriteCache(const std::string& first, const std::string& path, const std::string& text) {
  const size_t slash = first.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : first.substr(0, slash + 1);
  struct stat db {};
  if (::stat(dir.c_str(), &db) == 0 && (db.st_mode & 0222) != 0) (void)WriteFileAtomic(path, text);
}

std::string MoreFiles(const CacheKey& k) {
  return k.sources.size() > 1 ? " and " + std::to_string(k.sources.size() - 1) + " more files" : "";
}
}  // namespace

Result<FieldStats> LoadOrCountFields(const CriteoOptions& given) {
  EMBER_ASSIGN_OR_RETURN(const CacheKey key, MakeCacheKey(given));
  const CriteoOptions& options = key.options;
  const std::string cache = key.first + ".fields.json";
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
        if (Matches(j, key) && j["distinct"].size() == static_cast<size_t>(options.num_sparse) &&
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
  std::fprintf(stderr, "counting distinct values per field in %s%s (cached in %s)\n", key.first.c_str(),
               MoreFiles(key).c_str(), cache.c_str());
  CriteoOptions o = options;
  o.batch_size = 65536;
  EMBER_ASSIGN_OR_RETURN(auto reader, CriteoReader::Open(o));
  EMBER_ASSIGN_OR_RETURN(FieldStats st, CountFields(reader.get()));
  nlohmann::json j = {{"sources", key.sources},   {"rows", st.rows},           {"max_rows", options.max_rows},
                      {"distinct", st.distinct},  {"schema", key.fingerprint}, {"dense_mean", st.dense_mean},
                      {"dense_std", st.dense_std}};
  WriteCache(key.first, cache, j.dump(1) + "\n");
  return st;
}

Result<Vocabulary> LoadOrCountTopValues(const CriteoOptions& given, uint64_t n) {
  EMBER_ASSIGN_OR_RETURN(const CacheKey key, MakeCacheKey(given));
  CriteoOptions options = key.options;
  options.vocab_filter = nullptr;
  const std::string cache = key.first + ".top-" + std::to_string(n) + ".json";
  const bool cached = options.vocab.empty();  // counts through data.vocab: the cache does not know it
  if (cached && PathExists(cache)) {
    auto text = ReadFile(cache);
    if (text.ok()) {
      try {
        auto j = nlohmann::json::parse(*text);
        if (Matches(j, key) && j["fields"].size() == static_cast<size_t>(options.num_sparse)) {
          Vocabulary v;
          v.source = key.first;
          v.rows = j["rows"].get<uint64_t>();
          v.cut.min_count = j["min_count"].get<uint64_t>();
          for (const auto& f : j["fields"]) {
            FieldVocab fv;
            fv.values = f["values"].get<std::vector<uint64_t>>();
            fv.counts = f["counts"].get<std::vector<uint64_t>>();
            fv.distinct = f["distinct"].get<uint64_t>();
            fv.occurrences = f["occurrences"].get<uint64_t>();
            fv.kept_occurrences = f["kept_occurrences"].get<uint64_t>();
            if (fv.values.size() != fv.counts.size()) throw std::runtime_error("values and counts differ");
            v.fields.push_back(std::move(fv));
          }
          return v;
        }
      } catch (const std::exception&) {
        // A damaged cache is recounted and rewritten.
      }
    }
  }
  std::fprintf(stderr, "counting the values of %s%s for the %llu most frequent%s\n", key.first.c_str(),
               MoreFiles(key).c_str(), static_cast<unsigned long long>(n),
               cached ? (" (cached in " + cache + ")").c_str() : "");
  options.batch_size = 65536;
  EMBER_ASSIGN_OR_RETURN(auto reader, CriteoReader::Open(options));
  EMBER_ASSIGN_OR_RETURN(const Vocabulary all, CountVocabulary(reader.get(), VocabCut{}));
  Vocabulary v = TopValues(all, n);
  v.source = key.first;
  if (cached) {
    nlohmann::json fields = nlohmann::json::array();
    for (const auto& f : v.fields)
      fields.push_back({{"values", f.values},
                        {"counts", f.counts},
                        {"distinct", f.distinct},
                        {"occurrences", f.occurrences},
                        {"kept_occurrences", f.kept_occurrences}});
    nlohmann::json j = {{"sources", key.sources}, {"max_rows", options.max_rows}, {"schema", key.fingerprint},
                        {"rows", v.rows},         {"min_count", v.cut.min_count}, {"fields", fields}};
    WriteCache(key.first, cache, j.dump() + "\n");
  }
  return v;
}

}  // namespace ember::data
