// Reading a vocabulary from a GGUF file's tokenizer.ggml.* keys.
//
// Kept apart from the tokenizer core so the core needs no file to be tested.
// Absent optional keys take llama.cpp's defaults (llama-vocab.cpp, load()), so a
// file tokenizes here as it does there; what llama.cpp only warns about (a
// special id outside the vocabulary) is an error here, naming the key, since
// it means a damaged or mis-converted file.
#include <string>

#include "gguf/gguf.hpp"
#include "lowbit/error.hpp"
#include "tokenizer/pre_tokenizer.hpp"
#include "tokenizer/tokenizer.hpp"

namespace lowbit::tokenizer {

namespace {

// llama.cpp's BOS and EOS for a gpt2 vocabulary whose file names neither.
constexpr int32_t gpt2_default_special_id = 11;

}  // namespace

vocabulary vocabulary_from_gguf(const gguf::File& file) {
  const std::string where = file.path() + ": ";
  vocabulary vocab;

  vocab.model = std::string(file.get_string("tokenizer.ggml.model"));
  if (vocab.model != "gpt2") {
    throw Error(status::unsupported, where + "tokenizer.ggml.model is '" + vocab.model +
                                         "'; lowbit reads byte-level BPE vocabularies ('gpt2') only");
  }
  vocab.pre = std::string(file.get_string_or("tokenizer.ggml.pre", "default"));

  for (const std::string_view token : file.get_string_array("tokenizer.ggml.tokens")) vocab.tokens.emplace_back(token);
  const auto count = static_cast<int64_t>(vocab.tokens.size());
  if (count == 0) throw Error(status::bad_file, where + "tokenizer.ggml.tokens is empty");

  if (file.find("tokenizer.ggml.token_type")) {
    const std::vector<int64_t> types = file.get_int_array("tokenizer.ggml.token_type");
    if (static_cast<int64_t>(types.size()) != count) {
      throw Error(status::bad_file, where + "tokenizer.ggml.token_type has " + std::to_string(types.size()) +
                                        " entries for " + std::to_string(count) + " tokens");
    }
    vocab.token_types.reserve(types.size());
    for (size_t i = 0; i < types.size(); ++i) {
      if (types[i] < 0 || types[i] > 6) {
        throw Error(status::bad_file, where + "tokenizer.ggml.token_type[" + std::to_string(i) + "] is " +
                                          std::to_string(types[i]) + "; token types are 0 to 6");
      }
      vocab.token_types.push_back(static_cast<int32_t>(types[i]));
    }
  }

  if (!file.find("tokenizer.ggml.merges")) {
    throw Error(status::bad_file, where + "tokenizer.ggml.merges is missing; a gpt2 vocabulary needs its merges");
  }
  for (const std::string_view merge : file.get_string_array("tokenizer.ggml.merges")) vocab.merges.emplace_back(merge);

  const auto special_id = [&](const char* key, int32_t fallback) -> int32_t {
    if (!file.find(key)) return fallback;
    const uint64_t id = file.get_uint(key);
    if (id >= static_cast<uint64_t>(count)) {
      throw Error(status::bad_file, where + key + " is " + std::to_string(id) + ", outside the vocabulary of " +
                                        std::to_string(count) + " tokens");
    }
    return static_cast<int32_t>(id);
  };
  const int32_t default_id = count > gpt2_default_special_id ? gpt2_default_special_id : -1;
  vocab.bos = special_id("tokenizer.ggml.bos_token_id", default_id);
  vocab.eos = special_id("tokenizer.ggml.eos_token_id", default_id);
  vocab.unknown = special_id("tokenizer.ggml.unknown_token_id", -1);
  vocab.padding = special_id("tokenizer.ggml.padding_token_id", -1);
  vocab.eot = special_id("tokenizer.ggml.eot_token_id", -1);
  vocab.eom = special_id("tokenizer.ggml.eom_token_id", -1);

  const pre_tokenizer_traits* traits = find_pre_tokenizer(vocab.pre);
  vocab.add_bos = file.get_bool_or("tokenizer.ggml.add_bos_token", traits && traits->adds_bos);
  vocab.add_eos = file.get_bool_or("tokenizer.ggml.add_eos_token", false);
  return vocab;
}

}  // namespace lowbit::tokenizer
