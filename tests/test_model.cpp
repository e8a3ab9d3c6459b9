// End-to-end tests of the reference decoder on the default model against
// llama.cpp's golden data (tests/data/llama_cpp_golden.json, written by
// bench/peers/llama_cpp_golden.py), plus checks that need no golden data:
// configuration, chat formats, error handling, and that decoding token by
// token agrees with one batched prefill.
//
// These run under every ISA tier the host has: ctest registers this binary
// once per tier with LOWBIT_ISA_MAX set (tests/model.cmake), so the dispatch
// choices are exercised end to end. The default model is found through
// LOWBIT_MODEL, else in ci/fetch_model.sh's cache; when it is absent the tests
// skip, unless LOWBIT_REQUIRE_MODEL=1 (CI), where they fail.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

#include "gguf/gguf.hpp"
#include "lowbit/dispatch.hpp"
#include "lowbit/error.hpp"
#include "lowbit/isa.hpp"
#include "model/chat.hpp"
#include "model/model.hpp"
#include "model/sampler.hpp"
#include "model/synthetic.hpp"
#include "tester/default_model.hpp"
#include "tester/json.hpp"
#include "tester/tester.hpp"

namespace {

using lowbit::model::Context;
using lowbit::model::Model;

using lowbit::test::default_model_path;
using lowbit::test::model_required;

std::string golden_path() { return std::string(LOWBIT_TEST_DATA_DIR) + "/llama_cpp_golden.json"; }

/// The tier LOWBIT_ISA_MAX asks for is one this CPU runs (else the suite
/// skips: ctest registers every tier of the architecture).
std::string missing_tier() {
  const char* cap = std::getenv("LOWBIT_ISA_MAX");
  if (!cap || !*cap) return {};
  const auto tier = lowbit::parse_isa(cap);
  if (!tier || !lowbit::detected_cpu().isas.contains(*tier) || !lowbit::compiled_isas().contains(*tier))
    return cap;
  return {};
}

/// The default model, loaded once for all tests of this process.
std::shared_ptr<const Model> default_model() {
  static std::shared_ptr<const Model> model = [] {
    const std::string path = default_model_path();
    if (!std::filesystem::exists(path)) return std::shared_ptr<const Model>();
    return Model::load(lowbit::gguf::File::open(path));
  }();
  return model;
}

#define REQUIRE_TIER()                                                                                     \
  if (const std::string tier = missing_tier(); !tier.empty())                                              \
    GTEST_SKIP() << "this CPU (or build) lacks the ISA tier LOWBIT_ISA_MAX=" << tier;

#define REQUIRE_DEFAULT_MODEL(model)                                                                       \
  REQUIRE_TIER()                                                                                           \
  auto model = default_model();                                                                            \
  if (!model) {                                                                                            \
    if (model_required()) FAIL() << "LOWBIT_REQUIRE_MODEL=1 but the model is missing: " << default_model_path(); \
    GTEST_SKIP() << "default model not found at " << default_model_path() << " (run: bash ci/fetch_model.sh)"; \
  }

const lowbit::test::json& golden() {
  static const lowbit::test::json data = lowbit::test::read_json_file(golden_path());
  return data;
}

/// How llama.cpp's choices are compared (bench/peers/llama_cpp_golden.py says
/// why): its greedy continuations over their first `compared_steps` steps,
/// exactly wherever llama.cpp's top-1 leads its runner-up by at least
/// `stable_margin` logits. Below that lead the default model's outlier
/// activation lets 8-bit activation rounding decide, and llama.cpp disagrees
/// with itself (incremental against batched) at such close calls; there
/// lowbit's choice must be one of llama.cpp's contenders: in its top 10 and
/// within `stable_margin` of its top-1 logit.
struct golden_rules {
  size_t compared_steps;
  double stable_margin;
};

golden_rules rules() {
  const auto& settings = golden()["settings"];
  return {static_cast<size_t>(settings["compared_steps"].as_int()), settings["stable_margin"].number};
}

/// Whether `token` is one of llama.cpp's contenders in `top10` ([[id, logit], ...]).
bool is_contender(const lowbit::test::json& top10, int32_t token, double margin) {
  for (size_t j = 0; j < top10.size(); ++j)
    if (top10[j][0].as_int() == token) return top10[j][1].number >= top10[0][1].number - margin;
  return false;
}

TEST(Model, DefaultModelConfiguration) {
  REQUIRE_DEFAULT_MODEL(model);
  const auto& c = model->config();
  EXPECT_EQ(c.architecture, "llama");
  EXPECT_EQ(c.n_layers, 30u);
  EXPECT_EQ(c.n_embd, 576u);
  EXPECT_EQ(c.n_ff, 1536u);
  EXPECT_EQ(c.n_heads, 9u);
  EXPECT_EQ(c.n_kv_heads, 3u);
  EXPECT_EQ(c.head_dim, 64u);
  EXPECT_EQ(c.n_rot, 64u);
  EXPECT_EQ(c.n_vocab, 49152u);
  EXPECT_FLOAT_EQ(c.rope_freq_base, 100000.0f);
  EXPECT_TRUE(c.tied_output);
  EXPECT_EQ(c.rope, lowbit::model::rope_style::pairwise);
  EXPECT_EQ(model->output().weights(), lowbit::format::q8_0);
}

/// `got`'s logits against `want`'s at one position: the same argmax where
/// want's top-1 leads its runner-up by at least `margin`, else one of want's
/// contenders (within `margin` of its top). Returns the largest difference.
double expect_same_choice(std::span<const float> want, std::span<const float> got, double margin, size_t position) {
  const size_t top = lowbit::model::argmax(want), mine = lowbit::model::argmax(got);
  double worst = 0, second = -1e30;
  for (size_t v = 0; v < want.size(); ++v) {
    worst = std::max(worst, double(std::fabs(got[v] - want[v])));
    if (v != top) second = std::max(second, double(want[v]));
  }
  if (want[top] - second >= margin) EXPECT_EQ(mine, top) << "position " << position;
  else EXPECT_GE(want[mine], want[top] - margin) << "position " << position << ": not a contender";
  return worst;
}

TEST(Model, IncrementalDecodeMatchesBatchedPrefill) {
  REQUIRE_DEFAULT_MODEL(model);
  const std::vector<int32_t> tokens = {1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3299, 28, 7018, 411};
  Context batched(model, 64);
  const std::vector<float> all = batched.evaluate(tokens, /*all_logits=*/true);
  Context stepwise(model, 64);
  const size_t vocab = model->config().n_vocab;
  const double margin = rules().stable_margin;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::vector<float> one = stepwise.evaluate(std::span<const int32_t>(&tokens[i], 1));
    // Prefill and decode quantize the same activations and attend over the
    // same cache, but through different kernels: GEMM against GEMV, and the
    // x86 prefill attention (query rows in vector lanes) against decode's
    // (keys in lanes), whose outputs agree to ~1e-6 relative
    // (PagedAttention.PrefillAndDecodeAgree). This model turns such rounding
    // differences into logit differences of up to ~1.3 (its 8-bit activation
    // rounding after an outlier channel of ~22,500 flips), as llama.cpp's own
    // batched and token-by-token logits differ by 1.05-1.44 on the golden
    // prompts. So, with the golden tests' margin: within it everywhere; the
    // same argmax where the batched top-1 leads by at least it, and a
    // contender (within it of the top) at the close calls below it.
    EXPECT_LT(expect_same_choice(std::span<const float>(&all[i * vocab], vocab), one, margin, i), margin)
        << "position " << i;
  }
  EXPECT_EQ(stepwise.position(), tokens.size());
}

TEST(Model, QuantizedKvCacheTracksF16) {
  // The decoder over a q8_0 K and V cache (lowbit-run -ctk q8_0 -ctv q8_0)
  // against its default f16 cache, teacher-forced over 112 tokens: four
  // prefill tasks of 32 positions and two 64-key tiles per row on the
  // integer kernels (avx512_vnni, avx2_vnni), more than one cache block on
  // every tier. Then the q8_0 cache decoded token by token against its own
  // batched prefill.
  REQUIRE_DEFAULT_MODEL(model);
  lowbit::model::load_options q8;
  q8.kv_k_format = q8.kv_v_format = lowbit::format::q8_0;
  const auto quantized = Model::load(lowbit::gguf::File::open(default_model_path()), q8);
  const std::vector<int32_t> phrase = {1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3299, 28, 7018, 411};
  std::vector<int32_t> tokens;
  for (size_t i = 0; i < 8; ++i) tokens.insert(tokens.end(), phrase.begin() + (i ? 1 : 0), phrase.end());
  while (tokens.size() < 112) tokens.push_back(phrase[1 + tokens.size() % (phrase.size() - 1)]);
  const size_t vocab = model->config().n_vocab;
  Context f16_cache(model, 128), q8_cache(quantized, 128);
  const std::vector<float> want = f16_cache.evaluate(tokens, /*all_logits=*/true);
  const std::vector<float> got = q8_cache.evaluate(tokens, /*all_logits=*/true);
  const double margin = rules().stable_margin;
  double worst = 0;
  for (size_t i = 0; i < tokens.size(); ++i)
    worst = std::max(worst, expect_same_choice(std::span<const float>(&want[i * vocab], vocab),
                                               std::span<const float>(&got[i * vocab], vocab), margin, i));
  const double err = lowbit::test::nmse(got, want);
  // Measured over the tiers here (scalar, avx2, avx512, avx512_vnni): NMSE
  // 1.1e-3 to 1.8e-3 and differences of at most 2.9 logits, against ~1.3
  // between the f16 cache's own prefill and decode. The bounds sit about
  // 2-3x above.
  EXPECT_LT(err, 5e-3);
  EXPECT_LT(worst, 6.0);
  EXPECT_GT(err, 1e-6) << "the q8_0 cache gave the f16 cache's logits: was it used at all?";
  // The last 16 positions decoded one token at a time over the q8_0 cache
  // (96 tokens prefilled first) against its batched prefill, by
  // IncrementalDecodeMatchesBatchedPrefill's rules but for the worst
  // difference: measured up to 1.54 logits (avx512, whose prefill and decode
  // read q8_0 rows through different float kernels) against 1.3 with the f16
  // cache, so it is held to twice the margin.
  Context stepwise(quantized, 128);
  const size_t split = tokens.size() - 16;
  stepwise.evaluate(std::span<const int32_t>(tokens.data(), split));
  for (size_t i = split; i < tokens.size(); ++i) {
    const std::vector<float> one = stepwise.evaluate(std::span<const int32_t>(&tokens[i], 1));
    EXPECT_LT(expect_same_choice(std::span<const float>(&got[i * vocab], vocab), one, margin, i), 2 * margin)
        << "position " << i;
  }
}

TEST(Model, GreedyContinuationsMatchLlamaCpp) {
  REQUIRE_DEFAULT_MODEL(model);
  const golden_rules r = rules();
  const auto& prompts = golden()["prompts"];
  ASSERT_GT(prompts.size(), 0u);
  size_t steps = 0, exact = 0, close_calls = 0, self_mismatch = 0;
  for (size_t p = 0; p < prompts.size(); ++p) {
    const auto& entry = prompts[p];
    const std::string name = entry["name"].text;
    for (size_t k = 0; k < entry["teacher_forced_mismatch_steps"].size(); ++k)
      self_mismatch += static_cast<size_t>(entry["teacher_forced_mismatch_steps"][k].as_int()) < r.compared_steps;
    const std::vector<int32_t> prompt = entry["prompt_tokens"].as_vector<int32_t>();
    const std::vector<int32_t> expected = entry["greedy"].as_vector<int32_t>();
    const auto& their_rows = entry["top10_incremental"];
    ASSERT_GE(expected.size(), r.compared_steps) << name;
    // Decode token by token as lowbit-run does; after a close call, follow
    // llama.cpp's token so every later step is compared on the same context.
    Context context(model, prompt.size() + r.compared_steps);
    std::vector<float> logits = context.evaluate(prompt);
    size_t prompt_close_calls = 0;
    for (size_t i = 0; i < r.compared_steps; ++i) {
      const int32_t ours = lowbit::model::argmax(logits);
      const double lead = entry["margin_incremental"][i].number;
      ++steps;
      if (ours == expected[i]) {
        ++exact;
      } else if (lead >= r.stable_margin) {
        ADD_FAILURE() << name << ": greedy step " << i << " chose " << ours << " where llama.cpp chose " << expected[i]
                      << " leading by " << lead << " logits";
      } else {
        ++close_calls;
        ++prompt_close_calls;
        EXPECT_TRUE(is_contender(their_rows[i], ours, r.stable_margin))
            << name << ": at close call " << i << " (llama.cpp leads by " << lead << ") lowbit chose " << ours
            << ", not one of llama.cpp's contenders";
      }
      if (i + 1 < r.compared_steps) logits = context.evaluate(std::span<const int32_t>(&expected[i], 1));
    }
    if (entry["stable"].boolean) {
      EXPECT_EQ(prompt_close_calls, 0u) << name << " has no close call in llama.cpp";
    }
  }
  std::printf("greedy: %zu of %zu steps identical to llama.cpp; %zu close calls (llama.cpp lead < %.2f) differ; "
              "llama.cpp's own batched argmax differs from its greedy step at %zu\n",
              exact, steps, close_calls, r.stable_margin, self_mismatch);
}

TEST(Model, TeacherForcedTop1AgreesWithLlamaCpp) {
  REQUIRE_DEFAULT_MODEL(model);
  const golden_rules r = rules();
  const auto& prompts = golden()["prompts"];
  size_t positions = 0, agree = 0, confident = 0, confident_agree = 0;
  const size_t vocab = model->config().n_vocab;
  for (size_t p = 0; p < prompts.size(); ++p) {
    const auto& entry = prompts[p];
    std::vector<int32_t> sequence = entry["prompt_tokens"].as_vector<int32_t>();
    const std::vector<int32_t> greedy = entry["greedy"].as_vector<int32_t>();
    sequence.insert(sequence.end(), greedy.begin(), greedy.end());
    const auto& top10 = entry["top10"];
    ASSERT_EQ(top10.size(), sequence.size()) << entry["name"].text;
    Context context(model, sequence.size());
    const std::vector<float> logits = context.evaluate(sequence, /*all_logits=*/true);
    for (size_t i = 0; i < sequence.size(); ++i) {
      const int32_t ours = lowbit::model::argmax(std::span<const float>(&logits[i * vocab], vocab));
      const bool same = ours == top10[i][0][0].as_int();
      ++positions;
      agree += same;
      if (entry["margin"][i].number >= r.stable_margin) {
        ++confident;
        confident_agree += same;
      } else if (!same) {
        EXPECT_TRUE(is_contender(top10[i], ours, r.stable_margin))
            << entry["name"].text << " position " << i << ": lowbit's top-1 " << ours
            << " is not one of llama.cpp's contenders";
      }
    }
  }
  const double all = static_cast<double>(agree) / static_cast<double>(positions);
  const double sure = static_cast<double>(confident_agree) / static_cast<double>(confident);
  std::printf("teacher-forced top-1 agreement: %zu / %zu = %.4f over all positions; %zu / %zu = %.4f where "
              "llama.cpp leads by >= %.2f\n",
              agree, positions, all, confident_agree, confident, sure, r.stable_margin);
  EXPECT_GE(sure, 0.99);
  EXPECT_GT(confident, positions / 2) << "too few confident positions to judge";
}

TEST(Model, ChatTemplates) {
  using namespace lowbit::model;
  const chat_template chatml = parse_chat_template(
      "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou "
      "are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + "
      "message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}");
  EXPECT_EQ(chatml.format, chat_format::chatml);
  EXPECT_EQ(chatml.default_system, "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
  EXPECT_EQ(format_chat(chatml, {{"user", "Hi"}}),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(format_chat(chatml, {{"system", "S"}, {"user", "Hi"}}, false),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");

  const chat_template deepseek =
      parse_chat_template("{{ bos_token }}{% for m in messages %}<\xEF\xBD\x9CUser\xEF\xBD\x9C>{{ m['content'] }}"
                          "<\xEF\xBD\x9C" "Assistant\xEF\xBD\x9C>{% endfor %}");
  EXPECT_EQ(deepseek.format, chat_format::deepseek);
  EXPECT_EQ(format_chat(deepseek, {{"user", "Hi"}}),
            "<\xEF\xBD\x9CUser\xEF\xBD\x9C>Hi<\xEF\xBD\x9C" "Assistant\xEF\xBD\x9C>");

  try {
    parse_chat_template("{{ messages }}");
    FAIL() << "an unknown template was accepted";
  } catch (const lowbit::Error& e) {
    EXPECT_EQ(e.code(), lowbit::status::unsupported);
    EXPECT_NE(std::string(e.what()).find("neither ChatML"), std::string::npos) << e.what();
  }
  EXPECT_THROW(format_chat(chatml, {{"robot", "x"}}), lowbit::Error);
}

TEST(Model, SamplerIsSeededAndRespectsFilters) {
  using namespace lowbit::model;
  const std::vector<float> logits = {0.0f, 5.0f, 4.9f, -3.0f, 5.0f};
  EXPECT_EQ(argmax(logits), 1);  // the lowest index among equal maxima
  Sampler greedy({});
  EXPECT_EQ(greedy.sample(logits), 1);

  sampler_options top2;
  top2.temperature = 1.0f;
  top2.top_k = 2;
  top2.top_p = 1.0f;
  top2.seed = 7;
  Sampler a(top2), b(top2);
  bool saw[5] = {};
  for (int i = 0; i < 200; ++i) {
    const int32_t x = a.sample(logits);
    EXPECT_EQ(x, b.sample(logits));  // same seed, same draws
    saw[x] = true;
  }
  EXPECT_TRUE(saw[1] && saw[4]);     // the two kept tokens both appear
  EXPECT_FALSE(saw[0] || saw[2] || saw[3]);

  sampler_options nucleus = top2;
  nucleus.top_k = 0;
  nucleus.top_p = 0.3f;              // token 1 alone holds more than 30 %
  Sampler c(nucleus);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(c.sample(logits), 1);

  sampler_options bad;
  bad.temperature = -1.0f;
  EXPECT_THROW(Sampler{bad}, lowbit::Error);
  bad.temperature = 1.0f;
  bad.top_p = 0.0f;
  EXPECT_THROW(Sampler{bad}, lowbit::Error);
}

TEST(Model, ContextOverflowIsAnErrorAndKeepsState) {
  REQUIRE_DEFAULT_MODEL(model);
  Context context(model, 4);
  const std::vector<int32_t> three = {1, 2, 3};
  context.evaluate(three);
  try {
    context.evaluate(three);
    FAIL() << "overflow accepted";
  } catch (const lowbit::Error& e) {
    EXPECT_NE(std::string(e.what()).find("overflow the context"), std::string::npos) << e.what();
  }
  EXPECT_EQ(context.position(), 3u);
  const std::vector<int32_t> bad = {-1};
  EXPECT_THROW(context.evaluate(bad), lowbit::Error);
  EXPECT_EQ(context.position(), 3u);
  EXPECT_THROW(Context(model, model->config().context_length + 1), lowbit::Error);
}

// ---- synthetic models: loading, both architectures, and load errors --------

/// A temporary directory removed at the end of the test. Named by process as
/// well as test: ctest runs the same test under several ISA caps at once.
struct temp_dir {
  std::filesystem::path path;
  temp_dir() {
    path = std::filesystem::temp_directory_path() /
           ("lowbit-model-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(path);
  }
  ~temp_dir() { std::filesystem::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

/// Rewrites `source` to `path` with every metadata key, and every tensor
/// except `drop`; `edit` may change a tensor's dimensions or type first.
void rewrite(const lowbit::gguf::File& source, const std::string& path, const std::string& drop,
             const std::function<void(const std::string&, std::vector<uint64_t>&, uint32_t&,
                                      std::vector<uint8_t>&)>& edit = {}) {
  lowbit::gguf::Writer w;
  lowbit::model::copy_metadata(w, source, "");
  for (const auto& t : source.tensors()) {
    if (t.name == drop) continue;
    std::vector<uint64_t> ne(t.ne.begin(), t.ne.begin() + t.n_dims);
    uint32_t type = t.type;
    std::vector<uint8_t> data(t.data, t.data + t.bytes);
    if (edit) edit(t.name, ne, type, data);
    w.add_tensor(t.name, ne, type, data);
  }
  w.write(path);
}

std::string load_error(const std::string& path) {
  try {
    Model::load(lowbit::gguf::File::open(path));
  } catch (const lowbit::Error& e) {
    return e.what();
  }
  return "(loaded without error)";
}

TEST(SyntheticModel, BothArchitecturesRunAndDecodeMatchesPrefill) {
  REQUIRE_TIER()
  temp_dir dir;
  for (const std::string arch : {"llama", "qwen2"}) {
    lowbit::model::synthetic_config c;
    c.architecture = arch;
    c.n_layers = 3;
    c.n_embd = 128;
    c.n_ff = 256;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.n_vocab = 300;
    c.weights = arch == "llama" ? lowbit::format::q4_1 : lowbit::format::q8_0;
    const std::string path = dir.file(arch + ".gguf");
    lowbit::model::write_synthetic_model(path, c);
    const auto model = Model::load(lowbit::gguf::File::open(path));
    EXPECT_EQ(model->config().architecture, arch);
    EXPECT_EQ(model->config().qkv_bias, arch == "qwen2");
    EXPECT_EQ(model->config().rope,
              arch == "qwen2" ? lowbit::model::rope_style::neox : lowbit::model::rope_style::pairwise);
    EXPECT_EQ(model->layers()[0].q.bias.size(), arch == "qwen2" ? 128u : 0u);

    const std::vector<int32_t> tokens = {5, 17, 299, 0, 42, 42, 7, 123, 64, 250};
    Context batched(model, 32);
    const std::vector<float> all = batched.evaluate(tokens, true);
    Context stepwise(model, 32);
    for (size_t i = 0; i < tokens.size(); ++i) {
      const std::vector<float> one = stepwise.evaluate(std::span<const int32_t>(&tokens[i], 1));
      double diff = 0, norm = 0;
      for (size_t v = 0; v < c.n_vocab; ++v) {
        ASSERT_TRUE(std::isfinite(one[v])) << arch << " position " << i;
        diff += std::pow(one[v] - all[i * c.n_vocab + v], 2);
        norm += std::pow(all[i * c.n_vocab + v], 2);
      }
      EXPECT_LT(diff / norm, 1e-6) << arch << " position " << i;
    }
    // The same seed writes the same file.
    lowbit::model::write_synthetic_model(dir.file("again.gguf"), c);
    const auto a = lowbit::gguf::File::open(path), b = lowbit::gguf::File::open(dir.file("again.gguf"));
    ASSERT_EQ(a.file_size(), b.file_size());
    EXPECT_EQ(0, std::memcmp(a.tensor("blk.2.ffn_down.weight").data, b.tensor("blk.2.ffn_down.weight").data,
                             a.tensor("blk.2.ffn_down.weight").bytes));
  }
}

TEST(SyntheticModel, LoadErrorsNameTheTensor) {
  REQUIRE_TIER()
  temp_dir dir;
  lowbit::model::synthetic_config c;
  c.n_vocab = 64;
  const std::string good = dir.file("good.gguf");
  lowbit::model::write_synthetic_model(good, c);
  const lowbit::gguf::File source = lowbit::gguf::File::open(good);

  rewrite(source, dir.file("missing.gguf"), "blk.1.ffn_up.weight");
  EXPECT_NE(load_error(dir.file("missing.gguf")).find("blk.1.ffn_up.weight"), std::string::npos)
      << load_error(dir.file("missing.gguf"));

  rewrite(source, dir.file("shape.gguf"), "", [](const std::string& name, auto& ne, auto&, auto&) {
    if (name == "blk.0.attn_k.weight") std::swap(ne[0], ne[1]);  // 64 x 32 stored as 32 x 64
  });
  const std::string shape = load_error(dir.file("shape.gguf"));
  EXPECT_NE(shape.find("'blk.0.attn_k.weight' has shape [32, 64], expected [64, 32]"), std::string::npos) << shape;

  rewrite(source, dir.file("type.gguf"), "", [](const std::string& name, auto&, uint32_t& type, auto& data) {
    if (name == "blk.0.attn_q.weight") {  // Q4_0 (18 bytes / 32) relabelled Q5_0 (22 bytes / 32)
      type = 6;
      data.resize(data.size() / 18 * 22);
    }
  });
  const std::string type = load_error(dir.file("type.gguf"));
  EXPECT_NE(type.find("'blk.0.attn_q.weight' has type Q5_0"), std::string::npos) << type;

  lowbit::gguf::Writer w;
  lowbit::model::copy_metadata(w, source, "llama.");
  w.set_string("general.architecture", "gpt2");
  for (const auto& t : source.tensors())
    w.add_tensor(t.name, std::vector<uint64_t>(t.ne.begin(), t.ne.begin() + t.n_dims), t.type,
                 std::span<const uint8_t>(t.data, t.bytes));
  w.write(dir.file("arch.gguf"));
  const std::string arch = load_error(dir.file("arch.gguf"));
  EXPECT_NE(arch.find("architecture 'gpt2' is not supported (supported: llama, qwen2)"), std::string::npos) << arch;

  try {
    lowbit::gguf::File::open(dir.file("no-such-file.gguf"));
    FAIL() << "a missing file opened";
  } catch (const lowbit::Error& e) {
    EXPECT_NE(std::string(e.what()).find("no-such-file.gguf"), std::string::npos) << e.what();
  }
}

}  // namespace
