#include "ember/ps/remote_client.h"

#include <poll.h>

#include <boost/asio.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

namespace ember::ps {
namespace {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// positions[server][slice] = indices of the slice's keys that live on the server; fails on an
// undeclared table (dims[slice] = 0).
template <typename Slice>
Status GroupByServer(const std::vector<Slice>& slices, const std::vector<uint32_t>& dims, int n, const char* what,
                     std::vector<std::vector<std::vector<size_t>>>* positions) {
  positions->resize(static_cast<size_t>(n));
  for (auto& server : *positions) {  // cleared, capacity kept
    server.resize(slices.size());
    for (auto& p : server) p.clear();
  }
  for (size_t s = 0; s < slices.size(); ++s) {
    if (!dims[s]) return Status::NotFound(std::string(what) + " undeclared table " + std::to_string(slices[s].table));
    for (size_t i = 0; i < slices[s].n; ++i) (*positions)[ShardOf(slices[s].keys[i], n)][s].push_back(i);
  }
  return Status::Ok();
}

// One payload per server with keys (encode(server, positions, out)); servers without keys get none,
// unless `every` (clocked pushes: every server counts the step).
template <typename Encode>
std::vector<std::optional<std::string_view>> Payloads(const std::vector<std::vector<std::vector<size_t>>>& positions,
                                                      std::vector<ByteBuffer>* payloads, Encode&& encode,
                                                      bool every = false) {
  payloads->resize(positions.size());
  std::vector<std::optional<std::string_view>> send(positions.size());
  for (size_t i = 0; i < positions.size(); ++i) {
    size_t keys = 0;
    for (const auto& p : positions[i]) keys += p.size();
    if (!keys && !every) continue;
    (*payloads)[i].clear();  // capacity kept
    encode(i, positions[i], &(*payloads)[i]);
    send[i] = (*payloads)[i].view();
  }
  return send;
}
}  // namespace

struct RemoteClient::Impl {
  asio::io_context ioc;
  std::vector<tcp::socket> sockets;
};

namespace {
using SteadyClock = std::chrono::steady_clock;

// Blocking I/O with a deadline: the sockets are non-blocking and every wait is a poll() bounded
// by what is left of the deadline.
Status WaitFor(tcp::socket& s, short events, SteadyClock::time_point deadline, const std::string& what) {
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now()).count();
    if (left <= 0) return Status::Unavailable(what + ": no answer within the deadline (ps.timeout_s)");
    pollfd p{s.native_handle(), events, 0};
    const int r = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 1 << 30)));
    if (r > 0) return Status::Ok();
    if (r < 0 && errno != EINTR) return Status::Unavailable(what + ": poll: " + std::strerror(errno));
  }
}

// Moves all of `b` with `some` (a write_some or read_some), waiting for `events` in between.
template <typename Buffer, typename Some>
Status Transfer(tcp::socket& s, Buffer b, short events, SteadyClock::time_point deadline, const std::string& who,
                Some&& some) {
  while (b.size() > 0) {
    boost::system::error_code ec;
    b += some(b, ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      EMBER_RETURN_IF_ERROR(WaitFor(s, events, deadline, who));
    } else if (ec) {
      return Status::Unavailable(who + " is gone: " + ec.message());
    }
  }
  return Status::Ok();
}

Status WriteAll(tcp::socket& s, std::array<asio::const_buffer, 2> bufs, SteadyClock::time_point deadline,
                const std::string& who) {
  for (const auto& b : bufs)
    EMBER_RETURN_IF_ERROR(Transfer(s, b, POLLOUT, deadline, who, [&](const asio::const_buffer& x, auto& ec) {
      return s.write_some(asio::buffer(x), ec);
    }));
  return Status::Ok();
}

Status ReadAll(tcp::socket& s, void* data, size_t bytes, SteadyClock::time_point deadline, const std::string& who) {
  return Transfer(s, asio::mutable_buffer(data, bytes), POLLIN, deadline, who,
                  [&](const asio::mutable_buffer& x, auto& ec) { return s.read_some(asio::buffer(x), ec); });
}

// A reply's payload: RoundTrip keeps each reply with its header.
std::string_view Payload(const ByteBuffer& reply) {
  return reply.size() < wire::kHeaderBytes ? std::string_view() : reply.view().substr(wire::kHeaderBytes);
}

SteadyClock::time_point After(double seconds) {
  return SteadyClock::now() +
         std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(std::min(seconds, 1e9)));
}

// Reads one frame (header and payload) of at most max_payload bytes.
Result<wire::Header> ReadFrame(tcp::socket& s, std::string* payload, uint32_t max_payload,
                               SteadyClock::time_point deadline, const std::string& who) {
  uint8_t header[wire::kHeaderBytes];
  EMBER_RETURN_IF_ERROR(ReadAll(s, header, sizeof(header), deadline, who));
  auto h = wire::ParseHeader(header, max_payload);
  if (!h.ok()) return h.status().WithContext(who);
  payload->resize(h->payload_bytes);
  EMBER_RETURN_IF_ERROR(ReadAll(s, payload->data(), payload->size(), deadline, who));
  return h;
}

// The client's half of the handshake (auth.h) on a connected socket.
Status Handshake(tcp::socket& s, const ClientOptions& o, const std::string& who) {
  const auto deadline = After(o.timeout_s);
  std::string payload;
  EMBER_ASSIGN_OR_RETURN(auto h, ReadFrame(s, &payload, 1024, deadline, who));
  if (h.type != wire::Type::kChallenge || payload.size() != kNonceBytes)
    return Status::Unavailable(who + ": not an ember PS server (no challenge)");
  Nonce server_nonce{}, client_nonce{};
  std::memcpy(server_nonce.data(), payload.data(), kNonceBytes);
  EMBER_ASSIGN_OR_RETURN(client_nonce, MakeNonce());
  const std::string hello = HelloFrame(o.secret, server_nonce, client_nonce, o.worker);
  EMBER_RETURN_IF_ERROR(WriteAll(s, {asio::buffer(hello), asio::const_buffer()}, deadline, who));
  EMBER_ASSIGN_OR_RETURN(h, ReadFrame(s, &payload, 1 << 16, deadline, who));
  if (h.type == wire::Type::kError) {
    Status peer;
    EMBER_RETURN_IF_ERROR(wire::DecodeError(payload, &peer));
    return peer.WithContext(who + " refused the handshake");
  }
  const Mac expect = ServerMac(o.secret, client_nonce, server_nonce);
  if (h.type != wire::Type::kHello || payload.size() != kMacBytes ||
      !SameMac(expect.data(), reinterpret_cast<const uint8_t*>(payload.data())))
    return Status::Unavailable(who + ": the server does not prove the job's secret");
  return Status::Ok();
}
}  // namespace

RemoteClient::~RemoteClient() = default;

std::string RemoteClient::Who(size_t i) const { return "PS server " + std::to_string(i) + " (" + endpoints_[i] + ")"; }

Status RemoteClient::Broken(Status st) {
  broken_ = st;
  return st;
}

Result<std::unique_ptr<RemoteClient>> RemoteClient::Connect(ClientOptions options) {
  if (options.endpoints.empty()) return Status::InvalidArgument("remote PS client: no server endpoints");
  if (options.secret.size() < kMinSecretBytes)
    return Status::InvalidArgument("remote PS client: the job's secret is missing or shorter than " +
                                   std::to_string(kMinSecretBytes) + " bytes");
  if (!(options.timeout_s > 0)) return Status::InvalidArgument("remote PS client: ps.timeout_s must be positive");
  std::unique_ptr<RemoteClient> c(new RemoteClient());
  c->options_ = options;
  c->endpoints_ = options.endpoints;
  c->impl_ = std::make_unique<Impl>();
  const auto deadline = After(options.connect_timeout_s);
  for (size_t i = 0; i < c->endpoints_.size(); ++i) {
    const std::string& ep = c->endpoints_[i];
    const size_t colon = ep.rfind(':');
    if (colon == std::string::npos) return Status::InvalidArgument("PS endpoint '" + ep + "' is not host:port");
    tcp::resolver resolver(c->impl_->ioc);
    boost::system::error_code ec;
    auto results = resolver.resolve(ep.substr(0, colon), ep.substr(colon + 1), ec);
    if (ec) return Status::InvalidArgument("PS endpoint '" + ep + "': " + ec.message());
    tcp::socket socket(c->impl_->ioc);
    for (;;) {
      asio::connect(socket, results, ec);
      if (!ec) break;
      if (SteadyClock::now() > deadline)
        return Status::Unavailable("cannot connect to PS server " + std::to_string(i) + " at " + ep + ": " +
                                   ec.message());
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    socket.set_option(tcp::no_delay(true), ec);
    socket.non_blocking(true, ec);
    if (ec) return Status::Unavailable(c->Who(i) + ": " + ec.message());
    EMBER_RETURN_IF_ERROR(Handshake(socket, options, c->Who(i)));
    c->impl_->sockets.push_back(std::move(socket));
  }
  return c;
}

Status RemoteClient::RoundTrip(wire::Type type, const std::vector<std::optional<std::string_view>>& payloads,
                               std::vector<ByteBuffer>* replies, std::vector<uint64_t>* ids) {
  if (!broken_.ok())
    return Status::Unavailable("PS connections unusable after an earlier failure: " + broken_.message());
  auto& sockets = impl_->sockets;
  const size_t n = sockets.size();
  replies->resize(n);
  // One exchange a server: the request (header, payload) going out, the reply (header, payload)
  // coming in. Every socket is served as it is ready, so a server works on its request while
  // the next server's is still being written, and a reply is read while others are computed.
  struct Exchange {
    bool active = false;
    uint64_t id = 0;
    std::string head;
    std::string_view payload;
    size_t sent = 0;   // of head + payload
    size_t got = 0;    // of reply header + payload
    size_t frame = 0;  // the reply's bytes, header included (known once its header is in)
    wire::Header h;
    bool done = false;
  };
  std::vector<Exchange> ex(n);
  size_t open = 0;
  if (ids) ids->assign(n, 0);
  for (size_t i = 0; i < n; ++i) {
    (*replies)[i].clear();  // capacity kept
    if (!payloads[i]) continue;
    Exchange& e = ex[i];
    e.active = true;
    e.id = next_id_++;
    if (ids) (*ids)[i] = e.id;
    e.payload = *payloads[i];
    wire::AppendHeader(&e.head, type, e.id, static_cast<uint32_t>(e.payload.size()));
    ++open;
  }
  const auto deadline = After(options_.timeout_s);
  auto fail = [&](size_t i, const Status& st) -> Status {
    const bool timeout = st.message().find("deadline") != std::string::npos;
    return Broken(timeout ? Status::Unavailable(Who(i) + " did not answer a " + wire::TypeName(type) + " within " +
                                                std::to_string(options_.timeout_s) + " s (ps.timeout_s)")
                          : st);
  };
  // Moves what the socket takes (and, once poll saw it readable, has) without blocking.
  auto step = [&](size_t i, bool readable) -> Status {
    Exchange& e = ex[i];
    tcp::socket& s = sockets[i];
    boost::system::error_code ec;
    const size_t out_total = e.head.size() + e.payload.size();
    while (e.sent < out_total) {
      std::array<asio::const_buffer, 2> bufs;
      if (e.sent < e.head.size()) {
        bufs = {asio::buffer(e.head.data() + e.sent, e.head.size() - e.sent), asio::buffer(e.payload)};
      } else {
        const size_t at = e.sent - e.head.size();
        bufs = {asio::buffer(e.payload.data() + at, e.payload.size() - at), asio::const_buffer()};
      }
      const size_t k = s.write_some(bufs, ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) break;
      if (ec) return Status::Unavailable(Who(i) + " is gone: " + ec.message());
      e.sent += k;
      bytes_sent_ += k;
    }
    if (!readable) return Status::Ok();
    // The reply lands in replies[i] header and all, so that one read can take a small reply
    // whole. Past the header the buffer never extends beyond the frame (nothing after it is
    // read), and it grows with what arrived, not with what the header claims.
    ByteBuffer& reply = (*replies)[i];
    for (;;) {
      if (e.got < wire::kHeaderBytes) {
        reply.resize(std::max<size_t>(reply.capacity(), 64 << 10));
      } else if (e.got == e.frame) {
        e.done = true;
        return Status::Ok();
      } else if (e.got == reply.size()) {
        reply.resize(std::min(e.frame, std::max<size_t>(2 * e.got, 64 << 10)));
      }
      const size_t k = s.read_some(asio::buffer(reply.data() + e.got, reply.size() - e.got), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) return Status::Ok();
      if (ec) return Status::Unavailable(Who(i) + " is gone: " + ec.message());
      const bool had_header = e.got >= wire::kHeaderBytes;
      e.got += k;
      bytes_received_ += k;
      if (!had_header && e.got >= wire::kHeaderBytes) {
        auto h = wire::ParseHeader(reinterpret_cast<const uint8_t*>(reply.data()), options_.max_payload);
        if (!h.ok()) return h.status().WithContext(Who(i));
        e.h = *h;
        e.frame = wire::kHeaderBytes + size_t{e.h.payload_bytes};
        if (e.got > e.frame)
          return Status::Internal(Who(i) + " sent " + std::to_string(e.got - e.frame) + " bytes past its reply");
        reply.resize(std::min(e.frame, reply.size()));
      }
    }
  };
  std::vector<pollfd> fds;
  std::vector<size_t> which;
  std::vector<char> readable(n, 0);  // nothing is read before poll says a reply came
  while (open > 0) {
    fds.clear();
    which.clear();
    for (size_t i = 0; i < n; ++i) {
      Exchange& e = ex[i];
      if (!e.active || e.done) continue;
      if (Status st = step(i, readable[i]); !st.ok()) return fail(i, st);
      if (e.done) {
        --open;
        continue;
      }
      const bool sending = e.sent < e.head.size() + e.payload.size();
      fds.push_back({sockets[i].native_handle(), static_cast<short>(POLLIN | (sending ? POLLOUT : 0)), 0});
      which.push_back(i);
    }
    if (fds.empty()) break;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now()).count();
    if (left <= 0) return fail(which[0], Status::Unavailable(Who(which[0]) + ": no answer within the deadline"));
    const int r = ::poll(fds.data(), fds.size(), static_cast<int>(std::min<int64_t>(left, 1 << 30)));
    if (r < 0 && errno != EINTR) return Broken(Status::Unavailable(std::string("poll: ") + std::strerror(errno)));
    for (size_t j = 0; j < fds.size(); ++j)
      if (fds[j].revents & (POLLIN | POLLERR | POLLHUP | POLLNVAL)) readable[which[j]] = 1;  // the read tells which
  }
  // Every reply is in, so the streams stay usable whatever the replies say.
  for (size_t i = 0; i < n; ++i) {
    const Exchange& e = ex[i];
    if (!e.active) continue;
    const ByteBuffer& reply = (*replies)[i];
    if (e.h.type == wire::Type::kError) {
      Status peer;
      EMBER_RETURN_IF_ERROR(wire::DecodeError(Payload(reply), &peer));
      return peer.WithContext(Who(i));
    }
    if (e.h.type != type || e.h.request_id != e.id)
      return Broken(Status::Internal(Who(i) + ": reply does not match the request"));
  }
  return Status::Ok();
}

Status RemoteClient::Broadcast(wire::Type type, const std::string& payload, std::vector<ByteBuffer>* replies) {
  return RoundTrip(type, std::vector<std::optional<std::string_view>>(impl_->sockets.size(), payload), replies);
}

const RemoteClient::PullMemory* RemoteClient::PullOf(const std::vector<PushSlice>& slices) const {
  for (int k = 0; k < 2; ++k) {
    const PullMemory& m = pulls_[k == 0 ? last_pull_ : 1 - last_pull_];
    if (slices.size() != m.tables.size()) continue;
    bool same = true;
    size_t at = 0;
    for (size_t s = 0; same && s < slices.size(); ++s) {
      same = slices[s].table == m.tables[s] && slices[s].n == m.sizes[s] &&
             (!slices[s].n || std::memcmp(slices[s].keys, m.keys.data() + at, slices[s].n * sizeof(uint64_t)) == 0);
      at += slices[s].n;
    }
    if (same) return &m;
  }
  return nullptr;
}

uint32_t RemoteClient::Dim(uint32_t table) const { return table < table_dims_.size() ? table_dims_[table] : 0; }

Status RemoteClient::CreateTables(const std::vector<embedding::TableSpec>& specs) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string payload;
  wire::EncodeSpecs(specs, &payload);
  std::vector<ByteBuffer> replies;
  EMBER_RETURN_IF_ERROR(Broadcast(wire::Type::kCreateTables, payload, &replies));
  for (const auto& s : specs) {
    if (table_dims_.size() <= s.id) table_dims_.resize(s.id + 1, 0);
    table_dims_[s.id] = static_cast<uint32_t>(s.dim);
  }
  return Status::Ok();
}

Status RemoteClient::Pull(const std::vector<PullSlice>& slices, const PullClock& clock) {
  std::lock_guard<std::mutex> lock(mu_);
  const int n = num_shards();
  std::vector<uint32_t> dims(slices.size());
  for (size_t s = 0; s < slices.size(); ++s) dims[s] = Dim(slices[s].table);
  // The older memory takes this pull; it becomes the latest once grouped.
  last_pull_ = 1 - last_pull_;
  PullMemory& memory = pulls_[last_pull_];
  memory.tables.clear();  // until this pull's grouping is complete
  memory.ids.clear();     // until its every reply is in
  Positions& positions = memory.positions;
  EMBER_RETURN_IF_ERROR(GroupByServer(slices, dims, n, "pull from", &positions));
  memory.keys.clear();
  memory.sizes.clear();
  for (const PullSlice& s : slices) {
    memory.tables.push_back(s.table);
    memory.sizes.push_back(s.n);
    memory.keys.insert(memory.keys.end(), s.keys, s.keys + s.n);
  }
  const auto send = Payloads(positions, &payloads_, [&](size_t, const auto& pos, ByteBuffer* out) {
    wire::EncodePull(slices, pos, clock.wait_for, out);
  });
  std::vector<ByteBuffer>& replies = replies_;
  std::vector<uint64_t> ids;
  EMBER_RETURN_IF_ERROR(RoundTrip(wire::Type::kPull, send, &replies, &ids));
  uint64_t lowest = UINT64_MAX;
  for (int i = 0; i < n; ++i) {
    if (!send[i]) continue;
    wire::Reader r(Payload(replies[i]));
    uint64_t server_clock = 0;
    if (!r.Pod(&server_clock, "pull reply clock")) return r.status().WithContext("PS server " + std::to_string(i));
    lowest = std::min(lowest, server_clock);
    for (size_t s = 0; s < slices.size(); ++s) {
      uint32_t dim = 0;
      const char* rows = nullptr;
      if (!r.Pod(&dim, "pull reply dim") ||
          !(rows = r.Skip(uint64_t{positions[i][s].size()} * dim * sizeof(float), "pull reply rows")))
        return r.status().WithContext("PS server " + std::to_string(i));
      if (dim != Dim(slices[s].table))
        return Status::Internal("PS server " + std::to_string(i) + ": table " + std::to_string(slices[s].table) +
                                " rows are " + std::to_string(dim) + " wide, expected " +
                                std::to_string(Dim(slices[s].table)));
      const auto& pos = positions[i][s];
      const size_t stride = slices[s].stride ? slices[s].stride : dim;
      const size_t row = dim * sizeof(float);
      for (size_t k = 0; k < pos.size(); ++k) std::memcpy(slices[s].out + pos[k] * stride, rows + k * row, row);
      uint32_t fell = 0;
      if (!r.Pod(&fell, "pull reply fallbacks")) return r.status().WithContext("PS server " + std::to_string(i));
      if (fell > pos.size()) return Status::Internal("PS server " + std::to_string(i) + ": more fallbacks than keys");
      if (slices[s].own)
        for (size_t k = 0; k < pos.size(); ++k) slices[s].own[pos[k]] = 1;
      for (uint32_t k = 0; k < fell; ++k) {
        uint32_t at = 0;
        if (!r.Pod(&at, "pull reply fallback")) return r.status().WithContext("PS server " + std::to_string(i));
        if (at >= pos.size()) return Status::Internal("PS server " + std::to_string(i) + ": fallback out of range");
        if (slices[s].own) slices[s].own[pos[at]] = 0;
      }
    }
    if (!r.End()) return r.status().WithContext("PS server " + std::to_string(i));
  }
  if (clock.clock) *clock.clock = lowest == UINT64_MAX ? 0 : lowest;
  memory.ids = std::move(ids);
  TrimBuffers();
  return Status::Ok();
}

void RemoteClient::TrimBuffers() {
  // Buffers past this are freed after their call rather than kept for the next.
  constexpr size_t kKeepBytes = 16 << 20;
  for (auto* v : {&payloads_, &replies_})
    for (ByteBuffer& b : *v)
      if (b.capacity() > kKeepBytes) b.Free();
}

Status RemoteClient::Push(const std::vector<PushSlice>& slices, const PushClock& clock) {
  std::lock_guard<std::mutex> lock(mu_);
  const int n = num_shards();
  std::vector<uint32_t> dims(slices.size());
  for (size_t s = 0; s < slices.size(); ++s) dims[s] = Dim(slices[s].table);
  // The keys of one of the last two pulls (a training step's): each server that pulled them is
  // sent only the gradients, with the pull's request id (wire::UsePullKeys).
  const PullMemory* pulled = PullOf(slices);
  const Positions* positions = pulled ? &pulled->positions : &push_positions_;
  if (!pulled) EMBER_RETURN_IF_ERROR(GroupByServer(slices, dims, n, "push to", &push_positions_));
  const auto send = Payloads(
      *positions, &payloads_,
      [&](size_t i, const auto& pos, ByteBuffer* out) {
        const uint64_t keys_of_pull = pulled && i < pulled->ids.size() ? pulled->ids[i] : 0;
        wire::EncodePush(slices, dims, pos, clock, out, keys_of_pull);
      },
      /*every=*/clock.workers > 0);
  const Status st = RoundTrip(wire::Type::kPush, send, &replies_);
  TrimBuffers();
  return st;
}

Result<std::vector<TableStats>> RemoteClient::Stats() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ByteBuffer> replies;
  EMBER_RETURN_IF_ERROR(Broadcast(wire::Type::kStats, "", &replies));
  std::vector<TableStats> total;
  for (size_t i = 0; i < replies.size(); ++i) {
    std::vector<TableStats> stats;
    EMBER_RETURN_IF_ERROR(wire::DecodeStats(Payload(replies[i]), &stats).WithContext("PS server " + std::to_string(i)));
    MergeShardStats(static_cast<int>(i), static_cast<int>(replies.size()), stats, &total);
  }
  return total;
}

Result<TableOpResult> RemoteClient::Apply(const TableOp& op) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string payload;
  wire::EncodeOp(op, &payload);
  std::vector<ByteBuffer> replies;
  EMBER_RETURN_IF_ERROR(Broadcast(wire::Type::kApply, payload, &replies));
  TableOpResult total;
  for (size_t i = 0; i < replies.size(); ++i) {
    TableOpResult r;
    EMBER_RETURN_IF_ERROR(wire::DecodeOpResult(Payload(replies[i]), &r).WithContext("PS server " + std::to_string(i)));
    total.rows += r.rows;
    total.values += r.values;
    total.pruned += r.pruned;
    total.grown += r.grown;
  }
  if (op.kind == TableOp::Kind::kDropTable && op.table < table_dims_.size()) table_dims_[op.table] = 0;
  return total;
}

Result<std::vector<ShardFile>> RemoteClient::SaveShards(const std::string& dir) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string payload;
  wire::Writer(&payload).Str(dir);
  std::vector<ByteBuffer> replies;
  EMBER_RETURN_IF_ERROR(Broadcast(wire::Type::kSave, payload, &replies));
  std::vector<ShardFile> files;
  for (size_t i = 0; i < replies.size(); ++i) {
    std::vector<ShardFile> f;
    EMBER_RETURN_IF_ERROR(wire::DecodeFiles(Payload(replies[i]), &f).WithContext("PS server " + std::to_string(i)));
    files.insert(files.end(), f.begin(), f.end());
  }
  return files;
}

Status RemoteClient::ExportTables(embedding::ExportWriter*) {
  return Status::FailedPrecondition(
      "exporting reads a checkpoint into in-process shards (ember export); a remote PS does not send its tables");
}

Status RemoteClient::LoadShards(const std::string& dir, const std::vector<ShardFile>& files) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string payload;
  wire::EncodeLoad({dir, files}, &payload);
  std::vector<ByteBuffer> replies;
  EMBER_RETURN_IF_ERROR(Broadcast(wire::Type::kLoad, payload, &replies));
  // The tables' widths, from any server's stats (every server declares every table).
  std::vector<ByteBuffer> stats;
  EMBER_RETURN_IF_ERROR(Broadcast(wire::Type::kStats, "", &stats));
  std::vector<TableStats> t;
  EMBER_RETURN_IF_ERROR(wire::DecodeStats(Payload(stats[0]), &t));
  for (const auto& s : t) {
    if (table_dims_.size() <= s.table) table_dims_.resize(s.table + 1, 0);
    table_dims_[s.table] = static_cast<uint32_t>(s.dim);
  }
  return Status::Ok();
}

Status RemoteClient::Shutdown() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ByteBuffer> replies;
  return Broadcast(wire::Type::kShutdown, "", &replies);
}

}  // namespace ember::ps
