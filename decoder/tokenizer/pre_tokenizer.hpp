// The pre-tokenizer: splits text into the pieces BPE merges within, by the
// regexes llama.cpp associates with each tokenizer.ggml.pre name.
//
// The regexes are kept as llama.cpp spells them (its case-insensitive
// contractions written out as [sS] classes, so that PCRE2's Unicode case
// folding cannot widen them) and translated once: `\s` and `\S` become the
// Unicode White_Space property, which is llama.cpp's whitespace set (PCRE2's
// own \s also takes U+180E). They are compiled by PCRE2 with UTF and UCP, so
// \p{L} and \p{N} come from PCRE2's Unicode tables. Splitting follows
// llama.cpp's unicode_regex_split: each regex runs over every piece the
// previous one left, each piece on its own (a lookahead stops at the piece's
// end), and the text between two matches stays a piece of its own. Invalid
// UTF-8 bytes are matched as U+FFFD (what llama.cpp turns them into) but the
// pieces keep the original bytes. The Unicode version is PCRE2's (Unicode 14
// for PCRE2 10.42; llama.cpp's own tables are Unicode 15), so a character
// assigned since then counts as unassigned, splitting like a symbol rather
// than a letter. Internal to lowbit-tokenizer.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace lowbit::tokenizer {

/// What a tokenizer.ggml.pre name means besides its regexes.
struct pre_tokenizer_traits {
  std::string_view name;
  bool ignore_merges;    ///< a piece that is a whole token is emitted as is (llama3)
  bool adds_bos;         ///< llama.cpp's add_bos default before tokenizer.ggml.add_bos_token
};

/// The traits of pre-tokenizer `name`, or nullptr when it is unknown.
const pre_tokenizer_traits* find_pre_tokenizer(std::string_view name);

/// The known names, in table order.
std::span<const std::string_view> pre_tokenizer_names();

/// The compiled regexes of one pre-tokenizer. Immutable and thread-safe.
class pre_tokenizer {
 public:
  /// Compiles the regexes of `name`; throws Error(unsupported) listing the
  /// known names when there is no such pre-tokenizer.
  explicit pre_tokenizer(std::string_view name);
  ~pre_tokenizer();
  pre_tokenizer(const pre_tokenizer&) = delete;
  pre_tokenizer& operator=(const pre_tokenizer&) = delete;

  const pre_tokenizer_traits& traits() const { return *traits_; }

  /// Splits `text` into pieces and appends the end offset (in bytes, into
  /// `text`) of every piece to `ends`, in order; the pieces cover `text` and
  /// none is empty. Returns whether `text` is valid UTF-8.
  bool split(std::string_view text, std::vector<size_t>& ends) const;

 private:
  struct compiled;
  const pre_tokenizer_traits* traits_;
  std::vector<std::unique_ptr<compiled>> regexes_;
};

}  // namespace lowbit::tokenizer
