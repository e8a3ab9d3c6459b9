// Choosing the next token from logits: greedy, or temperature with top-k and
// top-p (nucleus) filtering, drawn from a seeded generator so a run repeats.
//
// Greedy takes the lowest id among equal maxima, so it is deterministic and
// matches an argmax over the same logits in any other tool.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace lowbit::model {

struct sampler_options {
  float temperature = 0.0f;  ///< 0: greedy
  size_t top_k = 40;         ///< 0: no top-k filter
  float top_p = 0.95f;       ///< 1: no nucleus filter
  uint64_t seed = 0;
};

/// Index of the largest logit (lowest index on ties).
int32_t argmax(std::span<const float> logits);

class Sampler {
 public:
  /// Throws lowbit::Error on a negative temperature or top_p outside (0, 1].
  explicit Sampler(const sampler_options& options);
  int32_t sample(std::span<const float> logits);

 private:
  sampler_options options_;
  std::mt19937_64 random_;
  std::vector<int32_t> order_;
  std::vector<double> weights_;
};

}  // namespace lowbit::model
