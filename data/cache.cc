#include "ember/data/cache.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "ember/common/file.h"
#include "ember/common/hash.h"
#include "ember/data/vocab.h"
#include "sources.h"

namespace ember::data {
namespace {
constexpr char kMagic[8] = {'E', 'M', 'B', 'E', 'R', 'C', 'A', 'C'};
constexpr char kEndMagic[8] = {'E', 'M', 'B', 'C', 'E', 'N', 'D', '1'};
constexpr size_t kHeader = 16, kTrailer = 32;
constexpr size_t kChunkRows = 65536;

size_t Pad8(size_t n) { return (n + 7) & ~size_t{7}; }

// What the examples read as: the schema's full JSON (statistics included), or Criteo's layout.
std::string SchemaKey(const CriteoOptions& o) {
  if (o.schema && !o.schema->criteo()) return o.schema->ToJson();
  return "criteo:" + std::to_string(o.num_dense) + ":" + std::to_string(o.num_sparse);
}

std::vector<uint8_t> MultiHot(const CriteoOptions& o) {
  if (o.schema && !o.schema->criteo()) return o.schema->multi_hot_fields();
  return std::vector<uint8_t>(static_cast<size_t>(o.num_sparse), 0);
}

const char* PolicyName(BadLinePolicy p) { return p == BadLinePolicy::kSkip ? "skip" : "error"; }

// The file as written: appends with a running checksum.
class Writer {
 public:
  explicit Writer(FILE* f) : f_(f) { XXH3_64bits_reset(&state_); }
  bool Put(const void* data, size_t n) {
    if (n == 0) return true;
    XXH3_64bits_update(&state_, data, n);
    offset_ += n;
    return std::fwrite(data, 1, n, f_) == n;
  }
  bool Pad() {
    static const char zeros[8] = {};
    return Put(zeros, Pad8(offset_) - offset_);
  }
  template <typename T>
  bool Value(T v) {
    return Put(&v, sizeof(v));
  }
  uint64_t offset() const { return offset_; }
  uint64_t digest() { return XXH3_64bits_digest(&state_); }

 private:
  FILE* f_;
  uint64_t offset_ = 0;
  XXH3_state_t state_;
};

// One row group's columns in the mapping (validated at open).
struct Chunk {
  uint64_t rows = 0;
  const float* labels = nullptr;
  const float* dense = nullptr;
  struct Field {
    const uint64_t* ids = nullptr;
    const uint32_t* offsets = nullptr;  // multi-hot
    const float* weights = nullptr;
  };
  std::vector<Field> fields;
};

class CacheReader final : public BatchReader {
 public:
  ~CacheReader() override {
    if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
  }
  static Result<std::unique_ptr<CacheReader>> Open(const CriteoOptions& options, const std::string& path);

  Result<bool> Next(Batch* batch) override {
    batch->Reset(num_dense_, num_sparse_, options_.batch_size, &multi_);
    size_t row = 0;
    while (row < options_.batch_size && next_ < limit_) {
      while (next_ >= chunk_end_) {
        chunk_begin_ = chunk_end_;
        chunk_end_ += chunks_[++chunk_].rows;
      }
      const Chunk& c = chunks_[chunk_];
      const size_t at = static_cast<size_t>(next_ - chunk_begin_);
      const size_t n =
          static_cast<size_t>(std::min<uint64_t>({options_.batch_size - row, chunk_end_ - next_, limit_ - next_}));
      Copy(c, at, n, batch, row);
      row += n;
      next_ += n;
    }
    batch->size = row;
    if (vocab_) vocab_->Apply(batch);
    return row > 0;
  }
  double Progress() const override { return limit_ ? static_cast<double>(next_) / static_cast<double>(limit_) : 1.0; }
  uint64_t bad_lines() const override { return bad_lines_; }
  int num_dense() const override { return num_dense_; }
  int num_sparse() const override { return num_sparse_; }

 private:
  void Copy(const Chunk& c, size_t at, size_t n, Batch* b, size_t row) const {
    const size_t D = static_cast<size_t>(num_dense_), stride = b->labels.size();
    std::memcpy(b->labels.data() + row, c.labels + at, n * sizeof(float));
    std::memcpy(b->dense.data() + row * D, c.dense + at * D, n * D * sizeof(float));
    for (size_t f = 0; f < c.fields.size(); ++f) {
      const Chunk::Field& cf = c.fields[f];
      if (!multi_[f]) {
        std::memcpy(b->sparse.data() + f * stride + row, cf.ids + at, n * sizeof(uint64_t));
        continue;
      }
      Bags& bag = b->bags[f];
      const uint32_t first = cf.offsets[at], last = cf.offsets[at + n];
      const uint32_t base = static_cast<uint32_t>(bag.ids.size());
      bag.ids.insert(bag.ids.end(), cf.ids + first, cf.ids + last);
      bag.weights.insert(bag.weights.end(), cf.weights + first, cf.weights + last);
      for (size_t i = 1; i <= n; ++i) bag.offsets.push_back(base + (cf.offsets[at + i] - first));
    }
  }

  CriteoOptions options_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  int num_dense_ = 0, num_sparse_ = 0;
  std::vector<uint8_t> multi_;
  std::vector<Chunk> chunks_;
  size_t chunk_ = 0;
  uint64_t chunk_begin_ = 0, chunk_end_ = 0;
  uint64_t next_ = 0, limit_ = 0, bad_lines_ = 0;
  std::shared_ptr<const VocabFilter> vocab_;
};

Result<std::unique_ptr<CacheReader>> CacheReader::Open(const CriteoOptions& options, const std::string& path) {
  auto bad = [&](const std::string& why) {
    return Status::Corruption(path + ": not a valid ember data cache: " + why);
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IoError("cannot open data cache " + path + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return Status::IoError("cannot stat " + path);
  }
  std::unique_ptr<CacheReader> r(new CacheReader());
  r->options_ = options;
  r->size_ = static_cast<size_t>(st.st_size);
  if (r->size_ < kHeader + kTrailer) {
    ::close(fd);
    return bad("too short (" + std::to_string(r->size_) + " bytes)");
  }
  void* m = ::mmap(nullptr, r->size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) return Status::IoError("cannot map " + path + ": " + std::strerror(errno));
  r->data_ = static_cast<const uint8_t*>(m);
  const uint8_t* d = r->data_;
  const size_t size = r->size_;
  if (std::memcmp(d, kMagic, 8) != 0) return bad("wrong magic");
  uint32_t version = 0;
  std::memcpy(&version, d + 8, 4);
  if (version != kCacheVersion)
    return bad("format version " + std::to_string(version) + ", this build reads " + std::to_string(kCacheVersion));
  if (std::memcmp(d + size - 8, kEndMagic, 8) != 0) return bad("no end marker (truncated?)");
  uint64_t json_off = 0, json_len = 0, sum = 0;
  std::memcpy(&json_off, d + size - kTrailer, 8);
  std::memcpy(&json_len, d + size - kTrailer + 8, 8);
  std::memcpy(&sum, d + size - 16, 8);
  if (Hash64(d, size - 16, 0) != sum) return bad("checksum mismatch (corrupted)");
  if (json_off < kHeader || json_off > size - kTrailer || json_len > size - kTrailer - json_off)
    return bad("metadata out of bounds");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(d + json_off, d + json_off + json_len);
    r->num_dense_ = j.at("num_dense").get<int>();
    r->num_sparse_ = j.at("num_sparse").get<int>();
    r->multi_ = j.at("multi_hot").get<std::vector<uint8_t>>();
    r->bad_lines_ = j.at("bad_lines").get<uint64_t>();
  } catch (const std::exception& e) {
    return bad(std::string("metadata: ") + e.what());
  }
  if (r->num_dense_ != options.num_dense || r->num_sparse_ != options.num_sparse ||
      r->multi_.size() != static_cast<size_t>(r->num_sparse_))
    return bad("its fields are not the configuration's");
  // The row groups: every column inside the body, every bag offset in order and in range.
  const uint64_t body_end = json_off;
  uint64_t total = 0;
  try {
    const auto& chunks = j.at("chunks");
    for (size_t ci = 0; ci < chunks.size(); ++ci) {
      uint64_t off = chunks[ci].at(0).get<uint64_t>();
      const uint64_t rows = chunks[ci].at(1).get<uint64_t>();
      const uint64_t end = ci + 1 < chunks.size() ? chunks[ci + 1].at(0).get<uint64_t>() : body_end;
      const std::string where = "row group " + std::to_string(ci);
      auto take = [&](uint64_t bytes) -> const uint8_t* {
        if (off > end || bytes > end - off) return nullptr;
        const uint8_t* p = d + off;
        off = Pad8(off + bytes);
        return p;
      };
      if (rows == 0 || rows > kChunkRows || end > body_end || off < kHeader || off % 8)
        return bad(where + ": bad bounds");
      Chunk c;
      c.rows = rows;
      uint64_t header_rows = 0;
      const uint8_t* h = take(8);
      if (!h) return bad(where + ": truncated");
      std::memcpy(&header_rows, h, 8);
      if (header_rows != rows) return bad(where + ": row count differs from the index");
      const uint64_t D = static_cast<uint64_t>(r->num_dense_);
      c.labels = reinterpret_cast<const float*>(take(rows * 4));
      c.dense = reinterpret_cast<const float*>(take(rows * D * 4));
      if (!c.labels || (D && !c.dense)) return bad(where + ": truncated");
      for (size_t f = 0; f < r->multi_.size(); ++f) {
        Chunk::Field cf;
        if (!r->multi_[f]) {
          cf.ids = reinterpret_cast<const uint64_t*>(take(rows * 8));
          if (!cf.ids) return bad(where + ": truncated");
        } else {
          uint64_t nnz = 0;
          const uint8_t* p = take(8);
          if (!p) return bad(where + ": truncated");
          std::memcpy(&nnz, p, 8);
          if (nnz > (end - off) / 12) return bad(where + ": bag size past the end");
          cf.offsets = reinterpret_cast<const uint32_t*>(take((rows + 1) * 4));
          cf.ids = reinterpret_cast<const uint64_t*>(take(nnz * 8));
          cf.weights = reinterpret_cast<const float*>(take(nnz * 4));
          if (!cf.offsets || (nnz && (!cf.ids || !cf.weights))) return bad(where + ": truncated");
          if (cf.offsets[0] != 0 || cf.offsets[rows] != nnz) return bad(where + ": bag offsets do not span the ids");
          for (uint64_t i = 0; i < rows; ++i)
            if (cf.offsets[i] > cf.offsets[i + 1]) return bad(where + ": bag offsets out of order");
        }
        c.fields.push_back(cf);
      }
      total += rows;
      r->chunks_.push_back(std::move(c));
    }
    if (total != j.at("rows").get<uint64_t>()) return bad("row groups do not add up to the rows");
  } catch (const std::exception& e) {
    return bad(std::string("metadata: ") + e.what());
  }
  r->limit_ = options.max_rows ? std::min(options.max_rows, total) : total;
  r->next_ = std::min(options.skip_examples, r->limit_);
  r->chunk_end_ = r->chunks_.empty() ? 0 : r->chunks_[0].rows;
  while (!r->chunks_.empty() && r->next_ >= r->chunk_end_ && r->chunk_ + 1 < r->chunks_.size()) {
    r->chunk_begin_ = r->chunk_end_;
    r->chunk_end_ += r->chunks_[++r->chunk_].rows;
  }
  if (options.vocab_filter) {
    r->vocab_ = options.vocab_filter;
  } else if (!options.vocab.empty()) {
    EMBER_ASSIGN_OR_RETURN(Vocabulary v, ReadVocabulary(options.vocab, options.num_sparse));
    r->vocab_ = std::make_shared<const VocabFilter>(v);
  }
  return r;
}
}  // namespace

Result<nlohmann::json> SourcesJson(const CriteoOptions& o) {
  EMBER_ASSIGN_OR_RETURN(const std::vector<std::string> files, DataFiles(o));
  nlohmann::json sources = nlohmann::json::array();
  for (const auto& f : files) {
    struct stat sb {};
    if (::stat(f.c_str(), &sb) != 0) return Status::IoError("cannot open data file " + f + ": no such file");
    sources.push_back({f, static_cast<uint64_t>(sb.st_size),
                       static_cast<int64_t>(sb.st_mtim.tv_sec) * 1000000000 + sb.st_mtim.tv_nsec});
  }
  return sources;
}

std::string CachePath(const CriteoOptions& options, const std::string& dir) {
  auto files = DataFiles(options);
  const std::string first = files.ok() ? (*files)[0] : options.path;
  std::string names;
  for (const auto& f : files.ok() ? *files : std::vector<std::string>{options.path}) names += f + '\n';
  const size_t slash = first.find_last_of('/');
  const std::string base = slash == std::string::npos ? first : first.substr(slash + 1);
  const std::string where = !dir.empty() ? dir : slash == std::string::npos ? "." : first.substr(0, slash);
  char hex[20];
  std::snprintf(
      hex, sizeof(hex), "%016llx",
      static_cast<unsigned long long>(Hash64(names + SchemaKey(options) + PolicyName(options.on_bad_line), 0)));
  return where + "/" + base + "." + hex + ".embc";
}

Result<CacheBuildStats> BuildCache(const CriteoOptions& given, const std::string& path) {
  const auto start = std::chrono::steady_clock::now();
  CriteoOptions o = given;
  o.batch_size = kChunkRows;
  o.max_rows = 0;
  o.skip_examples = 0;
  o.vocab.clear();  // applied when the cache is read
  EMBER_ASSIGN_OR_RETURN(nlohmann::json sources, SourcesJson(o));
  EMBER_ASSIGN_OR_RETURN(auto reader, CriteoReader::Open(o));
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) return Status::IoError("cannot create " + tmp + ": " + std::strerror(errno));
  auto fail = [&](Status st) {
    std::fclose(f);
    std::remove(tmp.c_str());
    return st;
  };
  Writer w(f);
  const std::vector<uint8_t> multi = MultiHot(o);
  w.Put(kMagic, 8);
  w.Value<uint32_t>(kCacheVersion);
  w.Value<uint32_t>(0);
  nlohmann::json chunks = nlohmann::json::array();
  CacheBuildStats stats;
  Batch b;
  for (;;) {
    auto got = reader->Next(&b);
    if (!got.ok()) return fail(got.status());
    if (!*got) break;
    const size_t n = b.size, D = static_cast<size_t>(o.num_dense), stride = b.labels.size();
    chunks.push_back({w.offset(), n});
    bool ok =
        w.Value<uint64_t>(n) && w.Put(b.labels.data(), n * 4) && w.Pad() && w.Put(b.dense.data(), n * D * 4) && w.Pad();
    for (size_t fi = 0; ok && fi < multi.size(); ++fi) {
      if (!multi[fi]) {
        ok = w.Put(b.sparse.data() + fi * stride, n * 8);
        continue;
      }
      const Bags& bag = b.bags[fi];
      ok = w.Value<uint64_t>(bag.ids.size()) && w.Put(bag.offsets.data(), (n + 1) * 4) && w.Pad() &&
           w.Put(bag.ids.data(), bag.ids.size() * 8) && w.Put(bag.weights.data(), bag.weights.size() * 4) && w.Pad();
    }
    if (!ok) return fail(Status::IoError("write failed: " + tmp));
    stats.rows += n;
  }
  stats.bad_lines = reader->bad_lines();
  nlohmann::json meta = {{"format", "ember-data-cache"},
                         {"version", kCacheVersion},
                         {"rows", stats.rows},
                         {"bad_lines", stats.bad_lines},
                         {"on_bad_line", PolicyName(o.on_bad_line)},
                         {"num_dense", o.num_dense},
                         {"num_sparse", o.num_sparse},
                         {"multi_hot", multi},
                         {"schema", SchemaKey(o)},
                         {"sources", sources},
                         {"chunks", chunks}};
  const std::string text = meta.dump();
  const uint64_t json_off = w.offset();
  bool ok = w.Put(text.data(), text.size()) && w.Value<uint64_t>(json_off) && w.Value<uint64_t>(text.size());
  const uint64_t sum = w.digest();
  ok = ok && std::fwrite(&sum, 8, 1, f) == 1 && std::fwrite(kEndMagic, 1, 8, f) == 8;
  if (!ok || std::fflush(f) != 0 || ::fsync(fileno(f)) != 0) return fail(Status::IoError("write failed: " + tmp));
  std::fclose(f);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return Status::IoError("cannot rename " + tmp + " to " + path + ": " + std::strerror(errno));
  }
  stats.bytes = w.offset() + 16;
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return stats;
}

std::string CacheStaleness(const CriteoOptions& options, const std::string& path) {
  if (!PathExists(path)) return "no cache yet";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "cannot open it";
  struct stat st {};
  std::string why;
  if (::fstat(fd, &st) != 0 || static_cast<size_t>(st.st_size) < kHeader + kTrailer) {
    ::close(fd);
    return "too short";
  }
  uint64_t trailer[4];
  if (::pread(fd, trailer, sizeof(trailer), st.st_size - static_cast<off_t>(kTrailer)) != sizeof(trailer) ||
      std::memcmp(&trailer[3], kEndMagic, 8) != 0 || trailer[1] > (1u << 30) ||
      trailer[0] + trailer[1] > static_cast<uint64_t>(st.st_size)) {
    ::close(fd);
    return "no valid trailer";
  }
  std::string text(trailer[1], '\0');
  const bool read =
      ::pread(fd, text.data(), text.size(), static_cast<off_t>(trailer[0])) == static_cast<ssize_t>(text.size());
  ::close(fd);
  if (!read) return "cannot read its metadata";
  try {
    const auto j = nlohmann::json::parse(text);
    if (j.value("version", 0u) != kCacheVersion) return "another format version";
    auto sources = SourcesJson(options);
    if (!sources.ok()) return sources.status().message();
    if (j.at("sources") != *sources) return "the data files changed";
    if (j.at("schema").get<std::string>() != SchemaKey(options)) return "the columns changed";
    if (j.at("on_bad_line").get<std::string>() != PolicyName(options.on_bad_line)) return "data.on_bad_line changed";
  } catch (const std::exception& e) {
    return std::string("bad metadata: ") + e.what();
  }
  return "";
}

Result<std::unique_ptr<BatchReader>> OpenCache(const CriteoOptions& options, const std::string& path) {
  const std::string stale = CacheStaleness(options, path);
  if (!stale.empty()) return Status::FailedPrecondition(path + ": stale data cache (" + stale + "): run ember prepare");
  EMBER_ASSIGN_OR_RETURN(auto r, CacheReader::Open(options, path));
  return std::unique_ptr<BatchReader>(std::move(r));
}

Result<std::unique_ptr<BatchReader>> OpenDataReader(const CriteoOptions& options, bool cache,
                                                    const std::string& cache_dir) {
  if (!cache) {
    EMBER_ASSIGN_OR_RETURN(auto r, CriteoReader::Open(options));
    return std::unique_ptr<BatchReader>(std::move(r));
  }
  const std::string path = CachePath(options, cache_dir);
  const std::string stale = CacheStaleness(options, path);
  if (!stale.empty()) {
    std::fprintf(stderr, "building the data cache %s (%s)\n", path.c_str(), stale.c_str());
    if (!cache_dir.empty()) EMBER_RETURN_IF_ERROR(MakeDirs(cache_dir));
    auto built = BuildCache(options, path);
    if (!built.ok()) return built.status().WithContext("building the data cache " + path);
  }
  EMBER_ASSIGN_OR_RETURN(auto r, CacheReader::Open(options, path));  // fresh: checked or just built
  return std::unique_ptr<BatchReader>(std::move(r));
}

}  // namespace ember::data
