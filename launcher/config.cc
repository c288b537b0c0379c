#include "ember/launcher/config.h"

#include <toml++/toml.h>

#include <functional>
#include <map>
#include <sstream>

#include "ember/common/file.h"
#include "ember/data/field_stats.h"
#include "ember/embedding/plan.h"

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
Setter Bool(bool RunConfig::*field) {
  return [=](const toml::node& n, RunConfig* c) {
    if (!n.is_boolean()) return Status::InvalidArgument("expected true or false");
    c->*field = *n.value<bool>();
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

template <typename S, typename T>
Setter SubInt(S RunConfig::*sub, T S::*field, int64_t lo, int64_t hi) {
  return [=](const toml::node& n, RunConfig* c) {
    auto v = n.value<int64_t>();
    if (!v || n.type() != toml::node_type::integer) return Status::InvalidArgument("expected an integer");
    if (*v < lo || *v > hi)
      return Status::InvalidArgument("must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    (c->*sub).*field = static_cast<T>(*v);
    return Status::Ok();
  };
}
template <typename S>
Setter SubFloat(S RunConfig::*sub, double S::*field, double lo, double hi) {
  return [=](const toml::node& n, RunConfig* c) {
    if (!n.is_number()) return Status::InvalidArgument("expected a number");
    const double v = *n.value<double>();
    if (!(v >= lo && v <= hi))
      return Status::InvalidArgument("must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    (c->*sub).*field = v;
    return Status::Ok();
  };
}
// A number (fraction or bytes) or a string ("1/100", "64MiB"), checked by ParseBudget.
Setter BudgetSetter() {
  return [](const toml::node& n, RunConfig* c) {
    std::string text;
    if (n.is_string()) {
      text = *n.value<std::string>();
    } else if (n.is_integer()) {
      text = std::to_string(*n.value<int64_t>());
    } else if (n.is_number()) {
      char buf[64];
      std::snprintf(buf, sizeof(buf), "%g", *n.value<double>());
      text = buf;
    } else {
      return Status::InvalidArgument("expected a fraction, bytes or a string such as \"64MiB\"");
    }
    auto b = embedding::ParseBudget(text);
    if (!b.ok()) {  // Walk names the key
      std::string m = b.status().message();
      if (m.rfind("embedding.budget: ", 0) == 0) m = m.substr(18);
      return Status::InvalidArgument(m);
    }
    c->budget = text;
    return Status::Ok();
  };
}
Setter FieldMethods() {
  return [](const toml::node& n, RunConfig* c) {
    const toml::table* t = n.as_table();
    if (!t) return Status::InvalidArgument("expected a table of field = method, e.g. { C1 = \"full\" }");
    c->field_methods.clear();
    for (const auto& [k, v] : *t) {
      if (!v.is_string()) return Status::InvalidArgument("field " + std::string(k.str()) + ": expected a method name");
      const std::string m = *v.value<std::string>();
      if (m != "full" && m != "hash" && m != "dsl")
        return Status::InvalidArgument("field " + std::string(k.str()) + ": '" + m + "' is not one of full, hash, dsl");
      c->field_methods.emplace_back(std::string(k.str()), m);
    }
    return Status::Ok();
  };
}

Setter FieldAdmitAfter() {
  return [](const toml::node& n, RunConfig* c) {
    const toml::table* t = n.as_table();
    if (!t) return Status::InvalidArgument("expected a table of field = sightings, e.g. { C3 = 10 }");
    c->field_admit_after.clear();
    for (const auto& [k, v] : *t) {
      auto x = v.value<int64_t>();
      if (!v.is_integer() || !x || *x < 0 || *x > UINT32_MAX)
        return Status::InvalidArgument("field " + std::string(k.str()) + ": expected a sighting count >= 0");
      c->field_admit_after.emplace_back(std::string(k.str()), *x);
    }
    return Status::Ok();
  };
}

Setter ChunkList() {
  return [](const toml::node& n, RunConfig* c) {
    const toml::array* a = n.as_array();
    if (!a) return Status::InvalidArgument("expected an array of integers (chunks per field, 0 = embedding.chunks)");
    std::vector<int64_t> out;
    for (const auto& e : *a) {
      auto v = e.value<int64_t>();
      if (!v || e.type() != toml::node_type::integer || *v < 0 || *v > 64)
        return Status::InvalidArgument("expected integers in [0, 64]");
      out.push_back(*v);
    }
    c->field_chunks = out;
    return Status::Ok();
  };
}

Setter StrList(std::vector<std::string> RunConfig::*field, bool RunConfig::*set) {
  return [=](const toml::node& n, RunConfig* c) {
    const toml::array* a = n.as_array();
    if (!a) return Status::InvalidArgument("expected an array of strings");
    std::vector<std::string> out;
    for (const auto& e : *a) {
      if (!e.is_string()) return Status::InvalidArgument("expected an array of strings");
      out.push_back(*e.value<std::string>());
    }
    c->*field = out;
    c->*set = true;
    return Status::Ok();
  };
}
Setter FloatList(std::vector<double> RunConfig::*field) {
  return [=](const toml::node& n, RunConfig* c) {
    const toml::array* a = n.as_array();
    if (!a) return Status::InvalidArgument("expected an array of numbers");
    std::vector<double> out;
    for (const auto& e : *a) {
      if (!e.is_number() || !(*e.value<double>() >= 0)) return Status::InvalidArgument("expected numbers >= 0");
      out.push_back(*e.value<double>());
    }
    c->*field = out;
    return Status::Ok();
  };
}
Setter SessionBool(bool data::SessionProtocol::*field) {
  return [=](const toml::node& n, RunConfig* c) {
    if (!n.is_boolean()) return Status::InvalidArgument("expected true or false");
    c->sessions.*field = *n.value<bool>();
    return Status::Ok();
  };
}
Setter ColdItems() {
  return [](const toml::node& n, RunConfig* c) {
    const std::string v = n.is_string() ? *n.value<std::string>() : "";
    if (v != "keep" && v != "drop") return Status::InvalidArgument("expected \"keep\" or \"drop\"");
    c->sessions.cold_items = v;
    return Status::Ok();
  };
}

const std::map<std::string, Setter>& Schema() {
  static const std::map<std::string, Setter> schema = {
      {"data.train", Str(&RunConfig::train)},
      {"data.test", Str(&RunConfig::test)},
      {"data.valid", Str(&RunConfig::valid)},
      {"data.format", Str(&RunConfig::format, {"criteo", "diginetica", "yoochoose"})},
      {"data.items", Str(&RunConfig::items)},
      {"data.min_item_count", SubInt(&RunConfig::sessions, &data::SessionProtocol::min_item_count, 1, INT32_MAX)},
      {"data.test_days", SubFloat(&RunConfig::sessions, &data::SessionProtocol::test_days, 0, 1e6)},
      {"data.drop_boundary", SessionBool(&data::SessionProtocol::drop_boundary)},
      {"data.cold_items", ColdItems()},
      {"data.train_fraction", SubFloat(&RunConfig::sessions, &data::SessionProtocol::train_fraction, 1e-9, 1)},
      {"data.rare_max_count", SubInt(&RunConfig::sessions, &data::SessionProtocol::rare_max_count, 1, INT32_MAX)},
      {"data.item_id_attribute", SessionBool(&data::SessionProtocol::item_id_attribute)},
      {"data.valid_fraction", Float(&RunConfig::valid_fraction, 0, 0.9)},
      {"data.on_bad_line", Str(&RunConfig::on_bad_line, {"error", "skip"})},
      {"data.num_dense", Int(&RunConfig::num_dense, 0, 64)},
      {"data.num_sparse", Int(&RunConfig::num_sparse, 1, 1000)},
      {"data.max_rows", Int(&RunConfig::max_rows, 0, INT64_MAX)},
      {"data.vocab", Str(&RunConfig::vocab)},
      {"data.max_line_bytes", Int(&RunConfig::max_line_bytes, 1024, int64_t{1} << 30)},
      {"model.name", Str(&RunConfig::model, {"dlrm", "deepfm", "lr", "m2trec", "sasrec"})},
      {"model.layers", Int(&RunConfig::layers, 1, 64)},
      {"model.attention_heads", Int(&RunConfig::attention_heads, 1, 64)},
      {"model.dropout", Float(&RunConfig::dropout, 0, 0.99)},
      {"model.max_length", Int(&RunConfig::max_length, 1, 4096)},
      {"model.pooling", Str(&RunConfig::pooling, {"mean", "last"})},
      {"model.category_heads", StrList(&RunConfig::category_heads, &RunConfig::category_heads_set)},
      {"model.head_weights", FloatList(&RunConfig::head_weights)},
      {"train.candidates", Int(&RunConfig::candidates, 0, INT64_MAX)},
      {"train.patience", Int(&RunConfig::patience, 0, 100000)},
      {"model.bottom_mlp", IntList(&RunConfig::bottom_mlp)},
      {"model.top_mlp", IntList(&RunConfig::top_mlp)},
      {"embedding.method", Str(&RunConfig::method, {"full", "hash", "unified", "dsl", "optembed"})},
      {"embedding.budget", BudgetSetter()},
      {"embedding.precision", Str(&RunConfig::precision, {"fp32", "fp16"})},
      {"embedding.field_chunks", ChunkList()},
      {"embedding.field_methods", FieldMethods()},
      {"embedding.collisionless_below", Int(&RunConfig::collisionless_below, 0, INT64_MAX)},
      {"embedding.density", Float(&RunConfig::density, 1e-6, 1)},
      {"embedding.admit_after", Int(&RunConfig::admit_after, 0, UINT32_MAX)},
      {"embedding.field_admit_after", FieldAdmitAfter()},
      {"embedding.admit_probability", Float(&RunConfig::admit_probability, 1e-9, 1)},
      {"embedding.admit_sketch_width", Int(&RunConfig::admit_sketch_width, 0, int64_t{1} << 26)},
      {"embedding.admit_sketch_depth", Int(&RunConfig::admit_sketch_depth, 1, 64)},
      {"embedding.expire_after_steps", Int(&RunConfig::expire_after_steps, 0, INT64_MAX)},
      {"embedding.fallback", Str(&RunConfig::fallback, {"oov", "hash"})},
      {"embedding.fallback_rows", Int(&RunConfig::fallback_rows, 0, int64_t{1} << 40)},
      {"optembed.alpha", SubFloat(&RunConfig::optembed, &workers::OptEmbedConfig::alpha, 0, 1e3)},
      {"optembed.threshold_lr", SubFloat(&RunConfig::optembed, &workers::OptEmbedConfig::threshold_lr, 0, 1e3)},
      {"optembed.population", SubInt(&RunConfig::optembed, &workers::OptEmbedConfig::population, 2, 10000)},
      {"optembed.rounds", SubInt(&RunConfig::optembed, &workers::OptEmbedConfig::rounds, 0, 10000)},
      {"optembed.mutants", SubInt(&RunConfig::optembed, &workers::OptEmbedConfig::mutants, 0, 10000)},
      {"optembed.children", SubInt(&RunConfig::optembed, &workers::OptEmbedConfig::children, 0, 10000)},
      {"optembed.keep", SubInt(&RunConfig::optembed, &workers::OptEmbedConfig::keep, 1, 10000)},
      {"optembed.mutate_prob", SubFloat(&RunConfig::optembed, &workers::OptEmbedConfig::mutate_prob, 0, 1)},
      {"optembed.search_samples", SubInt(&RunConfig::optembed, &workers::OptEmbedConfig::search_samples, 1, INT64_MAX)},
      {"optembed.seed", SubInt(&RunConfig::optembed, &workers::OptEmbedConfig::seed, 0, INT64_MAX)},
      {"optembed.retrain_init", Str(&RunConfig::retrain_init, {"fresh", "inherit"})},
      {"optembed.retrain_epochs", Int(&RunConfig::retrain_epochs, 0, 100000)},
      {"dsl.interval", SubInt(&RunConfig::dsl, &workers::DslConfig::interval, 1, INT64_MAX)},
      {"dsl.p0", SubFloat(&RunConfig::dsl, &workers::DslConfig::p0, 0, 1)},
      {"dsl.p_min", SubFloat(&RunConfig::dsl, &workers::DslConfig::p_min, 0, 1)},
      {"dsl.grow_window", SubInt(&RunConfig::dsl, &workers::DslConfig::grow_window, 1, INT64_MAX)},
      {"dsl.decay", Str(&RunConfig::dsl_decay, {"cosine", "none"})},
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
      {"ps.servers", Int(&RunConfig::ps_servers, 1, 4096)},
      {"ps.bind", Str(&RunConfig::ps_bind)},
      {"ps.timeout_s", Float(&RunConfig::ps_timeout_s, 0.01, 1e6)},
      {"ps.idle_timeout_s", Float(&RunConfig::ps_idle_timeout_s, 0.01, 1e7)},
      {"ps.max_frame_bytes", Int(&RunConfig::ps_max_frame_bytes, 1 << 16, UINT32_MAX)},
      {"ps.max_buffered_bytes", Int(&RunConfig::ps_max_buffered_bytes, 1 << 20, INT64_MAX)},
      {"train.collective", Str(&RunConfig::collective, {"auto", "mpi", "nccl"})},
      {"train.mode", Str(&RunConfig::mode, {"sync", "bounded", "async"})},
      {"train.staleness", Int(&RunConfig::staleness, 0, 1000000)},
      {"train.prefetch", Bool(&RunConfig::prefetch)},
      {"checkpoint.dir", Str(&RunConfig::checkpoint_dir)},
      {"checkpoint.every_steps", Int(&RunConfig::checkpoint_every_steps, 0, INT64_MAX)},
      {"checkpoint.keep", Int(&RunConfig::checkpoint_keep, 0, 1000000)},
      {"monitoring.port", Int(&RunConfig::monitoring_port, 0, 65535)},
      {"monitoring.bind", Str(&RunConfig::monitoring_bind)},
      {"monitoring.linger_s", Float(&RunConfig::monitoring_linger_s, 0, 86400)},
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
    if (const toml::table* sub = node.as_table(); sub && !Schema().count(key)) {
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
  for (const auto& o : overrides) {
    // Each value checked on its own first, so that its error names the --set it came from.
    toml::table alone;
    EMBER_RETURN_IF_ERROR(ApplyOverride(&alone, o));
    RunConfig scratch;
    EMBER_RETURN_IF_ERROR(Walk(alone, "", "--set '" + o + "'", &scratch));
    EMBER_RETURN_IF_ERROR(ApplyOverride(&root, o));
  }
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

namespace {
// The index of categorical field `name` ("C1".."C<num_sparse>"), or an error naming `key`.
Result<size_t> FieldNamed(const std::string& name, int num_sparse, const char* key) {
  for (int f = 0; f < num_sparse; ++f)
    if ("C" + std::to_string(f + 1) == name) return static_cast<size_t>(f);
  return Status::InvalidArgument(std::string(key) + ": no field named '" + name + "' (fields are C1..C" +
                                 std::to_string(num_sparse) + ")");
}
}  // namespace

Result<workers::TrainerConfig> MakeTrainerConfig(const RunConfig& c) {
  workers::TrainerConfig t;
  t.embedding.method = c.method;
  t.embedding.dim = c.dim;
  t.embedding.rows = c.rows;
  t.embedding.tables = c.tables;
  t.embedding.chunks = c.chunks;
  for (int64_t v : c.field_chunks) t.embedding.field_chunks.push_back(static_cast<int>(v));
  if (!c.field_chunks.empty() && c.field_chunks.size() != static_cast<size_t>(c.num_sparse))
    return Status::InvalidArgument("embedding.field_chunks has " + std::to_string(c.field_chunks.size()) +
                                   " entries, data.num_sparse is " + std::to_string(c.num_sparse));
  t.embedding.collisionless_below = c.collisionless_below;
  if (!c.field_methods.empty()) {
    t.embedding.field_methods.assign(static_cast<size_t>(c.num_sparse), "");
    for (const auto& [name, m] : c.field_methods) {
      EMBER_ASSIGN_OR_RETURN(const size_t f, FieldNamed(name, c.num_sparse, "embedding.field_methods"));
      t.embedding.field_methods[f] = m;
    }
  }
  t.embedding.lifecycle.admit_after = static_cast<uint32_t>(c.admit_after);
  t.embedding.lifecycle.admit_probability = static_cast<float>(c.admit_probability);
  t.embedding.lifecycle.sketch_width = static_cast<uint32_t>(c.admit_sketch_width);
  t.embedding.lifecycle.sketch_depth = static_cast<uint32_t>(c.admit_sketch_depth);
  t.embedding.lifecycle.expire_after = static_cast<uint64_t>(c.expire_after_steps);
  if (!c.field_admit_after.empty()) {
    t.embedding.field_admit_after.assign(static_cast<size_t>(c.num_sparse), 0);
    for (const auto& [name, k] : c.field_admit_after) {
      EMBER_ASSIGN_OR_RETURN(const size_t f, FieldNamed(name, c.num_sparse, "embedding.field_admit_after"));
      t.embedding.field_admit_after[f] = static_cast<uint32_t>(k);
    }
  }
  t.embedding.fallback = c.fallback;
  t.embedding.fallback_rows = static_cast<uint64_t>(c.fallback_rows);
  if (c.fallback == "hash" && c.fallback_rows == 0)
    return Status::InvalidArgument("embedding.fallback = \"hash\" needs embedding.fallback_rows > 0");
  t.embedding.density = static_cast<float>(c.density);
  t.embedding.precision = c.precision == "fp16" ? embedding::Precision::kFp16 : embedding::Precision::kFp32;
  t.optembed = c.optembed;
  t.dsl = c.dsl;
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
  EMBER_ASSIGN_OR_RETURN(t.sync.mode, workers::ParseTrainMode(c.mode));
  t.sync.staleness = c.staleness;
  t.prefetch = c.prefetch;
  return t;
}

Result<ResolvedEmbedding> ResolveEmbedding(const RunConfig& c, workers::TrainerConfig* t, bool count_always) {
  ResolvedEmbedding r;
  embedding::Budget budget;
  if (!c.budget.empty()) {
    EMBER_ASSIGN_OR_RETURN(budget, embedding::ParseBudget(c.budget));
  }
  const bool needs_counts = count_always || budget.set() || c.method == "full" || c.method == "optembed" ||
                            c.collisionless_below > 0 || (c.method == "dsl" && c.dsl_decay == "cosine");
  if (needs_counts && !c.train.empty()) {
    auto stats = data::LoadOrCountFields(MakeReaderOptions(c, c.train, true));
    if (!stats.ok()) return stats.status().WithContext("counting the vocabulary of data.train");
    for (size_t f = 0; f < t->fields.size() && f < stats->distinct.size(); ++f) t->fields[f].vocab = stats->distinct[f];
    r.train_rows = stats->rows;
  }
  if (budget.set() && c.train.empty())
    return Status::InvalidArgument("embedding.budget needs data.train (the full table is counted from it)");
  EMBER_RETURN_IF_ERROR(embedding::ApplyBudget(budget, t->fields, &t->embedding, &r.budget_bytes));
  const uint64_t full = embedding::FullTableBytes(t->embedding.dim, t->fields);
  if (budget.set() && r.budget_bytes == full && (budget.bytes >= full || budget.fraction >= 1))
    r.note = "embedding.budget " + c.budget + " is at least the full table (" +
             embedding::FormatBytes(static_cast<double>(full)) + "): the budget is the full table";
  if (c.method == "dsl" && c.dsl_decay == "cosine" && r.train_rows > 0)
    t->dsl.total_steps = static_cast<int64_t>((r.train_rows + c.batch_size - 1) / c.batch_size) * c.epochs;
  if (c.dsl_decay == "none") t->dsl.total_steps = 0;
  return r;
}

data::CriteoOptions MakeReaderOptions(const RunConfig& c, const std::string& path, bool training) {
  data::CriteoOptions o;
  o.path = path;
  o.batch_size = training ? c.batch_size : c.eval_batch_size;
  o.num_dense = c.num_dense;
  o.num_sparse = c.num_sparse;
  o.on_bad_line = c.on_bad_line == "skip" ? data::BadLinePolicy::kSkip : data::BadLinePolicy::kError;
  o.max_rows = training ? c.max_rows : 0;
  o.vocab = c.vocab;
  o.max_line_bytes = static_cast<size_t>(c.max_line_bytes);
  return o;
}

}  // namespace ember::launcher
