// Binary-classification metrics over (score, label) pairs.
//
// ExactAuc: the probability that a random positive scores above a random negative, ties
// counting 1/2 (Mann-Whitney U over average ranks); O(n log n). Returns 0.5 when either class
// is absent. LogLoss clamps probabilities to [1e-7, 1 - 1e-7].
#pragma once

#include <cstddef>
#include <vector>

namespace ember {

double ExactAuc(const std::vector<float>& scores, const std::vector<float>& labels);
double LogLoss(const std::vector<float>& probabilities, const std::vector<float>& labels);

}  // namespace ember
