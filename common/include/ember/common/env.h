// Env: the file system as checkpoints and shard files use it (LevelDB's Env, narrowed to what
// they need), so that tests can run them in memory and inject faults.
//
//   PosixEnv()      the real file system (file.h: temp file + fsync + rename, fsync'd dirs)
//   NewMemEnv()     an in-memory tree (paths are plain strings; directories are implied by
//                   MakeDirs and by the files below them)
//   FaultyEnv       wraps another Env and breaks its N-th mutating call: fails it, writes a
//                   short temp file and fails (a torn write), or "crashes" (that call and every
//                   later one fails, as if the process had died there)
//
// Thread-safety: PosixEnv is stateless; MemEnv and FaultyEnv lock every call.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "ember/common/status.h"

namespace ember {

class Env {
 public:
  virtual ~Env() = default;
  // Replaces `path` atomically: a reader sees the old contents or the new, never a mix.
  virtual Status WriteFileAtomic(const std::string& path, std::string_view contents) = 0;
  virtual Result<std::string> ReadFile(const std::string& path) = 0;
  // Creates `path` and its parents; OK if it exists.
  virtual Status MakeDirs(const std::string& path) = 0;
  // Makes the renames inside a directory durable.
  virtual Status SyncDir(const std::string& path) = 0;
  // Removes a file or a directory tree; OK if absent.
  virtual Status RemoveAll(const std::string& path) = 0;
  // Renames a file or directory (replacing nothing: `to` must not exist).
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  virtual bool Exists(const std::string& path) = 0;
  // Names (not paths) of the entries directly inside `dir`.
  virtual Result<std::vector<std::string>> Children(const std::string& dir) = 0;
};

// The process's file system. Stateless; never deleted.
Env* PosixEnv();
std::unique_ptr<Env> NewMemEnv();

class FaultyEnv final : public Env {
 public:
  enum class Fault { kFail, kShortWrite, kCrash };
  // Passes every call to `base` (which must outlive it) until armed.
  explicit FaultyEnv(Env* base) : base_(base) {}
  // Breaks the `nth` (1-based) mutating call (write, mkdir, sync, remove, rename) from now;
  // 0 breaks nothing. Resets the count and a crash.
  void Arm(int nth, Fault fault);
  // Mutating calls since the last Arm.
  int calls() const;
  bool crashed() const;

  Status WriteFileAtomic(const std::string& path, std::string_view contents) override;
  Result<std::string> ReadFile(const std::string& path) override;
  Status MakeDirs(const std::string& path) override;
  Status SyncDir(const std::string& path) override;
  Status RemoveAll(const std::string& path) override;
  Status Rename(const std::string& from, const std::string& to) override;
  bool Exists(const std::string& path) override;
  Result<std::vector<std::string>> Children(const std::string& dir) override;

 private:
  // The injected error of this call, if it is the one to break (or the process crashed).
  Status Next(const std::string& what, const std::string& path, bool* torn = nullptr);

  Env* base_;
  mutable std::mutex mu_;
  int fail_at_ = 0;
  Fault fault_ = Fault::kFail;
  int calls_ = 0;
  bool crashed_ = false;
};

}  // namespace ember
