// Token sampling; see sampler.hpp.
#include "model/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "lowbit/error.hpp"

namespace lowbit::model {

int32_t argmax(std::span<const float> logits) {
  if (logits.empty()) throw Error(status::invalid_argument, "argmax: no logits");
  size_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[best]) best = i;
  return static_cast<int32_t>(best);
}

Sampler::Sampler(const sampler_options& options) : options_(options), random_(options.seed) {
  if (!(options.temperature >= 0.0f) || !std::isfinite(options.temperature))
    throw Error(status::invalid_argument, "temperature must be a finite value >= 0, got " +
                                              std::to_string(options.temperature));
  if (!(options.top_p > 0.0f && options.top_p <= 1.0f))
    throw Error(status::invalid_argument, "top-p must be in (0, 1], got " + std::to_string(options.top_p));
}

int32_t Sampler::sample(std::span<const float> logits) {
  if (options_.temperature == 0.0f) return argmax(logits);
  const size_t n = logits.size();
  if (n == 0) throw Error(status::invalid_argument, "sample: no logits");
  order_.resize(n);
  std::iota(order_.begin(), order_.end(), 0);
  const size_t keep = options_.top_k == 0 ? n : std::min(options_.top_k, n);
  auto by_logit = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  std::partial_sort(order_.begin(), order_.begin() + static_cast<std::ptrdiff_t>(keep), order_.end(), by_logit);
  order_.resize(keep);

  // Softmax over the kept tokens at the given temperature, then the smallest
  // prefix whose probability reaches top_p.
  weights_.resize(keep);
  const double top = logits[order_[0]];
  double total = 0;
  for (size_t i = 0; i < keep; ++i) {
    weights_[i] = std::exp((logits[order_[i]] - top) / options_.temperature);
    total += weights_[i];
  }
  size_t nucleus = keep;
  if (options_.top_p < 1.0f) {
    double mass = 0;
    for (size_t i = 0; i < keep; ++i) {
      mass += weights_[i] / total;
      if (mass >= options_.top_p) {
        nucleus = i + 1;
        break;
      }
    }
  }
  std::discrete_distribution<size_t> pick(weights_.begin(), weights_.begin() + static_cast<std::ptrdiff_t>(nucleus));
  return order_[pick(random_)];
}

}  // namespace lowbit::model
