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
#include "run/cli.hpp"

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

}  // namespace

int main(int argc, char** argv) {
  lowbit::model::synthetic_config c;
  std::string out, tokenizer_from;
  lowbit::cli::arguments args(argc, argv, "lowbit-make-model", usage_text);
  while (args.next()) {
    if (args.is("-o", "--output")) {
      out = args.value();
    } else if (args.is("--preset")) {
      const std::string_view p = args.value();
      if (p == "1b") {
        c.n_layers = 16, c.n_embd = 2048, c.n_ff = 8192, c.n_heads = 32, c.n_kv_heads = 8, c.context_length = 4096;
        c.rope_freq_base = 500000.0f, c.scale = 0.02f;
      } else if (p != "tiny") {
        args.fail("unknown preset '" + std::string(p) + "' (1b, tiny)");
      }
    } else if (args.is("--arch")) {
      c.architecture = args.value();
    } else if (args.is("--layers")) {
      c.n_layers = args.count(true);
    } else if (args.is("--embd")) {
      c.n_embd = args.count(true);
    } else if (args.is("--ff")) {
      c.n_ff = args.count(true);
    } else if (args.is("--heads")) {
      c.n_heads = args.count(true);
    } else if (args.is("--kv-heads")) {
      c.n_kv_heads = args.count(true);
    } else if (args.is("--vocab")) {
      c.n_vocab = args.count(true);
    } else if (args.is("--ctx")) {
      c.context_length = args.count(true);
    } else if (args.is("--seed")) {
      c.seed = args.count(true);
    } else if (args.is("--format")) {
      const lowbit::format_traits* f = lowbit::find_format(std::string_view(args.value()));
      if (!f || !f->is_weight) args.fail("--format must be a weight format: q4_0, q4_1, q8_0, q4_k, q6_k");
      c.weights = c.embedding = f->id;
    } else if (args.is("--tokenizer-from")) {
      tokenizer_from = args.value();
    } else {
      args.unknown();
    }
  }
  if (out.empty()) args.fail("no output path (-o OUT.gguf)");
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
