// SlotIndex: the hash index of a RowStore, from keys to the u32 slots of an arena that stores
// each row's key beside its weights.
//
// The index holds no keys. It is an array of 64-byte groups, each with 12 one-byte tags (8 bits
// of the key's hash; 0 marks an empty entry) and the 12 slots they stand for. A key's probe
// starts at its home group and moves on group by group (linear probing over groups, no
// deletions): the tags pick the candidates, and a candidate is confirmed by the key stored in its
// slot, which the caller reads anyway for the row. A lookup touches one cache line of the index
// and the row itself; at 5.3 bytes an entry and a load between 0.72 and 0.9 the index costs 6-7.5
// bytes a row, small enough to stay in the last-level cache far longer than a table of keys.
//
// Growth is by 1.25x, not 2x (homes come from a multiply-shift, so the group count is any
// number), and rebuilds read the keys back from the slots in slot order, a sequential pass.
//
// Every lookup takes `key_at`, a callable returning the key stored in a slot.
// Thread-compatible.
#pragma once

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <new>
#include <utility>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "ember/common/hash.h"

namespace ember::embedding {

class SlotIndex {
 public:
  static constexpr uint32_t kAbsent = ~uint32_t{0};
  static constexpr int kWays = 12;  // entries per 64-byte group

  SlotIndex() : groups_(kMinGroups) {}

  size_t size() const { return size_; }
  size_t MemoryBytes() const { return groups_.bytes(); }
  // MemoryBytes() once `n` keys have been inserted one by one.
  static uint64_t EstimateBytes(uint64_t n) {
    uint64_t groups = kMinGroups;
    while (n > MaxSize(groups)) groups = NextGroups(groups);
    return GroupArray::Bytes(groups);
  }

  static uint64_t Hash(uint64_t key) { return Mix64(key); }
  size_t Home(uint64_t hash) const {
    return static_cast<size_t>((static_cast<unsigned __int128>(hash) * groups_.size()) >> 64);
  }
  void PrefetchHome(size_t home) const { __builtin_prefetch(&groups_[home]); }

  // A guess to prefetch: the first slot whose tag matches hash in the home group, or in the next
  // group if the home group is full; kAbsent if neither has one.
  uint32_t FirstCandidate(size_t home, uint64_t hash) const {
    const uint8_t tag = Tag(hash);
    const Group* g = &groups_[home];
    unsigned m = Matches(*g, tag);
    if (!m && !Matches(*g, 0)) {
      g = &groups_[Next(home)];
      m = Matches(*g, tag);
    }
    return m ? g->slot[__builtin_ctz(m)] : kAbsent;
  }

  // The slot of key (whose hash is `hash`), or kAbsent.
  template <typename KeyAt>
  uint32_t Find(uint64_t key, uint64_t hash, const KeyAt& key_at) const {
    const uint8_t tag = Tag(hash);
    for (size_t gi = Home(hash);; gi = Next(gi)) {
      const Group& g = groups_[gi];
      for (unsigned m = Matches(g, tag); m; m &= m - 1) {
        const uint32_t s = g.slot[__builtin_ctz(m)];
        if (key_at(s) == key) return s;
      }
      if (Matches(g, 0)) return kAbsent;
    }
  }

  // Room for one more key without growing? If not, the caller calls Grow() first.
  bool Full() const { return size_ + 1 > MaxSize(groups_.size()); }

  // The slot of key and false, or (if absent and !Full()) inserts it as `next`: (next, true).
  template <typename KeyAt>
  std::pair<uint32_t, bool> FindOrInsert(uint64_t key, uint64_t hash, uint32_t next, const KeyAt& key_at) {
    const uint8_t tag = Tag(hash);
    for (size_t gi = Home(hash);; gi = Next(gi)) {
      Group& g = groups_[gi];
      for (unsigned m = Matches(g, tag); m; m &= m - 1) {
        const uint32_t s = g.slot[__builtin_ctz(m)];
        if (key_at(s) == key) return {s, false};
      }
      if (const unsigned e = Matches(g, 0)) {
        const int w = __builtin_ctz(e);
        g.tag[w] = tag;
        g.slot[w] = next;
        ++size_;
        return {next, true};
      }
    }
  }

  // Rebuilds the index over slots [0, n) (key_at(s) for each), sized for at least `want` keys.
  template <typename KeyAt>
  void Rebuild(size_t n, size_t want, const KeyAt& key_at) {
    want = std::max(want, n);
    uint64_t groups = kMinGroups;
    while (want > MaxSize(groups)) groups = NextGroups(groups);
    groups_ = GroupArray(groups);
    size_ = 0;
    for (size_t s = 0; s < n; ++s) {
      const uint64_t h = Hash(key_at(static_cast<uint32_t>(s)));
      for (size_t gi = Home(h);; gi = Next(gi)) {
        Group& g = groups_[gi];
        if (const unsigned e = Matches(g, 0)) {
          const int w = __builtin_ctz(e);
          g.tag[w] = Tag(h);
          g.slot[w] = static_cast<uint32_t>(s);
          break;
        }
      }
      ++size_;
    }
  }
  // Grows for one more key: the next size up, rebuilt from slots [0, n).
  template <typename KeyAt>
  void Grow(size_t n, const KeyAt& key_at) {
    Rebuild(n, MaxSize(groups_.size()) + 1, key_at);
  }

 private:
  struct alignas(64) Group {
    uint8_t tag[16] = {};  // kWays used; the rest stay 0 and are masked off
    uint32_t slot[kWays] = {};
  };
  static_assert(sizeof(Group) == 64);
  // The groups in pages of their own, mapped zeroed (empty) and unmapped when replaced, so that
  // an index outgrown goes back to the system at once instead of staying in the allocator's heap.
  class GroupArray {
   public:
    explicit GroupArray(size_t n) : n_(n) {
      void* p = mmap(nullptr, Bytes(n), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) throw std::bad_alloc();
      p_ = static_cast<Group*>(p);
    }
    GroupArray(GroupArray&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr, o.n_ = 0; }
    GroupArray& operator=(GroupArray&& o) noexcept {
      std::swap(p_, o.p_);
      std::swap(n_, o.n_);
      return *this;
    }
    GroupArray(const GroupArray&) = delete;
    GroupArray& operator=(const GroupArray&) = delete;
    ~GroupArray() {
      if (p_) munmap(p_, Bytes(n_));
    }
    static size_t Bytes(size_t n) {
      const size_t page = 4096;
      return (n * sizeof(Group) + page - 1) / page * page;
    }
    size_t bytes() const { return Bytes(n_); }
    size_t size() const { return n_; }
    Group& operator[](size_t i) { return p_[i]; }
    const Group& operator[](size_t i) const { return p_[i]; }

   private:
    Group* p_ = nullptr;
    size_t n_ = 0;
  };
  static constexpr uint64_t kMinGroups = 16;

  // At most 0.9 of the entries are used: with 12 ways, few probes leave the home group.
  static constexpr uint64_t MaxSize(uint64_t groups) { return groups * kWays * 9 / 10; }
  static constexpr uint64_t NextGroups(uint64_t groups) { return groups + (groups + 3) / 4; }
  static uint8_t Tag(uint64_t hash) {
    const uint8_t t = static_cast<uint8_t>(hash);
    return t ? t : 1;
  }
  size_t Next(size_t gi) const { return gi + 1 == groups_.size() ? 0 : gi + 1; }
  // Bit w set where the group's tag w equals t.
  static unsigned Matches(const Group& g, uint8_t t) {
#if defined(__SSE2__)
    const __m128i tags = _mm_load_si128(reinterpret_cast<const __m128i*>(g.tag));
    return static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(tags, _mm_set1_epi8(static_cast<char>(t))))) &
           ((1u << kWays) - 1);
#else
    unsigned m = 0;
    for (int w = 0; w < kWays; ++w) m |= static_cast<unsigned>(g.tag[w] == t) << w;
    return m;
#endif
  }

  GroupArray groups_;
  size_t size_ = 0;
};

}  // namespace ember::embedding
