// Tokenizer: vocabulary checks, special-token splitting, byte-level BPE and
// decoding, in llama.cpp's order and with its tie-breaking.
//
// BPE works on interned symbols rather than strings: every token text is a
// symbol whose number is its token id, and any merge operand or merge result
// that is not a token gets a number past the vocabulary. A merge is then one
// hash lookup of a pair of symbol numbers giving (rank, result), and a piece is
// merged with a priority queue ordered by (rank, position), lowest first, like
// llama.cpp's: a queued pair is stale, and skipped, once either side has
// changed. llama.cpp merges even into strings that are not tokens and only
// then looks the symbols up; so do we. A symbol left that is not a token falls
// back to one token per byte (llama.cpp drops such bytes unless they happen to
// be ASCII; a consistent vocabulary never gets there), and a byte with no token
// of its own is dropped, as llama.cpp drops it.
//
// Invalid UTF-8: llama.cpp tokenizes every invalid byte as U+FFFD. Here an
// invalid byte that has a byte token keeps its value, so the text survives a
// round trip; one without (SmolLM2 has none for 0xC0, 0xC1, 0xF1, 0xF2,
// 0xF5-0xFF) becomes U+FFFD as in llama.cpp rather than being lost.
#include "tokenizer/tokenizer.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <queue>
#include <unordered_map>
#include <utility>

#include "lowbit/error.hpp"
#include "tokenizer/byte_level.hpp"
#include "tokenizer/pre_tokenizer.hpp"

namespace lowbit::tokenizer {

namespace {

// Texts llama.cpp (llama-vocab.cpp, load()) recognises whatever their type.
// A token with one of these texts ends generation and is treated as control.
constexpr std::string_view end_of_generation_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>",
    "<|end_of_text|>", "<end_of_utterance>", "<｜end▁of▁sentence｜>",
};

// Fill-in-the-middle tokens: llama.cpp takes one token with one of these
// texts for each role (whichever its hash map yields first; here the lowest
// id) and treats it as control; the pad, repository and file-separator ones
// also end generation. llama.cpp's model-specific texts (gpt-oss, Kimi,
// Gemma 4, ...) and their workarounds are left out.
struct fill_in_middle_role {
  std::vector<std::string_view> texts;
  bool ends_generation;
};

const std::vector<fill_in_middle_role>& fill_in_middle_roles() {
  static const std::vector<fill_in_middle_role> roles = {
      {{"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>", "<|code_prefix|>"}, false},
      {{"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>", "<|code_suffix|>"}, false},
      {{"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>", "<|code_middle|>"}, false},
      {{"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>"}, true},
      {{"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"}, true},
      {{"<|file_sep|>"}, true},
  };
  return roles;
}

[[noreturn]] void bad_vocabulary(const std::string& what) {
  throw Error(status::bad_file, "tokenizer: " + what);
}

uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

struct merge_rule {
  int32_t rank;
  int32_t result;  // symbol number of left + right
};

}  // namespace

struct Tokenizer::state {
  explicit state(vocabulary v);

  vocabulary vocab;
  std::vector<token_type> types;
  std::unordered_map<std::string_view, int32_t> token_ids;  // views into vocab.tokens
  std::unique_ptr<pre_tokenizer> splitter;

  // BPE: symbols below the token count are tokens; the rest are extra_symbols.
  std::vector<std::string> extra_symbols;
  std::unordered_map<std::string, int32_t> extra_symbol_ids;
  std::unordered_map<uint64_t, merge_rule> merges;
  std::array<int32_t, 256> byte_symbol{};
  std::array<bool, 256> byte_has_token{};

  std::vector<int32_t> special_tokens;  // control, user-defined, unknown; longest text first
  std::vector<int32_t> end_of_generation;
  std::vector<uint8_t> ends_generation;  // per token

  int32_t token_count() const { return static_cast<int32_t>(vocab.tokens.size()); }

  int32_t intern(std::string_view text) {
    if (auto found = token_ids.find(text); found != token_ids.end()) return found->second;
    std::string key(text);
    if (auto found = extra_symbol_ids.find(key); found != extra_symbol_ids.end()) return found->second;
    const int32_t symbol = token_count() + static_cast<int32_t>(extra_symbols.size());
    extra_symbols.push_back(key);
    extra_symbol_ids.emplace(std::move(key), symbol);
    return symbol;
  }

  void check_id(int32_t id) const {
    if (id < 0 || id >= token_count()) {
      throw Error(status::invalid_argument, "tokenizer: token id " + std::to_string(id) + " is outside the vocabulary of " +
                                                std::to_string(token_count()) + " tokens");
    }
  }

  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;
  void encode_text(std::string_view text, std::vector<int32_t>& out) const;

 private:
  void read_tokens();
  void read_merges();
  void apply_llama_cpp_adjustments();
};

Tokenizer::state::state(vocabulary v) : vocab(std::move(v)) {
  if (vocab.model != "gpt2") {
    throw Error(status::unsupported, "tokenizer: model '" + vocab.model +
                                         "' (tokenizer.ggml.model) is not supported; only byte-level BPE ('gpt2') is");
  }
  splitter = std::make_unique<pre_tokenizer>(vocab.pre);
  read_tokens();

  const int32_t count = token_count();
  const std::pair<const char*, int32_t> special_ids[] = {{"bos", vocab.bos},         {"eos", vocab.eos},
                                                         {"unknown", vocab.unknown}, {"padding", vocab.padding},
                                                         {"eot", vocab.eot},         {"eom", vocab.eom}};
  for (const auto& [name, id] : special_ids) {
    if (id < -1 || id >= count) {
      bad_vocabulary(std::string(name) + " token id " + std::to_string(id) + " is outside the vocabulary of " +
                     std::to_string(count) + " tokens");
    }
  }
  if (vocab.add_bos && vocab.bos < 0) bad_vocabulary("add_bos is set but the vocabulary has no bos token");
  if (vocab.add_eos && vocab.eos < 0) bad_vocabulary("add_eos is set but the vocabulary has no eos token");

  read_merges();
  apply_llama_cpp_adjustments();

  // Tokens matched verbatim before pre-tokenizing, longest text first (ties by id).
  for (int32_t id = 0; id < count; ++id) {
    const token_type type = types[static_cast<size_t>(id)];
    if (type == token_type::control || type == token_type::user_defined || type == token_type::unknown) {
      special_tokens.push_back(id);
    }
  }
  std::stable_sort(special_tokens.begin(), special_tokens.end(), [&](int32_t a, int32_t b) {
    return vocab.tokens[static_cast<size_t>(a)].size() > vocab.tokens[static_cast<size_t>(b)].size();
  });
}

void Tokenizer::state::read_tokens() {
  const size_t count = vocab.tokens.size();
  if (count == 0) bad_vocabulary("the vocabulary has no tokens");
  if (count >= static_cast<size_t>(INT32_MAX) / 2) bad_vocabulary("the vocabulary has too many tokens");

  if (!vocab.token_types.empty() && vocab.token_types.size() != count) {
    bad_vocabulary("token_types has " + std::to_string(vocab.token_types.size()) + " entries for " +
                   std::to_string(count) + " tokens");
  }
  types.assign(count, token_type::normal);
  for (size_t id = 0; id < vocab.token_types.size(); ++id) {
    const int32_t type = vocab.token_types[id];
    if (type < 0 || type > 6) {
      bad_vocabulary("token " + std::to_string(id) + " has type " + std::to_string(type) + "; token types are 0 to 6");
    }
    types[id] = static_cast<token_type>(type);
  }

  // An empty text is renamed as llama.cpp does; duplicates are refused (as
  // llama.cpp now does too) since a text must name one id.
  for (size_t id = 0; id < count; ++id) {
    if (vocab.tokens[id].empty()) vocab.tokens[id] = "[EMPTY_" + std::to_string(id) + "]";
  }
  token_ids.reserve(count);
  for (size_t id = 0; id < count; ++id) {
    const std::string& text = vocab.tokens[id];
    const auto [existing, inserted] = token_ids.emplace(text, static_cast<int32_t>(id));
    if (!inserted) {
      bad_vocabulary("token '" + text + "' appears twice, as ids " + std::to_string(existing->second) + " and " +
                     std::to_string(id));
    }
  }
}

void Tokenizer::state::read_merges() {
  // Byte symbols first, so every byte has a symbol whether or not it is a token.
  for (unsigned byte = 0; byte < 256; ++byte) {
    std::string text;
    byte_level::append_utf8(text, byte_level::byte_to_code_point[byte]);
    byte_symbol[byte] = intern(text);
    byte_has_token[byte] = byte_symbol[byte] < token_count();
  }
  if (vocab.merges.size() >= static_cast<size_t>(INT32_MAX) / 4) bad_vocabulary("too many merges");
  merges.reserve(vocab.merges.size());
  for (size_t rank = 0; rank < vocab.merges.size(); ++rank) {
    const std::string& merge = vocab.merges[rank];
    // Split at the first space after position 0, as llama.cpp does.
    const size_t space = merge.size() > 1 ? merge.find(' ', 1) : std::string::npos;
    if (space == std::string::npos || space + 1 >= merge.size()) {
      bad_vocabulary("merge " + std::to_string(rank) + " '" + merge + "' is not of the form 'left right'");
    }
    const std::string_view left(merge.data(), space);
    const std::string_view right(merge.data() + space + 1, merge.size() - space - 1);
    const int32_t left_symbol = intern(left);
    const int32_t right_symbol = intern(right);
    const int32_t result = intern(std::string(left) + std::string(right));
    // The first occurrence of a pair keeps its rank, as in llama.cpp.
    merges.emplace(pair_key(left_symbol, right_symbol), merge_rule{static_cast<int32_t>(rank), result});
  }
}

void Tokenizer::state::apply_llama_cpp_adjustments() {
  // End-of-turn and fill-in-the-middle tokens become control tokens, found by
  // their text; some of them end generation.
  ends_generation.assign(vocab.tokens.size(), 0);
  const auto make_control = [&](int32_t id) { types[static_cast<size_t>(id)] = token_type::control; };
  for (const fill_in_middle_role& role : fill_in_middle_roles()) {
    int32_t chosen = -1;
    for (std::string_view text : role.texts) {
      if (auto found = token_ids.find(text); found != token_ids.end() && (chosen < 0 || found->second < chosen)) {
        chosen = found->second;
      }
    }
    if (chosen < 0) continue;
    make_control(chosen);
    if (role.ends_generation) ends_generation[static_cast<size_t>(chosen)] = 1;
  }
  for (std::string_view text : end_of_generation_texts) {
    if (auto found = token_ids.find(text); found != token_ids.end()) {
      make_control(found->second);
      ends_generation[static_cast<size_t>(found->second)] = 1;
    }
  }
  for (const int32_t id : {vocab.eos, vocab.eot, vocab.eom}) {
    if (id >= 0) ends_generation[static_cast<size_t>(id)] = 1;
  }
  for (int32_t id = 0; id < token_count(); ++id) {
    if (ends_generation[static_cast<size_t>(id)]) end_of_generation.push_back(id);
  }
}

Tokenizer::Tokenizer(vocabulary v) : state_(std::make_shared<const state>(std::move(v))) {}

void Tokenizer::state::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
  if (piece.empty()) return;
  const int32_t count = token_count();

  if (splitter->traits().ignore_merges) {
    const std::string encoded = byte_level::encode(piece);
    if (auto found = token_ids.find(encoded); found != token_ids.end()) {
      out.push_back(found->second);
      return;
    }
  }

  struct symbol {
    int32_t id;     // symbol number; -1 once merged into its left neighbour
    int32_t prev;   // index of the previous live symbol, -1 at the start
    int32_t next;   // index of the next live symbol, -1 at the end
    uint32_t begin; // bytes of the piece it covers
    uint32_t end;
  };
  struct candidate {
    int32_t rank;
    int32_t left;  // indices into symbols
    int32_t right;
    int32_t left_id;
    int32_t right_id;
    int32_t result;
  };
  struct later {  // lowest rank first, then leftmost
    bool operator()(const candidate& a, const candidate& b) const {
      return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
    }
  };

  const size_t length = piece.size();
  std::vector<symbol> symbols(length);
  for (size_t i = 0; i < length; ++i) {
    symbols[i] = symbol{byte_symbol[static_cast<unsigned char>(piece[i])], static_cast<int32_t>(i) - 1,
                        i + 1 < length ? static_cast<int32_t>(i + 1) : -1, static_cast<uint32_t>(i),
                        static_cast<uint32_t>(i + 1)};
  }

  std::priority_queue<candidate, std::vector<candidate>, later> queue;
  const auto consider = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const int32_t left_id = symbols[static_cast<size_t>(left)].id;
    const int32_t right_id = symbols[static_cast<size_t>(right)].id;
    const auto rule = merges.find(pair_key(left_id, right_id));
    if (rule == merges.end()) return;
    queue.push(candidate{rule->second.rank, left, right, left_id, right_id, rule->second.result});
  };
  for (size_t i = 0; i + 1 < length; ++i) consider(static_cast<int32_t>(i), static_cast<int32_t>(i + 1));

  while (!queue.empty()) {
    const candidate top = queue.top();
    queue.pop();
    symbol& left = symbols[static_cast<size_t>(top.left)];
    symbol& right = symbols[static_cast<size_t>(top.right)];
    if (left.id != top.left_id || right.id != top.right_id || left.next != top.right) continue;  // stale
    left.id = top.result;
    left.end = right.end;
    left.next = right.next;
    if (right.next >= 0) symbols[static_cast<size_t>(right.next)].prev = top.left;
    right.id = -1;
    consider(left.prev, top.left);
    consider(top.left, left.next);
  }

  for (int32_t i = 0; i >= 0; i = symbols[static_cast<size_t>(i)].next) {
    const symbol& current = symbols[static_cast<size_t>(i)];
    if (current.id < count) {
      out.push_back(current.id);
      continue;
    }
    for (uint32_t at = current.begin; at < current.end; ++at) {
      const int32_t byte_token = byte_symbol[static_cast<unsigned char>(piece[at])];
      if (byte_token < count) out.push_back(byte_token);
    }
  }
}

void Tokenizer::state::encode_text(std::string_view text, std::vector<int32_t>& out) const {
  std::vector<size_t> ends;
  const bool valid = splitter->split(text, ends);
  std::string replaced;
  size_t begin = 0;
  for (const size_t end : ends) {
    const std::string_view piece = text.substr(begin, end - begin);
    begin = end;
    if (valid) {
      encode_piece(piece, out);
      continue;
    }
    // Invalid bytes without a byte token are tokenized as U+FFFD.
    replaced.clear();
    for (size_t at = 0; at < piece.size();) {
      uint32_t code_point = 0;
      const size_t length = byte_level::utf8_sequence(piece, at, code_point);
      if (length == 0 && !byte_has_token[static_cast<unsigned char>(piece[at])]) {
        replaced += "\xEF\xBF\xBD";
      } else {
        replaced.append(piece.substr(at, length ? length : 1));
      }
      at += length ? length : 1;
    }
    encode_piece(replaced, out);
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  const state& self = *state_;
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (add_special && self.vocab.add_bos) out.push_back(self.vocab.bos);

  // Split out special tokens the way llama.cpp's tokenizer_st_partition does:
  // one token at a time, longest first, each over every stretch of text the
  // longer ones left.
  struct fragment {
    size_t begin, end;
    int32_t token;  // -1: text still to tokenize
  };
  std::vector<fragment> fragments;
  if (!text.empty()) fragments.push_back({0, text.size(), -1});
  std::vector<fragment> next;
  for (const int32_t id : self.special_tokens) {
    const token_type type = self.types[static_cast<size_t>(id)];
    if (!parse_special && (type == token_type::control || type == token_type::unknown)) continue;
    const std::string& needle = self.vocab.tokens[static_cast<size_t>(id)];
    if (text.find(needle) == std::string_view::npos) continue;
    next.clear();
    for (const fragment& part : fragments) {
      if (part.token >= 0) {
        next.push_back(part);
        continue;
      }
      const std::string_view stretch = text.substr(0, part.end);
      size_t at = part.begin;
      for (size_t found; (found = stretch.find(needle, at)) != std::string_view::npos; at = found + needle.size()) {
        if (found > at) next.push_back({at, found, -1});
        next.push_back({found, found + needle.size(), id});
      }
      if (at < part.end) next.push_back({at, part.end, -1});
    }
    fragments.swap(next);
  }

  for (const fragment& part : fragments) {
    if (part.token >= 0) {
      out.push_back(part.token);
    } else {
      self.encode_text(text.substr(part.begin, part.end - part.begin), out);
    }
  }
  if (add_special && self.vocab.add_eos) out.push_back(self.vocab.eos);
  return out;
}

std::string Tokenizer::token_to_piece(int32_t id, bool special) const {
  const state& self = *state_;
  self.check_id(id);
  const std::string& text = self.vocab.tokens[static_cast<size_t>(id)];
  switch (self.types[static_cast<size_t>(id)]) {
    case token_type::control:
    case token_type::unknown:
      return special ? text : std::string();
    case token_type::user_defined:
      return text;
    case token_type::normal:
      return byte_level::decode(text);
    case token_type::byte: {
      // SentencePiece-style "<0xXX>"; anything else is read as byte-level text.
      const auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        return -1;
      };
      if (text.size() == 6 && text.starts_with("<0x") && text.back() == '>' && hex(text[3]) >= 0 && hex(text[4]) >= 0) {
        return std::string(1, static_cast<char>(hex(text[3]) * 16 + hex(text[4])));
      }
      return byte_level::decode(text);
    }
    case token_type::undefined:
    case token_type::unused:
      break;
  }
  return std::string();
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool special) const {
  std::string out;
  for (const int32_t id : ids) out += token_to_piece(id, special);
  return out;
}

std::vector<std::string> Tokenizer::pre_tokenize(std::string_view text) const {
  std::vector<size_t> ends;
  state_->splitter->split(text, ends);
  std::vector<std::string> pieces;
  pieces.reserve(ends.size());
  size_t begin = 0;
  for (const size_t end : ends) {
    pieces.emplace_back(text.substr(begin, end - begin));
    begin = end;
  }
  return pieces;
}

size_t Tokenizer::vocab_size() const { return state_->vocab.tokens.size(); }
int32_t Tokenizer::bos() const { return state_->vocab.bos; }
int32_t Tokenizer::eos() const { return state_->vocab.eos; }

bool Tokenizer::is_end_of_generation(int32_t id) const {
  return id >= 0 && id < state_->token_count() && state_->ends_generation[static_cast<size_t>(id)] != 0;
}

const std::vector<int32_t>& Tokenizer::end_of_generation_ids() const { return state_->end_of_generation; }

std::optional<int32_t> Tokenizer::find(std::string_view token_text) const {
  const auto found = state_->token_ids.find(token_text);
  if (found == state_->token_ids.end()) return std::nullopt;
  return found->second;
}

const std::string& Tokenizer::token_text(int32_t id) const {
  state_->check_id(id);
  return state_->vocab.tokens[static_cast<size_t>(id)];
}

token_type Tokenizer::type(int32_t id) const {
  state_->check_id(id);
  return state_->types[static_cast<size_t>(id)];
}

const std::string& Tokenizer::pre() const { return state_->vocab.pre; }

std::span<const std::string_view> known_pre_tokenizers() { return pre_tokenizer_names(); }

}  // namespace lowbit::tokenizer
