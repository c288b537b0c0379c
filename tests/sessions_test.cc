// Session logs: readers, the SR-GNN protocol against a hand-worked example, item attributes,
// errors naming file, line and field, and the synthetic generator.
#include "ember/data/sessions.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

namespace ember::data {
namespace {

std::string TempFile(const std::string& name, const std::string& contents) {
  auto dir = std::filesystem::temp_directory_path() / ("ember_sessions_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / name).string();
  std::ofstream(path, std::ios::binary) << contents;
  return path;
}

// Session 1 (B then A by timeframe, 01-01); 2 (C alone: too short); 3 (A, B, D; 01-03; D is seen
// once and goes); 4 (B, A, E; 01-08: the boundary day); 5 (A, B, E; 01-09). No final newline.
const char* kViews =
    "session_id;user_id;item_id;timeframe;eventdate\n"
    "1;NA;A;200;2016-01-01\n"
    "1;NA;B;100;2016-01-01\n"
    "2;NA;C;0;2016-01-02\n"
    "3;7;A;0;2016-01-03\n"
    "3;7;B;10;2016-01-03\n"
    "3;7;D;20;2016-01-03\n"
    "4;NA;B;0;2016-01-08\n"
    "4;NA;A;5;2016-01-08\n"
    "4;NA;E;7;2016-01-08\n"
    "5;NA;A;0;2016-01-09\n"
    "5;NA;B;1;2016-01-09\n"
    "5;NA;E;2;2016-01-09";

SessionProtocol Small() {
  SessionProtocol p;
  p.min_item_count = 2;
  p.test_days = 1;
  return p;
}

TEST(SessionProtocol, HandWorkedDigineticaExample) {
  auto clicks = ReadDigineticaViews(TempFile("views.csv", kViews));
  ASSERT_TRUE(clicks.ok()) << clicks.status().ToString();
  ASSERT_EQ(clicks->size(), 12u);
  auto d = BuildSessions(*clicks, nullptr, {}, Small());
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  // Length-1 session 2 goes; D (seen once) goes; the split is 01-09 - 1 day = 01-08: sessions 1
  // and 3 train, 5 tests, 4 (dated exactly 01-08) is in neither.
  EXPECT_EQ(d->dropped_short, 1u);
  EXPECT_EQ(d->dropped_rare_items, 1u);
  EXPECT_EQ(d->boundary_sessions, 1u);
  // Items numbered in training order: B = 1, A = 2; E (test only) is kept as cold item 3.
  ASSERT_EQ(d->item_names, (std::vector<std::string>{"", "B", "A", "E"}));
  EXPECT_EQ(d->num_train_items, 2u);
  EXPECT_EQ(d->train_sessions, (std::vector<std::vector<uint32_t>>{{1, 2}, {2, 1}}));
  EXPECT_EQ(d->test_sessions, (std::vector<std::vector<uint32_t>>{{2, 1, 3}}));
  EXPECT_EQ(d->train_count, (std::vector<uint32_t>{0, 2, 2, 0}));
  // Expansion, longest prefix first: [2, 1] -> 3 (cold), [2] -> 1.
  ASSERT_EQ(d->test.size(), 2u);
  EXPECT_EQ(d->test[0].length, 2u);
  EXPECT_EQ(d->test_sessions[0][d->test[0].length], 3u);
  EXPECT_EQ(d->test[1].length, 1u);
  EXPECT_EQ(d->cold_examples, 1u);
  ASSERT_EQ(d->train.size(), 2u);
  EXPECT_EQ(d->train_sessions[d->train[0].session][d->train[0].length], 2u);
  EXPECT_EQ(d->train_sessions[d->train[1].session][d->train[1].length], 1u);
  EXPECT_EQ(d->Prefix(d->test_sessions, d->test[0], 1), (std::vector<uint32_t>{1}));  // left-truncated

  // SR-GNN proper: test items unseen in training go (and sessions left shorter than 2).
  SessionProtocol drop = Small();
  drop.cold_items = "drop";
  auto dd = BuildSessions(*clicks, nullptr, {}, drop);
  ASSERT_TRUE(dd.ok());
  EXPECT_EQ(dd->num_items(), 2u);
  EXPECT_EQ(dd->test_sessions, (std::vector<std::vector<uint32_t>>{{2, 1}}));
  EXPECT_EQ(dd->cold_examples, 0u);

  // Keeping the boundary day puts session 4 in training: E is no longer cold.
  SessionProtocol keep = Small();
  keep.drop_boundary = false;
  auto dk = BuildSessions(*clicks, nullptr, {}, keep);
  ASSERT_TRUE(dk.ok());
  EXPECT_EQ(dk->train_sessions.size(), 3u);
  EXPECT_EQ(dk->num_train_items, 3u);
  EXPECT_EQ(dk->cold_examples, 0u);

  // The most recent half of the 2 + 3 training examples: the last 2 (session 4's).
  keep.train_fraction = 0.5;
  auto df = BuildSessions(*clicks, nullptr, {}, keep);
  ASSERT_TRUE(df.ok());
  ASSERT_EQ(df->train.size(), 2u);
  EXPECT_EQ(df->train[0].session, 2u);
  EXPECT_EQ(df->train[1].session, 2u);
}

TEST(SessionProtocol, ItemAttributesBecomeTheCatalog) {
  const std::string items = TempFile("cats.csv", "itemId;categoryId\nA;10\nB;11\nE;10\nZ;99\n");
  auto attrs = ReadItemAttributes(items);
  ASSERT_TRUE(attrs.ok()) << attrs.status().ToString();
  EXPECT_EQ(attrs->names, (std::vector<std::string>{"categoryId"}));
  auto clicks = ReadDigineticaViews(TempFile("views2.csv", kViews));
  ASSERT_TRUE(clicks.ok());
  SessionProtocol p = Small();
  p.item_id_attribute = true;
  auto d = BuildSessions(*clicks, nullptr, *attrs, p);
  ASSERT_TRUE(d.ok());
  // Dense value ids in item order (B, A, E): 11 -> 1, 10 -> 2; Z's 99 is not in the catalog.
  ASSERT_EQ(d->items.attribute_names, (std::vector<std::string>{"categoryId", "item_id"}));
  EXPECT_EQ(d->items.values[0], (std::vector<uint32_t>{0, 1, 2, 2}));
  EXPECT_EQ(d->items.cardinality[0], 3u);
  EXPECT_EQ(d->items.values[1], (std::vector<uint32_t>{0, 1, 2, 3}));
}

TEST(SessionProtocol, YoochooseWithTestFileAndCategory) {
  const std::string train = TempFile("yc_train.txt",
                                     "SessionId\tItemId\tTime\tCategory\n"
                                     "1\t100\t5.0\tS\n1\t101\t6.5\tS\n2\t101\t7\t3\n2\t100\t8\t S\n");
  const std::string test = TempFile("yc_test.txt", "SessionId\tItemId\tTime\tCategory\n9\t100\t50\tS\n9\t102\t51\tS\n");
  SessionProtocol p;
  p.format = "yoochoose";
  p.min_item_count = 1;
  auto d = LoadSessions(train, test, "", p);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->train_sessions, (std::vector<std::vector<uint32_t>>{{1, 2}, {2, 1}}));
  EXPECT_EQ(d->test_sessions, (std::vector<std::vector<uint32_t>>{{1, 3}}));  // 102: cold
  // The clicks' Category column is the "category" attribute (the item's last one).
  ASSERT_EQ(d->items.attribute_names, (std::vector<std::string>{"category"}));
  EXPECT_EQ(d->items.cardinality[0], 3u);  // " S" and "S" differ: values are taken as written
}

TEST(SessionProtocol, ErrorsNameFileLineAndField) {
  auto bad_time = ReadDigineticaViews(TempFile("bad1.csv",
                                               "session_id;user_id;item_id;timeframe;eventdate\n"
                                               "1;NA;A;0;2016-01-01\n1;NA;B;soon;2016-01-01\n"));
  ASSERT_FALSE(bad_time.ok());
  EXPECT_NE(bad_time.status().message().find("bad1.csv:3: field 'timeframe': not an integer: 'soon'"),
            std::string::npos)
      << bad_time.status().message();
  auto bad_date = ReadDigineticaViews(TempFile("bad2.csv",
                                               "session_id;user_id;item_id;timeframe;eventdate\n"
                                               "1;NA;A;0;2016-13-01\n"));
  ASSERT_FALSE(bad_date.ok());
  EXPECT_NE(bad_date.status().message().find("bad2.csv:2: field 'eventdate'"), std::string::npos);
  auto fields = ReadDigineticaViews(TempFile("bad3.csv", "session_id;user_id;item_id;timeframe;eventdate\n1;NA;A\n"));
  ASSERT_FALSE(fields.ok());
  EXPECT_NE(fields.status().message().find("bad3.csv:2: 3 fields, expected 5"), std::string::npos);
  auto header = ReadYoochooseClicks(TempFile("bad4.txt", "a,b,c\n1,2,3\n"));
  ASSERT_FALSE(header.ok());
  EXPECT_NE(header.status().message().find("bad4.txt:1: expected a TAB-separated header"), std::string::npos);
  auto yc_time = ReadYoochooseClicks(TempFile("bad5.txt", "SessionId\tItemId\tTime\n1\t2\tnever\n"));
  ASSERT_FALSE(yc_time.ok());
  EXPECT_NE(yc_time.status().message().find("bad5.txt:2: field 'Time'"), std::string::npos);
  EXPECT_FALSE(ReadDigineticaViews("/nonexistent/views.csv").ok());
  // Everything filtered away is an error, not an empty run.
  SessionProtocol p;
  p.min_item_count = 100;
  auto clicks = ReadDigineticaViews(TempFile("views3.csv", kViews));
  ASSERT_TRUE(clicks.ok());
  auto none = BuildSessions(*clicks, nullptr, {}, p);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("no session is left"), std::string::npos);
}

TEST(SyntheticSessions, ColdItemsOnlyInTheTestDaysAndSeedsRepeat) {
  SyntheticSessionOptions o;
  o.sessions = 3000;
  o.items = 400;
  const std::string s1 = TempFile("syn1.tsv", ""), i1 = TempFile("syn1_items.tsv", "");
  auto st = WriteSyntheticSessions(o, s1, i1);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(st->sessions, 3000u);
  EXPECT_GT(st->cold_items, 20u);
  EXPECT_LT(st->cold_items, 70u);
  const std::string s2 = TempFile("syn2.tsv", ""), i2 = TempFile("syn2_items.tsv", "");
  ASSERT_TRUE(WriteSyntheticSessions(o, s2, i2).ok());
  auto read = [](const std::string& p) {
    std::ifstream in(p);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  EXPECT_EQ(read(s1), read(s2));
  EXPECT_EQ(read(i1), read(i2));
  SessionProtocol p;
  p.format = "yoochoose";
  p.test_days = o.test_days;
  auto d = LoadSessions(s1, "", i1, p);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->items.attribute_names, (std::vector<std::string>{"category", "subcategory", "brand", "price"}));
  EXPECT_GT(d->num_items() - d->num_train_items, 5u);  // cold items reach the test split
  EXPECT_GT(d->cold_examples, 20u);
  // No repeated clicks in the log (as in YOOCHOOSE's prepared files).
  auto clicks = ReadYoochooseClicks(s1);
  ASSERT_TRUE(clicks.ok());
  for (size_t i = 1; i < clicks->size(); ++i)
    if ((*clicks)[i].session == (*clicks)[i - 1].session) {
      EXPECT_NE((*clicks)[i].item, (*clicks)[i - 1].item);
    }
}

}  // namespace
}  // namespace ember::data

namespace ember::data {
namespace {

// The real sample, against an independent restatement of SR-GNN's preprocess.py (diginetica)
// run on the same file: 469 train / 39 test sessions, 309 items, 1205 / 99 examples.
TEST(SessionProtocol, RealDigineticaSampleMatchesSrGnn) {
  const std::string dir = std::string(EMBER_SHARED_DATA_DIR) + "/diginetica";
  if (!std::filesystem::exists(dir + "/sample_train-item-views.csv"))
    GTEST_SKIP() << "shared data sample absent: " << dir;
  SessionProtocol p;
  p.cold_items = "drop";
  auto d = LoadSessions(dir + "/sample_train-item-views.csv", "", dir + "/product-categories.csv", p);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->clicks, 12391u);
  EXPECT_EQ(d->train_sessions.size(), 469u);
  EXPECT_EQ(d->test_sessions.size(), 39u);
  EXPECT_EQ(d->num_items(), 309u);
  EXPECT_EQ(d->train.size(), 1205u);
  EXPECT_EQ(d->test.size(), 99u);
  EXPECT_EQ(d->items.attribute_names, (std::vector<std::string>{"categoryId"}));
  // ember's default keeps the test items unseen in training (cold): 7 more items, 118 examples.
  p.cold_items = "keep";
  auto k = LoadSessions(dir + "/sample_train-item-views.csv", "", dir + "/product-categories.csv", p);
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(k->num_items() - k->num_train_items, 7u);
  EXPECT_EQ(k->test.size(), 118u);
  EXPECT_EQ(k->cold_examples, 18u);
}

}  // namespace
}  // namespace ember::data
