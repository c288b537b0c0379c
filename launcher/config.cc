#include "ember/launcher/config.h"

#include <toml++/toml.h>

#include <functional>
#include <map>
#include <sstream>

#include "ember/common/file.h"

namespace ember::launcher {
namespace {

using Setter = std::function<Status(const toml::node&, RunConfig*)>;

std::string Where(const toml::node& n, const std::string& source) {
  const auto& s = n.source();
  if (s.begin.line == 0) return source;
  return source + ":" + std::to_string(s.begin.line);
}

template <typename T>
Setter Int(T RunConfig::*field, int64_t lo, int64_t hi) {
  return [=](const toml::node& n, RunConfig* c) {
    auto v = n.value<int64_t>();
    if (!v || n.type() != toml::node_type::integer) return Status::InvalidArgument("expected an integer");
    if (*v < lo || *v > hi)
      return Status::InvalidArgument("must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                                     std::to_string(*v));
    c->*field = static_cast<T>(*v);
    return Status::Ok();
  };
}
Setter Float(double RunConfig::*field, double lo, double hi) {
  return [=](const toml::node& n, RunConfig* c) {
    if (!n.is_number()) return Status::InvalidArgument("expected a number");
    const double v = *n.value<double>();
    if (!(v >= lo && v <= hi))
      return Status::InvalidArgument("must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    c->*field = v;
    return Status::Ok();
  };
}
Setter Str(std::string RunConfig::*field, std::vector<std::string> allowed = {}) {
  return [=](const toml::node& n, RunConfig* c) {
    if (!n.is_string()) return Status::InvalidArgument("expected a string");
    std::string v = *n.value<std::string>();
    if (!allowed.empty()) {
      bool ok = false;
      std::string list;
      for (const auto& a : allowed) {
        ok |= a == v;
        list += (list.empty() ? "" : ", ") + a;
      }
      if (!ok) return Status::InvalidArgument("'" + v + "' is not one of " + list);
    }
    c->*field = v;
    return Status::Ok();
  };
}
Setter IntList(std::vector<int64_t> RunConfig::*field) {
  return [=](const toml::node& n, RunConfig* c) {
    const toml::array* a = n.as_array();
    if (!a) return Status::InvalidArgument("expected an array of integers");
    std::vector<int64_t> out;
    for (const auto& e : *a) {
      auto v = e.value<int64_t>();
      if (!v || e.type() != toml::node_type::integer || *v < 1)
        return Status::InvalidArgument("expected an array of positive integers");
      out.push_back(*v);
    }
    c->*field = out;
    return Status::Ok();
  };
}

const std::map<std::string, Setter>& Schema() {
  static const std::map<std::string, Setter> schema = {
      {"data.train", Str(&RunConfig::train)},
      {"data.test", Str(&RunConfig::test)},
      {"data.format", Str(&RunConfig::format, {"criteo"})},
      {"data.on_bad_line", Str(&RunConfig::on_bad_line, {"error", "skip"})},
      {"data.num_dense", Int(&RunConfig::num_dense, 0, 64)},
      {"data.num_sparse", Int(&RunConfig::num_sparse, 1, 1000)},
      {"data.max_rows", Int(&RunConfig::max_rows, 0, INT64_MAX)},
      {"model.name", Str(&RunConfig::model, {"dlrm", "deepfm", "lr"})},
      {"model.bottom_mlp", IntList(&RunConfig::bottom_mlp)},
      {"model.top_mlp", IntList(&RunConfig::top_mlp)},
      {"embedding.method", Str(&RunConfig::method, {"full", "hash", "unified"})},
      {"embedding.tables", Int(&RunConfig::tables, 1, 1000)},
      {"embedding.chunks", Int(&RunConfig::chunks, 1, 64)},
      {"embedding.dim", Int(&RunConfig::dim, 1, 4096)},
      {"embedding.rows", Int(&RunConfig::rows, 1, int64_t{1} << 50)},
      {"embedding.optimizer", Str(&RunConfig::sparse_optimizer, {"sgd", "adagrad", "rowwise_adagrad", "adam"})},
      {"embedding.lr", Float(&RunConfig::sparse_lr, 0, 100)},
      {"embedding.initial_accumulator", Float(&RunConfig::initial_accumulator, 0, 1e6)},
      {"embedding.eps", Float(&RunConfig::sparse_eps, 0, 1)},
      {"embedding.init_scale", Float(&RunConfig::init_scale, 0, 10)},
      {"embedding.seed", Int(&RunConfig::embedding_seed, 0, INT64_MAX)},
      {"train.epochs", Int(&RunConfig::epochs, 1, 100000)},
      {"train.batch_size", Int(&RunConfig::batch_size, 1, 1 << 24)},
      {"train.lr", Float(&RunConfig::lr, 0, 100)},
      {"train.optimizer", Str(&RunConfig::dense_optimizer, {"adam", "adagrad", "sgd"})},
      {"train.threads", Int(&RunConfig::threads, 0, 1024)},
      {"train.seed", Int(&RunConfig::seed, 0, INT64_MAX)},
      {"train.eval_batch_size", Int(&RunConfig::eval_batch_size, 1, 1 << 24)},
      {"train.progress", Str(&RunConfig::progress, {"auto", "log", "off"})},
      {"train.log_interval_s", Float(&RunConfig::log_interval_s, 0, 1e6)},
      {"ps.shards", Int(&RunConfig::shards, 1, 4096)},
      {"checkpoint.dir", Str(&RunConfig::checkpoint_dir)},
  };
  return schema;
}

Status ApplyOverride(toml::table* root, const std::string& kv) {
  const size_t eq = kv.find('=');
  if (eq == std::string::npos || eq == 0) return Status::InvalidArgument("--set '" + kv + "': expected key=value");
  const std::string key = kv.substr(0, eq), value = kv.substr(eq + 1);
  if (!Schema().count(key)) return Status::InvalidArgument("--set: unknown config key '" + key + "'");
  toml::table* t = root;
  size_t start = 0;
  for (;;) {
    const size_t dot = key.find('.', start);
    if (dot == std::string::npos) break;
    const std::string part = key.substr(start, dot - start);
    if (!t->contains(part)) t->insert(part, toml::table{});
    t = (*t)[part].as_table();
    if (!t) return Status::InvalidArgument("--set " + key + ": '" + part + "' is not a table");
    start = dot + 1;
  }
  const std::string leaf = key.substr(start);
  try {
    toml::table parsed = toml::parse("v = " + value);
    t->insert_or_assign(leaf, *parsed.get("v"));
  } catch (const toml::parse_error&) {
    t->insert_or_assign(leaf, value);  // a bare string
  }
  return Status::Ok();
}

Status Walk(const toml::table& table, const std::string& prefix, const std::string& source, RunConfig* c) {
  for (const auto& [k, node] : table) {
    const std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (const toml::table* sub = node.as_table()) {
      EMBER_RETURN_IF_ERROR(Walk(*sub, key, source, c));
      continue;
    }
    auto it = Schema().find(key);
    if (it == Schema().end())
      return Status::InvalidArgument(Where(node, source) + ": unknown config key '" + key + "'");
    Status st = it->second(node, c);
    if (!st.ok()) return Status::InvalidArgument(Where(node, source) + ": " + key + ": " + st.message());
  }
  return Status::Ok();
}

}  // namespace

Result<RunConfig> ParseConfig(const std::string& text, const std::string& source,
                              const std::vector<std::string>& overrides) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    return Status::InvalidArgument(source + ":" + std::to_string(e.source().begin.line) + ": " +
                                   std::string(e.description()));
  }
  for (const auto& o : overrides) EMBER_RETURN_IF_ERROR(ApplyOverride(&root, o));
  RunConfig c;
  EMBER_RETURN_IF_ERROR(Walk(root, "", source, &c));
  std::ostringstream os;
  os << root;
  c.text = os.str();
  return c;
}

Result<RunConfig> LoadConfig(const std::string& path, const std::vector<std::string>& overrides) {
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  return ParseConfig(*text, path, overrides);
}

Result<workers::TrainerConfig> MakeTrainerConfig(const RunConfig& c) {
  workers::TrainerConfig t;
  t.embedding.method = c.method;
  t.embedding.dim = c.dim;
  t.embedding.rows = c.rows;
  t.embedding.tables = c.tables;
  t.embedding.chunks = c.chunks;
  t.embedding.seed = c.embedding_seed;
  t.embedding.init_scale = static_cast<float>(c.init_scale);
  if (!embedding::ParseOptimizerKind(c.sparse_optimizer, &t.embedding.optimizer.kind))
    return Status::InvalidArgument("embedding.optimizer: unknown optimizer '" + c.sparse_optimizer + "'");
  t.embedding.optimizer.lr = static_cast<float>(c.sparse_lr);
  t.embedding.optimizer.initial_accumulator = static_cast<float>(c.initial_accumulator);
  t.embedding.optimizer.eps = static_cast<float>(c.sparse_eps);
  t.model.name = c.model;
  t.model.num_dense = c.num_dense;
  t.model.bottom_mlp = c.bottom_mlp;
  t.model.top_mlp = c.top_mlp;
  for (int f = 0; f < c.num_sparse; ++f) t.fields.push_back({"C" + std::to_string(f + 1), 0});
  t.dense_optimizer = c.dense_optimizer;
  t.dense_lr = c.lr;
  t.seed = c.seed;
  return t;
}

data::CriteoOptions MakeReaderOptions(const RunConfig& c, const std::string& path, bool training) {
  data::CriteoOptions o;
  o.path = path;
  o.batch_size = training ? c.batch_size : c.eval_batch_size;
  o.num_dense = c.num_dense;
  o.num_sparse = c.num_sparse;
  o.on_bad_line = c.on_bad_line == "skip" ? data::BadLinePolicy::kSkip : data::BadLinePolicy::kError;
  o.max_rows = training ? c.max_rows : 0;
  return o;
}

}  // namespace ember::launcher
