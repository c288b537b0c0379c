#include "ember/ps/server.h"

#include <array>
#include <boost/asio.hpp>
#include <condition_variable>
#include <optional>
#include <thread>

#include "ember/common/asio_listen.h"
#include "ember/common/file.h"
#include "ember/ps/in_process.h"

namespace ember::ps {
namespace {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
}  // namespace

struct PsServer::Impl {
  explicit Impl(int threads)
      : ioc(std::make_unique<asio::io_context>(std::max(1, threads))),
        acceptor(std::make_unique<tcp::acceptor>(*ioc)) {}
  // Owned through pointers: Stop() destroys them, which closes every connection.
  std::unique_ptr<asio::io_context> ioc;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::unique_ptr<tcp::acceptor> acceptor;
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
  Connection(PsServer* server, PsServer::Impl* impl, uint32_t max_payload, tcp::socket socket)
      : server_(server), impl_(impl), max_payload_(max_payload), socket_(std::move(socket)) {
    boost::system::error_code ignored;
    socket_.set_option(tcp::no_delay(true), ignored);
  }

  void ReadHeader() {
    asio::async_read(socket_, asio::buffer(header_), [self = shared_from_this()](boost::system::error_code ec, size_t) {
      if (ec) return;  // peer gone
      auto h = wire::ParseHeader(self->header_, self->max_payload_);
      if (!h.ok()) {
        self->Reply(wire::Type::kError, 0, h.status(), "", /*close=*/true);
        return;
      }
      self->current_ = *h;
      self->payload_.resize(h->payload_bytes);
      asio::async_read(self->socket_, asio::buffer(self->payload_), [self](boost::system::error_code ec2, size_t) {
        if (ec2) return;
        if (self->current_.type == wire::Type::kPull) {
          // A pull waits for its step's clock without holding a thread: it is parked on the
          // shard and answered on this connection's strand when the step's last push arrives.
          const Status st = wire::DecodePull(self->payload_, &self->pull_);
          if (!st.ok()) {
            self->Reply(wire::Type::kError, self->current_.request_id, st, "", /*close=*/true);
            return;
          }
          self->server_->shard().WhenClock(self->pull_.wait_for, [self] {
            asio::post(self->socket_.get_executor(), [self] { self->Answer(self->server_->Pull(self->pull_)); });
          });
          return;
        }
        self->Answer(self->server_->Handle(self->current_.type, self->payload_));
      });
    });
  }

 private:
  void Answer(Result<std::string> reply) {
    const bool malformed = !reply.ok() && reply.status().message().rfind("malformed", 0) == 0;
    if (reply.ok())
      Reply(current_.type, current_.request_id, Status::Ok(), std::move(reply).value(), false);
    else
      Reply(wire::Type::kError, current_.request_id, reply.status(), "", malformed);
    if (current_.type == wire::Type::kShutdown && reply.ok()) impl_->Shutdown();
  }

  // Writes header and payload as two buffers (the payload is not copied behind the header).
  void Reply(wire::Type type, uint64_t id, const Status& st, std::string payload, bool close) {
    out_.clear();
    body_ = std::move(payload);
    if (!st.ok()) {
      body_.clear();
      wire::EncodeError(st, &body_);
    }
    wire::AppendHeader(&out_, type, id, static_cast<uint32_t>(body_.size()));
    asio::async_write(socket_, std::array<asio::const_buffer, 2>{asio::buffer(out_), asio::buffer(body_)},
                      [self = shared_from_this(), close](boost::system::error_code ec, size_t) {
                        if (ec) return;
                        if (close) {
                          boost::system::error_code ignored;
                          self->socket_.shutdown(tcp::socket::shutdown_both, ignored);
                          return;
                        }
                        self->ReadHeader();
                      });
  }

  PsServer* server_;
  PsServer::Impl* impl_;
  uint32_t max_payload_;
  tcp::socket socket_;
  uint8_t header_[wire::kHeaderBytes];
  wire::Header current_;
  wire::PullRequest pull_;
  std::string payload_, out_, body_;
};

void Accept(PsServer* server, PsServer::Impl* impl, uint32_t max_payload) {
  impl->acceptor->async_accept(asio::make_strand(*impl->ioc), [=](boost::system::error_code ec, tcp::socket socket) {
    if (!impl->acceptor->is_open()) return;
    if (!ec) std::make_shared<Connection>(server, impl, max_payload, std::move(socket))->ReadHeader();
    Accept(server, impl, max_payload);
  });
}
}  // namespace

PsServer::PsServer(ServerOptions options) : options_(std::move(options)) {
  shard_.set_seed(static_cast<uint64_t>(options_.shard_index));
  impl_ = std::make_unique<Impl>(options_.threads);
}

PsServer::~PsServer() { Stop(); }

Status PsServer::Start() {
  EMBER_ASSIGN_OR_RETURN(impl_->port, ListenOn(impl_->acceptor.get(), options_.bind, options_.port, "ps server"));
  impl_->work.emplace(impl_->ioc->get_executor());
  Accept(this, impl_.get(), options_.max_payload);
  for (int i = 0; i < std::max(1, options_.threads); ++i) impl_->threads.emplace_back([this] { impl_->ioc->run(); });
  return Status::Ok();
}

void PsServer::Stop() {
  if (!impl_ || impl_->threads.empty()) return;
  impl_->work.reset();
  impl_->ioc->stop();
  shard_.DropWaiters();  // parked pulls hold connections of the context destroyed below
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
  // Destroying the context destroys its pending handlers and with them every connection: peers
  // see the sockets close, as if the process had died.
  impl_->acceptor.reset();
  impl_->ioc.reset();
  impl_->Shutdown();
}

void PsServer::WaitForShutdown() {
  std::unique_lock<std::mutex> lock(impl_->mu);
  impl_->cv.wait(lock, [&] { return impl_->shutdown; });
}

int PsServer::port() const { return impl_->port; }

Result<std::string> PsServer::Pull(const wire::PullRequest& req) {
  std::string out;
  wire::Writer w(&out);
  w.Pod<uint64_t>(shard_.clock());
  std::vector<uint8_t> own;
  for (const auto& s : req.slices) {
    const embedding::Table* t = shard_.table(s.table);
    if (!t) return Status::NotFound("pull from undeclared table " + std::to_string(s.table));
    const size_t dim = static_cast<size_t>(t->dim());
    w.Pod<uint32_t>(static_cast<uint32_t>(dim));
    // Rows land in the reply itself (4-byte aligned: every field before them is 4 bytes).
    const size_t at = out.size();
    out.resize(at + s.keys.size() * dim * sizeof(float));
    own.resize(s.keys.size());
    EMBER_RETURN_IF_ERROR(shard_.Pull(s.table, s.keys.data(), s.keys.size(), reinterpret_cast<float*>(out.data() + at),
                                      s.create_missing, own.data()));
    // Keys without their own row (feature admission): count, then their positions in the slice.
    const size_t count_at = out.size();
    uint32_t fell = 0;
    w.Pod<uint32_t>(0);
    for (size_t i = 0; i < own.size(); ++i)
      if (!own[i]) {
        w.Pod<uint32_t>(static_cast<uint32_t>(i));
        ++fell;
      }
    std::memcpy(out.data() + count_at, &fell, sizeof(fell));
  }
  return out;
}

Result<std::string> PsServer::Handle(wire::Type type, std::string_view payload) {
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
      return Pull(req);
    }
    case wire::Type::kPush: {
      wire::PushRequest req;
      EMBER_RETURN_IF_ERROR(wire::DecodePush(payload, &req));
      for (const auto& s : req.slices) {
        const embedding::Table* t = shard_.table(s.table);
        if (!t) return Status::NotFound("push to undeclared table " + std::to_string(s.table));
        if (static_cast<uint32_t>(t->dim()) != s.dim)
          return Status::InvalidArgument("push to table " + std::to_string(s.table) + ": rows are " +
                                         std::to_string(s.dim) + " wide, the table " + std::to_string(t->dim()));
      }
      std::vector<Shard::Rows> rows;
      for (const auto& s : req.slices) rows.push_back({s.table, s.keys.data(), s.keys.size(), s.grads.data()});
      EMBER_RETURN_IF_ERROR(shard_.PushStep(req.clock, rows));
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
      std::string dir;
      EMBER_RETURN_IF_ERROR(wire::DecodeString(payload, &dir));
      const std::string bytes = shard_.Serialize();
      ShardFile f;
      f.name = "shard-" + std::to_string(options_.shard_index) + ".bin";
      f.bytes = bytes.size();
      f.checksum = Checksum(bytes);
      EMBER_RETURN_IF_ERROR(WriteFileAtomic(dir + "/" + f.name, bytes));
      wire::EncodeFiles({f}, &out);
      return out;
    }
    case wire::Type::kLoad: {
      wire::LoadRequest req;
      EMBER_RETURN_IF_ERROR(wire::DecodeLoad(payload, &req));
      std::vector<ShardTables> tables;  // this server's keys only, verified before anything changes
      EMBER_RETURN_IF_ERROR(BuildShardTables(req.dir, req.files, options_.num_shards, options_.shard_index, &tables));
      shard_.Replace(std::move(tables[0]));
      return out;
    }
    case wire::Type::kError:
      return Status::InvalidArgument("malformed frame: a client sent an error frame");
  }
  return Status::InvalidArgument("malformed frame: unknown type");
}

}  // namespace ember::ps
