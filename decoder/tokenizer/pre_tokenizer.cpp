// The pre-tokenizer table and its PCRE2 matcher.
//
// The table maps each tokenizer.ggml.pre name llama.cpp knows for these regex
// families to the regex sequence it uses (llama-vocab.cpp: the names in
// load(), the regexes in the llm_tokenizer_bpe constructor). For the GPT-2 and
// llama3 patterns llama.cpp runs hand-written matchers instead of the regex;
// those include GPT-2's final `\s+` alternative that its stored GPT-2 string
// leaves out, so the pattern here has it (with gaps kept as pieces the two
// spellings split alike anyway). Match scratch space (match data, a JIT stack)
// is kept per thread so a split costs no allocation beyond its output.
#include "tokenizer/pre_tokenizer.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <string>

#include "lowbit/error.hpp"
#include "tokenizer/byte_level.hpp"

namespace lowbit::tokenizer {

namespace {

// The regexes, as llama.cpp writes them (before the \s translation).
constexpr std::string_view gpt2_regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr std::string_view single_digit_regex = R"(\p{N})";
constexpr std::string_view qwen2_regex =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N})"
    R"(| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view llama3_regex =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3})"
    R"(| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view default_punctuation_regex = R"([\p{P}\$\+<=>\^~\|]+)";
constexpr std::string_view default_numbers_regex = R"(\p{N}+)";
constexpr std::string_view default_three_digits_regex = R"([0-9][0-9][0-9])";

enum class regex_family { gpt2, smollm, qwen2, llama3, llama3_with_merges, fallback };

std::vector<std::string_view> regexes_of(regex_family family) {
  switch (family) {
    case regex_family::gpt2: return {gpt2_regex};
    case regex_family::smollm: return {single_digit_regex, gpt2_regex};
    case regex_family::qwen2: return {qwen2_regex};
    case regex_family::llama3:
    case regex_family::llama3_with_merges: return {llama3_regex};
    case regex_family::fallback:
      return {default_punctuation_regex, gpt2_regex, default_numbers_regex, default_three_digits_regex};
  }
  return {};
}

struct table_entry {
  pre_tokenizer_traits traits;
  regex_family family;
};

// name, ignore_merges, adds_bos (llama.cpp's defaults for the name).
constexpr table_entry table[] = {
    {{"smollm", false, false}, regex_family::smollm},
    {{"starcoder", false, false}, regex_family::smollm},
    {{"refact", false, false}, regex_family::smollm},
    {{"command-r", false, false}, regex_family::smollm},
    {{"codeshell", false, false}, regex_family::smollm},
    {{"exaone", false, false}, regex_family::smollm},
    {{"minerva-7b", false, false}, regex_family::smollm},
    {{"qwen2", false, false}, regex_family::qwen2},
    {{"deepseek-r1-qwen", false, false}, regex_family::qwen2},
    {{"kormo", false, false}, regex_family::qwen2},
    {{"megrez", false, false}, regex_family::qwen2},
    {{"stablelm2", false, false}, regex_family::qwen2},
    {{"hunyuan", false, false}, regex_family::qwen2},
    {{"llama3", true, true}, regex_family::llama3},
    {{"llama-v3", true, true}, regex_family::llama3},
    {{"llama-bpe", true, true}, regex_family::llama3},
    {{"falcon3", true, true}, regex_family::llama3},
    {{"pixtral", true, true}, regex_family::llama3},
    {{"dbrx", false, false}, regex_family::llama3_with_merges},
    {{"smaug-bpe", false, false}, regex_family::llama3_with_merges},
    {{"gpt-2", false, false}, regex_family::gpt2},
    {{"phi-2", false, false}, regex_family::gpt2},
    {{"mpt", false, false}, regex_family::gpt2},
    {{"olmo", false, false}, regex_family::gpt2},
    {{"jais", false, false}, regex_family::gpt2},
    {{"gigachat", false, false}, regex_family::gpt2},
    {{"exaone4", false, false}, regex_family::gpt2},
    {{"default", false, false}, regex_family::fallback},
};

const table_entry* find_entry(std::string_view name) {
  for (const table_entry& entry : table) {
    if (entry.traits.name == name) return &entry;
  }
  return nullptr;
}

// llama.cpp's whitespace is Unicode's White_Space property; PCRE2's \s under
// UCP also matches U+180E, so \s and \S are spelled as the property.
std::string translate_whitespace(std::string_view regex) {
  std::string out;
  out.reserve(regex.size() + 32);
  for (size_t i = 0; i < regex.size(); ++i) {
    if (regex[i] == '\\' && i + 1 < regex.size()) {
      const char next = regex[i + 1];
      if (next == 's') {
        out += "\\p{White_Space}";
      } else if (next == 'S') {
        out += "\\P{White_Space}";
      } else {
        out += regex[i];
        out += next;
      }
      ++i;
    } else {
      out += regex[i];
    }
  }
  return out;
}

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  const int length = pcre2_get_error_message(code, buffer, sizeof buffer);
  if (length < 0) return "PCRE2 error " + std::to_string(code);
  return std::string(reinterpret_cast<const char*>(buffer), static_cast<size_t>(length));
}

// Per-thread match data and JIT stack, made on a thread's first split.
struct match_scratch {
  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* jit_stack = nullptr;

  match_scratch() {
    data = pcre2_match_data_create(1, nullptr);
    context = pcre2_match_context_create(nullptr);
    jit_stack = pcre2_jit_stack_create(32 * 1024, 16 * 1024 * 1024, nullptr);
    if (!data || !context) throw Error(status::out_of_memory, "tokenizer: cannot allocate PCRE2 match data");
    if (jit_stack) pcre2_jit_stack_assign(context, nullptr, jit_stack);
  }
  ~match_scratch() {
    pcre2_jit_stack_free(jit_stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
  match_scratch(const match_scratch&) = delete;
  match_scratch& operator=(const match_scratch&) = delete;
};

match_scratch& scratch() {
  thread_local match_scratch instance;
  return instance;
}

}  // namespace

const pre_tokenizer_traits* find_pre_tokenizer(std::string_view name) {
  const table_entry* entry = find_entry(name);
  return entry ? &entry->traits : nullptr;
}

std::span<const std::string_view> pre_tokenizer_names() {
  static const std::vector<std::string_view> names = [] {
    std::vector<std::string_view> list;
    for (const table_entry& entry : table) list.push_back(entry.traits.name);
    return list;
  }();
  return names;
}

struct pre_tokenizer::compiled {
  pcre2_code* code = nullptr;
  std::string pattern;

  explicit compiled(std::string_view regex) : pattern(translate_whitespace(regex)) {
    int error = 0;
    PCRE2_SIZE error_offset = 0;
    code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF | PCRE2_UCP,
                         &error, &error_offset, nullptr);
    if (!code) {
      throw Error(status::internal, "tokenizer: cannot compile pre-tokenizer regex '" + pattern + "' at offset " +
                                        std::to_string(error_offset) + ": " + pcre2_message(error));
    }
    // Where the platform has no JIT this fails and matching stays on the
    // interpreter, which gives the same matches.
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  }
  ~compiled() { pcre2_code_free(code); }
  compiled(const compiled&) = delete;
  compiled& operator=(const compiled&) = delete;

  // Splits subject[begin, end) and appends the piece ends (offsets into subject).
  void split_piece(std::string_view subject, size_t begin, size_t end, std::vector<size_t>& ends) const {
    match_scratch& space = scratch();
    const auto* piece = reinterpret_cast<PCRE2_SPTR>(subject.data() + begin);
    const size_t length = end - begin;
    size_t last_end = 0;
    size_t at = 0;
    while (at < length) {
      int result = pcre2_match(code, piece, length, at, PCRE2_NO_UTF_CHECK, space.data, space.context);
      if (result == PCRE2_ERROR_JIT_STACKLIMIT) {
        result = pcre2_match(code, piece, length, at, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, space.data, space.context);
      }
      if (result == PCRE2_ERROR_NOMATCH) break;
      if (result < 0) {
        throw Error(status::internal, "tokenizer: pre-tokenizer regex '" + pattern + "' failed: " + pcre2_message(result));
      }
      const PCRE2_SIZE* offsets = pcre2_get_ovector_pointer(space.data);
      const size_t match_begin = offsets[0];
      const size_t match_end = offsets[1];
      if (match_end == match_begin) {
        // An empty match makes no piece; step over one code point.
        uint32_t code_point = 0;
        const size_t step = byte_level::utf8_sequence(subject, begin + match_begin, code_point);
        at = match_begin + (step ? step : 1);
        continue;
      }
      if (match_begin > last_end) ends.push_back(begin + match_begin);  // the text between matches
      ends.push_back(begin + match_end);
      last_end = match_end;
      at = match_end;
    }
    if (last_end < length) ends.push_back(end);
  }
};

pre_tokenizer::pre_tokenizer(std::string_view name) {
  const table_entry* entry = find_entry(name);
  if (!entry) {
    std::string known;
    for (const table_entry& candidate : table) {
      if (!known.empty()) known += ", ";
      known += candidate.traits.name;
    }
    throw Error(status::unsupported, "tokenizer: unknown pre-tokenizer '" + std::string(name) +
                                         "' (tokenizer.ggml.pre); known: " + known);
  }
  traits_ = &entry->traits;
  for (std::string_view regex : regexes_of(entry->family)) regexes_.push_back(std::make_unique<compiled>(regex));
}

pre_tokenizer::~pre_tokenizer() = default;

bool pre_tokenizer::split(std::string_view text, std::vector<size_t>& ends) const {
  if (text.empty()) return true;

  // The subject PCRE2 sees: `text` itself when it is valid UTF-8, otherwise a
  // copy with U+FFFD for every invalid byte and a map back to `text`.
  std::string replaced;
  std::vector<size_t> original_offset;  // subject offset -> text offset (only when replaced)
  size_t at = 0;
  for (uint32_t code_point = 0; at < text.size();) {
    const size_t length = byte_level::utf8_sequence(text, at, code_point);
    if (length == 0) break;
    at += length;
  }
  const bool valid = at == text.size();
  if (!valid) {
    replaced.reserve(text.size() + 16);
    original_offset.reserve(text.size() + 16);
    for (size_t position = 0; position < text.size();) {
      uint32_t code_point = 0;
      size_t length = byte_level::utf8_sequence(text, position, code_point);
      if (length == 0) {
        replaced += "\xEF\xBF\xBD";
        original_offset.insert(original_offset.end(), 3, position);
        length = 1;
      } else {
        replaced.append(text.substr(position, length));
        original_offset.insert(original_offset.end(), length, position);
      }
      position += length;
    }
    original_offset.push_back(text.size());
  }
  const std::string_view subject = valid ? text : std::string_view(replaced);

  std::vector<size_t> pieces{subject.size()};
  std::vector<size_t> next;
  for (const auto& regex : regexes_) {
    next.clear();
    next.reserve(pieces.size() * 2);
    size_t begin = 0;
    for (const size_t end : pieces) {
      regex->split_piece(subject, begin, end, next);
      begin = end;
    }
    pieces.swap(next);
  }
  for (const size_t end : pieces) ends.push_back(valid ? end : original_offset[end]);
  return valid;
}

}  // namespace lowbit::tokenizer
