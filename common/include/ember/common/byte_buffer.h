#pragma once
// A growable byte buffer whose new bytes are not zeroed: wire buffers are filled by a read or an
// encoder right after they grow, so std::string's zero-fill on resize is a pass over every byte
// for nothing (a memset of each frame on the PS's hot path).

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>

namespace ember {

class ByteBuffer {
 public:
  ByteBuffer() = default;
  ByteBuffer(ByteBuffer&& o) noexcept { *this = std::move(o); }
  ByteBuffer& operator=(ByteBuffer&& o) noexcept {
    data_ = std::move(o.data_);
    size_ = o.size_;
    capacity_ = o.capacity_;
    o.size_ = o.capacity_ = 0;
    return *this;
  }
  ByteBuffer(const ByteBuffer&) = delete;
  ByteBuffer& operator=(const ByteBuffer&) = delete;

  char* data() { return data_.get(); }
  const char* data() const { return data_.get(); }
  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }
  bool empty() const { return size_ == 0; }
  std::string_view view() const { return {data_.get(), size_}; }

  // Bytes past the old size are uninitialised; the first size() bytes are kept.
  void resize(size_t n) {
    if (n > capacity_) Reallocate(std::max(n, capacity_ + capacity_ / 2));
    size_ = n;
  }
  void reserve(size_t n) {
    if (n > capacity_) Reallocate(n);
  }
  void clear() { size_ = 0; }
  void append(const char* p, size_t n) {
    const size_t at = size_;
    resize(at + n);
    if (n) std::memcpy(data_.get() + at, p, n);
  }
  // Gives the memory back.
  void Free() {
    data_.reset();
    size_ = capacity_ = 0;
  }

 private:
  void Reallocate(size_t n) {
    std::unique_ptr<char[]> bigger(new char[n]);  // default-initialised: not zeroed
    if (size_) std::memcpy(bigger.get(), data_.get(), size_);
    data_ = std::move(bigger);
    capacity_ = n;
  }

  std::unique_ptr<char[]> data_;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

}  // namespace ember
