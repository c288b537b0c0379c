// The PS wire protocol: every message round-trips, and malformed frames (truncated at every
// byte, oversized, wrong magic/version/type, lying counts, random corruption) are refused with
// a reason instead of crashing or allocating what the peer claims.
#include "ember/ps/wire.h"

#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <random>
#include <tuple>

namespace ember::ps::wire {
namespace {

std::string Frame(Type type, const std::string& payload, uint64_t id = 7) {
  std::string f;
  AppendHeader(&f, type, id, static_cast<uint32_t>(payload.size()));
  return f + payload;
}

std::string PullFrame() {
  const uint64_t keys[4] = {embedding::MakeKey(1, 10), embedding::MakeKey(1, 11), embedding::MakeKey(1, 12),
                            embedding::MakeKey(1, 13)};
  PullSlice s;
  s.table = 1;
  s.keys = keys;
  s.n = 4;
  s.create_missing = false;
  std::string payload;
  EncodePull({s}, {{0, 2, 3}}, /*wait_for=*/41, &payload);  // this server's share: keys 0, 2, 3
  return Frame(Type::kPull, payload);
}

std::string PushFrame() {
  const uint64_t keys[2] = {embedding::MakeKey(2, 5), embedding::MakeKey(2, 6)};
  const float grads[2 * 4] = {1, 2, 3, 99, 4, 5, 6, 99};  // stride 4, dim 3
  PushSlice s;
  s.table = 2;
  s.keys = keys;
  s.n = 2;
  s.grads = grads;
  s.stride = 4;
  std::string payload;
  EncodePush({s}, {3}, {{1, 0}}, PushClock{1, 2, 40, true}, &payload);
  return Frame(Type::kPush, payload);
}

TEST(Wire, PullAndPushRoundTrip) {
  const std::string pull = PullFrame();
  auto h = ParseFrame(pull);
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_EQ(h->type, Type::kPull);
  EXPECT_EQ(h->request_id, 7u);
  PullRequest pr;
  ASSERT_TRUE(DecodePull(std::string_view(pull).substr(kHeaderBytes), &pr).ok());
  EXPECT_EQ(pr.wait_for, 41u);
  ASSERT_EQ(pr.slices.size(), 1u);
  EXPECT_EQ(pr.slices[0].table, 1u);
  EXPECT_FALSE(pr.slices[0].create_missing);
  EXPECT_EQ(pr.slices[0].keys,
            (std::vector<uint64_t>{embedding::MakeKey(1, 10), embedding::MakeKey(1, 12), embedding::MakeKey(1, 13)}));
  const std::string push = PushFrame();
  ASSERT_TRUE(ParseFrame(push).ok());
  PushRequest ps;
  ASSERT_TRUE(DecodePush(std::string_view(push).substr(kHeaderBytes), &ps).ok());
  EXPECT_EQ(ps.clock.worker, 1u);
  EXPECT_EQ(ps.clock.workers, 2u);
  EXPECT_EQ(ps.clock.step, 40u);
  EXPECT_TRUE(ps.clock.aggregate);
  ASSERT_EQ(ps.slices.size(), 1u);
  EXPECT_EQ(ps.slices[0].dim, 3u);
  const auto& sl = ps.slices[0];
  ASSERT_EQ(sl.n, 2u);
  EXPECT_EQ(std::vector<uint64_t>(sl.keys, sl.keys + sl.n),
            (std::vector<uint64_t>{embedding::MakeKey(2, 6), embedding::MakeKey(2, 5)}));
  EXPECT_EQ(std::vector<float>(sl.grads, sl.grads + 6),
            (std::vector<float>{4, 5, 6, 1, 2, 3}));  // strided rows, padding dropped
}

// A push's keys and gradients are read in place where they are aligned and copied where they
// are not (a slice after one of an odd number of values), with the same values either way.
TEST(Wire, PushSlicesInPlaceOrCopied) {
  const uint64_t a_key = embedding::MakeKey(2, 5);
  const float a_grads[3] = {1, 2, 3};
  const uint64_t b_keys[2] = {embedding::MakeKey(4, 8), embedding::MakeKey(4, 9)};
  const float b_grads[4] = {5, 6, 7, 8};
  PushSlice a{2, &a_key, 1, a_grads};
  PushSlice b{4, b_keys, 2, b_grads};
  ByteBuffer payload;  // the server's buffer type, so that the payload's own alignment is new[]'s
  EncodePush({a, b}, {3, 2}, {{0}, {0, 1}}, PushClock{}, &payload);
  PushRequest req;
  ASSERT_TRUE(DecodePush(payload.view(), &req).ok());
  ASSERT_EQ(req.slices.size(), 2u);
  const auto& first = req.slices[0];
  const auto& second = req.slices[1];
  EXPECT_TRUE(first.owned_keys.empty());  // in place: 8-aligned in the payload
  EXPECT_TRUE(first.owned_grads.empty());
  EXPECT_EQ(first.keys[0], a_key);
  EXPECT_EQ(std::vector<float>(first.grads, first.grads + 3), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(second.owned_keys, (std::vector<uint64_t>{b_keys[0], b_keys[1]}));  // 4 bytes off: copied
  EXPECT_EQ(second.keys, second.owned_keys.data());
  EXPECT_EQ(std::vector<float>(second.grads, second.grads + 4), (std::vector<float>{5, 6, 7, 8}));
}

// A push naming its pull's keys carries only the gradients; UsePullKeys takes the keys from the
// pull it names. A zero id and unknown flag bits are malformed.
TEST(Wire, APushNamingItsPullCarriesNoKeys) {
  const uint64_t keys[2] = {embedding::MakeKey(4, 8), embedding::MakeKey(4, 9)};
  const float grads[4] = {5, 6, 7, 8};
  PushSlice slice{4, keys, 2, grads};
  ByteBuffer inline_payload, named;
  EncodePush({slice}, {2}, {{0, 1}}, PushClock{}, &inline_payload);
  EncodePush({slice}, {2}, {{0, 1}}, PushClock{}, &named, /*keys_of_pull=*/42);
  EXPECT_EQ(named.size() + 2 * sizeof(uint64_t), inline_payload.size() + sizeof(uint64_t));
  PushRequest req;
  ASSERT_TRUE(DecodePush(named.view(), &req).ok());
  EXPECT_EQ(req.keys_of_pull, 42u);
  ASSERT_EQ(req.slices.size(), 1u);
  EXPECT_EQ(req.slices[0].keys, nullptr);
  EXPECT_EQ(std::vector<float>(req.slices[0].grads, req.slices[0].grads + 4), (std::vector<float>{5, 6, 7, 8}));
  PullRequest pull, other;
  pull.slices.push_back({4, true, {keys[0], keys[1]}});
  EXPECT_NE(
      UsePullKeys({{41, &pull}, {0, &other}}, &req).message().find("not one of this connection's last pulls (41)"),
      std::string::npos);
  // The latest pull or the one before it.
  ASSERT_TRUE(UsePullKeys({{43, &other}, {42, &pull}}, &req).ok());
  EXPECT_EQ(req.slices[0].keys, pull.slices[0].keys.data());
  pull.slices[0].keys.pop_back();
  EXPECT_NE(
      UsePullKeys({{42, &pull}, {41, &other}}, &req).message().find("slice 0 is 2 rows of table 4, the pull's 1 keys"),
      std::string::npos);
  for (const auto& [flags, id, why] :
       {std::tuple<uint32_t, uint64_t, const char*>{2, 0, "push.keys_of_pull: not a request id"},
        {4, 0, "push.flags: unknown bits"}}) {
    std::string p;
    Writer w(&p);
    w.Pod<uint32_t>(0);
    w.Pod<uint32_t>(0);
    w.Pod<uint64_t>(0);
    w.Pod<uint32_t>(flags);
    if (flags & 2) w.Pod<uint64_t>(id);
    w.Pod<uint32_t>(0);
    const Status st = DecodePush(p, &req);
    EXPECT_NE(st.message().find(why), std::string::npos) << st.ToString();
  }
}

TEST(Wire, ControlMessagesRoundTrip) {
  embedding::TableSpec spec;
  spec.id = 9;
  spec.dim = 12;
  spec.rows = 1 << 20;
  spec.seed = ~uint64_t{0};
  spec.kind = embedding::TableKind::kSparse;
  spec.density = 0.25f;
  spec.frozen = true;
  spec.optimizer.kind = embedding::OptimizerKind::kAdam;
  spec.optimizer.lr = 0.5f;
  std::string p;
  EncodeSpecs({spec, spec}, &p);
  std::vector<embedding::TableSpec> specs;
  ASSERT_TRUE(DecodeSpecs(p, &specs).ok());
  ASSERT_EQ(specs.size(), 2u);
  EXPECT_TRUE(embedding::SameSpec(specs[1], spec));
  spec.optimizer.kind = embedding::OptimizerKind::kFtrl;
  spec.optimizer.beta = 0.001f;
  spec.optimizer.l1 = 0.5f;
  spec.optimizer.l2 = 7.0f;
  p.clear();
  EncodeSpecs({spec}, &p);
  ASSERT_TRUE(DecodeSpecs(p, &specs).ok());
  EXPECT_TRUE(embedding::SameSpec(specs[0], spec));
  EXPECT_EQ(specs[0].optimizer.l2, 7.0f);
  // Settings a hostile peer could send to poison the shard's rows are refused.
  for (float bad : {-1.0f, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    embedding::TableSpec b = spec;
    b.optimizer.l2 = bad;
    p.clear();
    EncodeSpecs({b}, &p);
    const Status st = DecodeSpecs(p, &specs);
    EXPECT_FALSE(st.ok());
    EXPECT_NE(st.message().find("spec.optimizer"), std::string::npos) << st.ToString();
  }
  spec.optimizer.lr = 0.0f;  // FTRL divides by its rate
  p.clear();
  EncodeSpecs({spec}, &p);
  EXPECT_NE(DecodeSpecs(p, &specs).message().find("spec.lr"), std::string::npos);
  spec.optimizer.kind = embedding::OptimizerKind::kAdam;
  spec.optimizer.lr = 0.5f;

  TableOp op;
  op.kind = TableOp::Kind::kCopyRows;
  op.table = 3;
  op.dst_table = 4;
  op.value = 0.125;
  op.reinit = true;
  op.seed = 42;
  p.clear();
  EncodeOp(op, &p);
  TableOp back;
  ASSERT_TRUE(DecodeOp(p, &back).ok());
  EXPECT_EQ(back.kind, op.kind);
  EXPECT_EQ(back.dst_table, 4u);
  EXPECT_EQ(back.value, 0.125);
  EXPECT_TRUE(back.reinit);
  op.kind = TableOp::Kind::kResetRows;  // the last kind; one past it is refused
  p.clear();
  EncodeOp(op, &p);
  ASSERT_TRUE(DecodeOp(p, &back).ok());
  EXPECT_EQ(back.kind, TableOp::Kind::kResetRows);
  const int32_t past = static_cast<int32_t>(TableOp::Kind::kResetRows) + 1;
  std::memcpy(p.data(), &past, sizeof(past));
  EXPECT_NE(DecodeOp(p, &back).message().find("op.kind"), std::string::npos);

  TableStats st;
  st.table = 3;
  st.rows = 10;
  st.values = 80;
  st.bytes = 999;
  st.dim = 8;
  st.shard_rows = {4, 6};
  p.clear();
  EncodeStats({st}, &p);
  std::vector<TableStats> stats;
  ASSERT_TRUE(DecodeStats(p, &stats).ok());
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].bytes, 999u);
  EXPECT_EQ(stats[0].shard_rows, st.shard_rows);

  LoadRequest load{"/ckpt/ckpt-5", {{"shard-0.bin", 100, 7}, {"shard-1.bin", 200, 8}}};
  p.clear();
  EncodeLoad(load, &p);
  LoadRequest lb;
  ASSERT_TRUE(DecodeLoad(p, &lb).ok());
  EXPECT_EQ(lb.dir, load.dir);
  ASSERT_EQ(lb.files.size(), 2u);
  EXPECT_EQ(lb.files[1].checksum, 8u);

  p.clear();
  EncodeError(Status::NotFound("no table 5"), &p);
  Status peer;
  ASSERT_TRUE(DecodeError(p, &peer).ok());
  EXPECT_EQ(peer.code(), StatusCode::kNotFound);
  EXPECT_EQ(peer.message(), "server: no table 5");
}

TEST(Wire, HeadersAreValidated) {
  std::string f = Frame(Type::kPing, "");
  EXPECT_TRUE(ParseFrame(f).ok());
  auto expect = [](const std::string& frame, const std::string& why, uint32_t max = kDefaultMaxPayload) {
    auto h = ParseFrame(frame, max);
    ASSERT_FALSE(h.ok());
    EXPECT_NE(h.status().message().find(why), std::string::npos) << h.status().ToString();
  };
  std::string bad = f;
  bad[0] = 'X';
  expect(bad, "bad magic");
  bad = f;
  bad[4] = 1;
  expect(bad, "protocol version 1");
  bad = f;
  bad[6] = 77;
  expect(bad, "unknown frame type 77");
  bad = f;
  bad[20] = 1;
  expect(bad, "unknown flags");
  expect(Frame(Type::kPing, "x"), "ping carries no payload");
  expect(PullFrame(), "over the limit of 16", 16);
  std::string lying = PullFrame();
  lying[16] = static_cast<char>(lying[16] + 1);  // header claims one byte more than follows
  expect(lying, "header says");
  expect(f.substr(0, 10), "shorter than a header");
}

TEST(Wire, EveryTruncationIsRefused) {
  for (const std::string& frame : {PullFrame(), PushFrame()}) {
    const auto h = ParseFrame(frame);
    ASSERT_TRUE(h.ok());
    for (size_t cut = kHeaderBytes; cut < frame.size(); ++cut) {
      std::string t = frame.substr(0, cut);
      // Make the header agree with the shorter payload, so the body decoder sees the truncation.
      const uint32_t n = static_cast<uint32_t>(cut - kHeaderBytes);
      std::memcpy(&t[16], &n, 4);
      EXPECT_FALSE(ParseFrame(t).ok()) << "cut at " << cut;
    }
  }
}

TEST(Wire, LyingCountsAreRefusedBeforeAllocating) {
  std::string payload;
  Writer w(&payload);
  w.Pod<uint64_t>(0);                  // wait_for
  w.Pod<uint32_t>(1);                  // one slice
  w.Pod<uint32_t>(1);                  // table
  w.Pod<uint8_t>(1);                   // create
  w.Pod<uint64_t>(uint64_t{1} << 60);  // keys: far more than follow
  auto h = ParseFrame(Frame(Type::kPull, payload));
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.status().message().find("pull.keys: count past the end of the frame"), std::string::npos);
  auto push_clock = [&](uint32_t worker, uint32_t workers, uint32_t flags) {
    payload.clear();
    w.Pod<uint32_t>(worker);
    w.Pod<uint32_t>(workers);
    w.Pod<uint64_t>(5);  // step
    w.Pod<uint32_t>(flags);
  };
  push_clock(2, 2, 0);  // worker not below workers
  w.Pod<uint32_t>(0);
  h = ParseFrame(Frame(Type::kPush, payload));
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.status().message().find("push.worker: not below push.workers"), std::string::npos);
  push_clock(0, 2, 6);
  w.Pod<uint32_t>(0);
  h = ParseFrame(Frame(Type::kPush, payload));
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.status().message().find("push.flags: unknown bits"), std::string::npos);
  push_clock(0, 0, 0);
  w.Pod<uint32_t>(1);
  w.Pod<uint32_t>(1);
  w.Pod<uint32_t>(100000);  // dim out of range
  w.Pod<uint64_t>(0);
  h = ParseFrame(Frame(Type::kPush, payload));
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.status().message().find("push.dim"), std::string::npos);
  payload.clear();
  w.Pod<uint32_t>(1);
  w.Str("../../etc/passwd");
  w.Pod<uint64_t>(1);
  w.Pod<uint64_t>(1);
  std::string load;
  Writer lw(&load);
  lw.Str("/ckpt");
  load += payload;
  h = ParseFrame(Frame(Type::kLoad, load));
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.status().message().find("not a plain file name"), std::string::npos);
}

TEST(Wire, RandomCorruptionNeverCrashes) {
  std::mt19937_64 rng(1);
  const std::string seeds[] = {PullFrame(), PushFrame(), Frame(Type::kStats, "")};
  int refused = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string f = seeds[i % 3];
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) f[rng() % f.size()] = static_cast<char>(rng());
    refused += !ParseFrame(f).ok();
  }
  EXPECT_GT(refused, 10000);  // most corruptions are caught (some flip only key or gradient bytes)
}

}  // namespace
}  // namespace ember::ps::wire
