// HttpServer: a small multi-threaded HTTP/1.1 server (Boost.Beast) for GET /metrics on every
// rank and for `ember serve`'s endpoints, which share it so that one port answers both.
//
// Routes (method + exact path) are registered before Start(). Every request is bounded: the
// header block by max_header_bytes, the body by max_body_bytes (413 past it), a slow client by
// read_timeout_s, the connections by max_connections. Unknown paths get 404, known paths with
// another method 405 (with Allow), unparsable requests 400, a handler that throws 500; error
// bodies are JSON {"error": "..."}.
// Keep-alive is honoured. Each answered request is recorded as http_requests_total{path,code}
// and http_request_seconds{path} (unknown paths under path="other", so that scanning clients
// cannot grow the label set). Binds to loopback unless told otherwise. Handlers run on the
// server's threads and must be thread-safe. An asynchronous handler answers later, from any
// thread, through its Responder (exactly once): the connection waits without holding a thread,
// so a few threads serve many waiting clients (ember serve's batched predictions).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ember/common/status.h"
#include "ember/monitoring/recorder.h"

namespace ember::monitoring {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // target without the query
  std::string query;   // after '?', undecoded
  std::string content_type;
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  // A JSON error response {"error": message}.
  static HttpResponse Error(int status, const std::string& message);
};

struct HttpServerOptions {
  std::string bind = "127.0.0.1";
  int port = 0;  // 0: an ephemeral port (see HttpServer::port())
  int threads = 2;
  size_t max_body_bytes = 1 << 20;
  size_t max_header_bytes = 16 << 10;
  double read_timeout_s = 30;
  // Connections open at once; 0: 4096. Never more than half the open-files limit past 256 (the
  // rest of the process needs descriptors too). At the cap, a new connection closes the one
  // that has waited longest for a request's bytes (an idle keep-alive or a slow client), or is
  // itself closed if every connection is busy with a request or 64 are closing already.
  size_t max_connections = 0;
  Recorder* recorder = nullptr;  // request counts and latency; none if null
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;
  using Responder = std::function<void(HttpResponse)>;
  using AsyncHandler = std::function<void(HttpRequest, Responder)>;

  explicit HttpServer(HttpServerOptions options);
  ~HttpServer();  // stops
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Registers a handler; only before Start().
  void Route(const std::string& method, const std::string& path, Handler handler);
  void RouteAsync(const std::string& method, const std::string& path, AsyncHandler handler);
  // Binds, listens and starts the threads. Errors name the address (in use, bad address).
  Status Start();
  // Stops accepting, closes connections and joins the threads. Idempotent.
  void Stop();
  // The bound port (after Start()).
  int port() const;
  // The connection cap Start() applies: `requested` (0: 4096) within the open-files limit.
  static size_t MaxConnections(size_t requested, uint64_t open_files_limit);
  const HttpServerOptions& options() const { return options_; }

  struct Impl;  // opaque (Boost.Beast stays out of this header)

 private:
  HttpServerOptions options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ember::monitoring
