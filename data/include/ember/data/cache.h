// The binary cache of a text data stream (`ember prepare`, `data.cache`): the examples as the text
// reader makes them (labels, transformed dense values, ids, bags with their pooling weights), in
// row groups of columns, read back with mmap at memory speed. Batches read from the cache equal
// the text reader's bit for bit. docs/formats.md has the layout.
//
// A cache records its sources (every file's path, size and modification time) and the full
// schema it was parsed with; one whose sources or schema changed is stale: OpenDataReader rebuilds
// it, OpenCache refuses it. A damaged cache (checksum, bounds) is refused naming the file.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "ember/common/status.h"
#include "ember/data/batch.h"
#include "ember/data/criteo.h"

namespace ember::data {

inline constexpr uint32_t kCacheVersion = 1;

// Where the cache of `options`' stream lives: `dir` (or the first source file's directory when
// empty) / <first file's name>.<16 hex digits of the sources' names and schema>.embc.
std::string CachePath(const CriteoOptions& options, const std::string& dir);

struct CacheBuildStats {
  uint64_t rows = 0, bad_lines = 0, bytes = 0;
  double seconds = 0;
};
// Parses the whole stream (every row; options.max_rows and skip_examples are ignored) into `path`
// (temporary file, fsync, rename).
Result<CacheBuildStats> BuildCache(const CriteoOptions& options, const std::string& path);

// Whether `path` is a valid cache of `options`' current sources and schema ("" = yes; else why not).
std::string CacheStaleness(const CriteoOptions& options, const std::string& path);

// A reader over a cache, with the text reader's batch_size, max_rows, skip_examples and vocab.
// Refuses a stale or damaged cache.
Result<std::unique_ptr<BatchReader>> OpenCache(const CriteoOptions& options, const std::string& path);

// The reader a job uses: the text reader, or with `cache` set the cache in `cache_dir` (built, or
// rebuilt when stale, with a log line, then read).
Result<std::unique_ptr<BatchReader>> OpenDataReader(const CriteoOptions& options, bool cache,
                                                    const std::string& cache_dir);

}  // namespace ember::data
