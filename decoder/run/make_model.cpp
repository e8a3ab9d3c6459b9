// lowbit-make-model: writes a synthetic llama/qwen2 GGUF model with random
// weights through lowbit's GGUF writer.
//
// The speed comparison with llama.cpp needs a model larger than the 135M
// default, and both engines must load the very same file; this makes one
// (the 1b preset is Llama-3.2-1B-shaped, with SmolLM2's tokenizer copied in
// so both engines can tokenize a prompt).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "gguf/gguf.hpp"
#include "lowbit/error.hpp"
#include "model/synthetic.hpp"

namespace {

constexpr const char* usage_text =
    "usage: lowbit-make-model -o OUT.gguf [--preset 1b|tiny] [--tokenizer-from MODEL.gguf] [options]\n"
    "\n"
    "  --preset NAME        1b: 16 layers, 2048 wide, 8192 FFN, 32 heads / 8 KV heads (Llama-3.2-1B shape)\n"
    "                       tiny: 2 layers, 64 wide (default)\n"
    "  --arch NAME          llama (default) or qwen2\n"
    "  --layers N --embd N --ff N --heads N --kv-heads N --vocab N --ctx N\n"
    "  --format FMT         matrix format: q4_0 (default), q4_1, q8_0, q4_k, q6_k\n"
    "  --seed N             random seed (default 1)\n"
    "  --tokenizer-from M   copy the tokenizer of GGUF model M (sets the vocabulary)\n";

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "lowbit-make-model: %s\n\n%s", message.c_str(), usage_text);
  std::exit(2);
}

size_t count(std::string_view flag, const char* text) {
  char* end = nullptr;
  const unsigned long long v = std::strtoull(text, &end, 10);
  if (end == text || *end != '\0' || text[0] == '-' || v == 0)
    usage_error(std::string(flag) + " expects a positive integer, got '" + text + "'");
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  lowbit::model::synthetic_config c;
  std::string out, tokenizer_from;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) usage_error(std::string(arg) + " needs a value");
      return argv[++i];
    };
    if (arg == "-h" || arg == "--help") {
      std::fputs(usage_text, stdout);
      return 0;
    } else if (arg == "-o" || arg == "--output") {
      out = value();
    } else if (arg == "--preset") {
      const std::string_view p = value();
      if (p == "1b") {
        c.n_layers = 16, c.n_embd = 2048, c.n_ff = 8192, c.n_heads = 32, c.n_kv_heads = 8, c.context_length = 4096;
        c.rope_freq_base = 500000.0f, c.scale = 0.02f;
      } else if (p != "tiny") {
        usage_error("unknown preset '" + std::string(p) + "' (1b, tiny)");
      }
    } else if (arg == "--arch") {
      c.architecture = value();
    } else if (arg == "--layers") {
      c.n_layers = count(arg, value());
    } else if (arg == "--embd") {
      c.n_embd = count(arg, value());
    } else if (arg == "--ff") {
      c.n_ff = count(arg, value());
    } else if (arg == "--heads") {
      c.n_heads = count(arg, value());
    } else if (arg == "--kv-heads") {
      c.n_kv_heads = count(arg, value());
    } else if (arg == "--vocab") {
      c.n_vocab = count(arg, value());
    } else if (arg == "--ctx") {
      c.context_length = count(arg, value());
    } else if (arg == "--seed") {
      c.seed = count(arg, value());
    } else if (arg == "--format") {
      const lowbit::format_traits* f = lowbit::find_format(std::string_view(value()));
      if (!f || !f->is_weight) usage_error("--format must be a weight format: q4_0, q4_1, q8_0, q4_k, q6_k");
      c.weights = c.embedding = f->id;
    } else if (arg == "--tokenizer-from") {
      tokenizer_from = value();
    } else {
      usage_error("unknown argument '" + std::string(arg) + "'");
    }
  }
  if (out.empty()) usage_error("no output path (-o OUT.gguf)");
  try {
    if (tokenizer_from.empty()) {
      lowbit::model::write_synthetic_model(out, c);
    } else {
      const lowbit::gguf::File source = lowbit::gguf::File::open(tokenizer_from);
      lowbit::model::write_synthetic_model(out, c, &source);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lowbit-make-model: error: %s\n", e.what());
    return 1;
  }
  std::printf("%s\n", out.c_str());
  return 0;
}
