#include "ember/common/env.h"

#include <filesystem>
#include <map>
#include <set>

#include "ember/common/file.h"

namespace ember {
namespace {
namespace fs = std::filesystem;

class Posix final : public Env {
 public:
  Status WriteFileAtomic(const std::string& path, std::string_view contents) override {
    return ember::WriteFileAtomic(path, contents);
  }
  Result<std::string> ReadFile(const std::string& path) override { return ember::ReadFile(path); }
  Status MakeDirs(const std::string& path) override { return ember::MakeDirs(path); }
  Status SyncDir(const std::string& path) override { return ember::SyncDir(path); }
  Status RemoveAll(const std::string& path) override {
    std::error_code ec;
    fs::remove_all(path, ec);
    if (ec) return Status::IoError("cannot remove " + path + ": " + ec.message());
    return Status::Ok();
  }
  Status Rename(const std::string& from, const std::string& to) override {
    std::error_code ec;
    if (fs::exists(to, ec)) return Status::IoError("cannot rename " + from + " to " + to + ": it exists");
    fs::rename(from, to, ec);
    if (ec) return Status::IoError("cannot rename " + from + " to " + to + ": " + ec.message());
    return Status::Ok();
  }
  bool Exists(const std::string& path) override { return PathExists(path); }
  Result<std::vector<std::string>> Children(const std::string& dir) override {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) out.push_back(e.path().filename().string());
    if (ec) return Status::IoError("cannot list " + dir + ": " + ec.message());
    return out;
  }
};

// Paths are normalised lexically ("a//b/" -> "a/b"); a directory exists if made or if a file
// lies below it.
class Mem final : public Env {
 public:
  Status WriteFileAtomic(const std::string& path, std::string_view contents) override {
    std::lock_guard<std::mutex> lock(mu_);
    const std::string p = Norm(path);
    if (!DirExists(Parent(p))) return Status::IoError("cannot create " + path + ".tmp: no such directory");
    files_[p] = std::string(contents);
    return Status::Ok();
  }
  Result<std::string> ReadFile(const std::string& path) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = files_.find(Norm(path));
    if (it == files_.end()) return Status::IoError("cannot open " + path + ": No such file or directory");
    return it->second;
  }
  Status MakeDirs(const std::string& path) override {
    std::lock_guard<std::mutex> lock(mu_);
    for (std::string p = Norm(path); !p.empty() && p != "/" && p != "."; p = Parent(p)) dirs_.insert(p);
    return Status::Ok();
  }
  Status SyncDir(const std::string& path) override {
    std::lock_guard<std::mutex> lock(mu_);
    return DirExists(Norm(path)) ? Status::Ok() : Status::IoError("cannot open directory " + path);
  }
  Status RemoveAll(const std::string& path) override {
    std::lock_guard<std::mutex> lock(mu_);
    const std::string p = Norm(path);
    files_.erase(p);
    dirs_.erase(p);
    EraseBelow(&files_, p);
    EraseBelow(&dirs_, p);
    return Status::Ok();
  }
  Status Rename(const std::string& from, const std::string& to) override {
    std::lock_guard<std::mutex> lock(mu_);
    const std::string a = Norm(from), b = Norm(to);
    if (files_.count(b) || DirExists(b)) return Status::IoError("cannot rename " + from + " to " + to + ": it exists");
    if (auto it = files_.find(a); it != files_.end()) {
      files_[b] = std::move(it->second);
      files_.erase(it);
      return Status::Ok();
    }
    if (!DirExists(a)) return Status::IoError("cannot rename " + from + ": No such file or directory");
    std::map<std::string, std::string> moved;
    for (auto it = files_.lower_bound(a + "/"); it != files_.end() && it->first.rfind(a + "/", 0) == 0;)
      moved[b + it->first.substr(a.size())] = std::move(it->second), it = files_.erase(it);
    files_.insert(moved.begin(), moved.end());
    std::set<std::string> dirs;
    for (auto it = dirs_.begin(); it != dirs_.end();)
      if (*it == a || it->rfind(a + "/", 0) == 0)
        dirs.insert(b + it->substr(a.size())), it = dirs_.erase(it);
      else
        ++it;
    dirs_.insert(dirs.begin(), dirs.end());
    dirs_.insert(b);
    return Status::Ok();
  }
  bool Exists(const std::string& path) override {
    std::lock_guard<std::mutex> lock(mu_);
    const std::string p = Norm(path);
    return files_.count(p) || DirExists(p);
  }
  Result<std::vector<std::string>> Children(const std::string& dir) override {
    std::lock_guard<std::mutex> lock(mu_);
    const std::string d = Norm(dir);
    if (!DirExists(d)) return Status::IoError("cannot list " + dir + ": No such file or directory");
    std::set<std::string> names;
    auto add = [&](const std::string& p) {
      if (p.size() <= d.size() + 1 || p.compare(0, d.size() + 1, d + "/") != 0) return;
      const std::string rest = p.substr(d.size() + 1);
      names.insert(rest.substr(0, rest.find('/')));
    };
    for (const auto& [p, _] : files_) add(p);
    for (const auto& p : dirs_) add(p);
    return std::vector<std::string>(names.begin(), names.end());
  }

 private:
  static std::string Norm(const std::string& path) {
    std::string s = fs::path(path).lexically_normal().string();
    while (s.size() > 1 && s.back() == '/') s.pop_back();
    return s;
  }
  static std::string Parent(const std::string& p) {
    const size_t slash = p.rfind('/');
    return slash == std::string::npos ? "." : slash == 0 ? "/" : p.substr(0, slash);
  }
  bool DirExists(const std::string& d) const {
    if (d == "." || d == "/" || dirs_.count(d)) return true;
    auto it = files_.lower_bound(d + "/");
    return it != files_.end() && it->first.rfind(d + "/", 0) == 0;
  }
  static const std::string& Key(const std::string& k) { return k; }
  static const std::string& Key(const std::pair<const std::string, std::string>& e) { return e.first; }
  // Erases every entry below directory p (the containers are sorted: one contiguous range).
  template <typename Container>
  static void EraseBelow(Container* c, const std::string& p) {
    auto it = c->lower_bound(p + "/");
    while (it != c->end() && Key(*it).rfind(p + "/", 0) == 0) it = c->erase(it);
  }
  std::mutex mu_;
  std::map<std::string, std::string> files_;
  std::set<std::string> dirs_;
};
}  // namespace

Env* PosixEnv() {
  static Posix* env = new Posix();  // stateless, never destroyed
  return env;
}

std::unique_ptr<Env> NewMemEnv() { return std::make_unique<Mem>(); }

void FaultyEnv::Arm(int nth, Fault fault) {
  std::lock_guard<std::mutex> lock(mu_);
  fail_at_ = nth;
  fault_ = fault;
  calls_ = 0;
  crashed_ = false;
}

int FaultyEnv::calls() const {
  std::lock_guard<std::mutex> lock(mu_);
  return calls_;
}

bool FaultyEnv::crashed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return crashed_;
}

Status FaultyEnv::Next(const std::string& what, const std::string& path, bool* torn) {
  std::lock_guard<std::mutex> lock(mu_);
  if (crashed_) return Status::IoError("injected crash: " + what + " " + path + " never ran");
  ++calls_;
  if (calls_ != fail_at_) return Status::Ok();
  if (fault_ == Fault::kCrash) crashed_ = true;
  if (fault_ == Fault::kShortWrite && torn) *torn = true;
  return Status::IoError("injected fault at call " + std::to_string(calls_) + ": " + what + " " + path);
}

Status FaultyEnv::WriteFileAtomic(const std::string& path, std::string_view contents) {
  bool torn = false;
  Status st = Next("write", path, &torn);
  if (torn) {
    // A torn write leaves half a temp file beside the target and fails; the target is untouched.
    (void)base_->WriteFileAtomic(path + ".tmp.torn", contents.substr(0, contents.size() / 2));
    return st;
  }
  return st.ok() ? base_->WriteFileAtomic(path, contents) : st;
}
Result<std::string> FaultyEnv::ReadFile(const std::string& path) {
  if (crashed()) return Status::IoError("injected crash: read " + path + " never ran");
  return base_->ReadFile(path);
}
Status FaultyEnv::MakeDirs(const std::string& path) {
  Status st = Next("mkdir", path);
  return st.ok() ? base_->MakeDirs(path) : st;
}
Status FaultyEnv::SyncDir(const std::string& path) {
  Status st = Next("sync", path);
  return st.ok() ? base_->SyncDir(path) : st;
}
Status FaultyEnv::RemoveAll(const std::string& path) {
  Status st = Next("remove", path);
  return st.ok() ? base_->RemoveAll(path) : st;
}
Status FaultyEnv::Rename(const std::string& from, const std::string& to) {
  Status st = Next("rename", from);
  return st.ok() ? base_->Rename(from, to) : st;
}
bool FaultyEnv::Exists(const std::string& path) { return !crashed() && base_->Exists(path); }
Result<std::vector<std::string>> FaultyEnv::Children(const std::string& dir) {
  if (crashed()) return Status::IoError("injected crash: list " + dir + " never ran");
  return base_->Children(dir);
}

}  // namespace ember
