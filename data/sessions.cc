#include "ember/data/sessions.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <ctime>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <sstream>
#include <unordered_map>

#include "ember/common/file.h"
#include "ember/common/hash.h"

namespace ember::data {
namespace {

std::vector<std::string_view> Split(std::string_view line, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    const size_t end = line.find(sep, start);
    out.push_back(line.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) return out;
    start = end + 1;
  }
}

std::string_view Chomp(std::string_view s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

Status FieldError(const std::string& path, uint64_t line, const std::string& field, const std::string& what) {
  return Status::InvalidArgument(path + ":" + std::to_string(line) + ": field '" + field + "': " + what);
}

// Days since 1970-01-01 of "YYYY-MM-DD", or -1.
int64_t ParseDay(std::string_view s) {
  int y = 0, m = 0, d = 0;
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return -1;
  auto num = [&](size_t at, size_t n, int* v) {
    return std::from_chars(s.data() + at, s.data() + at + n, *v).ptr == s.data() + at + n;
  };
  if (!num(0, 4, &y) || !num(5, 2, &m) || !num(8, 2, &d) || m < 1 || m > 12 || d < 1 || d > 31) return -1;
  // Howard Hinnant's days_from_civil.
  y -= m <= 2;
  const int era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * static_cast<unsigned>(m + (m > 2 ? -3 : 9)) + 2) / 5 + static_cast<unsigned>(d) - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return static_cast<int64_t>(era) * 146097 + static_cast<int64_t>(doe) - 719468;
}

template <typename T>
bool ParseNumber(std::string_view s, T* v) {
  if (s.empty()) return false;
  if constexpr (std::is_floating_point_v<T>) {
    try {
      size_t used = 0;
      *v = static_cast<T>(std::stod(std::string(s), &used));
      return used == s.size() && std::isfinite(*v);
    } catch (...) {
      return false;
    }
  } else {
    return std::from_chars(s.data(), s.data() + s.size(), *v).ptr == s.data() + s.size();
  }
}

// Calls fn(line number, fields) for each non-empty line after the header; a line with another
// number of fields than `expected` is an error naming the file and line (`what` lists them).
Status ForEachRow(std::istream& in, const std::string& path, char sep, size_t expected, const std::string& what,
                  const std::function<Status(uint64_t, const std::vector<std::string_view>&)>& fn) {
  std::string line;
  uint64_t n = 1;
  while (std::getline(in, line)) {
    ++n;
    const std::string_view l = Chomp(line);
    if (l.empty()) continue;
    const auto f = Split(l, sep);
    if (f.size() != expected)
      return Status::InvalidArgument(path + ":" + std::to_string(n) + ": " + std::to_string(f.size()) +
                                     " fields, expected " + std::to_string(expected) + what);
    EMBER_RETURN_IF_ERROR(fn(n, f));
  }
  return Status::Ok();
}

Result<std::ifstream> OpenText(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::NotFound("cannot open " + path);
  return in;
}

}  // namespace

std::vector<uint32_t> SessionData::Prefix(const std::vector<std::vector<uint32_t>>& sessions, const SessionExample& e,
                                          int max_length) const {
  const auto& s = sessions[e.session];
  const uint32_t from = max_length > 0 && e.length > static_cast<uint32_t>(max_length) ? e.length - max_length : 0;
  return {s.begin() + from, s.begin() + e.length};
}

// Opens a delimited text file and reads its header line (kept: the views into it stay valid).
Status OpenWithHeader(const std::string& path, std::ifstream* in, std::string* header) {
  EMBER_ASSIGN_OR_RETURN(*in, OpenText(path));
  if (!std::getline(*in, *header)) return Status::InvalidArgument(path + ": empty file (expected a header line)");
  header->resize(Chomp(*header).size());
  return Status::Ok();
}

Result<std::vector<Click>> ReadDigineticaViews(const std::string& path) {
  std::ifstream in;
  std::string head;
  EMBER_RETURN_IF_ERROR(OpenWithHeader(path, &in, &head));
  const auto header = Split(head, ';');
  static const char* kNames[] = {"session_id", "user_id", "item_id", "timeframe", "eventdate"};
  if (header.size() != 5 || !std::equal(header.begin(), header.end(), std::begin(kNames)))
    return Status::InvalidArgument(path +
                                   ":1: expected the Diginetica header session_id;user_id;item_id;timeframe;eventdate");
  std::vector<Click> clicks;
  EMBER_RETURN_IF_ERROR(
      ForEachRow(in, path, ';', 5, " (session_id;user_id;item_id;timeframe;eventdate)",
                 [&](uint64_t n, const std::vector<std::string_view>& f) {
                   Click c;
                   int64_t ms = 0;
                   if (!ParseNumber(f[0], &c.session))
                     return FieldError(path, n, "session_id", "not a session number: '" + std::string(f[0]) + "'");
                   if (f[2].empty()) return FieldError(path, n, "item_id", "empty");
                   c.item = std::string(f[2]);
                   if (!ParseNumber(f[3], &ms))
                     return FieldError(path, n, "timeframe", "not an integer: '" + std::string(f[3]) + "'");
                   c.time = static_cast<double>(ms) / 1000.0;
                   c.day = ParseDay(f[4]);
                   if (c.day < 0)
                     return FieldError(path, n, "eventdate", "not a YYYY-MM-DD date: '" + std::string(f[4]) + "'");
                   clicks.push_back(std::move(c));
                   return Status::Ok();
                 }));
  return clicks;
}

Result<std::vector<Click>> ReadYoochooseClicks(const std::string& path) {
  std::ifstream in;
  std::string head;
  EMBER_RETURN_IF_ERROR(OpenWithHeader(path, &in, &head));
  const auto header = Split(head, '\t');
  int col_session = -1, col_item = -1, col_time = -1, col_category = -1;
  for (size_t i = 0; i < header.size(); ++i) {
    if (header[i] == "SessionId") col_session = static_cast<int>(i);
    if (header[i] == "ItemId") col_item = static_cast<int>(i);
    if (header[i] == "Time") col_time = static_cast<int>(i);
    if (header[i] == "Category") col_category = static_cast<int>(i);
  }
  if (col_session < 0 || col_item < 0 || col_time < 0)
    return Status::InvalidArgument(path +
                                   ":1: expected a TAB-separated header with SessionId, ItemId and Time "
                                   "(and optionally Category)");
  std::vector<Click> clicks;
  EMBER_RETURN_IF_ERROR(
      ForEachRow(in, path, '\t', header.size(), "", [&](uint64_t n, const std::vector<std::string_view>& f) {
        Click c;
        if (!ParseNumber(f[col_session], &c.session))
          return FieldError(path, n, "SessionId", "not a session number: '" + std::string(f[col_session]) + "'");
        if (f[col_item].empty()) return FieldError(path, n, "ItemId", "empty");
        c.item = std::string(f[col_item]);
        if (!ParseNumber(f[col_time], &c.time))
          return FieldError(path, n, "Time", "not a number of seconds: '" + std::string(f[col_time]) + "'");
        if (col_category >= 0) c.category = std::string(f[col_category]);
        clicks.push_back(std::move(c));
        return Status::Ok();
      }));
  return clicks;
}

Result<ItemAttributes> ReadItemAttributes(const std::string& path) {
  std::ifstream in;
  std::string head;
  EMBER_RETURN_IF_ERROR(OpenWithHeader(path, &in, &head));
  const char sep = head.find('\t') != std::string::npos ? '\t' : head.find(';') != std::string::npos ? ';' : ',';
  const auto header = Split(head, sep);
  if (header.size() < 2)
    return Status::InvalidArgument(path + ":1: expected a header naming the item column and at least one attribute");
  ItemAttributes out;
  for (size_t i = 1; i < header.size(); ++i) {
    if (header[i].empty()) return Status::InvalidArgument(path + ":1: attribute " + std::to_string(i) + " has no name");
    out.names.emplace_back(header[i]);
  }
  EMBER_RETURN_IF_ERROR(
      ForEachRow(in, path, sep, header.size(), "", [&](uint64_t n, const std::vector<std::string_view>& f) {
        if (f[0].empty()) return FieldError(path, n, std::string(header[0]), "empty item id");
        out.rows.emplace_back(std::string(f[0]), std::vector<std::string>(f.begin() + 1, f.end()));
        return Status::Ok();
      }));
  return out;
}

Result<SessionData> BuildSessions(std::vector<Click> clicks, std::vector<Click>* test_clicks,
                                  const ItemAttributes& attributes, const SessionProtocol& p) {
  if (p.cold_items != "keep" && p.cold_items != "drop")
    return Status::InvalidArgument("data.cold_items: \"" + p.cold_items + "\" (expected \"keep\" or \"drop\")");
  if (!(p.train_fraction > 0 && p.train_fraction <= 1))
    return Status::InvalidArgument("data.train_fraction: " + std::to_string(p.train_fraction) + " (expected (0, 1])");
  SessionData d;
  d.clicks = clicks.size() + (test_clicks ? test_clicks->size() : 0);
  struct Session {
    uint64_t id;
    double date;
    bool test_log;
    std::vector<std::pair<double, std::string>> clicks;  // (time, item)
  };
  std::vector<Session> sessions;
  std::unordered_map<std::string, std::string> click_category;
  auto group = [&](std::vector<Click>& log, bool test_log) {
    std::unordered_map<uint64_t, size_t> index;
    for (auto& c : log) {
      auto [it, inserted] = index.emplace(c.session, sessions.size());
      if (inserted) sessions.push_back({c.session, 0, test_log, {}});
      Session& s = sessions[it->second];
      // Diginetica: the date of the last row in file order; YOOCHOOSE: the latest click.
      s.date = c.day >= 0 ? static_cast<double>(c.day) * 86400.0 : std::max(s.date, c.time);
      if (!c.category.empty()) click_category[c.item] = c.category;
      s.clicks.emplace_back(c.time, std::move(c.item));
    }
  };
  group(clicks, false);
  if (test_clicks) group(*test_clicks, true);
  for (auto& s : sessions)
    std::stable_sort(s.clicks.begin(), s.clicks.end(), [](auto& a, auto& b) { return a.first < b.first; });
  // Length-1 sessions go; items are counted over what is left; rare items go; short sessions go.
  std::unordered_map<std::string, uint64_t> count;
  std::vector<Session> kept;
  for (auto& s : sessions) {
    if (s.clicks.size() < 2) {
      ++d.dropped_short;
      continue;
    }
    for (auto& c : s.clicks) ++count[c.second];
    kept.push_back(std::move(s));
  }
  sessions.clear();
  for (auto& [item, c] : count)
    if (c < static_cast<uint64_t>(p.min_item_count)) ++d.dropped_rare_items;
  for (auto& s : kept) {
    std::vector<std::pair<double, std::string>> left;
    for (auto& c : s.clicks)
      if (count[c.second] >= static_cast<uint64_t>(p.min_item_count)) left.push_back(std::move(c));
    if (left.size() < 2) {
      ++d.dropped_short;
      continue;
    }
    s.clicks = std::move(left);
    sessions.push_back(std::move(s));
  }
  if (sessions.empty()) return Status::InvalidArgument("no session is left after the protocol's filters");
  // The split.
  std::vector<const Session*> train, test;
  if (test_clicks) {
    for (auto& s : sessions) (s.test_log ? test : train).push_back(&s);
  } else {
    double max_date = 0;
    for (auto& s : sessions) max_date = std::max(max_date, s.date);
    const double split = max_date - p.test_days * 86400.0;
    for (auto& s : sessions) {
      if (s.date < split)
        train.push_back(&s);
      else if (s.date > split)
        test.push_back(&s);
      else if (p.drop_boundary)
        ++d.boundary_sessions;
      else
        train.push_back(&s);
    }
  }
  auto by_date = [](const Session* a, const Session* b) { return a->date < b->date; };
  std::stable_sort(train.begin(), train.end(), by_date);
  std::stable_sort(test.begin(), test.end(), by_date);
  if (train.empty()) return Status::InvalidArgument("the split leaves no training session");
  // Numbering: training items from 1 in training order, then (kept) cold items in test order.
  std::unordered_map<std::string, uint32_t> ids;
  d.item_names.push_back("");
  auto number = [&](const std::string& item) {
    auto [it, inserted] = ids.emplace(item, static_cast<uint32_t>(d.item_names.size()));
    if (inserted) d.item_names.push_back(item);
    return it->second;
  };
  for (const Session* s : train) {
    std::vector<uint32_t> seq;
    for (auto& c : s->clicks) seq.push_back(number(c.second));
    d.train_sessions.push_back(std::move(seq));
  }
  d.num_train_items = static_cast<uint32_t>(d.item_names.size() - 1);
  for (const Session* s : test) {
    std::vector<uint32_t> seq;
    for (auto& c : s->clicks) {
      auto it = ids.find(c.second);
      if (it != ids.end())
        seq.push_back(it->second);
      else if (p.cold_items == "keep")
        seq.push_back(number(c.second));
    }
    if (seq.size() >= 2) d.test_sessions.push_back(std::move(seq));
  }
  d.train_count.assign(d.item_names.size(), 0);
  for (auto& s : d.train_sessions)
    for (uint32_t i : s) ++d.train_count[i];
  // Expansion: each session of length L gives L - 1 examples, longest prefix first (SR-GNN).
  auto expand = [](const std::vector<std::vector<uint32_t>>& ss, std::vector<SessionExample>* out) {
    for (uint32_t s = 0; s < ss.size(); ++s)
      for (uint32_t len = static_cast<uint32_t>(ss[s].size()) - 1; len >= 1; --len) out->push_back({s, len});
  };
  expand(d.train_sessions, &d.train);
  expand(d.test_sessions, &d.test);
  if (p.train_fraction < 1) {
    const size_t keep = static_cast<size_t>(static_cast<double>(d.train.size()) * p.train_fraction);
    if (keep == 0) return Status::InvalidArgument("data.train_fraction leaves no training example");
    d.train.erase(d.train.begin(), d.train.end() - static_cast<long>(keep));
  }
  for (auto& e : d.test) d.cold_examples += d.cold(d.test_sessions[e.session][e.length]);
  // The catalog: attributes of every numbered item, dense ids per attribute (0 = unknown).
  std::unordered_map<std::string, size_t> attr_row;
  for (size_t r = 0; r < attributes.rows.size(); ++r) attr_row.emplace(attributes.rows[r].first, r);
  auto add_attribute = [&](const std::string& name, const std::function<std::string(uint32_t)>& value_of) {
    std::unordered_map<std::string, uint32_t> vids;
    std::vector<uint32_t> values(d.item_names.size(), 0);
    for (uint32_t i = 1; i < d.item_names.size(); ++i) {
      const std::string v = value_of(i);
      if (v.empty()) continue;
      values[i] = vids.emplace(v, static_cast<uint32_t>(vids.size() + 1)).first->second;
    }
    d.items.attribute_names.push_back(name);
    d.items.values.push_back(std::move(values));
    d.items.cardinality.push_back(static_cast<uint32_t>(vids.size() + 1));
  };
  for (size_t a = 0; a < attributes.names.size(); ++a)
    add_attribute(attributes.names[a], [&](uint32_t i) {
      auto it = attr_row.find(d.item_names[i]);
      return it == attr_row.end() ? std::string() : attributes.rows[it->second].second[a];
    });
  if (!click_category.empty() &&
      std::find(attributes.names.begin(), attributes.names.end(), "category") == attributes.names.end())
    add_attribute("category", [&](uint32_t i) {
      auto it = click_category.find(d.item_names[i]);
      return it == click_category.end() ? std::string() : it->second;
    });
  if (p.item_id_attribute) add_attribute("item_id", [&](uint32_t i) { return d.item_names[i]; });
  return d;
}

Result<SessionData> LoadSessions(const std::string& train_path, const std::string& test_path,
                                 const std::string& items_path, const SessionProtocol& p) {
  auto read = [&](const std::string& path) -> Result<std::vector<Click>> {
    if (p.format == "diginetica") return ReadDigineticaViews(path);
    if (p.format == "yoochoose") return ReadYoochooseClicks(path);
    return Status::InvalidArgument("data.format: \"" + p.format + "\" is not a session format (diginetica, yoochoose)");
  };
  EMBER_ASSIGN_OR_RETURN(auto clicks, read(train_path));
  std::vector<Click> test;
  if (!test_path.empty()) {
    EMBER_ASSIGN_OR_RETURN(test, read(test_path));
  }
  ItemAttributes attributes;
  if (!items_path.empty()) {
    EMBER_ASSIGN_OR_RETURN(attributes, ReadItemAttributes(items_path));
  }
  return BuildSessions(std::move(clicks), test_path.empty() ? nullptr : &test, attributes, p);
}

Result<SyntheticSessionStats> WriteSyntheticSessions(const SyntheticSessionOptions& o, const std::string& sessions_path,
                                                     const std::string& items_path) {
  if (o.items < 10 || o.sessions < 1 || o.categories < 1 || o.subcategories < 1 || o.brands < 1 ||
      o.price_buckets < 1 || !(o.cold_fraction >= 0 && o.cold_fraction < 1) || !(o.mean_length >= 2) ||
      !(o.test_days > 0 && o.test_days < o.days))
    return Status::InvalidArgument(
        "datagen sessions: need items >= 10, sessions >= 1, categories, subcategories, brands and price buckets >= 1, "
        "cold fraction in [0, 1), mean length >= 2 and 0 < test days < days");
  std::mt19937_64 rng(o.seed);
  std::uniform_real_distribution<double> unit(0, 1);
  const int subcats = o.categories * o.subcategories;
  // Items: a subcategory (Zipf-ish sizes), a brand from the subcategory's few, a price bucket near
  // the subcategory's typical price, a popularity; some are cold (only in the test period).
  struct Item {
    int subcat, brand, price;
    double pop;
    bool cold;
  };
  std::vector<Item> items(o.items);
  std::vector<std::vector<uint32_t>> by_subcat(subcats);
  std::vector<int> typical_price(subcats);
  std::vector<std::array<int, 3>> subcat_brands(subcats);
  for (int s = 0; s < subcats; ++s) {
    typical_price[s] = static_cast<int>(rng() % o.price_buckets);
    for (auto& b : subcat_brands[s]) b = static_cast<int>(rng() % o.brands);
  }
  std::vector<double> subcat_weights(subcats);
  for (int s = 0; s < subcats; ++s) subcat_weights[s] = 1.0 / std::pow(1 + s, 0.7);
  std::discrete_distribution<int> subcat_size(subcat_weights.begin(), subcat_weights.end());
  uint64_t cold_items = 0;
  for (uint32_t i = 0; i < o.items; ++i) {
    Item& it = items[i];
    it.subcat = subcat_size(rng);
    it.brand = unit(rng) < 0.8 ? subcat_brands[it.subcat][rng() % 3] : static_cast<int>(rng() % o.brands);
    it.price = std::clamp(
        typical_price[it.subcat] + static_cast<int>(std::lround(std::normal_distribution<double>(0, 1.2)(rng))), 0,
        o.price_buckets - 1);
    it.pop = std::pow(unit(rng), 2.0) + 0.02;  // skewed popularity
    it.cold = unit(rng) < o.cold_fraction;
    cold_items += it.cold;
    by_subcat[it.subcat].push_back(i);
  }
  // Related subcategories: the others of the same category.
  auto next_item = [&](size_t cur_index, bool test_period) -> int64_t {
    const Item& cur = items[cur_index];
    const double r = unit(rng);
    int s = cur.subcat;
    if (r > 0.65 && r <= 0.9)
      s = (cur.subcat / o.subcategories) * o.subcategories + static_cast<int>(rng() % o.subcategories);
    else if (r > 0.9)
      s = subcat_size(rng);
    const auto& cands = by_subcat[s];
    if (cands.empty()) return -1;
    std::vector<double> w(cands.size());
    for (size_t j = 0; j < cands.size(); ++j) {
      const Item& c = items[cands[j]];
      if ((c.cold && !test_period) || cands[j] == cur_index) continue;  // no repeated clicks
      w[j] = c.pop * (c.brand == cur.brand ? 4.0 : 1.0) * std::exp(-0.8 * std::abs(c.price - cur.price)) *
             (c.cold ? 1.5 : 1.0);
    }
    double total = 0;
    for (double x : w) total += x;
    if (total <= 0) return -1;
    return cands[std::discrete_distribution<size_t>(w.begin(), w.end())(rng)];
  };
  std::ostringstream log;
  log << "SessionId\tItemId\tTime\n";
  SyntheticSessionStats stats;
  const double start = 1.45e9;  // 2015-12-14: times are plausible Unix seconds
  const double test_start = o.days - o.test_days;
  std::vector<double> pops(o.items);
  for (size_t i = 0; i < o.items; ++i) pops[i] = items[i].pop;
  std::discrete_distribution<size_t> first_item(pops.begin(), pops.end());
  for (uint64_t s = 1; s <= o.sessions; ++s) {
    const double day = o.days * static_cast<double>(s - 1) / static_cast<double>(o.sessions);
    const bool test_period = day >= test_start;
    int len = 2 + static_cast<int>(std::geometric_distribution<int>(1.0 / (o.mean_length - 1))(rng));
    len = std::min(len, 30);
    size_t cur = first_item(rng);
    while (items[cur].cold && !test_period) cur = first_item(rng);
    double t = start + day * 86400.0 + unit(rng) * 3600.0;
    for (int k = 0; k < len; ++k) {
      log << s << '\t' << (100000 + cur) << '\t' << std::fixed << t << '\n';
      ++stats.clicks;
      t += 20 + unit(rng) * 120;
      const int64_t nx = next_item(cur, test_period);
      if (nx < 0) break;
      cur = static_cast<size_t>(nx);
    }
    ++stats.sessions;
  }
  std::ostringstream meta;
  meta << "item_id\tcategory\tsubcategory\tbrand\tprice\n";
  for (uint32_t i = 0; i < o.items; ++i) {
    const Item& it = items[i];
    meta << (100000 + i) << "\tc" << it.subcat / o.subcategories << "\ts" << it.subcat << "\tb" << it.brand << "\tp"
         << it.price << '\n';
  }
  stats.cold_items = cold_items;
  EMBER_RETURN_IF_ERROR(WriteFileAtomic(sessions_path, log.str()));
  EMBER_RETURN_IF_ERROR(WriteFileAtomic(items_path, meta.str()));
  return stats;
}

}  // namespace ember::data
