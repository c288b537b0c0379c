#include "ember/data/criteo.h"

#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <thread>

#include "ember/data/vocab.h"

namespace ember::data {
namespace {
constexpr size_t kChunk = 1 << 22;
}  // namespace

Status ParseCriteoLine(std::string_view line, Batch* batch, size_t row) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  const int nd = batch->num_dense, ns = batch->num_sparse;
  const int expected = 1 + nd + ns;
  std::string_view fields[1 + 64 + 1024];
  if (expected > static_cast<int>(sizeof(fields) / sizeof(fields[0])))
    return Status::InvalidArgument("too many fields configured");
  int count = 0;
  size_t start = 0;
  for (;;) {
    const size_t tab = line.find('\t', start);
    const std::string_view f = line.substr(start, tab == std::string_view::npos ? tab : tab - start);
    if (count < expected) fields[count] = f;
    ++count;
    if (tab == std::string_view::npos) break;
    start = tab + 1;
  }
  if (count != expected)
    return Status::InvalidArgument("expected " + std::to_string(expected) + " tab-separated fields, got " +
                                   std::to_string(count));
  if (fields[0] == "1")
    batch->labels[row] = 1.0f;
  else if (fields[0] == "0")
    batch->labels[row] = 0.0f;
  else
    return Status::InvalidArgument("field 1 (label): expected 0 or 1, got '" + std::string(fields[0]) + "'");
  float* dense = batch->dense.data() + row * nd;
  for (int j = 0; j < nd; ++j) {
    const std::string_view f = fields[1 + j];
    if (f.empty()) {
      dense[j] = 0.0f;
      continue;
    }
    int64_t v = 0;
    auto [p, ec] = std::from_chars(f.data(), f.data() + f.size(), v);
    if (ec != std::errc() || p != f.data() + f.size())
      return Status::InvalidArgument("field " + std::to_string(2 + j) + " (I" + std::to_string(1 + j) +
                                     "): expected an integer, got '" + std::string(f) + "'");
    dense[j] = v > 0 ? static_cast<float>(std::log1p(static_cast<double>(v))) : 0.0f;
  }
  const size_t stride = batch->labels.size();
  for (int j = 0; j < ns; ++j) {
    const std::string_view f = fields[1 + nd + j];
    uint64_t id = kMissingId;
    if (!f.empty() && !ParseHexId(f, &id))
      return Status::InvalidArgument("field " + std::to_string(2 + nd + j) + " (C" + std::to_string(1 + j) +
                                     "): expected a hex id of at most 16 digits, got '" + std::string(f) + "'");
    batch->sparse[j * stride + row] = id;
  }
  return Status::Ok();
}

Result<std::unique_ptr<CriteoReader>> CriteoReader::Open(const CriteoOptions& options) {
  if (options.batch_size == 0) return Status::InvalidArgument("batch size must be > 0");
  if (options.num_dense < 0 || options.num_dense > 64 || options.num_sparse < 1 || options.num_sparse > 1000)
    return Status::InvalidArgument("bad field counts");
  if (options.schema && !options.schema->criteo()) {
    EMBER_RETURN_IF_ERROR(ValidateSchema(*options.schema));
    if (options.schema->num_dense() != options.num_dense || options.schema->num_fields() != options.num_sparse)
      return Status::InvalidArgument("reader options disagree with the schema's field counts");
  }
  std::unique_ptr<CriteoReader> r(new CriteoReader(options));
  if (options.schema && !options.schema->criteo()) {
    r->parser_ = std::make_unique<SchemaParser>(*options.schema);
    r->multi_hot_ = options.schema->multi_hot_fields();
  }
  EMBER_ASSIGN_OR_RETURN(r->files_, DataFiles(options));
  for (const auto& f : r->files_) {
    struct stat st {};
    if (::stat(f.c_str(), &st) == 0) r->file_bytes_ += static_cast<uint64_t>(st.st_size);
  }
  if (options.resume.valid) {
    EMBER_RETURN_IF_ERROR(r->Seek(options.resume));
  } else if (!r->files_.empty()) {
    EMBER_RETURN_IF_ERROR(r->OpenFile(0));
  }
  if (options.vocab_filter) {
    r->vocab_ = options.vocab_filter;
  } else if (!options.vocab.empty()) {
    EMBER_ASSIGN_OR_RETURN(Vocabulary v, ReadVocabulary(options.vocab, options.num_sparse));
    r->vocab_ = std::make_shared<const VocabFilter>(v);
  }
  return r;
}

namespace {
// A file still being written by its producer: hidden, `*.tmp`, or `*.tmp.<digits>` (the temporary
// name of an atomic write, ember's own included), renamed into place when complete.
bool BeingWritten(const std::string& name) {
  if (name.empty() || name[0] == '.') return true;
  if (name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0) return true;
  const size_t at = name.rfind(".tmp.");
  return at != std::string::npos && at + 5 < name.size() &&
         name.find_first_not_of("0123456789", at + 5) == std::string::npos;
}
}  // namespace

Result<std::vector<std::string>> DataFiles(const CriteoOptions& options) {
  const std::vector<std::string> entries =
      options.paths.empty() ? std::vector<std::string>{options.path} : options.paths;
  std::vector<std::string> files;
  for (const auto& e : entries) {
    struct stat st {};
    if (::stat(e.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {  // a directory: its files in name order
      std::vector<std::string> in;
      std::error_code ec;
      for (const auto& f : std::filesystem::directory_iterator(e, ec)) {
        const std::string name = f.path().filename().string();
        if (BeingWritten(name)) continue;
        if (f.is_regular_file(ec)) in.push_back(f.path().string());
      }
      std::sort(in.begin(), in.end());
      if (in.empty() && !options.follow) return Status::IoError("no data file in directory " + e);
      files.insert(files.end(), in.begin(), in.end());
      continue;
    }
    if (e.find_first_of("*?[") == std::string::npos) {
      files.push_back(e);
      continue;
    }
    glob_t g{};
    const int rc = ::glob(e.c_str(), 0, nullptr, &g);
    if (rc == 0)
      for (size_t i = 0; i < g.gl_pathc; ++i)  // glob sorts by name
        if (!BeingWritten(std::filesystem::path(g.gl_pathv[i]).filename().string())) files.push_back(g.gl_pathv[i]);
    ::globfree(&g);
    if (rc != 0 && !options.follow) return Status::IoError("no data file matches '" + e + "'");
  }
  if (files.empty() && !options.follow) return Status::InvalidArgument("no data file given");
  return files;
}

Status CriteoReader::OpenFile(size_t index) {
  if (file_) {
    std::fclose(file_);
    file_ = nullptr;
    struct stat st {};
    if (::stat(files_[file_index_].c_str(), &st) == 0) done_bytes_ += static_cast<uint64_t>(st.st_size);
  }
  file_index_ = index;
  file_ = std::fopen(files_[index].c_str(), "rb");
  if (!file_) return Status::IoError("cannot open data file " + files_[index] + ": " + std::strerror(errno));
  consumed_ = 0;
  line_no_ = 0;
  buf_.clear();
  pos_ = 0;
  eof_ = false;
  carry_.clear();
  header_done_ = false;  // each file may start with its header
  return Status::Ok();
}

Status CriteoReader::Seek(const StreamCursor& at) {
  const auto it = std::find(files_.begin(), files_.end(), at.file);
  auto bad = [&](const std::string& why) {
    return Status::FailedPrecondition("resuming the stream at " + at.file + " byte " + std::to_string(at.offset) +
                                      " (the checkpoint's position): " + why);
  };
  if (it == files_.end()) return bad("the data no longer lists that file");
  EMBER_RETURN_IF_ERROR(OpenFile(static_cast<size_t>(it - files_.begin())));
  for (size_t i = 0; i < file_index_; ++i) {  // consumed: counted as read for the progress
    struct stat st {};
    if (::stat(files_[i].c_str(), &st) == 0) done_bytes_ += static_cast<uint64_t>(st.st_size);
  }
  struct stat st {};
  if (::fstat(::fileno(file_), &st) != 0 || static_cast<uint64_t>(st.st_size) < at.offset)
    return bad("the file is shorter than that");
  if (at.offset > 0) {
    char before = 0;
    if (::pread(::fileno(file_), &before, 1, static_cast<off_t>(at.offset - 1)) != 1 || before != '\n')
      return bad("no line ends there (the file changed)");
    // A file's header names its columns: read it before going on past it.
    if (parser_ && (parser_->schema().header || parser_->schema().detect_header)) {
      std::string_view line;
      EMBER_ASSIGN_OR_RETURN(const bool got, ReadFileLine(&line));
      header_done_ = true;
      const Status h = got ? parser_->SetHeader(line) : Status::Ok();
      if (!h.ok() && parser_->schema().header) return bad(h.message());
    }
  }
  if (std::fseek(file_, static_cast<long>(at.offset), SEEK_SET) != 0) return bad(std::strerror(errno));
  buf_.clear();
  pos_ = 0;
  eof_ = false;
  carry_.clear();
  consumed_ = at.offset;
  line_no_ = at.line;
  skipped_ = options_.skip_examples;  // not read again
  rows_ = options_.skip_examples;
  return Status::Ok();
}

StreamCursor CriteoReader::Cursor() const {
  StreamCursor c;
  if (!file_) return c;
  const long told = std::ftell(file_);
  if (told < 0) return c;
  const uint64_t ahead = (buf_.size() - pos_) + carry_.size();
  if (static_cast<uint64_t>(told) < ahead) return c;
  c.valid = true;
  c.file = files_[file_index_];
  c.offset = static_cast<uint64_t>(told) - ahead;
  c.line = line_no_;
  return c;
}

CriteoReader::~CriteoReader() {
  if (file_) std::fclose(file_);
}

Result<bool> CriteoReader::ReadLine(std::string_view* line) {
  for (;;) {
    if (file_) {
      EMBER_ASSIGN_OR_RETURN(const bool got, ReadFileLine(line));
      if (got) return true;
    }
    if (file_index_ + 1 < files_.size() || (!file_ && !files_.empty())) {
      if (file_ && !carry_.empty()) {  // following: the finished file's last line had no newline
        *line = carry_;
        ++line_no_;
        return true;
      }
      EMBER_RETURN_IF_ERROR(OpenFile(file_ ? file_index_ + 1 : 0));
      continue;
    }
    if (!options_.follow) return false;
    // Following: files named after the last one join the stream; else wait for the file to grow.
    auto now = DataFiles(options_);
    bool added = false;
    if (now.ok())
      for (const auto& f : *now)
        if (files_.empty() || f > files_.back()) {
          files_.push_back(f);
          added = true;
        }
    if (added) continue;
    if (options_.stop && options_.stop()) return false;
    std::this_thread::sleep_for(std::chrono::duration<double>(options_.follow_poll_s));
  }
}

Result<bool> CriteoReader::ReadFileLine(std::string_view* line) {
  for (;;) {
    const char* base = buf_.data() + pos_;
    const size_t avail = buf_.size() - pos_;
    const void* nl = std::memchr(base, '\n', avail);
    if (nl) {
      const size_t len = static_cast<const char*>(nl) - base;
      if (carry_.size() + len > options_.max_line_bytes)
        return Status::InvalidArgument(file_name() + ":" + std::to_string(line_no_ + 1) + ": line longer than " +
                                       std::to_string(options_.max_line_bytes) + " bytes (data.max_line_bytes)");
      if (!carry_.empty()) {
        carry_.append(base, len);
        *line = carry_;
      } else {
        *line = std::string_view(base, len);
      }
      pos_ += len + 1;
      consumed_ += len + 1;
      ++line_no_;
      return true;
    }
    if (eof_ && options_.follow) {  // no complete line yet: keep the partial one, read again later
      if (carry_.size() + avail > options_.max_line_bytes)
        return Status::InvalidArgument(file_name() + ":" + std::to_string(line_no_ + 1) + ": line longer than " +
                                       std::to_string(options_.max_line_bytes) + " bytes (data.max_line_bytes)");
      carry_.append(base, avail);
      consumed_ += avail;
      pos_ = buf_.size();
      eof_ = false;
      std::clearerr(file_);
      return false;
    }
    if (eof_) {
      if (avail == 0 && carry_.empty()) return false;
      carry_.append(base, avail);  // last line without '\n'
      pos_ = buf_.size();
      consumed_ += avail;
      ++line_no_;
      *line = carry_;
      return true;
    }
    // Keep the partial line, refill; a line longer than any real example is an error, not a
    // buffer that grows with whatever the file holds.
    if (carry_.size() + avail > options_.max_line_bytes)
      return Status::InvalidArgument(file_name() + ":" + std::to_string(line_no_ + 1) + ": line longer than " +
                                     std::to_string(options_.max_line_bytes) + " bytes (data.max_line_bytes)");
    carry_.append(base, avail);
    buf_.resize(kChunk);
    const size_t got = std::fread(buf_.data(), 1, kChunk, file_);
    if (got < kChunk) {
      if (std::ferror(file_)) return Status::IoError("read error in " + file_name());
      eof_ = true;
    }
    buf_.resize(got);
    pos_ = 0;
    if (carry_.empty()) continue;
    // The carried fragment will be completed from the new chunk.
    const void* nl2 = std::memchr(buf_.data(), '\n', got);
    if (nl2) {
      const size_t len = static_cast<const char*>(nl2) - buf_.data();
      carry_.append(buf_.data(), len);
      pos_ = len + 1;
      consumed_ += len + 1;
      ++line_no_;
      *line = carry_;
      return true;
    }
  }
}

Result<bool> CriteoReader::Next(Batch* batch) {
  while (skipped_ < options_.skip_examples) {  // a resumed epoch: pass what was trained on
    const size_t n = static_cast<size_t>(std::min<uint64_t>(options_.skip_examples - skipped_, 4096));
    Batch scratch;
    EMBER_ASSIGN_OR_RETURN(const size_t got, Fill(&scratch, n));
    if (got == 0) break;
    skipped_ += got;
  }
  EMBER_ASSIGN_OR_RETURN(const size_t rows, Fill(batch, options_.batch_size));
  if (vocab_) vocab_->Apply(batch);
  batch->end = Cursor();
  return rows > 0;
}

Result<size_t> CriteoReader::Fill(Batch* batch, size_t limit) {
  batch->Reset(options_.num_dense, options_.num_sparse, limit, &multi_hot_);
  size_t row = 0;
  while (row < limit) {
    if (options_.max_rows && rows_ >= options_.max_rows) break;
    std::string_view line;
    // Lines returned from carry_ are invalidated by the next ReadLine; parse before that.
    auto got = ReadLine(&line);
    if (!got.ok()) return got.status();
    if (!*got) {
      // A followed stream ends only when stopped: an incomplete batch is left unread (its lines are
      // after the position a checkpoint records, so a resumed run reads them).
      if (options_.follow) row = 0;
      break;
    }
    const bool from_carry = !carry_.empty() && line.data() == carry_.data();
    const uint64_t first_line = line_no_;
    if (parser_ && SchemaParser::OpenQuote(line)) {
      // RFC 4180: a quoted field holds a newline; the record goes on until its quotes balance.
      record_.assign(line.data(), line.size());
      if (from_carry) carry_.clear();
      for (;;) {
        std::string_view more;
        auto next = ReadFileLine(&more);  // a record does not go on into the next file
        if (!next.ok()) return next.status();
        if (!*next)
          return Status::InvalidArgument(file_name() + ":" + std::to_string(first_line) +
                                         ": a quoted field is not closed before the end of the file");
        const bool more_carry = !carry_.empty() && more.data() == carry_.data();
        record_ += '\n';
        record_.append(more.data(), more.size());
        if (more_carry) carry_.clear();
        if (record_.size() > options_.max_line_bytes)
          return Status::InvalidArgument(file_name() + ":" + std::to_string(first_line) + ": record longer than " +
                                         std::to_string(options_.max_line_bytes) + " bytes (data.max_line_bytes)");
        if (!SchemaParser::OpenQuote(record_)) break;
      }
      line = record_;
    }
    if (line.empty() || (line.size() == 1 && line[0] == '\r')) {
      if (from_carry) carry_.clear();
      continue;  // blank lines are ignored
    }
    Status st;
    if (parser_ && !header_done_ && (parser_->schema().header || parser_->schema().detect_header)) {
      header_done_ = true;
      st = parser_->SetHeader(line);
      if (st.ok() || parser_->schema().header) {
        if (from_carry) carry_.clear();
        if (!st.ok())
          return Status::InvalidArgument(file_name() + ":" + std::to_string(first_line) + ": " + st.message());
        continue;
      }
    }
    st = parser_ ? parser_->Parse(line, batch, row) : ParseCriteoLine(line, batch, row);
    if (from_carry) carry_.clear();
    if (!st.ok()) {
      if (options_.on_bad_line == BadLinePolicy::kSkip) {
        ++bad_lines_;
        continue;
      }
      return Status::InvalidArgument(file_name() + ":" + std::to_string(first_line) + ": " + st.message());
    }
    ++row;
    ++rows_;
  }
  batch->size = row;
  return row;
}

double CriteoReader::Progress() const {
  if (file_bytes_ == 0) return 0;
  return std::min(1.0, static_cast<double>(done_bytes_ + consumed_) / static_cast<double>(file_bytes_));
}

}  // namespace ember::data
