// File I/O with atomic replace and checksums.
//
// WriteFileAtomic writes to "<path>.tmp.<pid>", fsyncs, renames over path and fsyncs the
// directory: after a crash the file is either the old one or the new one, never a mix.
// Functions are thread-compatible (distinct paths may be written concurrently).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "ember/common/status.h"

namespace ember {

Status WriteFileAtomic(const std::string& path, std::string_view contents);
Result<std::string> ReadFile(const std::string& path);
// Creates path and its parents; OK if it exists as a directory.
Status MakeDirs(const std::string& path);
// fsyncs a directory so that renames inside it are durable.
Status SyncDir(const std::string& path);
bool PathExists(const std::string& path);
// Checksum of file contents recorded in manifests (XXH3-64).
uint64_t Checksum(std::string_view bytes);

}  // namespace ember
