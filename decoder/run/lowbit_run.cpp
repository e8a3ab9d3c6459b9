// lowbit-run: generate text with a GGUF model through lowbit's kernels.
//
// The command-line face of the reference decoder. It streams tokens as they
// are generated and ends with load, prefill and decode speed, or prints one
// JSON object (--json) for scripts: the peers comparison and the tests read
// that. Greedy by default (temperature 0), so a run is reproducible and can be
// compared with llama.cpp token for token.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/gguf.hpp"
#include "lowbit/error.hpp"
#include "lowbit/formats.hpp"
#include "lowbit/parallel.hpp"
#include "model/chat.hpp"
#include "run/cli.hpp"
#include "model/model.hpp"
#include "model/sampler.hpp"
#include "tokenizer/tokenizer.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

struct options {
  std::string model_path;
  std::string prompt;
  std::string system;
  size_t n_predict = 128;
  size_t threads = 0;
  size_t context = 0;
  lowbit::model::sampler_options sampling;
  bool chat = false;
  bool json = false;
  bool ignore_eos = false;
  lowbit::format cache_k = lowbit::format::f16, cache_v = lowbit::format::f16;
};

constexpr const char* usage_text =
    "usage: lowbit-run -m MODEL [-p PROMPT] [options]\n"
    "\n"
    "  -m, --model PATH     GGUF model (llama or qwen2 family)\n"
    "  -p, --prompt TEXT    the prompt (with --chat, the user's message)\n"
    "  -n, --n-predict N    tokens to generate (default 128)\n"
    "  -t, --threads N      threads (default: LOWBIT_NUM_THREADS or all hardware threads)\n"
    "  -c, --ctx-size N     context length to reserve (default: prompt + n, at most the model's)\n"
    "      --temp X         temperature; 0 is greedy (default 0)\n"
    "      --top-k N        keep the N most likely tokens (default 40; 0 = all)\n"
    "      --top-p X        nucleus sampling threshold in (0, 1] (default 0.95)\n"
    "      --seed N         random seed for sampling (default 0)\n"
    "      --chat           wrap the prompt in the model's chat format (ChatML, DeepSeek)\n"
    "      --system TEXT    system message for --chat\n"
    "      --ignore-eos     keep generating past end-of-generation tokens\n"
    "      --cache-type-k F KV cache format of K (also -ctk): f16 (default), f32, q8_0\n"
    "      --cache-type-v F KV cache format of V (also -ctv): f16 (default), f32, q8_0, q4_0\n"
    "      --json           print one JSON object instead of streaming text\n"
    "  -h, --help           this text\n";

/// The KV cache format given to the current flag, one of `allowed`.
lowbit::format cache_format(lowbit::cli::arguments& args, std::initializer_list<lowbit::format> allowed) {
  const std::string flag(args.current());
  const std::string_view name = args.value();
  std::string names;
  for (lowbit::format f : allowed) {
    if (lowbit::traits(f).name == name) return f;
    names += (names.empty() ? "" : ", ") + std::string(lowbit::traits(f).name);
  }
  args.fail(flag + " expects one of " + names + ", got '" + std::string(name) + "'");
}

options parse_arguments(int argc, char** argv) {
  options o;
  lowbit::cli::arguments args(argc, argv, "lowbit-run", usage_text);
  while (args.next()) {
    if (args.is("-m", "--model")) {
      o.model_path = args.value();
    } else if (args.is("-p", "--prompt")) {
      o.prompt = args.value();
    } else if (args.is("-n", "--n-predict")) {
      o.n_predict = args.count();
    } else if (args.is("-t", "--threads")) {
      o.threads = args.count(/*positive=*/true);
    } else if (args.is("-c", "--ctx-size")) {
      o.context = args.count();
    } else if (args.is("--temp")) {
      o.sampling.temperature = args.real();
    } else if (args.is("--top-k")) {
      o.sampling.top_k = args.count();
    } else if (args.is("--top-p")) {
      o.sampling.top_p = args.real();
    } else if (args.is("--seed")) {
      o.sampling.seed = args.count();
    } else if (args.is("--chat")) {
      o.chat = true;
    } else if (args.is("--system")) {
      o.system = args.value();
    } else if (args.is("--ignore-eos")) {
      o.ignore_eos = true;
    } else if (args.is("--json")) {
      o.json = true;
    } else if (args.is("-ctk", "--cache-type-k")) {
      o.cache_k = cache_format(args, {lowbit::format::f16, lowbit::format::f32, lowbit::format::q8_0});
    } else if (args.is("-ctv", "--cache-type-v")) {
      o.cache_v =
          cache_format(args, {lowbit::format::f16, lowbit::format::f32, lowbit::format::q8_0, lowbit::format::q4_0});
    } else {
      args.unknown();
    }
  }
  if (o.model_path.empty()) args.fail("no model given (-m MODEL)");
  return o;
}

/// `text` as a JSON string. Invalid UTF-8 (a token can end mid-character) is
/// replaced by U+FFFD so the output is always valid JSON.
std::string json_string(std::string_view text) {
  std::string out = "\"";
  size_t i = 0;
  while (i < text.size()) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    size_t length = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    bool valid = length != 0 && i + length <= text.size();
    for (size_t j = 1; valid && j < length; ++j)
      valid = (static_cast<unsigned char>(text[i + j]) & 0xc0) == 0x80;
    if (!valid) {
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    if (length > 1) {
      out.append(text.substr(i, length));
    } else if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
      out += escaped;
    } else {
      out += static_cast<char>(c);
    }
    i += length;
  }
  return out + "\"";
}

std::string json_array(const std::vector<int32_t>& ids) {
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) out += (i ? ", " : "") + std::to_string(ids[i]);
  return out + "]";
}

double seconds_since(clock_type::time_point start) {
  return std::chrono::duration<double>(clock_type::now() - start).count();
}

int run(const options& o) {
  if (o.threads) lowbit::set_num_threads(o.threads);

  const auto load_start = clock_type::now();
  lowbit::gguf::File file = lowbit::gguf::File::open(o.model_path);
  lowbit::tokenizer::Tokenizer tokenizer(lowbit::tokenizer::vocabulary_from_gguf(file));
  std::string chat_jinja;
  if (o.chat) chat_jinja = std::string(file.get_string("tokenizer.chat_template"));
  lowbit::model::load_options load;
  load.kv_k_format = o.cache_k;
  load.kv_v_format = o.cache_v;
  std::shared_ptr<const lowbit::model::Model> model = lowbit::model::Model::load(std::move(file), load);
  const double load_seconds = seconds_since(load_start);

  std::string text = o.prompt;
  if (o.chat) {
    const lowbit::model::chat_template chat = lowbit::model::parse_chat_template(chat_jinja);
    std::vector<lowbit::model::chat_message> messages;
    if (!o.system.empty()) messages.push_back({"system", o.system});
    messages.push_back({"user", o.prompt});
    text = lowbit::model::format_chat(chat, messages);
  }
  const std::vector<int32_t> prompt = tokenizer.encode(text, /*add_special=*/true, /*parse_special=*/true);
  if (prompt.empty()) throw lowbit::Error(lowbit::status::invalid_argument, "the prompt is empty: give one with -p");

  const size_t wanted = o.context ? o.context : std::min(model->config().context_length, prompt.size() + o.n_predict);
  if (prompt.size() + (o.n_predict ? o.n_predict - 1 : 0) > wanted)
    throw lowbit::Error(lowbit::status::invalid_argument,
                        "the prompt (" + std::to_string(prompt.size()) + " tokens) plus " + std::to_string(o.n_predict) +
                            " generated tokens do not fit a context of " + std::to_string(wanted) + " tokens");
  lowbit::model::Context context(model, wanted);
  lowbit::model::Sampler sampler(o.sampling);

  const auto prefill_start = clock_type::now();
  std::vector<float> logits = context.evaluate(prompt);
  const double prefill_seconds = seconds_since(prefill_start);

  std::vector<int32_t> generated;
  std::string generated_text;
  size_t decode_steps = 0;
  double decode_seconds = 0;
  if (!o.json && !o.chat) std::fwrite(o.prompt.data(), 1, o.prompt.size(), stdout);
  for (size_t i = 0; i < o.n_predict; ++i) {
    const int32_t token = sampler.sample(logits);
    const bool end = tokenizer.is_end_of_generation(token);
    generated.push_back(token);
    if (end && !o.ignore_eos) break;
    const std::string piece = tokenizer.token_to_piece(token, /*special=*/false);
    generated_text += piece;
    if (!o.json) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    }
    if (i + 1 == o.n_predict) break;
    const auto step_start = clock_type::now();
    logits = context.evaluate(std::span<const int32_t>(&generated.back(), 1));
    decode_seconds += seconds_since(step_start);
    ++decode_steps;
  }

  const double prefill_rate = prompt.size() / prefill_seconds;
  const double decode_rate = decode_steps ? decode_steps / decode_seconds : 0.0;
  if (o.json) {
    std::printf(
        "{\"prompt_tokens\": %s, \"tokens\": %s, \"text\": %s, \"load_s\": %.4f, \"prefill_tok_s\": %.2f, "
        "\"decode_tok_s\": %.2f}\n",
        json_array(prompt).c_str(), json_array(generated).c_str(), json_string(generated_text).c_str(), load_seconds,
        prefill_rate, decode_rate);
  } else {
    std::printf("\n");
    std::fprintf(stderr,
                 "\nlowbit-run: load %.3f s (packing %.3f s) | prefill %zu tokens, %.1f tok/s | decode %zu tokens, "
                 "%.1f tok/s | %zu threads | KV cache %s/%s\n",
                 load_seconds, model->pack_seconds(), prompt.size(), prefill_rate, decode_steps, decode_rate,
                 lowbit::num_threads(), std::string(lowbit::traits(o.cache_k).name).c_str(),
                 std::string(lowbit::traits(o.cache_v).name).c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const options o = parse_arguments(argc, argv);
  try {
    return run(o);
  } catch (const lowbit::Error& e) {
    std::fprintf(stderr, "lowbit-run: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lowbit-run: error: %s\n", e.what());
    return 1;
  }
}
