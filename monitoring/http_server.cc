#include "ember/monitoring/http_server.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "ember/common/asio_listen.h"

namespace ember::monitoring {
namespace {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
}  // namespace

HttpResponse HttpResponse::Error(int status, const std::string& message) {
  HttpResponse r;
  r.status = status;
  // Messages may quote what a client sent, bytes that are not UTF-8 included: replaced, never thrown.
  r.body = nlohmann::json{{"error", message}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  return r;
}

struct HttpServer::Impl {
  struct RouteEntry {
    std::string method;
    std::string path;
    AsyncHandler handler;
  };

  explicit Impl(const HttpServerOptions& o) : opt(o), ioc(std::max(1, o.threads)) {}

  // Answers a parsed request through `respond`; *label is the route's path or "other", *allow
  // the methods of a known path requested with another.
  void Dispatch(HttpRequest req, std::string* label, std::string* allow, const Responder& respond) const {
    bool path_known = false;
    for (const auto& r : routes) {
      if (r.path != req.path) continue;
      path_known = true;
      *allow += (allow->empty() ? "" : ", ") + r.method;
      if (r.method != req.method) continue;
      *label = r.path;
      allow->clear();
      try {
        r.handler(std::move(req), respond);
      } catch (const std::exception& e) {
        respond(HttpResponse::Error(500, std::string("internal error: ") + e.what()));
      }
      return;
    }
    if (path_known) {
      *label = req.path;
      respond(HttpResponse::Error(
          405, "method " + req.method + " not allowed on " + req.path + " (allowed: " + *allow + ")"));
      return;
    }
    *label = "other";
    allow->clear();
    respond(HttpResponse::Error(404, "no such path: " + req.path));
  }

  void Record(const std::string& label, int status, double seconds) const {
    if (!opt.recorder) return;
    opt.recorder->AddCounter("http_requests_total", 1, {{"path", label}, {"code", std::to_string(status)}});
    opt.recorder->Observe("http_request_seconds", seconds, {{"path", label}});
  }

  void Accept();

  const HttpServerOptions& opt;
  std::vector<RouteEntry> routes;
  asio::io_context ioc;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  tcp::acceptor acceptor{ioc};
  std::vector<std::thread> threads;
  int port = 0;
};

namespace {
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(const HttpServer::Impl* impl, tcp::socket socket) : impl_(impl), stream_(std::move(socket)) {}

  void Read() {
    parser_.emplace();
    parser_->body_limit(impl_->opt.max_body_bytes);
    parser_->header_limit(static_cast<uint32_t>(impl_->opt.max_header_bytes));
    stream_.expires_after(std::chrono::milliseconds(static_cast<int64_t>(impl_->opt.read_timeout_s * 1000)));
    http::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&Session::OnRead, shared_from_this()));
  }

 private:
  void OnRead(beast::error_code ec, size_t) {
    const auto start = Clock::now();
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::operation_aborted ||
        ec == asio::error::connection_reset || ec == asio::error::eof) {
      Close();
      return;
    }
    if (ec == http::error::body_limit) {
      Fail(413, "request body over the limit of " + std::to_string(impl_->opt.max_body_bytes) + " bytes", start);
      return;
    }
    if (ec == http::error::header_limit) {
      Fail(431, "request header over the limit of " + std::to_string(impl_->opt.max_header_bytes) + " bytes", start);
      return;
    }
    if (ec) {
      if (ec.category() == http::make_error_code(http::error::bad_target).category())
        Fail(400, "malformed HTTP request: " + ec.message(), start);
      else
        Close();
      return;
    }
    auto msg = parser_->release();
    HttpRequest req;
    req.method = std::string(msg.method_string());
    const std::string target(msg.target());
    const size_t q = target.find('?');
    req.path = target.substr(0, q);
    if (q != std::string::npos) req.query = target.substr(q + 1);
    if (auto it = msg.find(http::field::content_type); it != msg.end()) req.content_type = std::string(it->value());
    req.body = std::move(msg.body());
    // The answer may come from another thread: it is posted to this connection's strand. The
    // label and Allow are known before the handler runs, so they are shared with the responder.
    auto route = std::make_shared<std::pair<std::string, std::string>>();
    auto self = shared_from_this();
    const bool keep_alive = msg.keep_alive();
    impl_->Dispatch(std::move(req), &route->first, &route->second, [self, route, keep_alive, start](HttpResponse r) {
      asio::post(self->stream_.get_executor(), [self, route, keep_alive, start, r = std::move(r)]() mutable {
        // Recorded before the write starts: a client that reads this answer and then scrapes
        // /metrics must find its own request counted.
        self->impl_->Record(route->first, r.status, std::chrono::duration<double>(Clock::now() - start).count());
        self->Send(std::move(r), keep_alive, route->second);
      });
    });
  }

  void Fail(int status, const std::string& message, Clock::time_point start) {
    impl_->Record("other", status, std::chrono::duration<double>(Clock::now() - start).count());
    Send(HttpResponse::Error(status, message), /*keep_alive=*/false, "");
  }

  void Send(HttpResponse r, bool keep_alive, const std::string& allow) {
    res_ = {};
    res_.version(11);
    res_.result(static_cast<unsigned>(r.status));
    res_.set(http::field::server, "ember");
    res_.set(http::field::content_type, r.content_type);
    if (!allow.empty()) res_.set(http::field::allow, allow);
    res_.keep_alive(keep_alive);
    res_.body() = std::move(r.body);
    res_.prepare_payload();
    http::async_write(stream_, res_, [self = shared_from_this(), keep_alive](beast::error_code ec, size_t) {
      if (ec || !keep_alive) {
        self->Close();
        return;
      }
      self->Read();
    });
  }

  void Close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  const HttpServer::Impl* impl_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
};
}  // namespace

void HttpServer::Impl::Accept() {
  acceptor.async_accept(asio::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (!acceptor.is_open()) return;
    if (!ec) std::make_shared<Session>(this, std::move(socket))->Read();
    Accept();
  });
}

HttpServer::HttpServer(HttpServerOptions options) : options_(std::move(options)) {
  impl_ = std::make_unique<Impl>(options_);
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Route(const std::string& method, const std::string& path, Handler handler) {
  RouteAsync(method, path, [h = std::move(handler)](HttpRequest req, Responder respond) { respond(h(req)); });
}

void HttpServer::RouteAsync(const std::string& method, const std::string& path, AsyncHandler handler) {
  impl_->routes.push_back({method, path, std::move(handler)});
}

Status HttpServer::Start() {
  EMBER_ASSIGN_OR_RETURN(impl_->port, ListenOn(&impl_->acceptor, options_.bind, options_.port, "http server"));
  impl_->work.emplace(impl_->ioc.get_executor());
  impl_->Accept();
  for (int i = 0; i < std::max(1, options_.threads); ++i) impl_->threads.emplace_back([this] { impl_->ioc.run(); });
  return Status::Ok();
}

void HttpServer::Stop() {
  if (!impl_ || impl_->threads.empty()) return;
  impl_->work.reset();
  impl_->ioc.stop();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
  beast::error_code ignored;
  impl_->acceptor.close(ignored);
}

int HttpServer::port() const { return impl_->port; }

}  // namespace ember::monitoring
