#include "ember/monitoring/http_server.h"

#include <sys/resource.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <list>
#include <mutex>
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
class Session;
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
  // Makes room for one more connection: true if under max_connections, or once the connection
  // that has waited longest for a request's bytes is told to close; false if every connection
  // is busy with a request or too many are closing already (the new one is then closed).
  bool Admit();

  const HttpServerOptions& opt;
  std::vector<RouteEntry> routes;
  // Every open connection: a Session registers itself and leaves in its destructor, under
  // sessions_mu, so a pointer read under it is alive. Declared before the io_context, whose
  // destruction destroys the sessions its handlers still hold.
  std::mutex sessions_mu;
  std::list<Session*> sessions;
  size_t evicting = 0;         // sessions told to close and not yet gone (under sessions_mu)
  size_t max_connections = 0;  // resolved from opt at Start()
  asio::io_context ioc;
  asio::steady_timer accept_retry{ioc};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  tcp::acceptor acceptor{ioc};
  std::vector<std::thread> threads;
  int port = 0;
};

namespace {
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(HttpServer::Impl* impl, tcp::socket socket) : impl_(impl), stream_(std::move(socket)) {}
  ~Session() {
    if (!registered_) return;
    size_t open;
    {
      std::lock_guard<std::mutex> lock(impl_->sessions_mu);
      impl_->sessions.erase(entry_);
      if (evicted_) --impl_->evicting;
      open = impl_->sessions.size();
    }
    if (impl_->opt.recorder) impl_->opt.recorder->SetGauge("http_connections_open", static_cast<double>(open));
  }
  // Joins the server's list of connections (after construction: it needs shared_from_this).
  void Register() {
    size_t open;
    {
      std::lock_guard<std::mutex> lock(impl_->sessions_mu);
      entry_ = impl_->sessions.insert(impl_->sessions.end(), this);
      registered_ = true;
      open = impl_->sessions.size();
    }
    if (impl_->opt.recorder) impl_->opt.recorder->SetGauge("http_connections_open", static_cast<double>(open));
  }
  // When it began waiting for a request's bytes (0: it is handling or answering one).
  int64_t reading_since() const { return reading_since_.load(std::memory_order_relaxed); }
  // Set once, under the server's sessions_mu, when it is picked to close for a new connection.
  bool evicted_ = false;
  // Closes the connection from any thread: its pending read ends and the session goes.
  void Evict() {
    asio::post(stream_.get_executor(), [self = shared_from_this()] {
      beast::error_code ignored;
      self->stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
      self->stream_.close();
    });
  }

  void Read() {
    reading_since_.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
    parser_.emplace();
    parser_->body_limit(impl_->opt.max_body_bytes);
    parser_->header_limit(static_cast<uint32_t>(impl_->opt.max_header_bytes));
    stream_.expires_after(std::chrono::milliseconds(static_cast<int64_t>(impl_->opt.read_timeout_s * 1000)));
    http::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&Session::OnRead, shared_from_this()));
  }

 private:
  void OnRead(beast::error_code ec, size_t) {
    reading_since_.store(0, std::memory_order_relaxed);
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

  HttpServer::Impl* impl_;
  std::list<Session*>::iterator entry_;
  bool registered_ = false;
  std::atomic<int64_t> reading_since_{0};
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
};
}  // namespace

bool HttpServer::Impl::Admit() {
  std::shared_ptr<Session> oldest;  // released after the lock: the last owner runs ~Session, which locks
  {
    std::lock_guard<std::mutex> lock(sessions_mu);
    if (sessions.size() < max_connections) return true;
    // Closing takes the connections' own threads a moment: past kEvicting closes in flight a
    // new connection is refused, so a flood cannot grow the open ones past the cap + kEvicting.
    constexpr size_t kEvicting = 64;
    if (evicting >= kEvicting) return false;
    Session* pick = nullptr;
    int64_t since = 0;
    for (Session* s : sessions) {
      if (s->evicted_) continue;
      const int64_t t = s->reading_since();
      if (t != 0 && (since == 0 || t < since)) {
        since = t;
        pick = s;
      }
    }
    if (!pick) return false;
    oldest = pick->weak_from_this().lock();
    if (!oldest) return true;  // already going (its destructor waits for this lock)
    pick->evicted_ = true;
    ++evicting;
  }
  oldest->Evict();
  if (opt.recorder) opt.recorder->AddCounter("http_connections_evicted_total", 1);
  return true;
}

void HttpServer::Impl::Accept() {
  acceptor.async_accept(asio::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (!acceptor.is_open()) return;
    if (AcceptStarved(ec)) {
      if (opt.recorder) opt.recorder->AddCounter("http_accept_errors_total", 1);
      accept_retry.expires_after(std::chrono::milliseconds(50));
      accept_retry.async_wait([this](beast::error_code wait_ec) {
        if (!wait_ec && acceptor.is_open()) Accept();
      });
      return;
    }
    if (!ec) {
      if (Admit()) {
        auto session = std::make_shared<Session>(this, std::move(socket));
        session->Register();
        session->Read();
      } else {
        // Every connection is busy with a request, or 64 are closing: this one is closed unanswered.
        if (opt.recorder) opt.recorder->AddCounter("http_connections_refused_total", 1);
        beast::error_code ignored;
        socket.close(ignored);
      }
    }
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

size_t HttpServer::MaxConnections(size_t requested, uint64_t open_files_limit) {
  // Room for the process's other descriptors (model files, PS and MPI connections, logs).
  const uint64_t room = open_files_limit > 512 ? (open_files_limit - 256) / 2 : 128;
  const uint64_t cap = requested ? std::min<uint64_t>(requested, room) : std::min<uint64_t>(4096, room);
  return static_cast<size_t>(std::max<uint64_t>(cap, 16));
}

Status HttpServer::Start() {
  uint64_t limit = 1024;
  if (struct rlimit files{}; ::getrlimit(RLIMIT_NOFILE, &files) == 0)
    limit = files.rlim_cur == RLIM_INFINITY ? uint64_t{1} << 20 : files.rlim_cur;
  impl_->max_connections = MaxConnections(options_.max_connections, limit);
  if (Recorder* r = options_.recorder) {  // exported from the start, so that rates start at zero
    r->SetGauge("http_connections_open", 0);
    for (const char* name :
         {"http_connections_evicted_total", "http_connections_refused_total", "http_accept_errors_total"})
      r->AddCounter(name, 0);
  }
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
