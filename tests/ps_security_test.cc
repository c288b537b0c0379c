// The PS port under a hostile or broken peer: connections authenticate before anything is
// served, the world and the checkpoint directory are fixed by the job, payload buffers grow
// with what arrives, stalled reads and waits end at deadlines, and none of it touches a shard.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "ember/ps/in_process.h"
#include "ember/ps/remote_client.h"
#include "ember/ps/server.h"
#include "ps_test_util.h"

namespace ember::ps {
namespace {
using testing::ConnectTest;
using testing::ErrorOf;
using testing::kTestSecret;
using testing::RawPeer;

embedding::TableSpec Spec() {
  embedding::TableSpec s;
  s.id = 0;
  s.dim = 4;
  s.seed = 1;
  return s;
}

std::string Frame(wire::Type type, const std::string& payload = "") {
  std::string f;
  wire::AppendHeader(&f, type, 1, static_cast<uint32_t>(payload.size()));
  return f + payload;
}

std::string PushFrame(PushClock clock, uint64_t key, int dim) {
  std::vector<float> g(static_cast<size_t>(dim), 1.0f);
  PushSlice p{0, &key, 1, g.data()};
  std::string payload;
  wire::EncodePush({p}, {static_cast<uint32_t>(dim)}, {{0}}, clock, &payload);
  return Frame(wire::Type::kPush, payload);
}

std::string Root(const std::string& name) {
  auto d = std::filesystem::temp_directory_path() / ("ember_sec_" + std::to_string(::getpid())) / name;
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d.string();
}

// Before the handshake nothing is served: ping, save, shutdown and a 1 GiB header each get one
// error frame naming the problem and a closed connection, counted as auth failures.
TEST(PsAuth, NothingIsServedBeforeTheHandshake) {
  ServerOptions o = testing::TestServerOptions();
  o.checkpoint_root = Root("auth");
  PsServer server(o);
  ASSERT_TRUE(server.Start().ok());
  std::string save_payload;
  wire::Writer(&save_payload).Str(o.checkpoint_root);
  std::string huge;
  wire::AppendHeader(&huge, wire::Type::kPush, 1, 1u << 30);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {Frame(wire::Type::kPing), "unauthenticated: a ping frame before the handshake"},
      {Frame(wire::Type::kSave, save_payload), "unauthenticated: a save frame before the handshake"},
      {Frame(wire::Type::kShutdown), "unauthenticated: a shutdown frame before the handshake"},
      {huge, "unauthenticated: malformed frame: payload of 1073741824 bytes over the limit of 68"},
  };
  for (const auto& [bytes, expect] : cases) {
    RawPeer peer(server.port());
    peer.SkipChallenge();
    peer.Write(bytes);
    EXPECT_NE(ErrorOf(peer.ReadToClose()).find(expect), std::string::npos) << expect;
  }
  EXPECT_EQ(server.counters().auth_failures.load(), 4u);
  EXPECT_TRUE(std::filesystem::is_empty(o.checkpoint_root));  // nothing saved
  // A wrong secret is refused; the server also proves the secret to the client.
  RawPeer wrong(server.port());
  Status st = wrong.Authenticate("not-the-job-secret-at-all-000000", 0);
  EXPECT_NE(st.message().find("the hello does not prove the job's secret"), std::string::npos) << st.ToString();
  auto bad = testing::ConnectTest({"127.0.0.1:" + std::to_string(server.port())}, 0);
  ASSERT_TRUE(bad.ok());  // the right secret
  ClientOptions co;
  co.endpoints = {"127.0.0.1:" + std::to_string(server.port())};
  co.secret = "another-job-secret-0123456789abcdef";
  auto other = RemoteClient::Connect(co);
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.status().message().find("refused the handshake"), std::string::npos) << other.status().ToString();
  EXPECT_EQ(server.counters().auth_failures.load(), 6u);
  // No secret, no server.
  PsServer open_server(ServerOptions{});
  EXPECT_EQ(open_server.Start().code(), StatusCode::kInvalidArgument);
}

// The world is fixed by the job: a worker id outside it cannot authenticate, a push naming
// another count, another worker or an earlier step is refused, and a push without a clock too.
TEST(PsTrust, TheWorldIsFixedAndStepsOnlyMoveForward) {
  ServerOptions o = testing::TestServerOptions();
  o.workers = 1;
  PsServer server(o);
  ASSERT_TRUE(server.Start().ok());
  const std::vector<std::string> ep = {"127.0.0.1:" + std::to_string(server.port())};
  auto outsider = ConnectTest(ep, 1);
  ASSERT_FALSE(outsider.ok());
  EXPECT_NE(outsider.status().message().find("worker 1 is not one of the job's 1"), std::string::npos)
      << outsider.status().ToString();
  auto w0 = ConnectTest(ep, 0);
  ASSERT_TRUE(w0.ok()) << w0.status().ToString();
  ASSERT_TRUE((*w0)->CreateTables({Spec()}).ok());
  const uint64_t k = embedding::MakeKey(0, 3);
  std::vector<float> g(4, 1.0f), before(4), after(4);
  ASSERT_TRUE((*w0)->Pull({{0, &k, 1, before.data()}}).ok());
  ASSERT_TRUE((*w0)->Push({{0, &k, 1, g.data()}}, PushClock{0, 1, 5, true}).ok());
  std::vector<float> pushed(4);
  ASSERT_TRUE((*w0)->Pull({{0, &k, 1, pushed.data()}}).ok());
  EXPECT_NE(pushed, before);
  auto refused = [&](PushClock clock, const std::string& expect) {
    Status st = (*w0)->Push({{0, &k, 1, g.data()}}, clock);
    EXPECT_FALSE(st.ok());
    EXPECT_NE(st.message().find(expect), std::string::npos) << st.ToString();
  };
  refused({0, 2, 6, true}, "push from worker 0 of 2 in a job of 1 workers");
  refused({0, 0xFFFFFFFFu, 6, true}, "more than");
  refused({0, 1, 4, true}, "step 4 is behind step 6 (steps only move forward)");
  refused({0, 1, 5, true}, "step 5 is behind step 6");
  refused({}, "a push without a training clock on a server of a 1-worker job");
  ASSERT_TRUE((*w0)->Pull({{0, &k, 1, after.data()}}).ok());
  EXPECT_EQ(after, pushed);                                                         // no refused push touched the row
  ASSERT_TRUE((*w0)->Push({{0, &k, 1, g.data()}}, PushClock{0, 1, 6, true}).ok());  // the next step is fine
  EXPECT_EQ(server.shard().clock(), 7u);
  // The connection of worker 0 cannot push as another worker, and a tool connection not at all.
  ServerOptions two = testing::TestServerOptions();
  two.workers = 2;
  PsServer s2(two);
  ASSERT_TRUE(s2.Start().ok());
  RawPeer peer(s2.port());
  ASSERT_TRUE(peer.Authenticate(kTestSecret, 0).ok());
  std::string create;
  wire::EncodeSpecs({Spec()}, &create);
  peer.Write(Frame(wire::Type::kCreateTables, create));
  ASSERT_TRUE(peer.ReadHeader().ok());
  peer.Write(PushFrame({1, 2, 0, true}, k, 4));
  auto h = peer.ReadHeader();
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->type, wire::Type::kError);
  std::string body(h->payload_bytes, '\0');
  boost::asio::read(peer.socket(), boost::asio::buffer(body));
  Status said;
  ASSERT_TRUE(wire::DecodeError(body, &said).ok());
  EXPECT_NE(said.message().find("the connection of worker 0 pushed as worker 1"), std::string::npos) << said.message();
  RawPeer tool(s2.port());
  ASSERT_TRUE(tool.Authenticate(kTestSecret, kNoWorker).ok());
  tool.Write(PushFrame({0, 2, 0, true}, k, 4));
  h = tool.ReadHeader();
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->type, wire::Type::kError);
  EXPECT_EQ(s2.shard().clock(), 0u);  // nothing counted
}

// In one process too: the first clocked push fixes the world for good (a burst of foreign
// "worker 1 of 2" pushes no longer resets the clocks of a 1-worker job).
TEST(PsTrust, ForeignWorkerCountsNeverResetTheClocks) {
  Shard shard;
  ASSERT_TRUE(shard.CreateTables({Spec()}).ok());
  const uint64_t k = embedding::MakeKey(0, 1);
  const float g[4] = {1, 1, 1, 1};
  ASSERT_TRUE(shard.PushStep({0, 1, 0, true}, {{0, &k, 1, g}}).ok());
  ASSERT_TRUE(shard.PushStep({0, 1, 1, true}, {{0, &k, 1, g}}).ok());
  for (int i = 0; i < 200; ++i) EXPECT_FALSE(shard.PushStep({1, 2, 0, true}, {}).ok());
  EXPECT_EQ(shard.world(), 1u);
  EXPECT_EQ(shard.clock(), 2u);
  EXPECT_EQ(shard.FixWorld(2).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Shard().FixWorld(0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Shard().FixWorld(0xFFFFFFFFu).code(), StatusCode::kInvalidArgument);
}

// save/load stay inside the job's checkpoint directory; load names plain files only.
TEST(PsTrust, SaveAndLoadAreConfinedToTheCheckpointDirectory) {
  ServerOptions o = testing::TestServerOptions();
  o.checkpoint_root = Root("confined/ckpt");
  PsServer server(o);
  ASSERT_TRUE(server.Start().ok());
  auto c = ConnectTest({"127.0.0.1:" + std::to_string(server.port())});
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE((*c)->CreateTables({Spec()}).ok());
  std::filesystem::create_directories(o.checkpoint_root + "/ckpt-1.tmp");
  auto files = (*c)->SaveShards(o.checkpoint_root + "/ckpt-1.tmp");
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  for (const std::string& outside :
       {o.checkpoint_root + "/..", std::string("/etc"), o.checkpoint_root + "/../x", o.checkpoint_root + "x"}) {
    auto saved = (*c)->SaveShards(outside);
    EXPECT_EQ(saved.status().code(), StatusCode::kFailedPrecondition) << outside;
    EXPECT_NE(saved.status().message().find("outside the job's checkpoint directory"), std::string::npos)
        << saved.status().ToString();
  }
  EXPECT_FALSE(std::filesystem::exists(o.checkpoint_root + "/../shard-0.bin"));
  auto sneaky = *files;
  sneaky[0].name = "../../shard-0.bin";
  Status st = (*c)->LoadShards(o.checkpoint_root + "/ckpt-1.tmp", sneaky);
  EXPECT_NE(st.message().find("not a plain file name"), std::string::npos) << st.ToString();
  auto again = ConnectTest({"127.0.0.1:" + std::to_string(server.port())});  // the server closed that one
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE((*again)->LoadShards(o.checkpoint_root + "/ckpt-1.tmp", *files).ok());
  ServerOptions none = testing::TestServerOptions();
  none.checkpoint_root.clear();
  PsServer no_dir(none);
  ASSERT_TRUE(no_dir.Start().ok());
  auto d = ConnectTest({"127.0.0.1:" + std::to_string(no_dir.port())});
  ASSERT_TRUE(d.ok());
  EXPECT_NE((*d)->SaveShards(o.checkpoint_root).status().message().find("no checkpoint directory"), std::string::npos);
}

// A header announcing 1 GiB then silence costs the server one 64 KiB chunk, and the frame's
// deadline closes the connection; the idle deadline closes a silent authenticated one.
TEST(PsLimits, BuffersGrowWithWhatArrivesAndStalledReadsEnd) {
  ServerOptions o = testing::TestServerOptions();
  o.timeout_s = 0.5;
  o.idle_timeout_s = 0.5;
  PsServer server(o);
  ASSERT_TRUE(server.Start().ok());
  std::vector<std::unique_ptr<RawPeer>> peers;
  for (int i = 0; i < 4; ++i) {
    peers.push_back(std::make_unique<RawPeer>(server.port()));
    ASSERT_TRUE(peers.back()->Authenticate(kTestSecret, kNoWorker).ok());
    std::string h;
    wire::AppendHeader(&h, wire::Type::kPush, 1, 1u << 30);
    peers.back()->Write(h + std::string(1000, 'x'));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  EXPECT_LE(server.counters().buffered_bytes.load(), 4u * (128u << 10));
  EXPECT_GT(server.counters().buffered_bytes.load(), 0u);
  for (auto& p : peers) EXPECT_EQ(p->ReadToClose(), "");  // closed by the frame deadline
  EXPECT_EQ(server.counters().timeouts.load(), 4u);
  EXPECT_EQ(server.counters().buffered_bytes.load(), 0u);
  RawPeer idle(server.port());
  ASSERT_TRUE(idle.Authenticate(kTestSecret, kNoWorker).ok());
  EXPECT_EQ(idle.ReadToClose(), "");
  RawPeer mute(server.port());  // never answers the challenge
  mute.SkipChallenge();
  EXPECT_EQ(mute.ReadToClose(), "");
  EXPECT_EQ(server.counters().timeouts.load(), 6u);
  // All connections together stay under max_buffered_bytes: past it a frame is refused.
  ServerOptions small = testing::TestServerOptions();
  small.max_buffered_bytes = 100 << 10;
  PsServer tight(small);
  ASSERT_TRUE(tight.Start().ok());
  RawPeer a(tight.port()), b(tight.port());
  ASSERT_TRUE(a.Authenticate(kTestSecret, kNoWorker).ok());
  ASSERT_TRUE(b.Authenticate(kTestSecret, kNoWorker).ok());
  std::string h;
  wire::AppendHeader(&h, wire::Type::kPush, 1, 1u << 20);
  a.Write(h + std::string(40 << 10, 'x'));  // holds its first 64 KiB chunk
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  b.Write(h + std::string(10, 'x'));
  EXPECT_NE(ErrorOf(b.ReadToClose()).find("server buffers are full"), std::string::npos);
}

// A peer that sends a request and never reads the reply is closed when the reply's deadline
// (timeout_s) passes, not after idle_timeout_s: a pull whose reply outgrows the socket buffers
// holds its connection and reply for timeout_s at most.
// Peers that connect and never authenticate cannot hold the descriptors workers need: past
// max_handshaking connections in their handshake, a new one closes the oldest of them; an
// authenticated connection is never closed for a new one.
TEST(PsLimits, ConnectionsThatNeverAuthenticateMakeRoomForNewOnes) {
  ServerOptions o = testing::TestServerOptions();
  o.max_handshaking = 8;
  PsServer server(o);
  ASSERT_TRUE(server.Start().ok());
  std::vector<std::unique_ptr<RawPeer>> silent;
  const auto connect_silent = [&](int n) {
    for (int i = 0; i < n; ++i) {
      silent.push_back(std::make_unique<RawPeer>(server.port()));
      silent.back()->SkipChallenge();  // the challenge comes once the server has counted it
    }
  };
  connect_silent(8);
  EXPECT_EQ(server.counters().handshake_evictions.load(), 0u);
  // A 9th: the first is closed.
  connect_silent(1);
  EXPECT_EQ(silent[0]->ReadToClose(), "");
  EXPECT_EQ(server.counters().handshake_evictions.load(), 1u);
  // A worker connects (closing the second silent peer on its way in) and, authenticated, leaves
  // its slot and stays through 20 more silent connections.
  auto client = testing::ConnectTest({"127.0.0.1:" + std::to_string(server.port())}, 0);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  EXPECT_EQ(silent[1]->ReadToClose(), "");
  connect_silent(20);
  ASSERT_TRUE((*client)->CreateTables({Spec()}).ok());
  const uint64_t key = embedding::MakeKey(0, 5);
  std::vector<float> row(Spec().dim);
  ASSERT_TRUE((*client)->Pull({PullSlice{0, &key, 1, row.data()}}).ok());
  // All but the last 8 silent peers were closed (each read ends when its peer is).
  for (size_t i = 2; i + 8 < silent.size(); ++i) EXPECT_EQ(silent[i]->ReadToClose(), "") << i;
  EXPECT_EQ(server.counters().handshake_evictions.load(), 21u);  // 2, then 19 of the 20 (the first filled the slot)
}

TEST(PsLimits, APeerThatReadsNoReplyIsClosedAtTheReplyDeadline) {
  ServerOptions o = testing::TestServerOptions();
  o.timeout_s = 0.5;
  o.idle_timeout_s = 3600;
  PsServer server(o);
  ASSERT_TRUE(server.Start().ok());
  embedding::TableSpec wide = Spec();
  wide.dim = 4096;
  std::string create;
  wire::EncodeSpecs({wide}, &create);
  RawPeer p(server.port());
  ASSERT_TRUE(p.Authenticate(kTestSecret, kNoWorker).ok());
  p.Write(Frame(wire::Type::kCreateTables, create));
  auto h = p.ReadHeader();
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  ASSERT_EQ(h->type, wire::Type::kCreateTables);
  ASSERT_EQ(h->payload_bytes, 0u);
  // A small request (12 KiB, read whole with its header) for 1500 rows of 4096 floats: a 23 MiB
  // reply, far past what the loopback buffers hold.
  std::vector<uint64_t> keys(1500);
  std::vector<size_t> positions(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    keys[i] = embedding::MakeKey(0, i + 1);
    positions[i] = i;
  }
  PullSlice pull;
  pull.keys = keys.data();
  pull.n = keys.size();
  std::string payload;
  wire::EncodePull({pull}, {positions}, 0, &payload);
  const auto start = std::chrono::steady_clock::now();
  p.Write(Frame(wire::Type::kPull, payload));
  while (server.counters().timeouts.load() == 0 && std::chrono::steady_clock::now() - start < std::chrono::seconds(10))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(server.counters().timeouts.load(), 1u);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

// A worker waiting for a reply gives up after its timeout, naming the server, and the client
// refuses further calls; a server whose worker vanished stops waiting for the job's shutdown.
TEST(PsLiveness, WaitsEndAtTheirDeadlines) {
  ServerOptions o = testing::TestServerOptions();
  o.timeout_s = 0.5;
  PsServer server(o);
  ASSERT_TRUE(server.Start().ok());
  ClientOptions co;
  co.endpoints = {"127.0.0.1:" + std::to_string(server.port())};
  co.secret = kTestSecret;
  co.worker = 0;
  co.timeout_s = 0.3;
  auto c = RemoteClient::Connect(co);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_TRUE((*c)->CreateTables({Spec()}).ok());
  const uint64_t k = embedding::MakeKey(0, 1);
  std::vector<float> row(4);
  const auto start = std::chrono::steady_clock::now();
  Status st = (*c)->Pull({{0, &k, 1, row.data()}}, PullClock{5, nullptr});  // step 5 never comes
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(st.code(), StatusCode::kUnavailable);
  EXPECT_NE(st.message().find("PS server 0 (" + co.endpoints[0] + ") did not answer a pull within"), std::string::npos)
      << st.ToString();
  EXPECT_GE(waited, 0.25);
  EXPECT_LT(waited, 5.0);
  EXPECT_NE((*c)->Stats().status().message().find("unusable after an earlier failure"), std::string::npos);
  c->reset();  // worker 0's connection closes without a shutdown
  const auto t0 = std::chrono::steady_clock::now();
  Status served = server.WaitForShutdown();
  EXPECT_EQ(served.code(), StatusCode::kUnavailable);
  EXPECT_NE(served.message().find("worker 0 closed its connection"), std::string::npos) << served.ToString();
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
}

}  // namespace
}  // namespace ember::ps

namespace ember::ps {
namespace {
// Regressions of the stateful fuzzer (scripts/fuzz.sh session) and of the live probe: each
// was a crash or a corrupted table; each is now one error frame and an untouched shard.
TEST(PsFuzzRegressions, HostileRequestsAreRefusedAndTheShardIsUntouched) {
  ServerOptions o = testing::TestServerOptions();
  PsServer server(o);
  ASSERT_TRUE(server.Start().ok());
  auto c = testing::ConnectTest({"127.0.0.1:" + std::to_string(server.port())});
  ASSERT_TRUE(c.ok());
  embedding::TableSpec spec;
  spec.id = 0;
  spec.dim = 4;
  ASSERT_TRUE((*c)->CreateTables({spec}).ok());
  auto answer = [&](const std::string& frame) {
    testing::RawPeer peer(server.port());
    EMBER_CHECK(peer.Authenticate(testing::kTestSecret, 0).ok());
    peer.Write(frame);
    return testing::ErrorOf(peer.ReadToClose());
  };
  auto pull_of = [](uint32_t table, uint64_t key) {
    std::string payload, frame;
    wire::Writer w(&payload);
    w.Pod<uint64_t>(0);
    w.Pod<uint32_t>(1);
    w.Pod<uint32_t>(table);
    w.Pod<uint8_t>(1);
    w.Pod<uint64_t>(1);
    w.Pod<uint64_t>(key);
    wire::AppendHeader(&frame, wire::Type::kPull, 1, static_cast<uint32_t>(payload.size()));
    return frame + payload;
  };
  // The key index's reserved key (all ones) aborted the server (row_store.cc "reserved key").
  EXPECT_NE(answer(pull_of(0, ~uint64_t{0})).find("pull.keys: a key of another table (or the reserved key)"),
            std::string::npos);
  EXPECT_NE(answer(pull_of(0, embedding::MakeKey(3, 1))).find("a key of another table"), std::string::npos);
  // Non-finite gradients turned a live job's loss NaN.
  const uint64_t k = embedding::MakeKey(0, 1);
  const float bad[4] = {1, std::nanf(""), 1, 1};
  std::string payload, frame;
  wire::EncodePush({PushSlice{0, &k, 1, bad}}, {4}, {{0}}, PushClock{}, &payload);
  wire::AppendHeader(&frame, wire::Type::kPush, 1, static_cast<uint32_t>(payload.size()));
  EXPECT_NE(answer(frame + payload).find("push.grads: a gradient that is not finite"), std::string::npos);
  // One push frame claiming 0xFFFFFFFF workers and no slices: bad_alloc, SIGABRT.
  std::string huge_world;
  {
    std::string p;
    wire::Writer w(&p);
    w.Pod<uint32_t>(0);
    w.Pod<uint32_t>(0xFFFFFFFFu);
    w.Pod<uint64_t>(0);
    w.Pod<uint32_t>(1);
    w.Pod<uint32_t>(0);
    wire::AppendHeader(&huge_world, wire::Type::kPush, 1, static_cast<uint32_t>(p.size()));
    huge_world += p;
  }
  testing::RawPeer peer(server.port());
  ASSERT_TRUE(peer.Authenticate(testing::kTestSecret, 0).ok());
  peer.Write(huge_world);
  auto h = peer.ReadHeader();
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->type, wire::Type::kError);
  auto stats = (*c)->Stats();
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();  // still serving
  EXPECT_EQ((*stats)[0].rows, 0u);
  EXPECT_EQ(server.shard().world(), 0u);
}

// A push may name the keys of one of its connection's last two pulls instead of sending them
// again; only those, on that connection, with the same slices and counts: anything else is
// refused and the shard is untouched.
TEST(PsTrust, APushNamesOnlyItsOwnConnectionsLastPull) {
  ServerOptions o = testing::TestServerOptions();
  PsServer server(o);
  ASSERT_TRUE(server.Start().ok());
  auto c = testing::ConnectTest({"127.0.0.1:" + std::to_string(server.port())});
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE((*c)->CreateTables({Spec()}).ok());
  const uint64_t keys[2] = {embedding::MakeKey(0, 1), embedding::MakeKey(0, 2)};
  const float grads[8] = {1, 1, 1, 1, 2, 2, 2, 2};
  auto frame = [](wire::Type type, uint64_t id, const std::string& payload) {
    std::string f;
    wire::AppendHeader(&f, type, id, static_cast<uint32_t>(payload.size()));
    return f + payload;
  };
  auto pull = [&](uint64_t id) {
    std::vector<float> out(8);
    PullSlice p{0, keys, 2, out.data()};
    std::string payload;
    wire::EncodePull({p}, {{0, 1}}, 0, &payload);
    return frame(wire::Type::kPull, id, payload);
  };
  auto push = [&](uint64_t id, uint64_t keys_of_pull, size_t n) {
    PushSlice p{0, keys, n, grads};
    std::vector<size_t> pos(n);
    for (size_t i = 0; i < n; ++i) pos[i] = i;
    std::string payload;
    wire::EncodePush({p}, {4}, {pos}, PushClock{}, &payload, keys_of_pull);
    return frame(wire::Type::kPush, id, payload);
  };
  // One reply: its header and, for an error, the message.
  auto reply = [](testing::RawPeer& peer) -> std::pair<wire::Type, std::string> {
    auto h = peer.ReadHeader();
    if (!h.ok()) return {wire::Type::kError, h.status().ToString()};
    std::string body(h->payload_bytes, '\0');
    boost::asio::read(peer.socket(), boost::asio::buffer(body));
    Status peer_status;
    if (h->type == wire::Type::kError) (void)wire::DecodeError(body, &peer_status);
    return {h->type, peer_status.message()};
  };
  auto weights = [&](uint64_t key) {
    std::vector<float> out(4);
    PullSlice p{0, &key, 1, out.data()};
    p.create_missing = false;
    EMBER_CHECK((*c)->Pull({p}).ok());
    return out;
  };
  testing::RawPeer a(server.port());
  ASSERT_TRUE(a.Authenticate(testing::kTestSecret, 0).ok());
  // No pull yet on this connection.
  a.Write(push(1, 5, 2));
  auto r = reply(a);
  EXPECT_EQ(r.first, wire::Type::kError);
  EXPECT_NE(r.second.find("a push naming the keys of pull 5, which is not one of this connection's last pulls (none)"),
            std::string::npos)
      << r.second;
  a.Write(pull(7));
  EXPECT_EQ(reply(a).first, wire::Type::kPull);
  const std::vector<float> before = weights(keys[1]);
  // Another pull's id, another count, another connection: refused, nothing applied.
  a.Write(push(8, 6, 2));
  r = reply(a);
  EXPECT_NE(r.second.find("not one of this connection's last pulls (7)"), std::string::npos) << r.second;
  a.Write(push(9, 7, 1));
  r = reply(a);
  EXPECT_NE(r.second.find("slice 0 is 1 rows of table 0, the pull's 2 keys of table 0"), std::string::npos) << r.second;
  testing::RawPeer b(server.port());
  ASSERT_TRUE(b.Authenticate(testing::kTestSecret, 1).ok());
  b.Write(push(1, 7, 2));
  r = reply(b);
  EXPECT_NE(r.second.find("not one of this connection's last pulls (none)"), std::string::npos) << r.second;
  EXPECT_EQ(weights(keys[1]), before);
  // The pull's own push: the gradients land on the pull's keys, in its order.
  a.Write(push(10, 7, 2));
  EXPECT_EQ(reply(a).first, wire::Type::kPush);
  const std::vector<float> after = weights(keys[1]);
  for (int j = 0; j < 4; ++j) EXPECT_LT(after[j], before[j]) << j;  // a positive gradient lowers it
  // The same pull and push with the keys inline, on a second server: the same rows.
  PsServer other(o);
  ASSERT_TRUE(other.Start().ok());
  auto oc = testing::ConnectTest({"127.0.0.1:" + std::to_string(other.port())});
  ASSERT_TRUE(oc.ok());
  ASSERT_TRUE((*oc)->CreateTables({Spec()}).ok());
  testing::RawPeer d(other.port());
  ASSERT_TRUE(d.Authenticate(testing::kTestSecret, 0).ok());
  d.Write(pull(1));
  EXPECT_EQ(reply(d).first, wire::Type::kPull);
  d.Write(push(2, 0, 2));
  EXPECT_EQ(reply(d).first, wire::Type::kPush);
  for (uint64_t key : keys) {
    std::vector<float> inline_rows(4);
    PullSlice p{0, &key, 1, inline_rows.data()};
    p.create_missing = false;
    ASSERT_TRUE((*oc)->Pull({p}).ok());
    EXPECT_EQ(inline_rows, weights(key)) << key;
  }
  // With rows a step old the next step's pull comes before a step's push: the pull before the
  // last one may be named too, but none older.
  a.Write(pull(11));
  EXPECT_EQ(reply(a).first, wire::Type::kPull);
  a.Write(pull(12));
  EXPECT_EQ(reply(a).first, wire::Type::kPull);
  a.Write(push(13, 7, 2));
  r = reply(a);
  EXPECT_NE(r.second.find("not one of this connection's last pulls (12, 11)"), std::string::npos) << r.second;
  a.Write(push(14, 11, 2));
  EXPECT_EQ(reply(a).first, wire::Type::kPush);
}
}  // namespace
}  // namespace ember::ps

namespace ember::ps {
namespace {
// Fuzzer finds: a prune-and-grow fraction far outside [0, 1] (undefined float -> integer
// conversion), and a save directory the file system cannot even name (an exception).
TEST(PsFuzzRegressions, OperationValuesAndDirectoryNamesAreValidated) {
  Shard shard;
  embedding::TableSpec sparse;
  sparse.id = 1;
  sparse.dim = 8;
  sparse.kind = embedding::TableKind::kSparse;
  sparse.density = 0.5f;
  ASSERT_TRUE(shard.CreateTables({sparse}).ok());
  TableOp op;
  op.kind = TableOp::Kind::kPruneGrow;
  op.table = 1;
  op.value = 2.6e131;
  Status st = shard.Apply(op).status();
  EXPECT_NE(st.message().find("is not in [0, 1]"), std::string::npos) << st.ToString();
  std::string payload;
  op.value = std::nan("");
  wire::EncodeOp(op, &payload);
  EXPECT_NE(wire::DecodeOp(payload, &op).message().find("op.value: not finite"), std::string::npos);
  ServerOptions o = testing::TestServerOptions();
  PsServer server(o);
  for (const std::string& dir : {std::string(), std::string("a\0b", 3)}) {
    std::string save;
    wire::Writer(&save).Str(dir);
    auto r = server.Handle(wire::Type::kSave, save, 0);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
  }
  EXPECT_EQ(server.counters().internal_errors.load(), 0u);
}
}  // namespace
}  // namespace ember::ps

namespace ember::ps {
namespace {
// Fuzzer find: a sync push after async ones (or the reverse) moved the shard's clock back,
// releasing pulls of steps that were not complete. The first push fixes the mode, and the
// clock never moves back.
TEST(PsFuzzRegressions, TheModeIsFixedAndTheClockNeverMovesBack) {
  Shard shard;
  embedding::TableSpec spec;
  spec.id = 0;
  spec.dim = 2;
  ASSERT_TRUE(shard.CreateTables({spec}).ok());
  ASSERT_TRUE(shard.PushStep({0, 2, 0, true}, {}).ok());
  ASSERT_TRUE(shard.PushStep({1, 2, 0, true}, {}).ok());
  ASSERT_EQ(shard.clock(), 1u);
  Status mixed = shard.PushStep({0, 2, 5, false}, {});
  EXPECT_EQ(mixed.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(mixed.message().find("unaggregated in a job whose pushes are aggregated (sync)"), std::string::npos)
      << mixed.ToString();
  EXPECT_EQ(shard.clock(), 1u);
}
}  // namespace
}  // namespace ember::ps
