// Stable 64-bit hashing used for row keys, shard placement and the synthetic teacher.
//
// Every function here is a pure function of its arguments, identical across processes,
// platforms and runs (XXH3-64 and the SplitMix64 finalizer); checkpoints and exports record
// kHashName so a reader can refuse an incompatible hash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace ember {

inline constexpr const char* kHashName = "xxh3_64-v1";

// SplitMix64 finalizer: a bijection on 64-bit integers with good avalanche.
inline constexpr uint64_t Mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// XXH3-64 of bytes with a seed.
uint64_t Hash64(const void* data, size_t len, uint64_t seed);
inline uint64_t Hash64(std::string_view s, uint64_t seed) { return Hash64(s.data(), s.size(), seed); }
// XXH3-64 of one 64-bit id (little-endian bytes) with a seed.
uint64_t HashId(uint64_t id, uint64_t seed);
// Seed for (a, b) pairs such as (feature, chunk): distinct pairs give unrelated seeds.
inline constexpr uint64_t PairSeed(uint64_t a, uint64_t b) {
  return Mix64(Mix64(a + 0x9e3779b97f4a7c15ULL) ^ (b * 0xc2b2ae3d27d4eb4fULL + 0x165667b19e3779f9ULL));
}
// A double in [0, 1) from a 64-bit hash (53 high bits).
inline double UnitFromHash(uint64_t h) { return static_cast<double>(h >> 11) * 0x1.0p-53; }

}  // namespace ember
