// A blocking HTTP/1.1 client for tests: sends raw bytes (well-formed or not) to a loopback port
// and reads one response.
#pragma once

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <string>

namespace ember::testing_util {

using HttpResponse = boost::beast::http::response<boost::beast::http::string_body>;

inline HttpResponse Exchange(int port, const std::string& raw) {
  namespace asio = boost::asio;
  asio::io_context ioc;
  asio::ip::tcp::socket socket(ioc);
  socket.connect({asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)});
  asio::write(socket, asio::buffer(raw));
  boost::beast::flat_buffer buffer;
  HttpResponse res;
  boost::beast::http::read(socket, buffer, res);
  return res;
}

inline std::string Get(const std::string& path) {
  return "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
}

inline std::string Post(const std::string& path, const std::string& body,
                        const std::string& content_type = "application/json") {
  return "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: " + content_type +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

}  // namespace ember::testing_util
