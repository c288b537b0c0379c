#include "ember/common/sysinfo.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstring>

namespace ember {
namespace {
uint64_t ReadStatusKb(const char* key) {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  uint64_t kb = 0;
  const size_t klen = std::strlen(key);
  while (std::fgets(line, sizeof(line), f)) {
    if (std::strncmp(line, key, klen) == 0) {
      std::sscanf(line + klen, "%lu", &kb);
      break;
    }
  }
  std::fclose(f);
  return kb * 1024;
}
}  // namespace

uint64_t PeakRssBytes() { return ReadStatusKb("VmHWM:"); }
uint64_t CurrentRssBytes() { return ReadStatusKb("VmRSS:"); }

bool SetBlasThreads(int n) {
  using SetThreads = void (*)(int);
  auto* set = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  if (!set) return false;
  set(n);
  return true;
}

int BlasThreads() {
  using GetThreads = int (*)();
  auto* get = reinterpret_cast<GetThreads>(::dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  return get ? get() : -1;
}

}  // namespace ember
