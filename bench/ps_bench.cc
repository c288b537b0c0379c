// Parameter-server traffic over loopback TCP against a plain socket transfer of the same bytes.
//
// Per step the worker pulls U unique keys' rows of a dim-wide table and pushes their gradients,
// as a training step does. Measured in one run:
//   in-process: InProcessClient (no network) — the shard work alone;
//   remote:     RemoteClient to S PsServers on loopback (threads of this process);
//   plain:      the same request and reply sizes per server over plain TCP sockets (a server
//               thread that reads n bytes and writes m bytes back) — the transport's floor.
// Reports rows/s, bytes/s, the remote/plain time ratio, and bytes on the wire per step against
// the minimum (U keys' rows pulled + U rows of gradients pushed, 4 bytes per value).
#include <CLI/CLI.hpp>
#include <boost/asio.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>

#include "ember/ps/in_process.h"
#include "ember/ps/remote_client.h"
#include "ember/ps/server.h"

namespace {
using namespace ember;
using Clock = std::chrono::steady_clock;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

double Seconds(Clock::time_point a) { return std::chrono::duration<double>(Clock::now() - a).count(); }

// Seconds for `steps` of pull + push through `client`.
double Run(ps::PsClient& client, const std::vector<uint64_t>& keys, int dim, int steps) {
  std::vector<float> rows(keys.size() * dim), grads(keys.size() * dim, 0.01f);
  ps::PullSlice pull;
  pull.table = 0;
  pull.keys = keys.data();
  pull.n = keys.size();
  pull.out = rows.data();
  ps::PushSlice push;
  push.table = 0;
  push.keys = keys.data();
  push.n = keys.size();
  push.grads = grads.data();
  EMBER_CHECK(client.Pull({pull}).ok());  // rows exist before timing
  const auto start = Clock::now();
  for (int s = 0; s < steps; ++s) {
    EMBER_CHECK(client.Pull({pull}).ok());
    EMBER_CHECK(client.Push({push}).ok());
  }
  return Seconds(start);
}

// A plain TCP peer: for each exchange reads `in` bytes, answers `out` bytes.
struct PlainServer {
  asio::io_context ioc;
  tcp::acceptor acceptor{ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};
  std::thread thread;
  PlainServer(const std::vector<std::pair<size_t, size_t>>& exchanges, int steps) {
    thread = std::thread([this, exchanges, steps] {
      tcp::socket s(ioc);
      acceptor.accept(s);
      s.set_option(tcp::no_delay(true));
      std::vector<char> buf;
      for (int i = 0; i < steps; ++i)
        for (const auto& [in, out] : exchanges) {
          buf.resize(std::max(in, out));
          asio::read(s, asio::buffer(buf.data(), in));
          asio::write(s, asio::buffer(buf.data(), out));
        }
    });
  }
  int port() { return acceptor.local_endpoint().port(); }
  ~PlainServer() { thread.join(); }
};
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"PS pull+push over loopback TCP vs a plain socket transfer"};
  int servers = 2, dim = 16, steps = 200, server_threads = ps::ServerOptions().threads;
  size_t unique = 13000;
  std::string json_path;
  app.add_option("--servers", servers, "PS servers")->capture_default_str();
  app.add_option("--dim", dim, "Row width")->capture_default_str();
  app.add_option("--server-threads", server_threads, "Threads of each PS server")->capture_default_str();
  app.add_option("--keys", unique, "Unique keys per step")->capture_default_str();
  app.add_option("--steps", steps, "Steps (pull + push)")->capture_default_str();
  app.add_option("--json", json_path, "Write results as JSON");
  CLI11_PARSE(app, argc, argv);

  embedding::TableSpec spec;
  spec.dim = dim;
  std::mt19937_64 rng(1);
  std::set<uint64_t> uniq;
  while (uniq.size() < unique) uniq.insert(embedding::MakeKey(0, rng() % (unique * 20)));
  const std::vector<uint64_t> keys(uniq.begin(), uniq.end());

  ps::InProcessClient local(servers);
  EMBER_CHECK(local.CreateTables({spec}).ok());
  const double t_local = Run(local, keys, dim, steps);

  const std::string secret = std::move(ps::MakeSecret()).value();
  std::vector<std::unique_ptr<ps::PsServer>> ps_servers;
  std::vector<std::string> endpoints;
  for (int i = 0; i < servers; ++i) {
    ps::ServerOptions o;
    o.shard_index = i;
    o.num_shards = servers;
    o.secret = secret;
    o.threads = server_threads;
    ps_servers.push_back(std::make_unique<ps::PsServer>(o));
    EMBER_CHECK(ps_servers.back()->Start().ok());
    endpoints.push_back("127.0.0.1:" + std::to_string(ps_servers.back()->port()));
  }
  ps::ClientOptions co;
  co.endpoints = endpoints;
  co.secret = secret;
  auto remote = ps::RemoteClient::Connect(co);
  EMBER_CHECK(remote.ok());
  EMBER_CHECK((*remote)->CreateTables({spec}).ok());
  const uint64_t sent0 = (*remote)->bytes_sent(), recv0 = (*remote)->bytes_received();
  Run(**remote, keys, dim, 1);  // warm-up step (rows created), measured below without it
  const uint64_t sent1 = (*remote)->bytes_sent(), recv1 = (*remote)->bytes_received();
  const double t_remote = Run(**remote, keys, dim, steps);
  const double wire_per_step =
      static_cast<double>((*remote)->bytes_sent() + (*remote)->bytes_received() - sent1 - recv1) / (steps + 1);
  (void)sent0;
  (void)recv0;

  // Plain sockets: per server, the same request/reply sizes (pull then push).
  std::vector<size_t> per_server(servers, 0);
  for (uint64_t k : keys) ++per_server[ps::ShardOf(k, servers)];
  std::vector<std::unique_ptr<PlainServer>> plain;
  std::vector<tcp::socket> sockets;
  asio::io_context ioc;
  std::vector<std::vector<std::pair<size_t, size_t>>> ex(servers);
  for (int i = 0; i < servers; ++i) {
    const size_t n = per_server[i], hdr = ps::wire::kHeaderBytes;
    ex[i] = {{hdr + 4 + 4 + 1 + 8 + n * 8, hdr + 4 + n * dim * 4},  // pull
             {hdr + 4 + 4 + 4 + 8 + n * 8 + n * dim * 4, hdr}};     // push
    plain.push_back(std::make_unique<PlainServer>(ex[i], steps));
    sockets.emplace_back(ioc);
    sockets.back().connect({asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(plain.back()->port())});
    sockets.back().set_option(tcp::no_delay(true));
  }
  std::vector<char> buf(16 << 20);
  const auto start = Clock::now();
  for (int s = 0; s < steps; ++s)
    for (int phase = 0; phase < 2; ++phase) {
      for (int i = 0; i < servers; ++i) asio::write(sockets[i], asio::buffer(buf.data(), ex[i][phase].first));
      for (int i = 0; i < servers; ++i) asio::read(sockets[i], asio::buffer(buf.data(), ex[i][phase].second));
    }
  const double t_plain = Seconds(start);
  plain.clear();

  double plain_bytes = 0;
  for (int i = 0; i < servers; ++i) plain_bytes += ex[i][0].first + ex[i][0].second + ex[i][1].first + ex[i][1].second;
  const double min_bytes = 2.0 * static_cast<double>(keys.size()) * dim * 4;
  const double rows = 2.0 * static_cast<double>(keys.size()) * steps;  // pulled + pushed
  std::printf("%d servers, %zu unique keys x %d floats per step, %d steps (pull + push)\n", servers, keys.size(), dim,
              steps);
  std::printf("| path | ms per step | rows/s | MB/s on the wire |\n|---|---|---|---|\n");
  std::printf("| in-process shards | %.2f | %.3g | - |\n", t_local / steps * 1e3, rows / t_local);
  std::printf("| remote (ember RPC, loopback) | %.2f | %.3g | %.0f |\n", t_remote / steps * 1e3, rows / t_remote,
              wire_per_step * steps / t_remote / 1e6);
  std::printf("| plain TCP, same bytes | %.2f | %.3g | %.0f |\n", t_plain / steps * 1e3, rows / t_plain,
              plain_bytes * steps / t_plain / 1e6);
  std::printf(
      "remote / plain time: %.2f; bytes on the wire per step %.0f = %.3f x the minimum (%.0f: rows pulled "
      "+ gradients pushed)\n",
      t_remote / t_plain, wire_per_step, wire_per_step / min_bytes, min_bytes);
  if (!json_path.empty()) {
    nlohmann::json j = {{"servers", servers},
                        {"keys", keys.size()},
                        {"dim", dim},
                        {"steps", steps},
                        {"local_seconds", t_local},
                        {"remote_seconds", t_remote},
                        {"plain_seconds", t_plain},
                        {"wire_bytes_per_step", wire_per_step},
                        {"min_bytes_per_step", min_bytes},
                        {"plain_bytes_per_step", plain_bytes}};
    std::ofstream(json_path) << j.dump(2) << "\n";
  }
  return 0;
}
