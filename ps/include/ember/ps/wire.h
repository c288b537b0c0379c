// The parameter-server wire protocol: binary, versioned, length-prefixed frames over TCP
// (docs/formats.md "PS wire protocol").
//
// Every frame is a 24-byte header followed by `payload_bytes` bytes of payload:
//   u32 magic "EMBP", u16 version, u16 type, u64 request id, u32 payload bytes, u32 flags (0).
// A reply carries the request's id and type (or kError). All integers are little-endian.
//
// Decoding never trusts the peer: every length is checked against what remains before anything
// is read or allocated, counts are bounded by the payload they claim to occupy, and a frame larger
// than the configured maximum is refused from its header. A malformed frame yields a Status (the
// server answers kError or closes the connection); nothing is applied to a shard from it.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ember/common/byte_buffer.h"
#include "ember/common/status.h"
#include "ember/embedding/types.h"
#include "ember/ps/client.h"

namespace ember::ps::wire {

inline constexpr uint32_t kMagic = 0x504d4245;  // "EMBP" little-endian
// 2: training clocks; 3: feature admission; 4: handshake; 5: FTRL; 6: pushes naming their pull's keys
inline constexpr uint16_t kVersion = 6;
inline constexpr size_t kHeaderBytes = 24;
inline constexpr uint32_t kDefaultMaxPayload = 1u << 30;  // 1 GiB

enum class Type : uint16_t {
  kError = 0,
  kPing = 1,
  kCreateTables = 2,
  kPull = 3,
  kPush = 4,
  kStats = 5,
  kApply = 6,
  kSave = 7,
  kLoad = 8,
  kShutdown = 9,
  kChallenge = 10,  // server -> client on accept: the server's nonce (auth.h)
  kHello = 11,      // client -> server: nonce, worker, MAC; server -> client: its MAC
};
inline constexpr Type kLastType = Type::kHello;
// Payload bytes of the handshake frames (auth.h).
inline constexpr uint32_t kChallengeBytes = 32;
inline constexpr uint32_t kClientHelloBytes = 32 + 4 + 32;
inline constexpr uint32_t kServerHelloBytes = 32;
const char* TypeName(Type t);

struct Header {
  Type type = Type::kPing;
  uint64_t request_id = 0;
  uint32_t payload_bytes = 0;
};

// Appends the header of a frame with `payload_bytes` bytes of payload.
void AppendHeader(std::string* out, Type type, uint64_t request_id, uint32_t payload_bytes);
// Parses and validates a header (magic, version, known type, flags, size <= max_payload).
Result<Header> ParseHeader(const uint8_t* bytes, uint32_t max_payload = kDefaultMaxPayload);

// Little-endian appends to a std::string or a ByteBuffer.
template <typename Out>
class Writer {
 public:
  explicit Writer(Out* out) : out_(out) {}
  template <typename T>
  void Pod(T v) {
    out_->append(reinterpret_cast<const char*>(&v), sizeof(T));
  }
  void Bytes(const void* p, size_t n) { out_->append(static_cast<const char*>(p), n); }
  void Str(const std::string& s) {
    Pod<uint32_t>(static_cast<uint32_t>(s.size()));
    Bytes(s.data(), s.size());
  }

 private:
  Out* out_;
};

// Bounds-checked reads from a payload; the first failure sticks and names the field.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  template <typename T>
  bool Pod(T* v, const char* what) {
    if (!Need(sizeof(T), what)) return false;
    std::memcpy(v, in_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  // n elements of T into *out, after checking n * sizeof(T) bytes remain (no overflow).
  template <typename T>
  bool Array(uint64_t n, std::vector<T>* out, const char* what) {
    if (n > (in_.size() - pos_) / sizeof(T)) return Fail(what, "count past the end of the frame");
    out->resize(n);
    if (n) std::memcpy(out->data(), in_.data() + pos_, n * sizeof(T));
    pos_ += n * sizeof(T);
    return true;
  }
  bool Str(std::string* s, const char* what, uint32_t max = 1 << 20);
  // The next `bytes` bytes in place (null, and a failure, past the end).
  const char* Skip(uint64_t bytes, const char* what) {
    if (bytes > in_.size() - pos_) {
      Fail(what, "count past the end of the frame");
      return nullptr;
    }
    const char* p = in_.data() + pos_;
    pos_ += bytes;
    return p;
  }
  // Fails unless every byte was consumed.
  bool End();
  bool Fail(const char* what, const std::string& why);
  bool ok() const { return error_.empty(); }
  Status status() const { return ok() ? Status::Ok() : Status::InvalidArgument("malformed frame: " + error_); }

 private:
  bool Need(size_t n, const char* what) { return n <= in_.size() - pos_ ? true : Fail(what, "truncated"); }
  std::string_view in_;
  size_t pos_ = 0;
  std::string error_;
};

// Owning request bodies as the server decodes them.
struct PullRequest {
  uint64_t wait_for = 0;  // answered once the shard's clock reaches it
  struct Slice {
    uint32_t table = 0;
    bool create_missing = true;
    std::vector<uint64_t> keys;
  };
  std::vector<Slice> slices;
};
// A push's keys and gradients are read where they lie in the payload (which must outlive the
// request) when they are aligned for their type, and copied into the slice otherwise.
struct PushRequest {
  PushClock clock;
  // Non-zero: the request id of one of the connection's last two pulls, whose keys the slices carry instead
  // of their own (UsePullKeys fills `keys` from it); 0: the keys are in the payload.
  uint64_t keys_of_pull = 0;
  struct Slice {
    uint32_t table = 0;
    uint32_t dim = 0;
    size_t n = 0;
    const uint64_t* keys = nullptr;  // n keys
    const float* grads = nullptr;    // n x dim
    std::vector<uint64_t> owned_keys;
    std::vector<float> owned_grads;
  };
  std::vector<Slice> slices;
};
struct LoadRequest {
  std::string dir;
  std::vector<ShardFile> files;
};

// Client side: payloads of requests (slices' rows at `dims[i]`, the table's width), appended to a
// std::string or a ByteBuffer.
template <typename Out>
void EncodePull(const std::vector<PullSlice>& slices, const std::vector<std::vector<size_t>>& positions,
                uint64_t wait_for, Out* out);
// keys_of_pull non-zero: the slices' keys are those of the pull with that request id on the same
// connection (the same slices, in the same order), and are left out of the payload.
template <typename Out>
void EncodePush(const std::vector<PushSlice>& slices, const std::vector<uint32_t>& dims,
                const std::vector<std::vector<size_t>>& positions, const PushClock& clock, Out* out,
                uint64_t keys_of_pull = 0);
void EncodeSpecs(const std::vector<embedding::TableSpec>& specs, std::string* out);
void EncodeOp(const TableOp& op, std::string* out);
void EncodeLoad(const LoadRequest& r, std::string* out);

// Server side: request decoders (validate everything).
Status DecodePull(std::string_view payload, PullRequest* r);
Status DecodePush(std::string_view payload, PushRequest* r);
// A push naming its pull's keys: takes them from the pull it names among `pulls` (the
// connection's last pulls by request id; id 0: none), after checking that its slices match the
// pull's table by table and count by count.
Status UsePullKeys(std::initializer_list<std::pair<uint64_t, const PullRequest*>> pulls, PushRequest* r);
Status DecodeSpecs(std::string_view payload, std::vector<embedding::TableSpec>* specs);
Status DecodeOp(std::string_view payload, TableOp* op);
Status DecodeLoad(std::string_view payload, LoadRequest* r);
Status DecodeString(std::string_view payload, std::string* s);

// Replies.
void EncodeStats(const std::vector<TableStats>& stats, std::string* out);
Status DecodeStats(std::string_view payload, std::vector<TableStats>* stats);
void EncodeOpResult(const TableOpResult& r, std::string* out);
Status DecodeOpResult(std::string_view payload, TableOpResult* r);
void EncodeFiles(const std::vector<ShardFile>& files, std::string* out);
Status DecodeFiles(std::string_view payload, std::vector<ShardFile>* files);
void EncodeError(const Status& st, std::string* out);
// Handshake payloads (auth.h).
struct ClientHello {
  std::array<uint8_t, 32> nonce{};
  uint32_t worker = 0;
  std::array<uint8_t, 32> mac{};
};
void EncodeClientHello(const ClientHello& h, std::string* out);
Status DecodeClientHello(std::string_view payload, ClientHello* h);
// Decodes an error reply into *peer (the Status the peer sent, prefixed "server: ").
Status DecodeError(std::string_view payload, Status* peer);

// Parses one whole frame (header + payload) and decodes its request body by type, as the server
// does; for fuzzing and tests. Returns the header on success.
Result<Header> ParseFrame(std::string_view frame, uint32_t max_payload = kDefaultMaxPayload);

}  // namespace ember::ps::wire
