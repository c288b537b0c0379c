// Authentication of PS connections: a per-job secret and an HMAC-SHA256 challenge-response.
//
// One rank makes the secret (MakeSecret: 32 bytes from the OS's CSPRNG) and hands it to every
// rank over MPI at start-up; it never appears on a command line, in the environment or in a file.
// A connection proves it holds the secret before the server serves anything (docs/formats.md
// "Handshake"):
//
//   server -> client  kChallenge  server_nonce[32]
//   client -> server  kHello      client_nonce[32], u32 worker, mac[32]
//                                 mac = HMAC(secret, "ember-ps-client" | server_nonce | client_nonce | worker)
//   server -> client  kHello      mac[32] = HMAC(secret, "ember-ps-server" | client_nonce | server_nonce)
//
// Both sides compare MACs in constant time. A fresh server nonce per connection makes a recorded
// hello useless on another connection; the server's answer proves the server holds the secret too.
// Thread-safe: free functions over values.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "ember/common/status.h"

namespace ember::ps {

inline constexpr size_t kNonceBytes = 32;
inline constexpr size_t kMacBytes = 32;
inline constexpr size_t kMinSecretBytes = 16;
using Nonce = std::array<uint8_t, kNonceBytes>;
using Mac = std::array<uint8_t, kMacBytes>;

// A connection that is not one of the job's workers (tools, tests): it may not push with a clock.
inline constexpr uint32_t kNoWorker = 0xFFFFFFFFu;

// 32 random bytes from the OS (an error where none can be had).
Result<std::string> MakeSecret();
Result<Nonce> MakeNonce();
Mac ClientMac(std::string_view secret, const Nonce& server_nonce, const Nonce& client_nonce, uint32_t worker);
Mac ServerMac(std::string_view secret, const Nonce& client_nonce, const Nonce& server_nonce);
// The client's hello frame (header and payload) answering `server_nonce` as `worker`.
std::string HelloFrame(std::string_view secret, const Nonce& server_nonce, const Nonce& client_nonce, uint32_t worker);
// Constant-time comparison (the time taken does not depend on where the MACs differ).
bool SameMac(const uint8_t* a, const uint8_t* b);

}  // namespace ember::ps
