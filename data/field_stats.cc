#include "ember/data/field_stats.h"

#include <sys/stat.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "ember/common/file.h"
#include "ember/common/hash.h"

namespace ember::data {
namespace {
// Open-addressing set of u64 (exact distinct counting; all-ones stored out of band).
class U64Set {
 public:
  U64Set() : slots_(1024, kEmpty) {}
  void Insert(uint64_t v) {
    if (v == kEmpty) {
      has_empty_ = true;
      return;
    }
    size_t b = Mix64(v) & (slots_.size() - 1);
    while (slots_[b] != kEmpty) {
      if (slots_[b] == v) return;
      b = (b + 1) & (slots_.size() - 1);
    }
    slots_[b] = v;
    if (++size_ * 2 > slots_.size()) Rehash();
  }
  uint64_t size() const { return size_ + (has_empty_ ? 1 : 0); }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  void Rehash() {
    std::vector<uint64_t> old(slots_.size() * 2, kEmpty);
    old.swap(slots_);
    for (uint64_t v : old) {
      if (v == kEmpty) continue;
      size_t b = Mix64(v) & (slots_.size() - 1);
      while (slots_[b] != kEmpty) b = (b + 1) & (slots_.size() - 1);
      slots_[b] = v;
    }
  }
  std::vector<uint64_t> slots_;
  uint64_t size_ = 0;
  bool has_empty_ = false;
};
}  // namespace

Result<FieldStats> CountFields(BatchReader* reader) {
  FieldStats st;
  std::vector<U64Set> sets(static_cast<size_t>(reader->num_sparse()));
  Batch batch;
  for (;;) {
    EMBER_ASSIGN_OR_RETURN(bool got, reader->Next(&batch));
    if (!got) break;
    st.rows += batch.size;
    for (int f = 0; f < batch.num_sparse; ++f) {
      const uint64_t* ids = batch.field(f);
      for (size_t i = 0; i < batch.size; ++i) sets[f].Insert(ids[i]);
    }
  }
  for (const auto& s : sets) st.distinct.push_back(s.size());
  return st;
}

Result<FieldStats> LoadOrCountFields(const CriteoOptions& options) {
  struct stat sb {};
  if (::stat(options.path.c_str(), &sb) != 0) return Status::IoError("cannot open " + options.path + ": no such file");
  const std::string cache = options.path + ".fields.json";
  const uint64_t size = static_cast<uint64_t>(sb.st_size);
  const int64_t mtime = static_cast<int64_t>(sb.st_mtim.tv_sec) * 1000000000 + sb.st_mtim.tv_nsec;
  if (PathExists(cache)) {
    auto text = ReadFile(cache);
    if (text.ok()) {
      try {
        auto j = nlohmann::json::parse(*text);
        if (j.value("size", uint64_t{0}) == size && j.value("mtime_ns", int64_t{0}) == mtime &&
            j.value("max_rows", uint64_t{0}) == options.max_rows &&
            j["distinct"].size() == static_cast<size_t>(options.num_sparse)) {
          FieldStats st;
          st.rows = j["rows"].get<uint64_t>();
          st.distinct = j["distinct"].get<std::vector<uint64_t>>();
          return st;
        }
      } catch (const std::exception&) {
        // A damaged cache is recounted and rewritten.
      }
    }
  }
  std::fprintf(stderr, "counting distinct values per field in %s (cached in %s)\n", options.path.c_str(),
               cache.c_str());
  CriteoOptions o = options;
  o.batch_size = 65536;
  EMBER_ASSIGN_OR_RETURN(auto reader, CriteoReader::Open(o));
  EMBER_ASSIGN_OR_RETURN(FieldStats st, CountFields(reader.get()));
  nlohmann::json j = {{"file", options.path},         {"size", size},           {"mtime_ns", mtime}, {"rows", st.rows},
                      {"max_rows", options.max_rows}, {"distinct", st.distinct}};
  // Best effort, and never into a directory marked read-only (shared data samples), even as root.
  const size_t slash = options.path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : options.path.substr(0, slash + 1);
  struct stat db {};
  if (::stat(dir.c_str(), &db) == 0 && (db.st_mode & 0222) != 0) (void)WriteFileAtomic(cache, j.dump(1) + "\n");
  return st;
}

}  // namespace ember::data
