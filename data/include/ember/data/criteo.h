// Streaming reader of delimited text: the Criteo Kaggle format by default, any schema (schema.h:
// CSV/TSV with named columns, Avazu) when options.schema says so. Criteo's layout:
//   label \t I1 .. I{num_dense} \t C1 .. C{num_sparse} \n
// label is 0 or 1; I are decimal integers (may be negative or empty); C are hex ids of up to 16
// digits (may be empty). Dense features become log(1 + max(x, 0)) (negatives clamp to 0 as in
// the DLRM reference; missing = 0); sparse ids are the hex value, empty = kMissingId.
//
// Malformed lines are an error naming the file and line (on_bad_line = kError), or are skipped
// and counted (kSkip). Not thread-safe.
#pragma once

#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ember/data/batch.h"
#include "ember/data/schema.h"
#include "ember/data/vocab.h"

namespace ember::data {

enum class BadLinePolicy { kError, kSkip };

struct CriteoOptions {
  // The data: a file, or a glob pattern (`*`, `?`, `[...]`; its matches in name order); `paths`,
  // when given, lists several such entries read one after the other (as one stream: rows,
  // max_rows and skip_examples count across them).
  std::string path;
  std::vector<std::string> paths;
  size_t batch_size = 1024;
  int num_dense = 13;
  int num_sparse = 26;
  BadLinePolicy on_bad_line = BadLinePolicy::kError;
  // Read at most this many examples (0 = all).
  uint64_t max_rows = 0;
  // Examples passed over before the first batch (a resumed epoch's position; they count
  // toward max_rows).
  uint64_t skip_examples = 0;
  // Where those examples end (a checkpoint's cursor): reading starts there instead of passing
  // over them. Its file must be one of the stream's, at least `offset` bytes long, with a line
  // ending just before it; else Open fails naming it. Files before it in the stream are not read
  // (a followed directory's consumed files may be removed).
  StreamCursor resume;
  // A vocabulary file (`ember vocab`): values outside a field's vocabulary read as kOovId.
  std::string vocab;
  // The same, already in memory (a budget's vocabulary, launcher/config.h); takes precedence.
  std::shared_ptr<const VocabFilter> vocab_filter;
  // A longer line is an error naming it (data.max_line_bytes).
  size_t max_line_bytes = 1 << 20;
  // The columns (schema.h); null or the "criteo" preset: the Criteo layout of num_dense and
  // num_sparse, read by its own fast parser. Otherwise num_dense / num_sparse must be the
  // schema's.
  std::shared_ptr<const Schema> schema;
  // Follow the stream as it grows (data.follow): at the end of the last file, wait for more lines
  // (a file being appended to) or for new files (a directory or glob: names after the last one,
  // taken once each, in name order), polling every follow_poll_s, until `stop` says so; the
  // stream then ends there. A line is taken once its newline is written.
  bool follow = false;
  double follow_poll_s = 1.0;
  std::function<bool()> stop;
};

// The files `options` names (path or paths, globs expanded in name order; a directory: its files
// in name order; hidden files, *.tmp and *.tmp.<digits> skipped, also among a glob's matches); an entry matching no
// file is an error naming it (unless following, which waits for files to appear).
Result<std::vector<std::string>> DataFiles(const CriteoOptions& options);

// Parses one line (without its '\n') into example `row` of *batch. On error returns a message
// (without file/line, which the caller adds).
Status ParseCriteoLine(std::string_view line, Batch* batch, size_t row);

class CriteoReader final : public BatchReader {
 public:
  static Result<std::unique_ptr<CriteoReader>> Open(const CriteoOptions& options);
  ~CriteoReader() override;

  Result<bool> Next(Batch* batch) override;
  double Progress() const override;
  uint64_t bad_lines() const override { return bad_lines_; }
  int num_dense() const override { return options_.num_dense; }
  int num_sparse() const override { return options_.num_sparse; }
  uint64_t line_number() const { return line_no_; }  // in the current file
  const std::string& file_name() const { return files_[file_index_]; }

 private:
  explicit CriteoReader(const CriteoOptions& options) : options_(options) {}
  // Next line into *line; false at the end of the last file.
  Result<bool> ReadLine(std::string_view* line);
  Result<bool> ReadFileLine(std::string_view* line);  // of the current file
  Status OpenFile(size_t index);
  // Continues at options_.resume (Open).
  Status Seek(const StreamCursor& at);
  // Where the next line starts (at a record boundary).
  StreamCursor Cursor() const;
  // Up to `limit` examples into *batch; the count read.
  Result<size_t> Fill(Batch* batch, size_t limit);

  CriteoOptions options_;
  FILE* file_ = nullptr;
  std::vector<std::string> files_;
  size_t file_index_ = 0;
  uint64_t file_bytes_ = 0;  // all files
  uint64_t done_bytes_ = 0;  // of the files before the current one
  uint64_t consumed_ = 0;
  uint64_t line_no_ = 0;
  uint64_t rows_ = 0;
  uint64_t skipped_ = 0;
  uint64_t bad_lines_ = 0;
  std::string buf_;
  size_t pos_ = 0;
  bool eof_ = false;
  std::string carry_;
  std::shared_ptr<const VocabFilter> vocab_;
  std::unique_ptr<SchemaParser> parser_;  // a schema other than Criteo's
  std::vector<uint8_t> multi_hot_;
  bool header_done_ = false;
  std::string record_;  // a quoted record that spans lines
};

}  // namespace ember::data
