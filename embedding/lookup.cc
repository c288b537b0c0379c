#include "ember/embedding/lookup.h"

#include "ember/embedding/types.h"

namespace ember::embedding {

BatchLookup::BatchLookup(const EmbeddingMethod* method) : method_(method) {
  first_table_ = method->tables().empty() ? 0 : method->tables()[0].id;
  slot_dim_ = method->slot_dim();
  max_probes_ = method->max_probes();
  for (int f = 0; f < method->num_fields(); ++f) {
    probe_offset_.push_back(total_probes_);
    total_probes_ += method->num_probes(f);
    padded_ |= method->num_probes(f) != max_probes_;
  }
  for (const auto& spec : method->tables()) narrow_ |= spec.dim != slot_dim_;
}

void BatchLookup::Prepare(const uint64_t* ids, size_t n, size_t stride) {
  const EmbeddingMethod& m = *method_;
  const size_t F = static_cast<size_t>(m.num_fields()), TP = static_cast<size_t>(total_probes_);
  n_ = n;
  // Every probe key, example-major: keys of example i at [i * TP, (i + 1) * TP).
  probe_keys_.resize(n * TP);
  for (size_t f = 0; f < F; ++f) {
    const size_t P = static_cast<size_t>(m.num_probes(static_cast<int>(f)));
    const size_t off = static_cast<size_t>(probe_offset_[f]);
    if (P == 1 && TP == 1) {
      m.MapIds(static_cast<int>(f), ids + f * stride, n, probe_keys_.data());
      continue;
    }
    scratch_.resize(n * P);
    m.MapIds(static_cast<int>(f), ids + f * stride, n, scratch_.data());
    for (size_t i = 0; i < n; ++i)
      for (size_t p = 0; p < P; ++p) probe_keys_[i * TP + off + p] = scratch_[i * P + p];
  }
  bagged_ = false;
  Finish(n);
}

void BatchLookup::Prepare(const std::vector<FieldIds>& fields, size_t n) {
  bool any_bag = false;
  for (const auto& f : fields) any_bag |= f.offsets != nullptr;
  if (!any_bag) {  // the one-hot layout
    flat_.resize(fields.size() * n);
    for (size_t f = 0; f < fields.size(); ++f) std::copy(fields[f].ids, fields[f].ids + n, flat_.begin() + f * n);
    Prepare(flat_.data(), n, n);
    return;
  }
  const EmbeddingMethod& m = *method_;
  const size_t F = static_cast<size_t>(m.num_fields()), S = static_cast<size_t>(max_probes_);
  n_ = n;
  bagged_ = true;
  // Each field's probe keys, id-major (id k's probes at [k * P, (k + 1) * P)).
  std::vector<std::vector<uint64_t>> mapped(F);
  for (size_t f = 0; f < F; ++f) {
    const size_t P = static_cast<size_t>(m.num_probes(static_cast<int>(f)));
    mapped[f].resize(fields[f].count * P);
    m.MapIds(static_cast<int>(f), fields[f].ids, fields[f].count, mapped[f].data());
  }
  // Entries in slot order: example i, field f, probe p, then the bag's ids.
  probe_keys_.clear();
  bag_weights_.clear();
  bag_offsets_.assign(1, 0);
  bag_offsets_.reserve(n * F * S + 1);
  for (size_t i = 0; i < n; ++i)
    for (size_t f = 0; f < F; ++f) {
      const FieldIds& fi = fields[f];
      const size_t P = static_cast<size_t>(m.num_probes(static_cast<int>(f)));
      const size_t b = fi.offsets ? fi.offsets[i] : i, e = fi.offsets ? fi.offsets[i + 1] : i + 1;
      for (size_t p = 0; p < S; ++p) {
        if (p < P)
          for (size_t k = b; k < e; ++k) {
            probe_keys_.push_back(mapped[f][k * P + p]);
            bag_weights_.push_back(fi.offsets && fi.weights ? fi.weights[k] : 1.0f);
          }
        bag_offsets_.push_back(static_cast<int64_t>(probe_keys_.size()));
      }
    }
  Finish(n);
}

void BatchLookup::Finish(size_t n) {
  const EmbeddingMethod& m = *method_;
  const size_t F = static_cast<size_t>(m.num_fields()), TP = static_cast<size_t>(total_probes_);
  const size_t S = static_cast<size_t>(max_probes_), T = m.tables().size();
  keys_ = probe_keys_.size();
  inverse_.resize(keys_);
  dedup_.Dedup(probe_keys_.data(), keys_, inverse_.data());
  const auto& unique = dedup_.unique();
  unique_ = unique.size();
  table_begin_.assign(T + 1, 0);
  if (T == 1) {
    sorted_.assign(unique.begin(), unique.end());
    table_begin_[1] = unique_;
  } else {
    // Counting sort by table so that each table's rows are contiguous in the leaf.
    for (uint64_t k : unique) ++table_begin_[KeyTable(k) - first_table_ + 1];
    for (size_t t = 0; t < T; ++t) table_begin_[t + 1] += table_begin_[t];
    fill_.assign(table_begin_.begin(), table_begin_.end() - 1);
    sorted_.resize(unique_);
    perm_.resize(unique_);
    for (size_t u = 0; u < unique_; ++u) {
      const size_t pos = fill_[KeyTable(unique[u]) - first_table_]++;
      sorted_[pos] = unique[u];
      perm_[u] = static_cast<int64_t>(pos);
    }
    for (auto& v : inverse_) v = perm_[static_cast<size_t>(v)];
  }
  // Feature admission: every key of an admitting table brings its fallback key (in the method's
  // last table), in case the reader finds no row of its own.
  fallback_row_.clear();
  if (m.fallback_table() >= 0) {
    fallback_row_.assign(unique_, -1);
    fallback_slot_.clear();
    for (size_t pos = 0; pos < unique_; ++pos) {
      const uint64_t key = sorted_[pos];
      if (!m.admits(KeyTable(key) - first_table_)) continue;
      const uint64_t fb = m.FallbackKey(key);
      auto [it, fresh] = fallback_slot_.emplace(fb, sorted_.size());
      if (fresh) sorted_.push_back(fb);
      fallback_row_[pos] = static_cast<int64_t>(it->second);
    }
    table_begin_[T] = sorted_.size();  // the fallback table is the method's last
  }
  own_.assign(sorted_.size(), 1);
  // Slots: field f's probes, then (max_probes - probes) padding slots reading the zero row.
  if (!padded_ || bagged_) {
    slots_.assign(inverse_.begin(), inverse_.end());
    return;
  }
  const int64_t zero = static_cast<int64_t>(sorted_.size());
  slots_.resize(n * F * S);
  for (size_t i = 0; i < n; ++i)
    for (size_t f = 0; f < F; ++f) {
      const size_t P = static_cast<size_t>(m.num_probes(static_cast<int>(f)));
      const size_t off = static_cast<size_t>(probe_offset_[f]);
      for (size_t p = 0; p < S; ++p) slots_[(i * F + f) * S + p] = p < P ? inverse_[i * TP + off + p] : zero;
    }
}

BatchLookup::Fallbacks BatchLookup::ApplyFallbacks() {
  Fallbacks out;
  if (fallback_row_.empty()) return out;
  remap_.clear();
  for (size_t pos = 0; pos < unique_; ++pos) {
    if (fallback_row_[pos] < 0) continue;
    ++out.admitting;
    if (own_[pos]) continue;
    if (remap_.empty()) {
      remap_.resize(unique_);
      for (size_t u = 0; u < unique_; ++u) remap_[u] = static_cast<int64_t>(u);
    }
    remap_[pos] = fallback_row_[pos];
    ++out.fell;
  }
  if (!remap_.empty()) {
    const int64_t U = static_cast<int64_t>(unique_);
    for (auto& s : slots_)
      if (s < U) s = remap_[static_cast<size_t>(s)];
  }
  return out;
}

}  // namespace ember::embedding
