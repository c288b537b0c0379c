// Opening a listening TCP socket with Boost.Asio, shared by ember's servers (metrics/serving
// HTTP, parameter-server RPC). Header-only: only files that already use Asio include it.
#pragma once

#include <boost/asio.hpp>
#include <string>

#include "ember/common/status.h"

namespace ember {

// Binds `acceptor` to bind:port (port 0: any free port) and listens; errors name `who` and the
// address. Returns the bound port.
inline Result<int> ListenOn(boost::asio::ip::tcp::acceptor* acceptor, const std::string& bind, int port,
                            const std::string& who) {
  namespace asio = boost::asio;
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(bind, ec);
  if (ec) return Status::InvalidArgument(who + ": bad bind address \"" + bind + "\": " + ec.message());
  if (port < 0 || port > 65535)
    return Status::InvalidArgument(who + ": port " + std::to_string(port) + " is out of range");
  const asio::ip::tcp::endpoint endpoint(address, static_cast<uint16_t>(port));
  acceptor->open(endpoint.protocol(), ec);
  if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor->bind(endpoint, ec);
  if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    boost::system::error_code ignored;
    acceptor->close(ignored);
    return Status::Unavailable(who + ": cannot listen on " + bind + ":" + std::to_string(port) + ": " + ec.message());
  }
  return static_cast<int>(acceptor->local_endpoint().port());
}

// Whether an accept failed for want of descriptors or memory: the servers wait a moment before
// the next accept instead of retrying at once, which would spin until some connection closes.
inline bool AcceptStarved(const boost::system::error_code& ec) {
  namespace errc = boost::system::errc;
  return ec == errc::too_many_files_open || ec == errc::too_many_files_open_in_system ||
         ec == errc::not_enough_memory || ec == errc::no_buffer_space;
}

}  // namespace ember
