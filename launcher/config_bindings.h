// Internal to launcher/: how a declared config key reads its value into its field (and shows
// it): typed binding factories over a field accessor, AT(path) (config_keys.cc's table).
#pragma once

#include <algorithm>
#include <cstdio>
#include <string>
#include <type_traits>
#include <vector>

#include "config_keys.h"
#include "ember/common/status.h"

namespace ember::launcher::bindings {

// The field a key sets.
#define AT(path) \
  [](RunConfig & c) -> auto& { return c.path; }

inline std::string Range(double lo, double hi) {
  char buf[96];
  std::snprintf(buf, sizeof(buf), "must be in [%g, %g]", lo, hi);
  return buf;
}

inline std::string ShowNumber(double v) {
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

template <typename Get>
Binding Int(Get get, int64_t lo, int64_t hi) {
  return {[=](const toml::node& n, RunConfig* c) {
            auto v = n.value<int64_t>();
            if (!v || n.type() != toml::node_type::integer) return Status::InvalidArgument("expected an integer");
            if (*v < lo || *v > hi)
              return Status::InvalidArgument("must be in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                                             "], got " + std::to_string(*v));
            get(*c) = static_cast<std::remove_reference_t<decltype(get(*c))>>(*v);
            return Status::Ok();
          },
          [=](const RunConfig& c) { return std::to_string(get(const_cast<RunConfig&>(c))); }};
}

template <typename Get>
Binding Num(Get get, double lo, double hi) {
  return {[=](const toml::node& n, RunConfig* c) {
            if (!n.is_number()) return Status::InvalidArgument("expected a number");
            const double v = *n.value<double>();
            if (!(v >= lo && v <= hi)) return Status::InvalidArgument(Range(lo, hi));
            get(*c) = static_cast<std::remove_reference_t<decltype(get(*c))>>(v);
            return Status::Ok();
          },
          [=](const RunConfig& c) { return ShowNumber(static_cast<double>(get(const_cast<RunConfig&>(c)))); }};
}

template <typename Get>
Binding Str(Get get, std::vector<std::string> allowed = {}) {
  return {[=](const toml::node& n, RunConfig* c) {
            if (!n.is_string()) return Status::InvalidArgument("expected a string");
            std::string v = *n.value<std::string>();
            if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), v) == allowed.end()) {
              std::string list;
              for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
              return Status::InvalidArgument("'" + v + "' is not one of " + list);
            }
            get(*c) = v;
            return Status::Ok();
          },
          [=](const RunConfig& c) { return "\"" + get(const_cast<RunConfig&>(c)) + "\""; }};
}

// An enum: its names come from `name`, so the key, its check and its error list them once.
template <typename Get, typename E>
Binding Enum(Get get, std::vector<E> values, const char* (*name)(E)) {
  return {[=](const toml::node& n, RunConfig* c) {
            if (!n.is_string()) return Status::InvalidArgument("expected a string");
            const std::string v = *n.value<std::string>();
            std::string list;
            for (E e : values) {
              if (v == name(e)) {
                get(*c) = e;
                return Status::Ok();
              }
              list += (list.empty() ? "" : ", ") + std::string(name(e));
            }
            return Status::InvalidArgument("'" + v + "' is not one of " + list);
          },
          [=](const RunConfig& c) { return "\"" + std::string(name(get(const_cast<RunConfig&>(c)))) + "\""; }};
}

template <typename Get>
Binding Bool(Get get) {
  return {[=](const toml::node& n, RunConfig* c) {
            if (!n.is_boolean()) return Status::InvalidArgument("expected true or false");
            get(*c) = *n.value<bool>();
            return Status::Ok();
          },
          [=](const RunConfig& c) { return std::string(get(const_cast<RunConfig&>(c)) ? "true" : "false"); }};
}

// A bool whose absence means auto (resolved where the config becomes a trainer's): read as Bool
// reads (a bool assigned sets the std::optional), shown as "auto" while unset.
template <typename Get>
Binding OptionalBool(Get get) {
  Binding b = Bool(get);
  b.show = [=](const RunConfig& c) {
    const auto& v = get(const_cast<RunConfig&>(c));
    return std::string(!v ? "auto" : *v ? "true" : "false");
  };
  return b;
}

template <typename T>
std::string ShowList(const std::vector<T>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + ShowNumber(static_cast<double>(v[i]));
  return s + "]";
}

template <typename Get>
Binding IntList(Get get, int64_t lo, int64_t hi) {
  return {[=](const toml::node& n, RunConfig* c) {
            const toml::array* a = n.as_array();
            const std::string want =
                lo > 0 ? "an array of positive integers"
                       : "an array of integers in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
            if (!a) return Status::InvalidArgument("expected " + want);
            auto& out = get(*c);
            out.clear();
            for (const auto& e : *a) {
              auto v = e.value<int64_t>();
              if (!v || e.type() != toml::node_type::integer || *v < lo || *v > hi)
                return Status::InvalidArgument("expected " + want);
              out.push_back(static_cast<typename std::remove_reference_t<decltype(out)>::value_type>(*v));
            }
            return Status::Ok();
          },
          [=](const RunConfig& c) { return ShowList(get(const_cast<RunConfig&>(c))); }};
}

template <typename Get>
Binding FloatList(Get get) {
  return {[=](const toml::node& n, RunConfig* c) {
            const toml::array* a = n.as_array();
            if (!a) return Status::InvalidArgument("expected an array of numbers");
            auto& out = get(*c);
            out.clear();
            for (const auto& e : *a) {
              if (!e.is_number() || !(*e.value<double>() >= 0)) return Status::InvalidArgument("expected numbers >= 0");
              out.push_back(*e.value<double>());
            }
            return Status::Ok();
          },
          [=](const RunConfig& c) { return ShowList(get(const_cast<RunConfig&>(c))); }};
}

inline Binding CategoryHeads() {
  return {[](const toml::node& n, RunConfig* c) {
            const toml::array* a = n.as_array();
            if (!a) return Status::InvalidArgument("expected an array of strings");
            c->category_heads.clear();
            for (const auto& e : *a) {
              if (!e.is_string()) return Status::InvalidArgument("expected an array of strings");
              c->category_heads.push_back(*e.value<std::string>());
            }
            c->category_heads_set = true;
            return Status::Ok();
          },
          {}};
}

// data.train: a file or glob, or an array of them.
inline Binding TrainFiles() {
  return {[](const toml::node& n, RunConfig* c) {
            c->train_files.clear();
            if (n.is_string()) {
              c->train = *n.value<std::string>();
              return Status::Ok();
            }
            const toml::array* a = n.as_array();
            if (!a || a->empty()) return Status::InvalidArgument("expected a file, a glob or an array of them");
            c->train.clear();
            for (const auto& e : *a) {
              if (!e.is_string()) return Status::InvalidArgument("expected an array of file names or globs");
              c->train_files.push_back(*e.value<std::string>());
              c->train += (c->train.empty() ? "" : ", ") + c->train_files.back();
            }
            return Status::Ok();
          },
          [](const RunConfig& c) {
            if (c.train_files.empty()) return "\"" + c.train + "\"";
            std::string s = "[";
            for (size_t i = 0; i < c.train_files.size(); ++i) s += (i ? ", \"" : "\"") + c.train_files[i] + "\"";
            return s + "]";
          }};
}

// data.columns: an array of tables (schema.h's ColumnSpec), every key checked.
inline Binding Columns() {
  return {[](const toml::node& n, RunConfig* c) {
            const toml::array* a = n.as_array();
            if (!a) return Status::InvalidArgument("expected an array of tables ([[data.columns]])");
            c->columns.clear();
            for (size_t i = 0; i < a->size(); ++i) {
              const toml::table* t = (*a)[i].as_table();
              const std::string at = "[" + std::to_string(i) + "]";
              if (!t) return Status::InvalidArgument(at + ": expected a table (name, role, ...)");
              data::ColumnSpec col;
              std::string role = "categorical", transform = "log1p", encoding = "string", pooling = "sum";
              bool has_stats = false;
              for (const auto& [k, v] : *t) {
                const std::string key(k.str());
                auto str = [&](std::string* out) {
                  if (!v.is_string()) return Status::InvalidArgument(at + "." + key + ": expected a string");
                  *out = *v.value<std::string>();
                  return Status::Ok();
                };
                Status st;
                if (key == "name") {
                  st = str(&col.name);
                } else if (key == "role") {
                  st = str(&role);
                } else if (key == "transform") {
                  st = str(&transform);
                } else if (key == "encoding") {
                  st = str(&encoding);
                } else if (key == "pooling") {
                  st = str(&pooling);
                } else if (key == "separator") {
                  st = str(&col.separator);
                } else if (key == "weighted") {
                  if (!v.is_boolean()) return Status::InvalidArgument(at + ".weighted: expected true or false");
                  col.weighted = *v.value<bool>();
                } else if (key == "mean" || key == "std") {
                  if (!v.is_number()) return Status::InvalidArgument(at + "." + key + ": expected a number");
                  (key == "mean" ? col.mean : col.stddev) = *v.value<double>();
                  has_stats = true;
                } else {
                  return Status::InvalidArgument(at + ": unknown column key '" + key +
                                                 "' (name, role, transform, mean, std, encoding, separator, "
                                                 "pooling, weighted)");
                }
                if (!st.ok()) return st;
              }
              const std::string who = at + " ('" + col.name + "')";
              auto pick = [&](const std::string& v, const char* what, auto& out, auto values, auto name) {
                std::string list;
                for (auto e : values) {
                  if (v == name(e)) {
                    out = e;
                    return Status::Ok();
                  }
                  list += (list.empty() ? "" : ", ") + std::string(name(e));
                }
                return Status::InvalidArgument(who + ": unknown " + what + " '" + v + "' (one of " + list + ")");
              };
              using data::ColumnRole;
              EMBER_RETURN_IF_ERROR(
                  pick(role, "role", col.role,
                       std::vector<ColumnRole>{ColumnRole::kLabel, ColumnRole::kDense, ColumnRole::kCategorical,
                                               ColumnRole::kMultiHot, ColumnRole::kYymmddhh, ColumnRole::kIgnore},
                       data::ColumnRoleName));
              EMBER_RETURN_IF_ERROR(
                  pick(transform, "transform", col.transform,
                       std::vector<data::DenseTransform>{data::DenseTransform::kLog1p, data::DenseTransform::kNone,
                                                         data::DenseTransform::kStandardize},
                       data::DenseTransformName));
              EMBER_RETURN_IF_ERROR(pick(encoding, "encoding", col.encoding,
                                         std::vector<data::IdEncoding>{data::IdEncoding::kString,
                                                                       data::IdEncoding::kHex, data::IdEncoding::kInt},
                                         data::IdEncodingName));
              EMBER_RETURN_IF_ERROR(pick(pooling, "pooling", col.pooling,
                                         std::vector<data::BagPooling>{data::BagPooling::kSum, data::BagPooling::kMean},
                                         data::BagPoolingName));
              // Standardization without given statistics: counted from data.train (mean 0, std 0 marks it).
              if (col.transform == data::DenseTransform::kStandardize && !has_stats) col.stddev = 0;
              c->columns.push_back(std::move(col));
            }
            return Status::Ok();
          },
          {}};
}

// A number (fraction or bytes) or a string ("1/100", "64MiB"), parsed here, once.
inline Binding BudgetKey() {
  return {[](const toml::node& n, RunConfig* c) {
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
            c->budget = *b;
            c->budget_text = text;
            return Status::Ok();
          },
          {}};
}

inline Binding FieldMethods() {
  return {[](const toml::node& n, RunConfig* c) {
            const toml::table* t = n.as_table();
            if (!t) return Status::InvalidArgument("expected a table of field = method, e.g. { C1 = \"full\" }");
            c->field_methods.clear();
            for (const auto& [k, v] : *t) {
              const std::string field(k.str());
              const std::string m = v.is_string() ? *v.value<std::string>() : "";
              if (m != "full" && m != "hash" && m != "dsl")
                return Status::InvalidArgument("field " + field + ": '" + m + "' is not one of full, hash, dsl");
              c->field_methods.emplace_back(field, *embedding::ParseMethod(m));
            }
            return Status::Ok();
          },
          [](const RunConfig& c) { return c.field_methods.empty() ? std::string("{}") : std::string(); }};
}

inline Binding FieldAdmitAfter() {
  return {[](const toml::node& n, RunConfig* c) {
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
          },
          [](const RunConfig& c) { return c.field_admit_after.empty() ? std::string("{}") : std::string(); }};
}

inline const char* BadLineName(data::BadLinePolicy p) { return p == data::BadLinePolicy::kSkip ? "skip" : "error"; }
inline const char* PrecisionName(embedding::Precision p) { return p == embedding::Precision::kFp16 ? "fp16" : "fp32"; }

}  // namespace ember::launcher::bindings
