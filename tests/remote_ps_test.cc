// Servers and the remote client in one process (servers on threads, loopback TCP): the remote
// client is equivalent to the in-process one, reshards N -> M through checkpoint files, and a
// malformed frame or a dead server is an error, never a corrupted shard.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio.hpp>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include "ember/ps/in_process.h"
#include "ember/ps/remote_client.h"
#include "ember/ps/server.h"
#include "ps_test_util.h"

namespace ember::ps {
namespace {

std::string Dir(const std::string& name) {
  auto d = std::filesystem::temp_directory_path() / ("ember_remote_" + std::to_string(::getpid())) / name;
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d.string();
}

// k servers on loopback and a client connected to them.
struct Cluster {
  explicit Cluster(int k) {
    std::vector<std::string> endpoints;
    for (int i = 0; i < k; ++i) {
      ServerOptions o = testing::TestServerOptions(i, k);
      servers.push_back(std::make_unique<PsServer>(o));
      EMBER_CHECK(servers.back()->Start().ok());
      endpoints.push_back("127.0.0.1:" + std::to_string(servers.back()->port()));
    }
    auto c = testing::ConnectTest(endpoints);
    EMBER_CHECK(c.ok()) << c.status().ToString();
    client = std::move(c).value();
  }
  std::vector<std::unique_ptr<PsServer>> servers;
  std::unique_ptr<RemoteClient> client;
};

std::vector<embedding::TableSpec> Specs() {
  embedding::TableSpec dense;
  dense.id = 0;
  dense.dim = 8;
  dense.seed = 3;
  embedding::TableSpec sparse = dense;
  sparse.id = 1;
  sparse.kind = embedding::TableKind::kSparse;
  sparse.density = 0.5f;
  embedding::TableSpec adam = dense;
  adam.id = 2;
  adam.dim = 5;
  adam.optimizer.kind = embedding::OptimizerKind::kAdam;
  embedding::TableSpec half = dense;  // fp16 weights, fp32 element-wise Adagrad state
  half.id = 3;
  half.dim = 6;
  half.precision = embedding::Precision::kFp16;
  half.optimizer.kind = embedding::OptimizerKind::kAdagrad;
  return {dense, sparse, adam, half};
}

// The same sequence of strided pulls and pushes on both clients; every pulled row must match.
void Drive(PsClient& a, PsClient& b, int steps, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const auto specs = Specs();
  for (int step = 0; step < steps; ++step) {
    std::vector<std::vector<uint64_t>> keys(specs.size());
    for (size_t t = 0; t < specs.size(); ++t) {
      std::set<uint64_t> uniq;
      while (uniq.size() < 50) uniq.insert(embedding::MakeKey(specs[t].id, rng() % 400));
      keys[t].assign(uniq.begin(), uniq.end());
    }
    const size_t stride = 10;  // wider than every table: strided rows
    std::vector<std::vector<float>> out_a(specs.size()), out_b(specs.size()), grads(specs.size());
    std::vector<PullSlice> pa, pb;
    std::vector<PushSlice> push;
    for (size_t t = 0; t < specs.size(); ++t) {
      out_a[t].assign(50 * stride, -1);
      out_b[t].assign(50 * stride, -1);
      grads[t].resize(50 * stride);
      for (auto& g : grads[t]) g = std::uniform_real_distribution<float>(-1, 1)(rng);
      PullSlice s;
      s.table = specs[t].id;
      s.keys = keys[t].data();
      s.n = keys[t].size();
      s.stride = stride;
      s.create_missing = step % 3 != 2;  // some read-only pulls
      s.out = out_a[t].data();
      pa.push_back(s);
      s.out = out_b[t].data();
      pb.push_back(s);
      PushSlice p;
      p.table = specs[t].id;
      p.keys = keys[t].data();
      p.n = keys[t].size();
      p.grads = grads[t].data();
      p.stride = stride;
      push.push_back(p);
    }
    ASSERT_TRUE(a.Pull(pa).ok());
    ASSERT_TRUE(b.Pull(pb).ok());
    for (size_t t = 0; t < specs.size(); ++t) ASSERT_EQ(out_a[t], out_b[t]) << "step " << step << " table " << t;
    ASSERT_TRUE(a.Push(push).ok());
    ASSERT_TRUE(b.Push(push).ok());
  }
}

void ExpectSameStats(PsClient& a, PsClient& b) {
  auto sa = a.Stats(), sb = b.Stats();
  ASSERT_TRUE(sa.ok() && sb.ok());
  ASSERT_EQ(sa->size(), sb->size());
  for (const auto& x : *sa) {
    auto y = std::find_if(sb->begin(), sb->end(), [&](const TableStats& s) { return s.table == x.table; });
    ASSERT_NE(y, sb->end());
    EXPECT_EQ(x.rows, y->rows);
    EXPECT_EQ(x.values, y->values);
    EXPECT_EQ(x.dim, y->dim);
    EXPECT_EQ(x.shard_rows, y->shard_rows) << "table " << x.table;
  }
}

TEST(RemotePs, EquivalentToInProcessShards) {
  Cluster cluster(2);
  InProcessClient local(2);
  ASSERT_TRUE(cluster.client->CreateTables(Specs()).ok());
  ASSERT_TRUE(local.CreateTables(Specs()).ok());
  Drive(*cluster.client, local, 12, 1);
  ExpectSameStats(*cluster.client, local);
  // Server-side maintenance gives the same results (DSL prune/grow with collected growth).
  TableOp op;
  op.table = 1;
  op.kind = TableOp::Kind::kCollectGrowth;
  op.value = 1;
  ASSERT_TRUE(cluster.client->Apply(op).ok());
  ASSERT_TRUE(local.Apply(op).ok());
  Drive(*cluster.client, local, 3, 2);
  op.kind = TableOp::Kind::kPruneGrow;
  op.value = 0.3;
  op.seed = 9;
  auto ra = cluster.client->Apply(op), rb = local.Apply(op);
  ASSERT_TRUE(ra.ok() && rb.ok());
  EXPECT_GT(ra->pruned, 0u);
  EXPECT_EQ(ra->pruned, rb->pruned);
  EXPECT_EQ(ra->grown, rb->grown);
  Drive(*cluster.client, local, 3, 3);
  ExpectSameStats(*cluster.client, local);
  EXPECT_GT(cluster.client->bytes_sent(), 0u);
  EXPECT_GT(cluster.client->bytes_received(), 0u);
}

TEST(RemotePs, APushOfOtherKeysThanTheLastPullIsGroupedAfresh) {
  // A push reuses a remembered pull's grouping only for exactly its tables and keys: pushes of other
  // keys of the same count, of the same keys to another table, and of a shorter list must each
  // reach the shards that own their keys, as in process.
  Cluster cluster(3);
  InProcessClient local(3);
  ASSERT_TRUE(cluster.client->CreateTables(Specs()).ok());
  ASSERT_TRUE(local.CreateTables(Specs()).ok());
  std::vector<uint64_t> a, b, c;
  for (uint64_t i = 0; i < 40; ++i) {
    a.push_back(embedding::MakeKey(0, i));
    b.push_back(embedding::MakeKey(0, 1000 + i));
    c.push_back(embedding::MakeKey(2, i));
  }
  std::vector<float> out(40 * 8), grads(40 * 8, 0.5f);
  for (PsClient* client : {static_cast<PsClient*>(cluster.client.get()), static_cast<PsClient*>(&local)}) {
    ASSERT_TRUE(client->Pull({PullSlice{0, a.data(), a.size(), out.data()}}).ok());
    ASSERT_TRUE(client->Push({PushSlice{0, b.data(), b.size(), grads.data()}}).ok());  // other keys
    ASSERT_TRUE(client->Pull({PullSlice{0, a.data(), a.size(), out.data()}}).ok());
    ASSERT_TRUE(client->Push({PushSlice{2, c.data(), c.size(), grads.data()}}).ok());      // another table
    ASSERT_TRUE(client->Push({PushSlice{0, a.data(), a.size() - 7, grads.data()}}).ok());  // fewer keys
    ASSERT_TRUE(client->Push({PushSlice{0, a.data(), a.size(), grads.data()}}).ok());      // the same keys
    // The keys of the pull before the last (async training pulls the next step's rows first).
    ASSERT_TRUE(client->Pull({PullSlice{0, a.data(), a.size(), out.data()}}).ok());
    ASSERT_TRUE(client->Pull({PullSlice{0, b.data(), b.size(), out.data()}}).ok());
    ASSERT_TRUE(client->Push({PushSlice{0, a.data(), a.size(), grads.data()}}).ok());
    ASSERT_TRUE(client->Push({PushSlice{0, b.data(), b.size(), grads.data()}}).ok());
  }
  // A push of pulled keys names the pull instead of sending them: 8 bytes a key fewer, 8 more a
  // server for the pull's id.
  const auto sent_by = [&](const std::vector<uint64_t>& keys) {
    const uint64_t before = cluster.client->bytes_sent();
    EXPECT_TRUE(cluster.client->Push({PushSlice{0, keys.data(), keys.size(), grads.data()}}).ok());
    return cluster.client->bytes_sent() - before;
  };
  std::vector<uint64_t> fresh;
  for (uint64_t i = 0; i < 40; ++i) fresh.push_back(embedding::MakeKey(0, 5000 + i));
  const uint64_t named = sent_by(b), sent_inline = sent_by(fresh);
  EXPECT_EQ(sent_inline - named, 40 * 8 - 3 * 8);
  ASSERT_TRUE(local.Push({PushSlice{0, b.data(), b.size(), grads.data()}}).ok());
  ASSERT_TRUE(local.Push({PushSlice{0, fresh.data(), fresh.size(), grads.data()}}).ok());
  ExpectSameStats(*cluster.client, local);
  for (const auto* keys : {&a, &b, &c, &fresh}) {
    const uint32_t table = embedding::KeyTable((*keys)[0]);
    const size_t dim = table == 2 ? 5 : 8;
    std::vector<float> x(keys->size() * dim, -1), y(x.size(), -2);
    ASSERT_TRUE(cluster.client->Pull({PullSlice{table, keys->data(), keys->size(), x.data()}}).ok());
    ASSERT_TRUE(local.Pull({PullSlice{table, keys->data(), keys->size(), y.data()}}).ok());
    EXPECT_EQ(x, y) << "table " << table;
  }
}

// 2 servers -> files -> 3 servers -> files -> 1 server: every row and
// its optimizer state survive, for every table kind (dense fp32 with row-wise Adagrad and Adam,
// dense fp16 with Adagrad, DSL's sparse rows): later pushes and pulls agree exactly with an
// uninterrupted client.
TEST(RemotePs, ReshardsThroughCheckpointFiles) {
  Cluster two(2);
  InProcessClient reference(2);
  ASSERT_TRUE(two.client->CreateTables(Specs()).ok());
  ASSERT_TRUE(reference.CreateTables(Specs()).ok());
  Drive(*two.client, reference, 8, 4);
  const std::string d1 = Dir("two");
  auto files = two.client->SaveShards(d1);
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  ASSERT_EQ(files->size(), 2u);
  Cluster three(3);
  ASSERT_TRUE(three.client->LoadShards(d1, *files).ok());
  Drive(*three.client, reference, 4, 5);
  const std::string d2 = Dir("three");
  auto files3 = three.client->SaveShards(d2);
  ASSERT_TRUE(files3.ok());
  ASSERT_EQ(files3->size(), 3u);
  Cluster one(1);
  ASSERT_TRUE(one.client->LoadShards(d2, *files3).ok());
  Drive(*one.client, reference, 4, 6);
  auto st = one.client->Stats();
  ASSERT_TRUE(st.ok());
  auto ref = reference.Stats();
  uint64_t rows = 0, ref_rows = 0;
  for (const auto& s : *st) rows += s.rows;
  for (const auto& s : *ref) ref_rows += s.rows;
  EXPECT_EQ(rows, ref_rows);
  // A corrupted file is refused by the server, naming it, and the shard keeps its rows.
  std::string bytes;
  {
    std::ifstream in(d2 + "/" + (*files3)[0].name, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  bytes[bytes.size() / 2] ^= 1;
  std::ofstream(d2 + "/" + (*files3)[0].name, std::ios::binary) << bytes;
  Status bad = one.client->LoadShards(d2, *files3);
  EXPECT_EQ(bad.code(), StatusCode::kCorruption);
  EXPECT_NE(bad.message().find((*files3)[0].name), std::string::npos) << bad.ToString();
  EXPECT_NE(bad.message().find("PS server 0"), std::string::npos) << bad.ToString();
  auto after = one.client->Stats();
  uint64_t rows_after = 0;
  for (const auto& s : *after) rows_after += s.rows;
  EXPECT_EQ(rows_after, rows);
}

// Raw bytes to a server: garbage and lying frames get an error frame, the connection closes, and
// the shard is untouched; well-formed clients keep working.
TEST(RemotePs, MalformedFramesAreRefused) {
  Cluster c(1);
  ASSERT_TRUE(c.client->CreateTables(Specs()).ok());
  InProcessClient ref(1);
  ASSERT_TRUE(ref.CreateTables(Specs()).ok());
  Drive(*c.client, ref, 2, 7);
  const int port = c.servers[0]->port();
  auto send = [&](const std::string& bytes) {  // on an authenticated connection
    testing::RawPeer peer(port);
    EMBER_CHECK(peer.Authenticate(testing::kTestSecret, 0).ok());
    peer.Write(bytes);
    return peer.ReadToClose();
  };
  auto error_of = [](const std::string& reply) { return testing::ErrorOf(reply); };
  EXPECT_NE(error_of(send(std::string(24, 'x'))).find("bad magic"), std::string::npos);
  std::string lying;
  {
    std::string payload;
    wire::Writer w(&payload);
    w.Pod<uint64_t>(0);                  // wait_for
    w.Pod<uint32_t>(1);                  // one slice
    w.Pod<uint32_t>(0);                  // table 0
    w.Pod<uint8_t>(1);                   // create missing
    w.Pod<uint64_t>(uint64_t{1} << 40);  // keys claimed; none follow
    wire::AppendHeader(&lying, wire::Type::kPull, 1, static_cast<uint32_t>(payload.size()));
    lying += payload;
  }
  EXPECT_NE(error_of(send(lying)).find("count past the end"), std::string::npos) << error_of(send(lying));
  std::string huge;
  wire::AppendHeader(&huge, wire::Type::kPush, 1, 0xffffffffu);
  EXPECT_NE(error_of(send(huge)).find("over the limit"), std::string::npos);
  // A push to a table with the wrong width is refused before any row changes.
  std::string wrong;
  {
    const uint64_t key = embedding::MakeKey(0, 1);
    const float g[3] = {1, 2, 3};
    PushSlice p;
    p.table = 0;
    p.keys = &key;
    p.n = 1;
    p.grads = g;
    std::string payload;
    wire::EncodePush({p}, {3}, {{0}}, PushClock{}, &payload);
    wire::AppendHeader(&wrong, wire::Type::kPush, 1, static_cast<uint32_t>(payload.size()));
    wrong += payload;
  }
  testing::RawPeer peer(port);
  ASSERT_TRUE(peer.Authenticate(testing::kTestSecret, 0).ok());
  peer.Write(wrong);
  auto h = peer.ReadHeader();
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->type, wire::Type::kError);
  ExpectSameStats(*c.client, ref);
  Drive(*c.client, ref, 2, 8);  // the shard is as before: pulls still match the reference
}

TEST(RemotePs, ADeadServerIsAnErrorNamingIt) {
  Cluster c(2);
  ASSERT_TRUE(c.client->CreateTables(Specs()).ok());
  c.servers[1]->Stop();
  std::vector<uint64_t> keys;
  for (uint64_t i = 0; i < 100; ++i) keys.push_back(embedding::MakeKey(0, i));
  std::vector<float> out(keys.size() * 8);
  PullSlice s;
  s.table = 0;
  s.keys = keys.data();
  s.n = keys.size();
  s.out = out.data();
  Status st = c.client->Pull({s});
  EXPECT_EQ(st.code(), StatusCode::kUnavailable) << st.ToString();
  EXPECT_NE(st.message().find("PS server 1"), std::string::npos) << st.ToString();
  auto none = testing::ConnectTest({"127.0.0.1:1"}, 0, 0.2);
  EXPECT_EQ(none.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(none.status().message().find("127.0.0.1:1"), std::string::npos);
}

// A pull waiting for a step is parked on the server (no thread held: the server has one) and
// answered when another client's push completes the step; the reply carries the server's clock.
TEST(RemotePs, WaitingPullsAreAnsweredWhenTheStepCompletes) {
  ServerOptions o = testing::TestServerOptions();
  o.threads = 1;
  PsServer server(o);
  ASSERT_TRUE(server.Start().ok());
  const std::vector<std::string> ep = {"127.0.0.1:" + std::to_string(server.port())};
  auto w0 = testing::ConnectTest(ep, 0), w1 = testing::ConnectTest(ep, 1);
  ASSERT_TRUE(w0.ok() && w1.ok());
  ASSERT_TRUE((*w0)->CreateTables(Specs()).ok());
  ASSERT_TRUE((*w1)->CreateTables(Specs()).ok());
  const uint64_t k = embedding::MakeKey(0, 9);
  std::vector<float> before(8), after(8), g(8, 0.5f);
  ASSERT_TRUE((*w0)->Pull({{0, &k, 1, before.data()}}).ok());
  ASSERT_TRUE((*w0)->Push({{0, &k, 1, g.data()}}, PushClock{0, 2, 0, true}).ok());
  std::atomic<bool> done{false};
  uint64_t seen = 0;
  std::thread waiter([&] {
    EMBER_CHECK((*w0)->Pull({{0, &k, 1, after.data()}}, PullClock{1, &seen}).ok());
    done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(done.load());
  EXPECT_EQ(after, std::vector<float>(8, 0.0f));
  ASSERT_TRUE((*w1)->Stats().ok());  // the server's only thread is free while the pull waits
  ASSERT_TRUE((*w1)->Push({{0, &k, 1, g.data()}}, PushClock{1, 2, 0, true}).ok());
  waiter.join();
  EXPECT_EQ(seen, 1u);
  EXPECT_NE(after, before);  // the step's one update is in
}

}  // namespace
}  // namespace ember::ps

namespace ember::ps {
namespace {
// Feature admission over the wire: servers answer which keys have no row; the remote client
// reports exactly what an in-process client over the same placement does.
TEST(RemoteClient, AdmissionAnswersMatchInProcess) {
  embedding::TableSpec spec;
  spec.id = 0;
  spec.dim = 8;
  spec.lifecycle.admit_after = 2;
  spec.lifecycle.expire_after = 3;
  Cluster cluster(2);
  InProcessClient local(2);
  ASSERT_TRUE(cluster.client->CreateTables({spec}).ok());
  ASSERT_TRUE(local.CreateTables({spec}).ok());
  std::mt19937_64 rng(5);
  for (uint64_t step = 0; step < 12; ++step) {
    std::vector<uint64_t> keys;
    for (uint64_t i = 0; i < 40; ++i)
      if (rng() % 3 == 0) keys.push_back(embedding::MakeKey(0, i));
    std::vector<float> ra(keys.size() * 8), rb(keys.size() * 8), g(keys.size() * 8, 0.1f);
    std::vector<uint8_t> oa(keys.size(), 9), ob(keys.size(), 9);
    PullSlice pa{0, keys.data(), keys.size(), ra.data()}, pb = pa;
    pa.own = oa.data();
    pb.out = rb.data();
    pb.own = ob.data();
    ASSERT_TRUE(cluster.client->Pull({pa}).ok());
    ASSERT_TRUE(local.Pull({pb}).ok());
    ASSERT_EQ(oa, ob) << "step " << step;
    ASSERT_EQ(ra, rb) << "step " << step;
    const PushClock clock{0, 1, step, true};
    ASSERT_TRUE(cluster.client->Push({PushSlice{0, keys.data(), keys.size(), g.data()}}, clock).ok());
    ASSERT_TRUE(local.Push({PushSlice{0, keys.data(), keys.size(), g.data()}}, clock).ok());
  }
  auto a = cluster.client->Stats(), b = local.Stats();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*a)[0].rows, (*b)[0].rows);
  EXPECT_EQ((*a)[0].admitted, (*b)[0].admitted);
  EXPECT_EQ((*a)[0].evicted, (*b)[0].evicted);
  EXPECT_EQ((*a)[0].fallbacks, (*b)[0].fallbacks);
  EXPECT_GT((*a)[0].evicted, 0u);
}
}  // namespace
}  // namespace ember::ps
