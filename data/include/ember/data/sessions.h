// Session logs for next-item recommendation (docs/sessions.md).
//
// Readers: Diginetica `train-item-views.csv` (`;`: session_id;user_id;item_id;timeframe;eventdate)
// and YOOCHOOSE-style TAB files (SessionId, ItemId, Time[, Category]). Item metadata comes from a
// delimited file whose first column is the item id and whose other columns are categorical
// attributes named by the header (Diginetica `product-categories.csv`: itemId;categoryId).
//
// The protocol (SR-GNN `preprocess.py`, configurable): order each session's clicks by time; drop
// sessions of length 1; drop items seen fewer than min_item_count times; drop sessions left
// shorter than 2 (one pass); split by time (test = sessions dated after max date - test_days,
// train = before; both strict, so with drop_boundary the boundary day is in neither split) or
// take the test sessions from a second file; number items from 1 in training order; expand each
// session of length L into L - 1 (prefix -> next item) examples. SR-GNN removes test items unseen
// in training; ember keeps them by default (cold-start evaluation, numbered after the training
// items) and drops them with cold_items = "drop".
//
// Errors name the file, line and field.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ember/common/status.h"

namespace ember::data {

struct SessionProtocol {
  std::string format = "diginetica";  // "diginetica" or "yoochoose"
  int min_item_count = 5;             // items seen fewer times (whole log) are dropped
  double test_days = 7;               // time split: sessions dated after max date - test_days
  bool drop_boundary = true;          // sessions dated exactly at the boundary: in neither split
  std::string cold_items = "keep";    // test items unseen in training: "keep" or "drop" (SR-GNN)
  double train_fraction = 1.0;        // most recent share of the training examples (yoochoose1_64)
  int rare_max_count = 10;            // "rare" targets: seen 1..rare_max_count times in training
  bool item_id_attribute = false;     // add the item id as one more attribute ("item_id")
};

// One (prefix -> next item) example: session s's items [0, length) predict item `length`.
struct SessionExample {
  uint32_t session = 0;
  uint32_t length = 0;
};

struct ItemCatalog {
  std::vector<std::string> attribute_names;  // e.g. {"category"}
  // values[a][item]: attribute a of item (dense ids from 1 per attribute; 0 = unknown).
  std::vector<std::vector<uint32_t>> values;
  std::vector<uint32_t> cardinality;  // per attribute: distinct values + 1 (the unknown id)
};

struct SessionData {
  // Items numbered from 1 (0 = padding): training items first (1..num_train_items, in training
  // order), then test-only (cold) items.
  std::vector<std::string> item_names;  // by item id; [0] = ""
  uint32_t num_train_items = 0;
  std::vector<uint32_t> train_count;  // by item id: occurrences in the training sessions
  std::vector<std::vector<uint32_t>> train_sessions, test_sessions;
  std::vector<SessionExample> train, test;  // expanded examples
  ItemCatalog items;
  // What the protocol dropped, for the log.
  uint64_t clicks = 0, dropped_short = 0, dropped_rare_items = 0, boundary_sessions = 0, cold_examples = 0;
  uint32_t num_items() const { return static_cast<uint32_t>(item_names.size()) - 1; }
  bool cold(uint32_t item) const { return item > num_train_items; }
  // The example's prefix, left-truncated to its last max_length items.
  std::vector<uint32_t> Prefix(const std::vector<std::vector<uint32_t>>& sessions, const SessionExample& e,
                               int max_length) const;
};

// One click as read: session, item name, time (seconds), the session date's day (Diginetica's
// eventdate as days since 1970; YOOCHOOSE: -1, the date is the last click's time).
struct Click {
  uint64_t session = 0;
  std::string item;
  double time = 0;
  int64_t day = -1;
  std::string category;  // YOOCHOOSE's optional 4th column
};

Result<std::vector<Click>> ReadDigineticaViews(const std::string& path);
Result<std::vector<Click>> ReadYoochooseClicks(const std::string& path);
// Item attributes keyed by item name: the header names the attributes (first column: the item).
struct ItemAttributes {
  std::vector<std::string> names;
  std::vector<std::pair<std::string, std::vector<std::string>>> rows;  // item -> values
};
Result<ItemAttributes> ReadItemAttributes(const std::string& path);

// Applies the protocol to `clicks` (and, if non-null, a separate test log, consumed: no time split);
// `attributes` (may be empty) become the catalog; YOOCHOOSE categories of the clicks are an
// attribute "category" when no attribute file gives one.
Result<SessionData> BuildSessions(std::vector<Click> clicks, std::vector<Click>* test_clicks,
                                  const ItemAttributes& attributes, const SessionProtocol& protocol);

// Reads the files of a config (train log, optional test log, optional items file) and builds.
Result<SessionData> LoadSessions(const std::string& train_path, const std::string& test_path,
                                 const std::string& items_path, const SessionProtocol& protocol);

// `ember datagen sessions`: sessions whose transitions follow item metadata (category,
// subcategory, brand, price bucket); cold items appear only in the last test_days. Writes a
// YOOCHOOSE-style log (SessionId, ItemId, Time) and an items file (item_id, category,
// subcategory, brand, price).
struct SyntheticSessionOptions {
  uint64_t sessions = 20000;
  uint64_t items = 5000;
  int categories = 20;
  int subcategories = 5;  // per category
  int brands = 60;
  int price_buckets = 10;
  double cold_fraction = 0.1;  // items that appear only in the last test_days
  double mean_length = 5;      // session length 2 + Geometric(mean_length - 2)
  double days = 60;
  double test_days = 7;
  uint64_t seed = 1;
};
struct SyntheticSessionStats {
  uint64_t clicks = 0;
  uint64_t sessions = 0;
  uint64_t cold_items = 0;
};
Result<SyntheticSessionStats> WriteSyntheticSessions(const SyntheticSessionOptions& options,
                                                     const std::string& sessions_path, const std::string& items_path);

}  // namespace ember::data
