#include "ember/ps/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cstring>

#include "ember/ps/wire.h"

namespace ember::ps {
namespace {
Mac Hmac(std::string_view secret, std::string_view label, const uint8_t* a, const uint8_t* b, const uint8_t* extra,
         size_t extra_bytes) {
  std::string msg(label);
  msg.append(reinterpret_cast<const char*>(a), kNonceBytes);
  msg.append(reinterpret_cast<const char*>(b), kNonceBytes);
  msg.append(reinterpret_cast<const char*>(extra), extra_bytes);
  Mac mac{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), reinterpret_cast<const uint8_t*>(msg.data()),
       msg.size(), mac.data(), &len);
  return mac;
}
}  // namespace

Result<std::string> MakeSecret() {
  std::string s(32, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(s.data()), static_cast<int>(s.size())) != 1)
    return Status::Internal("no random bytes for the job's PS secret (OpenSSL RAND_bytes failed)");
  return s;
}

Result<Nonce> MakeNonce() {
  Nonce n{};
  if (RAND_bytes(n.data(), static_cast<int>(n.size())) != 1)
    return Status::Internal("no random bytes for a PS handshake nonce (OpenSSL RAND_bytes failed)");
  return n;
}

Mac ClientMac(std::string_view secret, const Nonce& server_nonce, const Nonce& client_nonce, uint32_t worker) {
  uint8_t w[4];
  std::memcpy(w, &worker, 4);
  return Hmac(secret, "ember-ps-client", server_nonce.data(), client_nonce.data(), w, sizeof(w));
}

Mac ServerMac(std::string_view secret, const Nonce& client_nonce, const Nonce& server_nonce) {
  return Hmac(secret, "ember-ps-server", client_nonce.data(), server_nonce.data(), nullptr, 0);
}

std::string HelloFrame(std::string_view secret, const Nonce& server_nonce, const Nonce& client_nonce, uint32_t worker) {
  wire::ClientHello hello;
  hello.nonce = client_nonce;
  hello.worker = worker;
  hello.mac = ClientMac(secret, server_nonce, client_nonce, worker);
  std::string body, frame;
  wire::EncodeClientHello(hello, &body);
  wire::AppendHeader(&frame, wire::Type::kHello, 0, static_cast<uint32_t>(body.size()));
  return frame + body;
}

bool SameMac(const uint8_t* a, const uint8_t* b) { return CRYPTO_memcmp(a, b, kMacBytes) == 0; }

}  // namespace ember::ps
