#include "ember/ps/server.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <condition_variable>
#include <filesystem>
#include <list>
#include <optional>
#include <thread>

#include "ember/common/asio_listen.h"
#include "ember/common/file.h"
#include "ember/ps/in_process.h"

namespace ember::ps {
namespace {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;

// A payload buffer starts at this size and at most doubles with what arrived.
constexpr size_t kFirstChunk = 64 << 10;
// Buffers above this are freed after their frame rather than kept for the next.
constexpr size_t kKeepBuffer = 4 << 20;

bool Malformed(const Status& st) { return st.message().rfind("malformed", 0) == 0; }

// A request that throws (a bug, or memory exhausted) is answered with an error, not a dead
// server; counted, so that the fuzzer still sees it.
template <typename Fn>
auto Guarded(PsServer* server, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const std::exception& e) {
    server->counters().internal_errors++;
    return Status::Internal(std::string("request failed on the server: ") + e.what());
  }
}
}  // namespace

// ---------------------------------------------------------------------------------------------
// ServerSession

ServerSession::ServerSession(PsServer* server) : server_(server) {}

ServerSession::~ServerSession() { Closed(); }

void ServerSession::Closed() {
  ReleaseBuffer();
  if (authenticated_ && worker_ != kNoWorker && !left_) server_->WorkerLeft(worker_);
  left_ = true;
  phase_ = Phase::kClosed;
}

ServerSession::Output ServerSession::Start() {
  auto nonce = MakeNonce();
  if (!nonce.ok()) return Refuse(nonce.status(), false);
  nonce_ = *nonce;
  Output o;
  wire::AppendHeader(&o.head, wire::Type::kChallenge, 0, wire::kChallengeBytes);
  o.head.append(reinterpret_cast<const char*>(nonce_.data()), nonce_.size());
  return o;
}

char* ServerSession::next() {
  if (header_have_ < wire::kHeaderBytes) return reinterpret_cast<char*>(header_) + header_have_;
  return payload_.data() + payload_have_;
}

size_t ServerSession::want() const {
  if (phase_ == Phase::kParked || phase_ == Phase::kClosed) return 0;
  if (header_have_ < wire::kHeaderBytes) return wire::kHeaderBytes - header_have_;
  return payload_.size() - payload_have_;
}

void ServerSession::ReleaseBuffer() {
  if (reserved_) server_->Release(reserved_);
  reserved_ = 0;
}

void ServerSession::Grow() {
  // Grow with what arrived, never to what the header claims: a header announcing 1 GiB
  // followed by silence costs the first chunk only (or the buffer this session already holds,
  // at most kKeepBuffer, which a frame fills at once instead of chunk by doubling chunk).
  const size_t target =
      std::min<size_t>(current_.payload_bytes, std::max({kFirstChunk, 2 * payload_have_, payload_.capacity()}));
  payload_.resize(target);
  if (payload_.capacity() > reserved_) {
    const uint64_t more = payload_.capacity() - reserved_;
    if (!server_->Reserve(more)) return;  // Received() notices reserved_ < size
    reserved_ += more;
  }
}

ServerSession::Output ServerSession::Refuse(const Status& st, bool auth_failure) {
  (auth_failure ? server_->counters().auth_failures : server_->counters().refused_frames)++;
  phase_ = Phase::kClosed;
  Output o;
  wire::EncodeError(st, &o.body);
  wire::AppendHeader(&o.head, wire::Type::kError, current_.request_id, static_cast<uint32_t>(o.body.size()));
  o.close = true;
  ReleaseBuffer();
  return o;
}

ServerSession::Output ServerSession::Received(size_t n) {
  if (phase_ == Phase::kClosed || n == 0) return {};
  if (header_have_ < wire::kHeaderBytes) {
    header_have_ += n;
    if (phase_ == Phase::kIdle) phase_ = Phase::kFrame;
    if (header_have_ < wire::kHeaderBytes) return {};
    current_ = wire::Header{};
    // Before the handshake only a hello is read: its payload is exactly kClientHelloBytes.
    auto h = wire::ParseHeader(header_, authenticated_ ? server_->options().max_payload : wire::kClientHelloBytes);
    if (!h.ok())
      return Refuse(authenticated_ ? h.status() : h.status().WithContext("unauthenticated"), !authenticated_);
    current_ = *h;
    if (!authenticated_ && current_.type != wire::Type::kHello)
      return Refuse(Status::FailedPrecondition(std::string("unauthenticated: a ") + wire::TypeName(current_.type) +
                                               " frame before the handshake (the first frame must be a hello)"),
                    true);
    payload_.clear();
    payload_have_ = 0;
    if (current_.payload_bytes == 0) return OnFrame();
    Grow();
  } else {
    payload_have_ += n;
    if (payload_have_ == current_.payload_bytes) return OnFrame();
    if (payload_have_ == payload_.size()) Grow();
  }
  if (reserved_ < payload_.size())
    return Refuse(Status::Unavailable("server buffers are full (ps.max_buffered_bytes = " +
                                      std::to_string(server_->options().max_buffered_bytes) + ")"),
                  false);
  return {};
}

ServerSession::Output ServerSession::Reply(wire::Type type, Result<std::string> reply) {
  Output o;
  if (reply.ok()) {
    o.body = std::move(reply).value();
    wire::AppendHeader(&o.head, type, current_.request_id, static_cast<uint32_t>(o.body.size()));
    return o;
  }
  server_->counters().refused_frames++;
  wire::EncodeError(reply.status(), &o.body);
  wire::AppendHeader(&o.head, wire::Type::kError, current_.request_id, static_cast<uint32_t>(o.body.size()));
  // A malformed frame leaves the stream untrustworthy: answer, then close.
  if (Malformed(reply.status())) {
    o.close = true;
    phase_ = Phase::kClosed;
  }
  return o;
}

ServerSession::Output ServerSession::OnFrame() {
  header_have_ = 0;
  const std::string_view payload(payload_.data(), current_.payload_bytes);
  auto done = [&] {
    if (payload_.capacity() > kKeepBuffer) payload_.Free();
    if (reserved_ > payload_.capacity()) {
      server_->Release(reserved_ - payload_.capacity());
      reserved_ = payload_.capacity();
    }
  };
  if (!authenticated_) {
    wire::ClientHello hello;
    Status st = wire::DecodeClientHello(payload, &hello);
    done();
    if (!st.ok()) return Refuse(st.WithContext("unauthenticated"), true);
    const Mac expect = ClientMac(server_->options().secret, nonce_, hello.nonce, hello.worker);
    if (!SameMac(expect.data(), hello.mac.data()))
      return Refuse(Status::FailedPrecondition("unauthenticated: the hello does not prove the job's secret"), true);
    const uint32_t world = server_->options().workers;
    if (hello.worker != kNoWorker && world && hello.worker >= world)
      return Refuse(Status::FailedPrecondition("unauthenticated: worker " + std::to_string(hello.worker) +
                                               " is not one of the job's " + std::to_string(world)),
                    true);
    authenticated_ = true;
    worker_ = hello.worker;
    if (worker_ != kNoWorker) server_->WorkerJoined(worker_);
    phase_ = Phase::kIdle;
    const Mac mine = ServerMac(server_->options().secret, hello.nonce, nonce_);
    return Reply(wire::Type::kHello, std::string(reinterpret_cast<const char*>(mine.data()), mine.size()));
  }
  phase_ = Phase::kIdle;
  if (current_.type == wire::Type::kPull) {
    // A push may name the keys of this pull or of the one before instead of sending them again.
    std::swap(prev_pull_, pull_);
    prev_pull_id_ = pull_id_;
    pull_id_ = 0;
    const Status st = wire::DecodePull(payload, &pull_);
    done();
    if (!st.ok()) return Reply(wire::Type::kPull, st);
    pull_id_ = current_.request_id;
    // Answered now if the step is in (the clock never moves back), else parked on the shard and
    // answered when the step's last push arrives (no thread held while it waits).
    if (pull_.wait_for == 0 || server_->shard().clock() >= pull_.wait_for) return ReplyToPull();
    phase_ = Phase::kParked;
    Output o;
    o.park = true;
    o.wait_for = pull_.wait_for;
    return o;
  }
  if (current_.type == wire::Type::kPush) {
    const Status st = Guarded(server_, [&]() -> Status {
      wire::PushRequest req;
      EMBER_RETURN_IF_ERROR(wire::DecodePush(payload, &req));
      EMBER_RETURN_IF_ERROR(wire::UsePullKeys({{pull_id_, &pull_}, {prev_pull_id_, &prev_pull_}}, &req));
      return server_->Push(req, worker_);
    });
    done();  // after the push: its gradients are read where they lie in the payload
    return Reply(wire::Type::kPush, st.ok() ? Result<std::string>(std::string()) : Result<std::string>(st));
  }
  auto reply = Guarded(server_, [&] { return server_->Handle(current_.type, payload, worker_); });
  done();
  if (current_.type == wire::Type::kShutdown && reply.ok()) server_->RequestShutdown();
  return Reply(current_.type, std::move(reply));
}

ServerSession::Output ServerSession::Unpark() {
  if (phase_ != Phase::kParked) return {};  // closed meanwhile
  phase_ = Phase::kIdle;
  return ReplyToPull();
}

ServerSession::Output ServerSession::ReplyToPull() {
  const Status st = Guarded(server_, [&] { return server_->Pull(pull_, &reply_); });
  if (!st.ok()) return Reply(wire::Type::kPull, st);
  Output o;
  o.bulk = reply_.view();
  wire::AppendHeader(&o.head, wire::Type::kPull, current_.request_id, static_cast<uint32_t>(o.bulk.size()));
  return o;
}

void ServerSession::Sent() {
  if (reply_.capacity() > kKeepBuffer) reply_.Free();  // an outsized pull's reply goes once written
}

// ---------------------------------------------------------------------------------------------
// The Asio driver

namespace {
class Connection;
}  // namespace

// One io_context a thread, each running its share of the connections (round-robin): a
// connection's handlers never hop between threads, and no context wakes another.
struct PsServer::Impl {
  explicit Impl(int threads) {
    for (int i = 0; i < std::max(1, threads); ++i) iocs.push_back(std::make_unique<asio::io_context>(1));
    acceptor = std::make_unique<tcp::acceptor>(*iocs[0]);
    accept_retry = std::make_unique<asio::steady_timer>(*iocs[0]);
  }
  // Connections that have not finished their handshake, oldest first: a connection joins when
  // accepted and leaves when authenticated or gone, under handshake_mu (so a pointer read under
  // it is alive). Past ServerOptions::max_handshaking a new connection closes the oldest.
  // Declared before the contexts, whose destruction destroys the connections.
  std::mutex handshake_mu;
  std::list<Connection*> handshaking;
  // Owned through pointers: Stop() destroys them, which closes every connection.
  std::vector<std::unique_ptr<asio::io_context>> iocs;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::unique_ptr<tcp::acceptor> acceptor;
  std::unique_ptr<asio::steady_timer> accept_retry;  // after an accept failed for want of descriptors
  size_t next_context = 0;                           // the acceptor's context only
  std::vector<std::thread> threads;
  int port = 0;
  std::mutex mu;
  std::condition_variable cv;
  bool shutdown = false;

  void Shutdown() {
    std::lock_guard<std::mutex> lock(mu);
    shutdown = true;
    cv.notify_all();
  }
};

namespace {
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(PsServer* server, PsServer::Impl* impl, tcp::socket socket)
      : server_(server), impl_(impl), socket_(std::move(socket)), timer_(socket_.get_executor()), session_(server) {
    boost::system::error_code ignored;
    socket_.set_option(tcp::no_delay(true), ignored);
    server_->counters().connections++;
  }
  ~Connection() { LeaveHandshake(); }

  void Begin() {
    started_ = SteadyClock::now();
    std::shared_ptr<Connection> oldest;  // released after the lock: the last owner runs ~Connection
    {
      std::lock_guard<std::mutex> lock(impl_->handshake_mu);
      if (impl_->handshaking.size() >= server_->options().max_handshaking) {
        Connection* first = impl_->handshaking.front();
        impl_->handshaking.pop_front();
        first->handshaking_.store(false, std::memory_order_relaxed);
        oldest = first->weak_from_this().lock();
      }
      entry_ = impl_->handshaking.insert(impl_->handshaking.end(), this);
      handshaking_.store(true, std::memory_order_relaxed);
    }
    if (oldest) {
      // On its own thread: one that authenticated meanwhile stays.
      asio::post(oldest->socket_.get_executor(), [oldest] {
        if (oldest->session_.phase() != ServerSession::Phase::kHandshake) return;
        oldest->server_->counters().handshake_evictions++;
        oldest->Close();
      });
    }
    Send(session_.Start());
  }

 private:
  void LeaveHandshake() {
    std::lock_guard<std::mutex> lock(impl_->handshake_mu);
    if (!handshaking_.load(std::memory_order_relaxed)) return;
    impl_->handshaking.erase(entry_);
    handshaking_.store(false, std::memory_order_relaxed);
  }

  void Send(ServerSession::Output o) {
    if (handshaking_.load(std::memory_order_relaxed) && session_.phase() != ServerSession::Phase::kHandshake)
      LeaveHandshake();
    if (o.park) {
      deadline_ = SteadyClock::time_point::max();  // a parked pull waits for its step, not a deadline
      // (the pending wait, if any, finds no deadline when it fires and stops)
      server_->shard().WhenClock(o.wait_for, [self = shared_from_this()] {
        asio::post(self->socket_.get_executor(), [self] { self->Send(self->session_.Unpark()); });
      });
      WatchParked();
      return;
    }
    if (o.head.empty()) {
      if (o.close) return Close();
      return ReadMore();
    }
    out_ = std::move(o);
    SetDeadline(SteadyClock::now() + Seconds(server_->options().timeout_s));  // the peer takes its reply in time
    asio::async_write(socket_,
                      std::array<asio::const_buffer, 3>{asio::buffer(out_.head), asio::buffer(out_.body),
                                                        asio::buffer(out_.bulk.data(), out_.bulk.size())},
                      [self = shared_from_this()](boost::system::error_code ec, size_t) {
                        if (ec || self->out_.close) return self->Close();
                        self->out_ = {};
                        self->session_.Sent();
                        self->ReadMore();
                      });
  }

  // A peer that hangs up while its pull waits is noticed now, not when the step comes.
  void WatchParked() {
    socket_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](boost::system::error_code ec) {
      if (ec || self->session_.phase() != ServerSession::Phase::kParked) return;
      char probe;
      boost::system::error_code mode, peek;
      self->socket_.non_blocking(true, mode);
      const size_t n = self->socket_.receive(asio::buffer(&probe, 1), tcp::socket::message_peek, peek);
      self->socket_.non_blocking(false, mode);
      if (peek == asio::error::would_block || peek == asio::error::try_again) return self->WatchParked();
      if (peek || n == 0) self->Close();  // closed or reset; bytes waiting are read after the reply
    });
  }

  void ReadMore() {
    // Bytes an earlier read staged go to the session first, as much as it asks for.
    while (staged_at_ < staged_end_) {
      const size_t want = session_.want();
      if (!want) return;  // parked or closed: the rest waits
      const size_t take = std::min(want, staged_end_ - staged_at_);
      std::memcpy(session_.next(), stage_.data() + staged_at_, take);
      staged_at_ += take;
      ServerSession::Output o = session_.Received(take);
      if (!o.head.empty() || o.close || o.park) return Send(std::move(o));
    }
    const size_t want = session_.want();
    if (!want) return;
    Arm();
    if (want < stage_.size()) {
      // A header, or a small payload's rest: one read takes whatever has arrived, usually the
      // whole of a small request (header and payload in one system call).
      socket_.async_read_some(asio::buffer(stage_),
                              [self = shared_from_this()](boost::system::error_code ec, size_t n) {
                                if (ec) return self->Close();
                                self->staged_at_ = 0;
                                self->staged_end_ = n;
                                self->ReadMore();
                              });
      return;
    }
    socket_.async_read_some(asio::buffer(session_.next(), std::min<size_t>(want, 1 << 20)),
                            [self = shared_from_this()](boost::system::error_code ec, size_t n) {
                              if (ec) return self->Close();
                              self->Send(self->session_.Received(n));
                            });
  }

  // The read's deadline: the handshake and a frame from their first byte, idle time between.
  void Arm() {
    const auto& o = server_->options();
    const auto phase = session_.phase();
    if (phase == ServerSession::Phase::kHandshake) {
      SetDeadline(started_ + Seconds(o.timeout_s));
    } else if (phase == ServerSession::Phase::kFrame) {
      if (!in_frame_) frame_start_ = SteadyClock::now();
      in_frame_ = true;
      SetDeadline(frame_start_ + Seconds(o.timeout_s));
    } else {
      in_frame_ = false;
      SetDeadline(SteadyClock::now() + Seconds(o.idle_timeout_s));
    }
  }

  // The timer never waits more than timeout_s: when it fires before the deadline it waits again
  // (at most timeout_s more). A deadline set later than the pending wait's end (every read and
  // reply of a connection in use) touches no timer; only a sooner one moves it.
  void SetDeadline(SteadyClock::time_point when) {
    deadline_ = when;
    if (!timer_waiting_ || timer_.expiry() > when) Wait(when);
  }

  void Wait(SteadyClock::time_point when) {
    timer_waiting_ = true;
    timer_.expires_at(std::min(when, SteadyClock::now() + Seconds(server_->options().timeout_s)));
    // A pending wait ends with operation_aborted.
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec) return;  // moved (a new wait is pending) or cancelled
      self->timer_waiting_ = false;
      if (self->closed_ || self->deadline_ == SteadyClock::time_point::max()) return;
      if (self->deadline_ > SteadyClock::now()) return self->Wait(self->deadline_);
      self->server_->counters().timeouts++;
      self->Close();
    });
  }

  static SteadyClock::duration Seconds(double s) {
    return std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(std::min(s, 1e9)));
  }

  void Close() {
    boost::system::error_code ignored;
    closed_ = true;
    session_.Closed();
    timer_.cancel();
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

  PsServer* server_;
  PsServer::Impl* impl_;
  std::list<Connection*>::iterator entry_;  // in impl_->handshaking while handshaking_
  // In impl_->handshaking; changed under impl_->handshake_mu (also by another connection's
  // Begin), read without it only to skip the lock once it is false.
  std::atomic<bool> handshaking_{false};
  tcp::socket socket_;
  asio::steady_timer timer_;
  ServerSession session_;
  ServerSession::Output out_;
  SteadyClock::time_point started_, frame_start_, deadline_ = SteadyClock::time_point::max();
  bool in_frame_ = false;
  bool timer_waiting_ = false;
  bool closed_ = false;
  std::array<char, 16 << 10> stage_;  // a read of small frames (header and payload together)
  size_t staged_at_ = 0, staged_end_ = 0;
};

void Accept(PsServer* server, PsServer::Impl* impl) {
  asio::io_context& ioc = *impl->iocs[impl->next_context++ % impl->iocs.size()];
  impl->acceptor->async_accept(ioc, [=](boost::system::error_code ec, tcp::socket socket) {
    if (!impl->acceptor->is_open()) return;
    if (AcceptStarved(ec)) {
      impl->accept_retry->expires_after(std::chrono::milliseconds(50));
      impl->accept_retry->async_wait([=](boost::system::error_code wait_ec) {
        if (!wait_ec && impl->acceptor->is_open()) Accept(server, impl);
      });
      return;
    }
    if (!ec) std::make_shared<Connection>(server, impl, std::move(socket))->Begin();
    Accept(server, impl);
  });
}
}  // namespace

// ---------------------------------------------------------------------------------------------
// PsServer

PsServer::PsServer(ServerOptions options) : options_(std::move(options)) {
  shard_.set_seed(static_cast<uint64_t>(options_.shard_index));
  if (options_.workers) {
    EMBER_CHECK(shard_.FixWorld(options_.workers).ok()) << "workers " << options_.workers;
  }
  impl_ = std::make_unique<Impl>(options_.threads);
}

PsServer::~PsServer() { Stop(); }

Status PsServer::Start() {
  if (options_.secret.size() < kMinSecretBytes)
    return Status::InvalidArgument("ps server: a job secret of at least " + std::to_string(kMinSecretBytes) +
                                   " bytes is required (ps::MakeSecret)");
  if (!(options_.timeout_s > 0) || !(options_.idle_timeout_s > 0))
    return Status::InvalidArgument("ps server: timeouts must be positive");
  if (options_.max_handshaking == 0) return Status::InvalidArgument("ps server: max_handshaking must be positive");
  EMBER_ASSIGN_OR_RETURN(impl_->port, ListenOn(impl_->acceptor.get(), options_.bind, options_.port, "ps server"));
  for (auto& ioc : impl_->iocs) impl_->work.push_back(asio::make_work_guard(*ioc));
  Accept(this, impl_.get());
  for (auto& ioc : impl_->iocs) impl_->threads.emplace_back([c = ioc.get()] { c->run(); });
  return Status::Ok();
}

void PsServer::Stop() {
  if (!impl_ || impl_->threads.empty()) return;
  impl_->work.clear();
  for (auto& ioc : impl_->iocs) ioc->stop();
  shard_.DropWaiters();  // parked pulls hold connections of the context destroyed below
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
  // Destroying the context destroys its pending handlers and with them every connection: peers
  // see the sockets close, as if the process had died.
  impl_->accept_retry.reset();
  impl_->acceptor.reset();
  impl_->iocs.clear();
  impl_->Shutdown();
}

void PsServer::RequestShutdown() { impl_->Shutdown(); }

Status PsServer::WaitForShutdown() {
  std::unique_lock<std::mutex> lock(impl_->mu);
  for (;;) {
    if (impl_->cv.wait_for(lock, std::chrono::milliseconds(200), [&] { return impl_->shutdown; })) return Status::Ok();
    std::lock_guard<std::mutex> presence(presence_mu_);
    for (const auto& [worker, since] : left_) {
      const double gone = std::chrono::duration<double>(SteadyClock::now() - since).count();
      if (gone >= options_.timeout_s)
        return Status::Unavailable(
            "worker " + std::to_string(worker) + " closed its connection " + std::to_string(static_cast<int>(gone)) +
            " s ago and the job did not shut down (ps.timeout_s = " + std::to_string(options_.timeout_s) + ")");
    }
  }
}

int PsServer::port() const { return impl_->port; }

bool PsServer::Reserve(uint64_t bytes) {
  uint64_t now = counters_.buffered_bytes.load();
  do {
    if (now + bytes > options_.max_buffered_bytes) return false;
  } while (!counters_.buffered_bytes.compare_exchange_weak(now, now + bytes));
  return true;
}

void PsServer::Release(uint64_t bytes) { counters_.buffered_bytes -= bytes; }

void PsServer::WorkerJoined(uint32_t worker) {
  std::lock_guard<std::mutex> lock(presence_mu_);
  ++live_[worker];
  left_.erase(worker);
}

void PsServer::WorkerLeft(uint32_t worker) {
  std::lock_guard<std::mutex> lock(presence_mu_);
  if (--live_[worker] <= 0) {
    live_.erase(worker);
    left_.emplace(worker, SteadyClock::now());
  }
}

Result<std::string> PsServer::ConfinedDir(const std::string& dir) const {
  namespace fs = std::filesystem;
  if (options_.checkpoint_root.empty())
    return Status::FailedPrecondition("this server has no checkpoint directory: save and load are refused");
  if (dir.empty() || dir.find('\0') != std::string::npos)
    return Status::InvalidArgument("save/load: not a directory name");
  std::error_code ec;
  const fs::path root = fs::weakly_canonical(fs::absolute(options_.checkpoint_root, ec), ec);
  if (ec) return Status::IoError("checkpoint directory " + options_.checkpoint_root + ": " + ec.message());
  const fs::path target = fs::weakly_canonical(fs::absolute(dir, ec), ec);
  if (ec) return Status::InvalidArgument("directory \"" + dir + "\": " + ec.message());
  auto r = root.begin(), t = target.begin();
  for (; r != root.end() && !r->empty(); ++r, ++t)
    if (t == target.end() || *r != *t)
      return Status::FailedPrecondition("directory \"" + dir + "\" is outside the job's checkpoint directory " +
                                        root.string());
  return target.string();
}

Status PsServer::Pull(const wire::PullRequest& req, ByteBuffer* out) {
  out->clear();
  wire::Writer w(out);
  w.Pod<uint64_t>(shard_.clock());
  std::vector<uint8_t> own;
  for (const auto& s : req.slices) {
    const embedding::Table* t = shard_.table(s.table);
    if (!t) return Status::NotFound("pull from undeclared table " + std::to_string(s.table));
    const size_t dim = static_cast<size_t>(t->dim());
    w.Pod<uint32_t>(static_cast<uint32_t>(dim));
    // Rows land in the reply itself (4-byte aligned: every field before them is 4 bytes).
    const size_t at = out->size();
    out->resize(at + s.keys.size() * dim * sizeof(float));
    own.resize(s.keys.size());
    EMBER_RETURN_IF_ERROR(shard_.Pull(s.table, s.keys.data(), s.keys.size(), reinterpret_cast<float*>(out->data() + at),
                                      s.create_missing, own.data()));
    // Keys without their own row (feature admission): count, then their positions in the slice.
    const size_t count_at = out->size();
    uint32_t fell = 0;
    w.Pod<uint32_t>(0);
    for (size_t i = 0; i < own.size(); ++i)
      if (!own[i]) {
        w.Pod<uint32_t>(static_cast<uint32_t>(i));
        ++fell;
      }
    std::memcpy(out->data() + count_at, &fell, sizeof(fell));
  }
  return Status::Ok();
}

Status PsServer::Push(const wire::PushRequest& req, uint32_t worker) {
  const PushClock& c = req.clock;
  if (c.workers == 0 && options_.workers)
    return Status::FailedPrecondition("a push without a training clock on a server of a " +
                                      std::to_string(options_.workers) + "-worker job");
  if (c.workers != 0 && worker == kNoWorker)
    return Status::FailedPrecondition("a push with a training clock from a connection that is not a worker");
  if (c.workers != 0 && c.worker != worker)
    return Status::FailedPrecondition("the connection of worker " + std::to_string(worker) + " pushed as worker " +
                                      std::to_string(c.worker));
  for (const auto& s : req.slices) {
    if (!s.keys && s.n) return Status::Internal("a push whose keys were not resolved");
    const embedding::Table* t = shard_.table(s.table);
    if (!t) return Status::NotFound("push to undeclared table " + std::to_string(s.table));
    if (static_cast<uint32_t>(t->dim()) != s.dim)
      return Status::InvalidArgument("push to table " + std::to_string(s.table) + ": rows are " +
                                     std::to_string(s.dim) + " wide, the table " + std::to_string(t->dim()));
  }
  std::vector<Shard::Rows> rows;
  for (const auto& s : req.slices) rows.push_back({s.table, s.keys, s.n, s.grads});
  return shard_.PushStep(req.clock, rows);
}

Result<std::string> PsServer::Handle(wire::Type type, std::string_view payload, uint32_t worker) {
  std::string out;
  switch (type) {
    case wire::Type::kPing:
    case wire::Type::kShutdown:
      if (!payload.empty()) return Status::InvalidArgument("malformed frame: unexpected payload");
      return out;
    case wire::Type::kCreateTables: {
      std::vector<embedding::TableSpec> specs;
      EMBER_RETURN_IF_ERROR(wire::DecodeSpecs(payload, &specs));
      EMBER_RETURN_IF_ERROR(shard_.CreateTables(specs));
      return out;
    }
    case wire::Type::kPull: {
      wire::PullRequest req;
      EMBER_RETURN_IF_ERROR(wire::DecodePull(payload, &req));
      ByteBuffer reply;
      EMBER_RETURN_IF_ERROR(Pull(req, &reply));
      return std::string(reply.view());
    }
    case wire::Type::kPush: {
      wire::PushRequest req;
      EMBER_RETURN_IF_ERROR(wire::DecodePush(payload, &req));
      if (req.keys_of_pull)
        return Status::FailedPrecondition("a push naming the keys of a pull outside the pull's connection");
      EMBER_RETURN_IF_ERROR(Push(req, worker));
      return out;
    }
    case wire::Type::kStats:
      if (!payload.empty()) return Status::InvalidArgument("malformed frame: unexpected payload");
      wire::EncodeStats(shard_.Stats(), &out);
      return out;
    case wire::Type::kApply: {
      TableOp op;
      EMBER_RETURN_IF_ERROR(wire::DecodeOp(payload, &op));
      EMBER_ASSIGN_OR_RETURN(auto r, shard_.Apply(op));
      wire::EncodeOpResult(r, &out);
      return out;
    }
    case wire::Type::kSave: {
      std::string requested;
      EMBER_RETURN_IF_ERROR(wire::DecodeString(payload, &requested));
      EMBER_ASSIGN_OR_RETURN(const std::string dir, ConfinedDir(requested));
      const std::string bytes = shard_.Serialize();
      ShardFile f;
      f.name = "shard-" + std::to_string(options_.shard_index) + ".bin";
      f.bytes = bytes.size();
      f.checksum = Checksum(bytes);
      EMBER_RETURN_IF_ERROR(env()->WriteFileAtomic(dir + "/" + f.name, bytes));
      wire::EncodeFiles({f}, &out);
      return out;
    }
    case wire::Type::kLoad: {
      wire::LoadRequest req;
      EMBER_RETURN_IF_ERROR(wire::DecodeLoad(payload, &req));
      EMBER_ASSIGN_OR_RETURN(req.dir, ConfinedDir(req.dir));  // file names: plain (DecodeLoad)
      std::vector<ShardTables> tables;  // this server's keys only, verified before anything changes
      EMBER_RETURN_IF_ERROR(
          BuildShardTables(req.dir, req.files, options_.num_shards, options_.shard_index, &tables, env()));
      shard_.Replace(std::move(tables[0]));
      return out;
    }
    case wire::Type::kError:
      return Status::InvalidArgument("malformed frame: a client sent an error frame");
    case wire::Type::kChallenge:
    case wire::Type::kHello:
      return Status::InvalidArgument("malformed frame: a handshake frame after the handshake");
  }
  return Status::InvalidArgument("malformed frame: unknown type");
}

}  // namespace ember::ps
