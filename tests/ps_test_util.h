// Test helpers: PS servers and clients of one test job (a fixed secret, loopback).
#pragma once

#include <boost/asio.hpp>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "ember/ps/remote_client.h"
#include "ember/ps/server.h"

namespace ember::ps::testing {

inline const std::string kTestSecret = "ember-test-secret-0123456789abcdef";

inline ServerOptions TestServerOptions(int shard_index = 0, int num_shards = 1) {
  ServerOptions o;
  o.shard_index = shard_index;
  o.num_shards = num_shards;
  o.secret = kTestSecret;
  o.checkpoint_root = std::filesystem::temp_directory_path().string();  // tests save under it
  return o;
}

inline Result<std::unique_ptr<RemoteClient>> ConnectTest(const std::vector<std::string>& endpoints, uint32_t worker = 0,
                                                         double connect_timeout_s = 5) {
  ClientOptions o;
  o.endpoints = endpoints;
  o.secret = kTestSecret;
  o.worker = worker;
  o.connect_timeout_s = connect_timeout_s;
  o.timeout_s = 60;
  return RemoteClient::Connect(o);
}

// A hand-driven connection to a server: raw bytes, an optional handshake, frames read back.
class RawPeer {
 public:
  explicit RawPeer(int port) : socket_(ioc_) {
    socket_.connect({boost::asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)});
  }
  // Reads the challenge and answers it as `worker` with `secret`.
  Status Authenticate(const std::string& secret, uint32_t worker) {
    EMBER_ASSIGN_OR_RETURN(auto h, ReadHeader());
    std::string nonce(h.payload_bytes, '\0');
    boost::asio::read(socket_, boost::asio::buffer(nonce));
    if (h.type != wire::Type::kChallenge || nonce.size() != kNonceBytes) return Status::Internal("no challenge");
    Nonce server_nonce{}, mine{};
    std::memcpy(server_nonce.data(), nonce.data(), kNonceBytes);
    mine[0] = 7;
    Write(HelloFrame(secret, server_nonce, mine, worker));
    EMBER_ASSIGN_OR_RETURN(h, ReadHeader());
    std::string reply(h.payload_bytes, '\0');
    boost::asio::read(socket_, boost::asio::buffer(reply));
    if (h.type != wire::Type::kHello) {
      Status peer;
      EMBER_RETURN_IF_ERROR(wire::DecodeError(reply, &peer));
      return peer;
    }
    return Status::Ok();
  }
  // Reads and drops the challenge (an unauthenticated peer that goes on talking).
  void SkipChallenge() {
    auto h = ReadHeader();
    EMBER_CHECK(h.ok());
    std::string nonce(h->payload_bytes, '\0');
    boost::asio::read(socket_, boost::asio::buffer(nonce));
  }
  void Write(const std::string& bytes) {
    boost::system::error_code ec;
    boost::asio::write(socket_, boost::asio::buffer(bytes), ec);
  }
  Result<wire::Header> ReadHeader() {
    uint8_t header[wire::kHeaderBytes];
    boost::system::error_code ec;
    boost::asio::read(socket_, boost::asio::buffer(header), ec);
    if (ec) return Status::Unavailable("closed: " + ec.message());
    return wire::ParseHeader(header);
  }
  // Everything until the server closes the connection.
  std::string ReadToClose() {
    std::string reply;
    boost::system::error_code ec;
    boost::asio::read(socket_, boost::asio::dynamic_buffer(reply), ec);
    return reply;
  }
  boost::asio::ip::tcp::socket& socket() { return socket_; }

 private:
  boost::asio::io_context ioc_;
  boost::asio::ip::tcp::socket socket_;
};

// The message of the error frame at the start of `reply` (or why there is none).
inline std::string ErrorOf(const std::string& reply) {
  if (reply.size() < wire::kHeaderBytes) return "no reply";
  auto h = wire::ParseHeader(reinterpret_cast<const uint8_t*>(reply.data()));
  if (!h.ok() || h->type != wire::Type::kError) return "not an error frame";
  Status peer;
  if (!wire::DecodeError(std::string_view(reply).substr(wire::kHeaderBytes, h->payload_bytes), &peer).ok())
    return "bad error frame";
  return peer.message();
}

}  // namespace ember::ps::testing
