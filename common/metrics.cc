#include "ember/common/metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "ember/common/status.h"

namespace ember {

double ExactAuc(const std::vector<float>& scores, const std::vector<float>& labels) {
  EMBER_CHECK(scores.size() == labels.size()) << scores.size() << " vs " << labels.size();
  const size_t n = scores.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  double pos = 0, rank_sum = 0;
  size_t i = 0;
  while (i < n) {
    size_t j = i;
    while (j + 1 < n && scores[order[j + 1]] == scores[order[i]]) ++j;
    const double avg_rank = 0.5 * static_cast<double>(i + j) + 1.0;  // 1-based
    for (size_t k = i; k <= j; ++k) {
      if (labels[order[k]] > 0.5f) {
        pos += 1;
        rank_sum += avg_rank;
      }
    }
    i = j + 1;
  }
  const double neg = static_cast<double>(n) - pos;
  if (pos == 0 || neg == 0) return 0.5;
  return (rank_sum - pos * (pos + 1) / 2) / (pos * neg);
}

double LogLoss(const std::vector<float>& p, const std::vector<float>& labels) {
  EMBER_CHECK(p.size() == labels.size()) << p.size() << " vs " << labels.size();
  if (p.empty()) return 0;
  double sum = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    const double q = std::clamp(static_cast<double>(p[i]), 1e-7, 1 - 1e-7);
    sum += labels[i] > 0.5f ? -std::log(q) : -std::log(1 - q);
  }
  return sum / static_cast<double>(p.size());
}

}  // namespace ember
