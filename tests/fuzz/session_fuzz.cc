// libFuzzer target: the PS server's connection state machine (ServerSession) over memory,
// against a real server core and its shard. Each input is a program of records that drive
// three connections (two workers that have done the handshake, one stranger that has not):
//
//   0 k len bytes...        raw bytes into connection k (as the transport would read them)
//   1 k type len payload... a frame with a valid header (so the fuzzer gets past the parser)
//   2                       answer every parked pull whose step has come
//   3 k worker(u32)         replace connection k by a new one, handshaking as `worker`
//                           (0xFFFFFFFE: no handshake)
//
// Checked on every step: no crash or sanitizer report; every frame the server writes parses,
// with the payload its header declares; a connection that has not proved the secret never gets
// anything but the challenge and an error; buffered bytes return to zero when connections end;
// the shard's clock never moves back. scripts/fuzz.sh builds and runs it.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "ember/ps/server.h"

namespace {
using namespace ember::ps;

const std::string kSecret = "fuzz-secret-0123456789abcdef0123";

[[noreturn]] void Violation(const char* what) {
  std::fprintf(stderr, "invariant violated: %s\n", what);
  std::abort();
}

std::string Root() {
  static const std::string root = [] {
    auto d = std::filesystem::path("/tmp/ember-ps-fuzz");  // fixed: seeds name it
    std::filesystem::create_directories(d / "ckpt");
    return d.string();
  }();
  return root;
}

struct Conn {
  std::unique_ptr<ServerSession> session;
  bool authenticated_by_us = false;  // we completed its handshake
};

class Harness {
 public:
  Harness() {
    ServerOptions o;
    o.secret = kSecret;
    o.workers = 2;
    o.checkpoint_root = Root();
    o.max_payload = 1 << 16;
    o.max_buffered_bytes = 1 << 20;
    server_ = std::make_unique<PsServer>(o);  // not started: no sockets, no threads
    for (int k = 0; k < 3; ++k) Replace(k, k < 2 ? static_cast<uint32_t>(k) : kNoHandshake);
  }
  ~Harness() {
    server_->shard().DropWaiters();
    for (auto& c : conns_) c.session.reset();
    for (auto& c : retired_) c.reset();
    if (server_->counters().buffered_bytes.load() != 0) Violation("buffered bytes left after every connection ended");
  }

  static constexpr uint32_t kNoHandshake = 0xFFFFFFFEu;

  void Replace(int k, uint32_t worker) {
    if (conns_[k].session) {
      conns_[k].session->Closed();
      retired_.push_back(std::move(conns_[k].session));  // parked callbacks may still name it
    }
    conns_[k] = Conn{};
    conns_[k].session = std::make_unique<ServerSession>(server_.get());
    auto start = conns_[k].session->Start();
    std::string nonce = start.head.substr(ember::ps::wire::kHeaderBytes);
    if (worker == kNoHandshake || nonce.size() != kNonceBytes) return;
    Nonce server_nonce{}, mine{};
    std::memcpy(server_nonce.data(), nonce.data(), kNonceBytes);
    mine[3] = static_cast<uint8_t>(k);
    Feed(k, HelloFrame(kSecret, server_nonce, mine, worker));
    conns_[k].authenticated_by_us = conns_[k].session->authenticated();
  }

  void Feed(int k, std::string_view bytes) {
    ServerSession& s = *conns_[k].session;
    while (!bytes.empty()) {
      const size_t want = s.want();
      if (!want) return;  // parked or closed: the transport would not read
      const size_t n = std::min(want, bytes.size());
      std::memcpy(s.next(), bytes.data(), n);
      bytes.remove_prefix(n);
      Check(k, s.Received(n));
    }
  }

  void Check(int k, const ServerSession::Output& o) {
    if (o.park) {
      ServerSession* s = conns_[k].session.get();
      server_->shard().WhenClock(o.wait_for, [this, s] { ready_.push_back(s); });
      return;
    }
    if (o.head.empty()) return;
    const std::string frame = o.head + o.body + std::string(o.bulk);  // a pull's rows are in bulk
    auto h = wire::ParseHeader(reinterpret_cast<const uint8_t*>(frame.data()));
    if (!h.ok()) Violation("the server wrote a frame that does not parse");
    if (frame.size() != wire::kHeaderBytes + h->payload_bytes)
      Violation("a reply's payload is not what its header says");
    const bool authed = conns_[k].session->authenticated();
    if (!authed && h->type != wire::Type::kError && h->type != wire::Type::kChallenge)
      Violation("an unauthenticated connection got an answer");
    if (server_->counters().internal_errors.load()) Violation("a request threw inside the server");
    const uint64_t clock = server_->shard().clock();
    if (clock < last_clock_) Violation("the shard's clock moved back");
    last_clock_ = clock;
    conns_[k].session->Sent();  // written, as the Asio driver reports
  }

  void Unpark() {
    while (!ready_.empty()) {
      ServerSession* s = ready_.back();
      ready_.pop_back();
      for (int k = 0; k < 3; ++k)
        if (conns_[k].session.get() == s) Check(k, s->Unpark());
    }
  }

  PsServer& server() { return *server_; }

 private:
  std::unique_ptr<PsServer> server_;
  Conn conns_[3];
  std::vector<std::unique_ptr<ServerSession>> retired_;
  std::vector<ServerSession*> ready_;
  uint64_t last_clock_ = 0;
};

// Frames the harness will not send: tables far wider or sketches far larger than any job's,
// which would only measure the fuzzer's memory (a job's own config bounds these).
bool TooBig(uint16_t type, std::string_view payload) {
  if (type != static_cast<uint16_t>(wire::Type::kCreateTables)) return false;
  std::vector<ember::embedding::TableSpec> specs;
  if (!wire::DecodeSpecs(payload, &specs).ok()) return false;
  for (const auto& s : specs)
    if (s.dim > 64 || uint64_t{s.lifecycle.sketch_width} * s.lifecycle.sketch_depth > 4096) return true;
  return false;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Harness h;
  size_t at = 0;
  auto take = [&](size_t n) -> std::string_view {
    n = std::min(n, size - at);
    std::string_view v(reinterpret_cast<const char*>(data + at), n);
    at += n;
    return v;
  };
  auto u8 = [&]() -> uint8_t { return at < size ? data[at++] : 0; };
  auto u16 = [&]() -> uint16_t { return static_cast<uint16_t>(u8() | (u8() << 8)); };
  while (at < size) {
    switch (u8() % 4) {
      case 0: {
        const int k = u8() % 3;
        h.Feed(k, take(u16()));
        break;
      }
      case 1: {
        const int k = u8() % 3;
        const uint16_t type = u8() % 12;
        const std::string_view payload = take(u16());
        if (TooBig(type, payload)) break;
        std::string frame;
        wire::AppendHeader(&frame, static_cast<wire::Type>(type), at, static_cast<uint32_t>(payload.size()));
        frame.append(payload);
        h.Feed(k, frame);
        break;
      }
      case 2:
        h.Unpark();
        break;
      case 3: {
        const int k = u8() % 3;
        uint32_t worker = 0;
        const auto w = take(4);
        std::memcpy(&worker, w.data(), w.size());
        if (worker > 3 && worker != kNoWorker) worker = Harness::kNoHandshake;
        h.Replace(k, worker);
        break;
      }
    }
    h.Unpark();
  }
  return 0;
}
