#include "ember/common/hash.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace ember {

uint64_t Hash64(const void* data, size_t len, uint64_t seed) { return XXH3_64bits_withSeed(data, len, seed); }

uint64_t HashId(uint64_t id, uint64_t seed) {
  unsigned char bytes[8];
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<unsigned char>(id >> (8 * i));
  return XXH3_64bits_withSeed(bytes, sizeof(bytes), seed);
}

}  // namespace ember
