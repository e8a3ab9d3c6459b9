// The reference decoder's tokenizer: GPT-2 byte-level BPE as GGUF stores it
// (tokenizer.ggml.model = "gpt2"), matching llama.cpp token for token.
//
// llama.cpp is the reference because it is what people compare a GGUF runtime
// with, so its behaviour is followed even where Hugging Face's differs: special
// tokens are split out first (longest text first, user-defined tokens always,
// control tokens only when asked), the rest is split by the pre-tokenizer
// regexes named by tokenizer.ggml.pre, each applied in turn to every piece the
// previous one left, with the text between matches kept as pieces of its own;
// every piece is mapped byte by byte through GPT-2's byte-to-unicode table and
// merged by rank. The regexes run on PCRE2 (Unicode categories from its tables,
// just-in-time compiled where the platform allows), never on hand-made tables.
//
// The core takes a plain `vocabulary` rather than a GGUF file, so it can be
// tested with small synthetic vocabularies; vocabulary_from_gguf() (its own
// translation unit) reads one from a model file. A Tokenizer is immutable once
// built: copies share its tables and every member function is safe to call
// from several threads at once.
//
// One deliberate difference from llama.cpp: llama.cpp replaces each invalid
// UTF-8 byte by U+FFFD before tokenizing, so such text does not survive a round
// trip. Here an invalid byte is split exactly as U+FFFD would be but keeps its
// own value, so decode(encode(text)) == text for any bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace lowbit::gguf {
class File;
}

namespace lowbit::tokenizer {

/// GGUF's token types (tokenizer.ggml.token_type); the numbering is the file's.
enum class token_type : int32_t {
  undefined = 0,
  normal = 1,
  unknown = 2,
  control = 3,       ///< <|im_start|>, <|endoftext|>: matched only with parse_special
  user_defined = 4,  ///< added tokens: always matched verbatim, always rendered
  unused = 5,
  byte = 6,
};

/// What GGUF's tokenizer.ggml.* keys hold. Special ids are -1 when absent.
struct vocabulary {
  std::string model;                 ///< tokenizer.ggml.model; only "gpt2" is supported
  std::string pre;                   ///< tokenizer.ggml.pre: "smollm", "qwen2", "llama3", "gpt-2", ...
  std::vector<std::string> tokens;   ///< token texts, indexed by id, in byte-to-unicode form
  std::vector<int32_t> token_types;  ///< one token_type per token, or empty for all normal
  std::vector<std::string> merges;   ///< "left right", rank = index
  int32_t bos = -1, eos = -1, unknown = -1, padding = -1, eot = -1, eom = -1;
  bool add_bos = false, add_eos = false;
};

/// Reads the tokenizer.ggml.* keys of an open GGUF file, with llama.cpp's
/// defaults for absent keys (pre "default"; BOS and EOS id 11 when the vocabulary
/// has one; add_bos true for the llama3 family). Throws lowbit::Error naming the
/// key: status::unsupported when tokenizer.ggml.model is not "gpt2",
/// status::bad_file when tokens or merges are missing, have the wrong type, or a
/// special id is outside the vocabulary.
vocabulary vocabulary_from_gguf(const gguf::File& file);

/// The tokenizer.ggml.pre names this tokenizer knows, in a stable order.
std::span<const std::string_view> known_pre_tokenizers();

/// A byte-level BPE tokenizer.
class Tokenizer {
 public:
  /// Validates `v` and builds the lookup tables. Throws lowbit::Error:
  /// status::unsupported for a model other than "gpt2" or an unknown pre-tokenizer
  /// name (the message lists the known ones); status::bad_file for an empty or
  /// duplicated token, token_types of the wrong size or with a value outside
  /// 0..6, a merge that is not "left right", a special id outside the
  /// vocabulary, or add_bos / add_eos without the id to add.
  explicit Tokenizer(vocabulary v);

  /// Token ids of `text` (any bytes). With `add_special`, BOS and EOS are added
  /// as the vocabulary's add_bos / add_eos flags say. Control and unknown-type
  /// tokens written in the text are recognised only with `parse_special`;
  /// user-defined tokens always are (llama.cpp's rule).
  std::vector<int32_t> encode(std::string_view text, bool add_special = true, bool parse_special = false) const;

  /// The bytes token `id` stands for (llama_token_to_piece): normal tokens
  /// byte-decoded, user-defined tokens as written; control and unknown tokens
  /// as written when `special`, else nothing; unused and undefined tokens
  /// nothing. Throws Error(invalid_argument) for an id outside the vocabulary.
  std::string token_to_piece(int32_t id, bool special = false) const;

  /// The concatenated pieces of `ids` (see token_to_piece), as llama.cpp's
  /// streaming output writes them. llama_detokenize's optional clean-up of
  /// spaces before punctuation (on for the gpt-2 and llama3 families, off for
  /// smollm and qwen2) is not applied.
  std::string decode(std::span<const int32_t> ids, bool special = false) const;

  /// The pieces the pre-tokenizer splits `text` into, as raw bytes, before any
  /// special-token handling (for tests and diagnostics).
  std::vector<std::string> pre_tokenize(std::string_view text) const;

  size_t vocab_size() const;
  int32_t bos() const;  ///< -1 when the vocabulary has none
  int32_t eos() const;  ///< -1 when the vocabulary has none
  /// Whether generation stops at `id`: EOS, EOT and EOM, every token whose
  /// text llama.cpp treats as an end of turn ("<|im_end|>", "<|endoftext|>",
  /// "<|eot_id|>", "<｜end▁of▁sentence｜>", "<|end_of_text|>", ...), and the
  /// fill-in-the-middle pad / repository / file-separator tokens llama.cpp
  /// finds by their text (for SmolLM2 this is {0, 2, 4}: 4 is "<reponame>").
  bool is_end_of_generation(int32_t id) const;
  /// The end-of-generation ids, ascending.
  const std::vector<int32_t>& end_of_generation_ids() const;
  /// The id of the token whose text (as stored in the vocabulary) is
  /// `token_text`, if any.
  std::optional<int32_t> find(std::string_view token_text) const;
  /// The stored text of token `id`; throws Error(invalid_argument) when out of range.
  const std::string& token_text(int32_t id) const;
  /// The type of token `id` after llama.cpp's adjustments (end-of-turn and
  /// fill-in-the-middle tokens count as control); throws like token_text.
  token_type type(int32_t id) const;
  /// The pre-tokenizer name (tokenizer.ggml.pre).
  const std::string& pre() const;

 private:
  struct state;
  std::shared_ptr<const state> state_;
};

}  // namespace lowbit::tokenizer
