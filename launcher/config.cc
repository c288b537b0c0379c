#include "ember/launcher/config.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <sstream>

#include "config_keys.h"
#include "ember/common/file.h"
#include "ember/data/field_stats.h"
#include "ember/data/vocab.h"
#include "ember/embedding/plan.h"
#include "step_hooks.h"

namespace ember::launcher {
namespace {

std::string Where(const toml::node& n, const std::string& source) {
  const auto& s = n.source();
  if (s.begin.line == 0) return source;
  return source + ":" + std::to_string(s.begin.line);
}

Status ApplyOverride(toml::table* root, const std::string& kv) {
  const size_t eq = kv.find('=');
  if (eq == std::string::npos || eq == 0) return Status::InvalidArgument("--set '" + kv + "': expected key=value");
  const std::string key = kv.substr(0, eq), value = kv.substr(eq + 1);
  if (!FindConfigKey(key)) return Status::InvalidArgument("--set: unknown config key '" + key + "'");
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
    const ConfigKey* declared = FindConfigKey(key);
    if (const toml::table* sub = node.as_table(); sub && !declared) {
      EMBER_RETURN_IF_ERROR(Walk(*sub, key, source, c));
      continue;
    }
    if (!declared) return Status::InvalidArgument(Where(node, source) + ": unknown config key '" + key + "'");
    Status st = declared->bind.set(node, c);
    if (!st.ok()) return Status::InvalidArgument(Where(node, source) + ": " + key + ": " + st.message());
  }
  return Status::Ok();
}

// data.schema's file: its keys into *c as if they were data.<key>.
Status ReadSchemaFile(RunConfig* c) {
  if (!c->columns.empty()) return Status::InvalidArgument("data.schema and data.columns: give the columns once");
  EMBER_ASSIGN_OR_RETURN(std::string text, ReadFile(c->schema_file));
  toml::table t;
  try {
    t = toml::parse(text, c->schema_file);
  } catch (const toml::parse_error& e) {
    return Status::InvalidArgument(c->schema_file + ":" + std::to_string(e.source().begin.line) + ": " +
                                   std::string(e.description()));
  }
  for (const auto& [k, node] : t) {
    const std::string key(k.str());
    if (key != "columns" && key != "delimiter" && key != "header" && key != "max_bag_length")
      return Status::InvalidArgument(Where(node, c->schema_file) + ": unknown key '" + key +
                                     "' (columns, delimiter, header, max_bag_length)");
    const ConfigKey* declared = FindConfigKey("data." + key);
    Status st = declared->bind.set(node, c);
    if (!st.ok()) return Status::InvalidArgument(Where(node, c->schema_file) + ": " + key + ": " + st.message());
  }
  return Status::Ok();
}

// The schema of a CTR format (the sessions' formats have none); the field counts follow it.
Status BuildSchema(RunConfig* c) {
  if (c->format == "diginetica" || c->format == "yoochoose") return Status::Ok();
  if (!c->schema_file.empty()) {
    if (c->format != "csv" && c->format != "tsv")
      return Status::InvalidArgument("data.schema needs data.format = \"csv\" or \"tsv\"");
    EMBER_RETURN_IF_ERROR(ReadSchemaFile(c));
  }
  data::Schema s;
  if (c->format == "criteo" || c->format == "avazu") {
    if (!c->columns.empty())
      return Status::InvalidArgument("data.columns: the \"" + c->format + "\" format has its own columns (use " +
                                     "data.format = \"csv\" or \"tsv\" to give them)");
    s = c->format == "criteo" ? data::CriteoSchema(c->trainer.model.num_dense, c->num_sparse) : data::AvazuSchema();
  } else {
    if (c->columns.empty())
      return Status::InvalidArgument("data.format = \"" + c->format + "\" needs data.columns (name and role of each)");
    s.format = c->format;
    s.delimiter = c->format == "csv" ? ',' : '\t';
    if (!c->delimiter.empty()) {
      if (c->delimiter == "\\t") c->delimiter = "\t";
      if (c->delimiter.size() != 1) return Status::InvalidArgument("data.delimiter must be one character");
      s.delimiter = c->delimiter[0];
    }
    s.header = c->header;
    s.columns = c->columns;
  }
  s.max_bag_length = static_cast<uint32_t>(c->max_bag_length);
  // Standardized columns without given statistics are validated once they are counted.
  data::Schema check = s;
  for (auto& col : check.columns)
    if (col.stddev == 0) col.stddev = 1;
  EMBER_RETURN_IF_ERROR(ValidateSchema(check));
  if (!s.criteo()) {
    c->trainer.model.num_dense = s.num_dense();
    c->num_sparse = s.num_fields();
  }
  c->schema = std::make_shared<data::Schema>(std::move(s));
  if (c->schema->needs_dense_stats()) {
    bool counted = false;
    for (const auto& col : c->schema->columns) counted |= col.stddev == 0;
    if (counted) {
      if (c->train.empty())
        return Status::InvalidArgument("data.columns: standardize without mean and std needs data.train to count them");
      auto stats = data::LoadOrCountFields(MakeReaderOptions(*c, c->train, true));
      if (!stats.ok()) return stats.status().WithContext("counting the dense columns' statistics of data.train");
      int j = 0;
      for (auto& col : c->schema->columns) {
        if (col.role != data::ColumnRole::kDense) continue;
        if (col.stddev == 0) {
          col.mean = stats->dense_mean[static_cast<size_t>(j)];
          col.stddev = stats->dense_std[static_cast<size_t>(j)] > 0 ? stats->dense_std[static_cast<size_t>(j)] : 1.0;
        }
        ++j;
      }
    }
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
  Status schema = BuildSchema(&c);
  if (!schema.ok()) return Status::InvalidArgument(source + ": " + schema.message());
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
// The categorical fields' names: the schema's (Criteo: C1..C<num_sparse>).
std::vector<std::string> FieldNames(const RunConfig& c) {
  if (c.schema) return c.schema->field_names();
  std::vector<std::string> out;
  for (int f = 0; f < c.num_sparse; ++f) out.push_back("C" + std::to_string(f + 1));
  return out;
}

// The index of categorical field `name`, or an error naming `key`.
Result<size_t> FieldNamed(const std::string& name, const std::vector<std::string>& names, const char* key) {
  for (size_t f = 0; f < names.size(); ++f)
    if (names[f] == name) return f;
  std::string list;
  for (size_t f = 0; f < names.size() && f < 30; ++f) list += (f ? ", " : "") + names[f];
  return Status::InvalidArgument(std::string(key) + ": no field named '" + name + "' (fields are " + list +
                                 (names.size() > 30 ? ", ..." : "") + ")");
}
}  // namespace

workers::RowReset RowResetOf(const RunConfig& c) {
  if (c.reset_rows != workers::RowReset::kAuto) return c.reset_rows;
  const models::ModelKind k = c.trainer.model.kind;
  return k == models::ModelKind::kDeepFm || k == models::ModelKind::kFm ? workers::RowReset::kEachEpoch
                                                                        : workers::RowReset::kNever;
}

bool RowsCarryOver(const RunConfig& c) {
  const models::ModelKind k = c.trainer.model.kind;
  const bool rows = k != models::ModelKind::kLr && k != models::ModelKind::kM2Trec && k != models::ModelKind::kSasRec;
  return rows && c.epochs > 1 && RowResetOf(c) == workers::RowReset::kNever;
}

bool CapsRareRowSteps(const RunConfig& c) {
  const models::ModelKind k = c.trainer.model.kind;
  return RowsCarryOver(c) || k == models::ModelKind::kDeepFm || k == models::ModelKind::kFm;
}

bool RowsMeetInProducts(const RunConfig& c) {
  const models::ModelKind k = c.trainer.model.kind;
  return k == models::ModelKind::kDlrm || k == models::ModelKind::kDcnV2;
}

Result<workers::TrainerConfig> MakeTrainerConfig(const RunConfig& c, int workers) {
  workers::TrainerConfig t = c.trainer;
  // Epochs after the first (docs/quality.md): where rows carry over, the dense layers that read
  // them stay as the first epoch left them (trained again on the same examples, they learn to
  // trust rows that memorised those examples' labels), and the rows' Adagrad steps are capped so
  // that a row seen a few times moves with its gradients rather than by a whole step each time.
  // DeepFM and FM cap them in one epoch too: their factorization machine multiplies the rows
  // directly, pair by pair, where a rare row's whole step is noise in every pair it joins.
  // DLRM and DCN-v2 read the rows through dot products or crosses: with first-order weights
  // beside them, the rows need not carry every value's own effect and learn the pairs, from rows
  // that start large enough for the products' gradients to grow from, at Adagrad steps twice
  // the others' (docs/quality.md).
  const bool products = RowsMeetInProducts(c);
  t.model.first_order = c.first_order.value_or(products);
  if (t.embedding.init_scale == RunConfig::kAuto) t.embedding.init_scale = products ? 0.1f : 0.01f;
  const embedding::OptimizerKind rows = t.embedding.optimizer.kind;
  const bool adagrad = rows == embedding::OptimizerKind::kRowwiseAdagrad || rows == embedding::OptimizerKind::kAdagrad;
  if (t.embedding.optimizer.lr == RunConfig::kAuto) t.embedding.optimizer.lr = products && adagrad ? 0.1f : 0.05f;
  const bool carried = RowsCarryOver(c);
  if (t.dense_lr_decay == RunConfig::kAuto) t.dense_lr_decay = carried ? 0.0 : 0.5;
  auto& acc = t.embedding.optimizer.initial_accumulator;
  if (acc == RunConfig::kAuto) {
    const double batch =
        static_cast<double>(c.batch_size) * (t.sync.mode == workers::TrainMode::kSync ? std::max(1, workers) : 1);
    acc = CapsRareRowSteps(c) ? static_cast<float>(kCarriedAccumulator / (batch * batch)) : 0.0f;
  }
  const std::vector<std::string> names = FieldNames(c);
  for (const auto& name : names) t.fields.push_back({name, 0});
  if (c.schema && !c.schema->criteo()) t.input_schema = c.schema->ToJson();
  if (t.embedding.chunks == 0) t.embedding.chunks = embedding::AutoChunks(t.embedding.dim);
  if (!t.embedding.field_chunks.empty() && t.embedding.field_chunks.size() != static_cast<size_t>(c.num_sparse))
    return Status::InvalidArgument("embedding.field_chunks has " + std::to_string(t.embedding.field_chunks.size()) +
                                   " entries, data.num_sparse is " + std::to_string(c.num_sparse));
  if (!c.field_methods.empty()) {
    t.embedding.field_methods.assign(static_cast<size_t>(c.num_sparse), std::nullopt);
    for (const auto& [name, m] : c.field_methods) {
      EMBER_ASSIGN_OR_RETURN(const size_t f, FieldNamed(name, names, "embedding.field_methods"));
      t.embedding.field_methods[f] = m;
    }
  }
  if (!c.field_admit_after.empty()) {
    t.embedding.field_admit_after.assign(static_cast<size_t>(c.num_sparse), 0);
    for (const auto& [name, k] : c.field_admit_after) {
      EMBER_ASSIGN_OR_RETURN(const size_t f, FieldNamed(name, names, "embedding.field_admit_after"));
      t.embedding.field_admit_after[f] = static_cast<uint32_t>(k);
    }
  }
  if (t.embedding.optimizer.kind == embedding::OptimizerKind::kFtrl && !(t.embedding.optimizer.lr > 0))
    return Status::InvalidArgument("embedding.lr must be > 0 with embedding.optimizer = \"ftrl\"");
  if (t.linear_optimizer.kind == embedding::OptimizerKind::kFtrl && !(t.linear_optimizer.lr > 0))
    return Status::InvalidArgument("linear.lr must be > 0 with linear.optimizer = \"ftrl\"");
  if (t.embedding.fallback == embedding::Fallback::kHash && t.embedding.fallback_rows == 0)
    return Status::InvalidArgument("embedding.fallback = \"hash\" needs embedding.fallback_rows > 0");
  return t;
}

namespace {
// Whether every field of the main group has a full table.
bool FullOnly(const embedding::MethodConfig& e) {
  if (e.method != embedding::Method::kFull) return false;
  for (const auto& m : e.field_methods)
    if (m && *m != embedding::Method::kFull) return false;
  return true;
}

// A full table under a budget below it keeps the values of data.train that fit, most frequent
// first, a row per value in every embedding group; the other values read one out-of-vocabulary
// row per field, as with data.vocab (the preprocessing of the Unified Embedding and OptEmbed
// papers, sized by the budget). Sets the fields' table sizes and r's vocabulary and note.
Status BudgetVocabulary(const RunConfig& c, uint64_t bytes, uint64_t full, int total_width, workers::TrainerConfig* t,
                        ResolvedEmbedding* r) {
  const uint64_t row = static_cast<uint64_t>(total_width) * embedding::BytesPerValue(t->embedding.precision);
  const uint64_t oov = row * t->fields.size();
  if (bytes < oov + row)
    return Status::InvalidArgument("embedding.budget: " + embedding::FormatBytes(static_cast<double>(bytes)) +
                                   " cannot be met by full: the fields' out-of-vocabulary rows alone take " +
                                   embedding::FormatBytes(static_cast<double>(oov)));
  const uint64_t n = (bytes - oov) / row;
  auto counted = data::LoadOrCountTopValues(MakeReaderOptions(c, c.train, true), n);
  if (!counted.ok()) return counted.status().WithContext("counting the values of data.train");
  const data::Vocabulary& top = *counted;
  uint64_t kept = 0, distinct = 0, occurrences = 0, kept_occurrences = 0;
  for (size_t f = 0; f < t->fields.size() && f < top.fields.size(); ++f) {
    const data::FieldVocab& fv = top.fields[f];
    // The field's table: its kept values, and its out-of-vocabulary row where any value is not.
    t->fields[f].vocab = fv.values.size() + (fv.values.size() < fv.distinct ? 1 : 0);
    kept += fv.values.size();
    distinct += fv.distinct;
    occurrences += fv.occurrences;
    kept_occurrences += fv.kept_occurrences;
  }
  t->embedding.vocabulary = true;
  r->vocab = std::make_shared<const data::VocabFilter>(top);
  r->full_bytes = full;
  r->main_budget_bytes = bytes;
  char buf[320];
  std::snprintf(buf, sizeof(buf),
                "embedding.budget %s: full keeps the %llu most frequent of %llu values of data.train (seen at least "
                "%llu times; %.1f%% of the occurrences); the others read one out-of-vocabulary row per field",
                embedding::FormatBytes(static_cast<double>(bytes)).c_str(), static_cast<unsigned long long>(kept),
                static_cast<unsigned long long>(distinct), static_cast<unsigned long long>(top.cut.min_count),
                occurrences ? 100.0 * static_cast<double>(kept_occurrences) / static_cast<double>(occurrences) : 0.0);
  r->note = buf;
  return Status::Ok();
}

// Unified Embedding under a budget: embedding.frequent_share of it buys collisionless rows, in
// every embedding group, for the most frequent values of data.train; the others probe the shared
// tables (docs/compression.md, *Frequent values*). Sets the main method's frequent values (the
// first-order group, made from it, shares them) and r's note.
Status KeepFrequentValues(const RunConfig& c, uint64_t bytes, int total_width, workers::TrainerConfig* t,
                          ResolvedEmbedding* r) {
  embedding::MethodConfig& e = t->embedding;
  const uint64_t row = static_cast<uint64_t>(total_width) * embedding::BytesPerValue(e.precision);
  const uint64_t n = static_cast<uint64_t>(std::floor(c.frequent_share * static_cast<double>(bytes))) / row;
  if (n == 0) return Status::Ok();
  auto counted = data::LoadOrCountTopValues(MakeReaderOptions(c, c.train, true), n);
  if (!counted.ok()) return counted.status().WithContext("counting the values of data.train");
  const data::Vocabulary& top = *counted;
  auto frequent = std::make_shared<embedding::FrequentValues>();
  frequent->fields.resize(t->fields.size());
  e.frequent_counts.assign(t->fields.size(), 0);
  uint64_t kept = 0, distinct = 0, occurrences = 0, kept_occurrences = 0;
  for (size_t f = 0; f < t->fields.size() && f < top.fields.size(); ++f) {
    const data::FieldVocab& fv = top.fields[f];
    distinct += fv.distinct;
    occurrences += fv.occurrences;
    // Fields with collisionless rows for every value need none for their frequent ones.
    const uint64_t vocab = t->fields[f].vocab;
    if ((vocab > 0 && vocab <= e.collisionless_below) || embedding::FieldMethod(e, f) == embedding::Method::kFull)
      continue;
    for (uint64_t v : fv.values) frequent->fields[f].insert(embedding::UnifiedLocalId(v));
    e.frequent_counts[f] = frequent->fields[f].size();
    kept += e.frequent_counts[f];
    kept_occurrences += fv.kept_occurrences;
  }
  e.frequent = std::move(frequent);
  char buf[320];
  std::snprintf(buf, sizeof(buf),
                "embedding.frequent_share %g: unified keeps collisionless rows for the %llu most frequent of %llu "
                "values of data.train (seen at least %llu times; %.1f%% of the occurrences); the others probe the "
                "shared tables",
                c.frequent_share, static_cast<unsigned long long>(kept), static_cast<unsigned long long>(distinct),
                static_cast<unsigned long long>(top.cut.min_count),
                occurrences ? 100.0 * static_cast<double>(kept_occurrences) / static_cast<double>(occurrences) : 0.0);
  r->note = buf;
  return Status::Ok();
}
}  // namespace

Result<ResolvedEmbedding> ResolveEmbedding(const RunConfig& c, workers::TrainerConfig* t, bool count_always) {
  ResolvedEmbedding r;
  if (!c.vocab.empty()) t->embedding.vocabulary = true;
  const embedding::Budget& budget = c.budget;
  const embedding::Method method = c.method();
  const bool needs_counts = count_always || budget.set() || method == embedding::Method::kFull ||
                            method == embedding::Method::kOptEmbed || c.trainer.embedding.collisionless_below > 0 ||
                            (method == embedding::Method::kDsl && c.dsl_decay == "cosine");
  if (c.follow && budget.set())
    return Status::InvalidArgument("embedding.budget with data.follow: a stream's full table cannot be counted");
  if (needs_counts && !c.train.empty() && !c.follow) {
    auto stats = data::LoadOrCountFields(MakeReaderOptions(c, c.train, true));
    if (!stats.ok()) return stats.status().WithContext("counting the vocabulary of data.train");
    for (size_t f = 0; f < t->fields.size() && f < stats->distinct.size(); ++f) t->fields[f].vocab = stats->distinct[f];
    r.train_rows = stats->rows;
  }
  if (budget.set() && c.train.empty())
    return Status::InvalidArgument("embedding.budget needs data.train (the full table is counted from it)");
  // A budget covers every embedding group of the model: each gets bytes in proportion to its
  // width (its full table's share), so a first-order group beside the main one is compressed
  // too, into hashed rows where the main method needs width (OptEmbed, DSL).
  models::CtrModelConfig mc = t->model;
  mc.embedding_dim = t->embedding.dim;
  const auto groups = models::EmbeddingGroupsOf(mc);
  int total_width = 0;
  for (const auto& g : groups) total_width += g.dim;
  const uint64_t full = embedding::FullTableBytes(total_width, t->fields);
  // DSL learns which entries of a row to keep; a 1-wide row has none to choose between, and under
  // a budget its masks would cost a byte per 4-byte weight. A model whose main group is 1-wide
  // (LR) gets DSL's share as hashed rows, as the first-order weights beside a wider group do.
  std::string dsl_note;
  if (budget.set() && groups[0].first_order) {
    bool any = t->embedding.method == embedding::Method::kDsl;
    if (any) t->embedding.method = embedding::Method::kHash;
    for (auto& m : t->embedding.field_methods)
      if (m == embedding::Method::kDsl) {
        m = embedding::Method::kHash;
        any = true;
      }
    if (any)
      dsl_note = "embedding.method dsl: model " + std::string(models::ModelKindName(t->model.kind)) +
                 " embeds 1-wide weights, which DSL cannot sparsify within a row: its budget holds hashed rows";
  }
  if (budget.set()) {
    const uint64_t bytes =
        std::min(full, budget.bytes ? budget.bytes
                                    : static_cast<uint64_t>(std::floor(budget.fraction * static_cast<double>(full))));
    r.budget_bytes = bytes;
    if (FullOnly(t->embedding) &&
        bytes < full / 4 * static_cast<uint64_t>(embedding::BytesPerValue(t->embedding.precision))) {
      EMBER_RETURN_IF_ERROR(BudgetVocabulary(c, bytes, full, total_width, t, &r));
      return r;
    }
    if (t->embedding.method == embedding::Method::kUnified && c.frequent_share > 0)
      EMBER_RETURN_IF_ERROR(KeepFrequentValues(c, bytes, total_width, t, &r));
    const auto share = [&](int width) {
      return static_cast<uint64_t>(std::floor(static_cast<long double>(bytes) * width / total_width));
    };
    embedding::MethodConfig main = workers::GroupMethodConfig(t->embedding, groups[0], /*secondary=*/false);
    EMBER_RETURN_IF_ERROR(embedding::ApplyBudget(embedding::Budget{0, std::max<uint64_t>(1, share(main.dim))},
                                                 t->fields, &main, &r.main_budget_bytes));
    t->embedding.rows = main.rows;  // what ApplyBudget sizes
    t->embedding.density = main.density;
    t->embedding.dsl_rows = main.dsl_rows;
    if (groups.size() > 1) {
      embedding::MethodConfig fo =
          workers::GroupMethodConfig(t->embedding, groups[1], /*secondary=*/true, /*hashed=*/true);
      uint64_t fo_bytes = 0;
      auto applied = embedding::ApplyBudget(embedding::Budget{0, std::max<uint64_t>(1, bytes - share(main.dim))},
                                            t->fields, &fo, &fo_bytes);
      if (!applied.ok())
        return applied.WithContext("the first-order weights' share of embedding.budget (" +
                                   embedding::FormatBytes(static_cast<double>(fo_bytes)) + ")");
      t->first_order_embedding = fo;
    }
  }
  if (budget.set() && r.budget_bytes == full && (budget.bytes >= full || budget.fraction >= 1)) {
    const std::string note = "embedding.budget " + c.budget_text + " is at least the full table (" +
                             embedding::FormatBytes(static_cast<double>(full)) + "): the budget is the full table";
    r.note = r.note.empty() ? note : note + "\n" + r.note;
  }
  if (!dsl_note.empty()) r.note = r.note.empty() ? dsl_note : r.note + "\n" + dsl_note;
  if (method == embedding::Method::kDsl && c.dsl_decay == "cosine" && r.train_rows > 0)
    t->dsl.total_steps = static_cast<int64_t>((r.train_rows + c.batch_size - 1) / c.batch_size) * c.epochs;
  if (c.dsl_decay == "none") t->dsl.total_steps = 0;
  return r;
}

data::CriteoOptions MakeReaderOptions(const RunConfig& c, const std::string& path, bool training) {
  data::CriteoOptions o;
  o.path = path;
  if (path == c.train) o.paths = c.train_files;
  o.batch_size = training ? c.batch_size : c.eval_batch_size;
  o.num_dense = c.trainer.model.num_dense;
  o.num_sparse = c.num_sparse;
  o.on_bad_line = c.on_bad_line;
  o.max_rows = training ? c.max_rows : 0;
  o.vocab = c.vocab;
  o.vocab_filter = c.budget_vocab;
  o.max_line_bytes = static_cast<size_t>(c.max_line_bytes);
  o.schema = c.schema;
  if (training && path == c.train && c.follow) {
    o.follow = true;
    o.follow_poll_s = c.follow_poll_s;
    o.stop = [] { return StopRequested(); };
  }
  return o;
}

}  // namespace ember::launcher
