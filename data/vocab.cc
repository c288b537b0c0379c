#include "ember/data/vocab.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <functional>
#include <sstream>
#include <unordered_map>

#include "ember/common/file.h"

namespace ember::data {

Result<Vocabulary> CountVocabulary(BatchReader* reader, const VocabCut& cut) {
  const int F = reader->num_sparse();
  std::vector<std::unordered_map<uint64_t, uint64_t>> counts(static_cast<size_t>(F));
  std::vector<uint64_t> occurrences(static_cast<size_t>(F));  // ids seen (a bag's ids each count)
  Vocabulary v;
  v.cut = cut;
  Batch batch;
  while (true) {
    EMBER_ASSIGN_OR_RETURN(bool more, reader->Next(&batch));
    if (!more) break;
    v.rows += batch.size;
    for (int f = 0; f < F; ++f) {
      size_t n = 0;
      const uint64_t* ids = batch.field_ids(f, &n);
      auto& c = counts[static_cast<size_t>(f)];
      for (size_t i = 0; i < n; ++i) ++c[ids[i]];
      occurrences[static_cast<size_t>(f)] += n;
    }
  }
  for (int f = 0; f < F; ++f) {
    auto& c = counts[static_cast<size_t>(f)];
    std::vector<std::pair<uint64_t, uint64_t>> kept;  // (count, value)
    for (const auto& [value, n] : c)
      if (n >= cut.min_count) kept.emplace_back(n, value);
    std::sort(kept.begin(), kept.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first > b.first : a.second < b.second;
    });
    if (cut.top_k > 0 && kept.size() > cut.top_k) kept.resize(cut.top_k);
    FieldVocab fv;
    fv.distinct = c.size();
    fv.occurrences = occurrences[static_cast<size_t>(f)];
    for (const auto& [n, value] : kept) {
      fv.values.push_back(value);
      fv.counts.push_back(n);
      fv.kept_occurrences += n;
    }
    v.fields.push_back(std::move(fv));
    c = {};  // free as we go
  }
  return v;
}

Vocabulary TopValues(const Vocabulary& counted, uint64_t n) {
  Vocabulary v;
  v.source = counted.source;
  v.rows = counted.rows;
  std::vector<uint64_t> all;
  for (const auto& f : counted.fields) all.insert(all.end(), f.counts.begin(), f.counts.end());
  // The least count kept: every value above it is kept, and of the values at it the first ones
  // in field order until n.
  uint64_t least = 0, at_least = 0;
  if (n > 0 && n < all.size()) {
    std::nth_element(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(n - 1), all.end(), std::greater<>());
    least = all[n - 1];
    uint64_t above = 0;
    for (uint64_t c : all) above += c > least;
    at_least = n - above;
  } else if (n > 0) {
    least = all.empty() ? 0 : *std::min_element(all.begin(), all.end());
    at_least = all.size();
  }
  v.cut.min_count = std::max<uint64_t>(least, 1);
  for (const auto& f : counted.fields) {
    FieldVocab fv;
    fv.distinct = f.distinct;
    fv.occurrences = f.occurrences;
    for (size_t i = 0; i < f.values.size() && n > 0; ++i) {
      if (f.counts[i] < least) break;  // counts are in descending order
      if (f.counts[i] == least) {
        if (at_least == 0) break;
        --at_least;
      }
      fv.values.push_back(f.values[i]);
      fv.counts.push_back(f.counts[i]);
      fv.kept_occurrences += f.counts[i];
    }
    v.fields.push_back(std::move(fv));
  }
  return v;
}

Status WriteVocabulary(const std::string& path, const Vocabulary& vocab) {
  std::string out = "# ember vocabulary v1 source=" + vocab.source + " rows=" + std::to_string(vocab.rows) +
                    " min_count=" + std::to_string(vocab.cut.min_count) + " top_k=" + std::to_string(vocab.cut.top_k) +
                    "\n";
  char buf[64];
  for (size_t f = 0; f < vocab.fields.size(); ++f) {
    const FieldVocab& fv = vocab.fields[f];
    for (size_t i = 0; i < fv.values.size(); ++i) {
      if (fv.values[i] == kMissingId)
        std::snprintf(buf, sizeof(buf), "C%zu\t\t%" PRIu64 "\n", f + 1, fv.counts[i]);
      else
        std::snprintf(buf, sizeof(buf), "C%zu\t%" PRIx64 "\t%" PRIu64 "\n", f + 1, fv.values[i], fv.counts[i]);
      out += buf;
    }
  }
  return WriteFileAtomic(path, out);
}

Result<Vocabulary> ReadVocabulary(const std::string& path, int num_sparse) {
  EMBER_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  Vocabulary v;
  v.source = path;
  v.fields.resize(static_cast<size_t>(num_sparse));
  std::istringstream in(text);
  std::string line;
  uint64_t no = 0;
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument(path + ":" + std::to_string(no) + ": " + why);
  };
  while (std::getline(in, line)) {
    ++no;
    if (no == 1) {
      if (line.rfind("# ember vocabulary v1", 0) != 0) return bad("not an ember vocabulary (ember vocab writes one)");
      continue;
    }
    if (line.empty()) continue;
    const size_t t1 = line.find('\t'), t2 = t1 == std::string::npos ? t1 : line.find('\t', t1 + 1);
    if (t2 == std::string::npos) return bad("expected field<TAB>value<TAB>count");
    const std::string field = line.substr(0, t1), value = line.substr(t1 + 1, t2 - t1 - 1), count = line.substr(t2 + 1);
    char* end = nullptr;
    const long f = field.size() > 1 && field[0] == 'C' ? std::strtol(field.c_str() + 1, &end, 10) : 0;
    if (f < 1 || f > num_sparse || (end && *end))
      return bad("field '" + field + "' is not one of C1..C" + std::to_string(num_sparse));
    uint64_t id = kMissingId;
    if (!value.empty()) {
      if (value.size() > 16 || value.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)
        return bad("value '" + value + "' is not a hex id of up to 16 digits");
      id = std::strtoull(value.c_str(), nullptr, 16);
    }
    if (count.empty() || count.find_first_not_of("0123456789") != std::string::npos)
      return bad("count '" + count + "' is not a non-negative integer");
    FieldVocab& fv = v.fields[static_cast<size_t>(f - 1)];
    fv.values.push_back(id);
    fv.counts.push_back(std::strtoull(count.c_str(), nullptr, 10));
  }
  if (no == 0) return Status::InvalidArgument(path + ": empty file (not an ember vocabulary)");
  return v;
}

VocabFilter::VocabFilter(const Vocabulary& vocab) {
  for (const auto& f : vocab.fields) kept_.emplace_back(f.values.begin(), f.values.end());
}

void VocabFilter::Apply(Batch* batch) const {
  const size_t F = std::min(kept_.size(), static_cast<size_t>(batch->num_sparse));
  for (size_t f = 0; f < F; ++f) {
    const bool bag = batch->is_multi_hot(static_cast<int>(f));
    uint64_t* ids = bag ? batch->bags[f].ids.data() : batch->sparse.data() + f * batch->labels.size();
    const size_t n = bag ? batch->bags[f].ids.size() : batch->size;
    for (size_t i = 0; i < n; ++i)
      if (!kept_[f].count(ids[i])) ids[i] = kOovId;
  }
}

}  // namespace ember::data
