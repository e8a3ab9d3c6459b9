// Tests of the byte-level BPE tokenizer (decoder/tokenizer).
//
// Three layers. Small synthetic vocabularies pin down each rule on its own:
// merge order and tie-breaking, merges through strings that are not tokens,
// byte fallback, special-token splitting (longest first, user-defined always,
// control only with parse_special), BOS/EOS, piece rendering, the
// pre-tokenizer regexes of each family, round trips of arbitrary bytes, and
// every validation error. The default model (LOWBIT_MODEL, else the cache
// ci/fetch_model.sh fills) adds hand-checked encodings and a multi-script round
// trip; llama.cpp's own tokenizations (tests/data/llama_cpp_golden.json, key
// "tokenize") must then match token for token. Without the model these skip,
// unless LOWBIT_REQUIRE_MODEL=1, where a missing model or golden file fails.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gguf/gguf.hpp"
#include "gguf/gguf_writer.hpp"
#include "lowbit/error.hpp"
#include "tester/default_model.hpp"
#include "tester/json.hpp"
#include "tokenizer/tokenizer.hpp"

namespace {

using lowbit::Error;
using lowbit::status;
using lowbit::tokenizer::Tokenizer;
using lowbit::tokenizer::token_type;
using lowbit::tokenizer::vocabulary;
using ids = std::vector<int32_t>;

// ---- helpers -----------------------------------------------------------------------

// GPT-2's byte-to-unicode rule, written out independently of the library:
// printable Latin-1 bytes stand for themselves, the other 68 take U+0100 up.
std::string byte_char(unsigned b) {
  const bool itself = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  unsigned code_point = b;
  if (!itself) {
    unsigned n = 0;
    for (unsigned c = 0; c < b; ++c) {
      if (!((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255))) ++n;
    }
    code_point = 256 + n;
  }
  std::string out;
  if (code_point < 0x80) {
    out += static_cast<char>(code_point);
  } else {
    out += static_cast<char>(0xC0 | (code_point >> 6));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  }
  return out;
}

// `text` in the vocabulary's alphabet.
std::string encoded(std::string_view text) {
  std::string out;
  for (const char c : text) out += byte_char(static_cast<unsigned char>(c));
  return out;
}

// A vocabulary of the 256 byte tokens (id = byte value) plus `extra` tokens
// (normal unless given a type) and `merges`.
struct vocabulary_builder {
  vocabulary v;

  explicit vocabulary_builder(std::string pre = "gpt-2") {
    v.model = "gpt2";
    v.pre = std::move(pre);
    for (unsigned b = 0; b < 256; ++b) {
      v.tokens.push_back(byte_char(b));
      v.token_types.push_back(1);
    }
  }
  int32_t add(std::string text, token_type type = token_type::normal) {
    v.tokens.push_back(std::move(text));
    v.token_types.push_back(static_cast<int32_t>(type));
    return static_cast<int32_t>(v.tokens.size() - 1);
  }
  // Adds merge "left right" (vocabulary alphabet) and, when wanted, its result as a token.
  int32_t merge(const std::string& left, const std::string& right, bool result_is_token = true) {
    v.merges.push_back(left + " " + right);
    return result_is_token ? add(left + right) : -1;
  }
};

ids byte_ids(std::string_view text) {
  ids out;
  for (const char c : text) out.push_back(static_cast<unsigned char>(c));
  return out;
}

std::string describe(const ids& tokens) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < tokens.size(); ++i) out << (i ? ", " : "") << tokens[i];
  out << "]";
  return out.str();
}

// A printable form of bytes for failure messages.
std::string escaped(std::string_view text) {
  std::string out;
  for (const char c : text) {
    const auto b = static_cast<unsigned char>(c);
    if (b >= 32 && b < 127 && b != '\\') {
      out += c;
    } else {
      char buffer[8];
      std::snprintf(buffer, sizeof buffer, "\\x%02X", b);
      out += buffer;
    }
  }
  return out;
}

template <class F>
void expect_error(status expected, const std::string& fragment, F&& f) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one containing '" << fragment << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), expected) << e.what();
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

// ---- pre-tokenizers -------------------------------------------------------------------

using pieces = std::vector<std::string>;

pieces split(const std::string& pre, std::string_view text) {
  return Tokenizer(vocabulary_builder(pre).v).pre_tokenize(text);
}

TEST(TokenizerPre, Gpt2Words) {
  EXPECT_EQ(split("gpt-2", "Hello world"), (pieces{"Hello", " world"}));
  EXPECT_EQ(split("gpt-2", "don't I'LL they've"), (pieces{"don", "'t", " I", "'", "LL", " they", "'ve"}));
  EXPECT_EQ(split("gpt-2", "x = 12345;"), (pieces{"x", " =", " 12345", ";"}));
}

TEST(TokenizerPre, Gpt2Whitespace) {
  // A whitespace run gives all but its last character when more text follows.
  EXPECT_EQ(split("gpt-2", "a   b"), (pieces{"a", "  ", " b"}));
  EXPECT_EQ(split("gpt-2", "a  "), (pieces{"a", "  "}));
  EXPECT_EQ(split("gpt-2", "x\n\ny"), (pieces{"x", "\n", "\n", "y"}));
  EXPECT_EQ(split("gpt-2", "\tfoo"), (pieces{"\t", "foo"}));
  // U+00A0 is whitespace; U+180E is not (it was until Unicode 6.3; PCRE2's \s still takes it).
  EXPECT_EQ(split("gpt-2", "a\xC2\xA0\xC2\xA0" "b"), (pieces{"a", "\xC2\xA0", "\xC2\xA0", "b"}));
  EXPECT_EQ(split("gpt-2", "a\xE1\xA0\x8E\xE1\xA0\x8E" "b"), (pieces{"a", "\xE1\xA0\x8E\xE1\xA0\x8E", "b"}));
}

TEST(TokenizerPre, SmollmSplitsDigitsFirst) {
  EXPECT_EQ(split("smollm", "abc123"), (pieces{"abc", "1", "2", "3"}));
  EXPECT_EQ(split("smollm", "Hello world! 123"), (pieces{"Hello", " world", "!", " ", "1", "2", "3"}));
  // The digit split leaves " x" and " y" as pieces of their own, so the
  // spaces stay with their words. Arabic-Indic digits are \p{N} too.
  EXPECT_EQ(split("smollm", "7 x\xD9\xA3y"), (pieces{"7", " x", "\xD9\xA3", "y"}));
}

TEST(TokenizerPre, Qwen2) {
  EXPECT_EQ(split("qwen2", "I'LL go"), (pieces{"I", "'LL", " go"}));
  EXPECT_EQ(split("qwen2", "2024"), (pieces{"2", "0", "2", "4"}));
  EXPECT_EQ(split("qwen2", "(hello)"), (pieces{"(hello", ")"}));
  EXPECT_EQ(split("qwen2", "a;\n\n  b"), (pieces{"a", ";\n\n", " ", " b"}));
  EXPECT_EQ(split("qwen2", "a \n\n b"), (pieces{"a", " \n\n", " b"}));
  EXPECT_EQ(split("deepseek-r1-qwen", "I'LL go"), split("qwen2", "I'LL go"));
  // The contraction classes are ASCII: "'ſ" (long s) is not "'s".
  EXPECT_EQ(split("qwen2", "'\xC5\xBF"), (pieces{"'\xC5\xBF"}));
}

TEST(TokenizerPre, Llama3TakesDigitsInThrees) {
  EXPECT_EQ(split("llama3", "1234567"), (pieces{"123", "456", "7"}));
  EXPECT_EQ(split("llama-bpe", "x 12"), (pieces{"x", " ", "12"}));
}

TEST(TokenizerPre, InvalidBytesSplitLikeReplacementCharacters) {
  EXPECT_EQ(split("gpt-2", "a\xFF" "b"), (pieces{"a", "\xFF", "b"}));
  EXPECT_EQ(split("gpt-2", "\xFF\xFE!"), (pieces{"\xFF\xFE!"}));
  EXPECT_EQ(split("gpt-2", " \xC3"), (pieces{" \xC3"}));
  EXPECT_EQ(split("smollm", "\xED\xA0\x80" "1"), (pieces{"\xED\xA0\x80", "1"}));  // a surrogate: three bad bytes
}

TEST(TokenizerPre, PiecesCoverTheText) {
  std::mt19937 random(7);
  for (const char* pre : {"gpt-2", "smollm", "qwen2", "llama3", "default"}) {
    const Tokenizer tokenizer(vocabulary_builder(pre).v);
    for (int round = 0; round < 200; ++round) {
      std::string text(random() % 40, '\0');
      for (char& c : text) c = static_cast<char>(random() % 256);
      std::string joined;
      for (const std::string& piece : tokenizer.pre_tokenize(text)) {
        EXPECT_FALSE(piece.empty()) << pre;
        joined += piece;
      }
      EXPECT_EQ(joined, text) << pre;
    }
  }
}

// ---- BPE ------------------------------------------------------------------------------

TEST(TokenizerBpe, LowestRankMergesFirst) {
  vocabulary_builder first_ab;
  const int32_t ab = first_ab.merge("a", "b");
  first_ab.merge("b", "c");
  EXPECT_EQ(Tokenizer(first_ab.v).encode("abc"), (ids{ab, 'c'}));

  vocabulary_builder first_bc;
  const int32_t bc = first_bc.merge("b", "c");
  first_bc.merge("a", "b");
  EXPECT_EQ(Tokenizer(first_bc.v).encode("abc"), (ids{'a', bc}));
}

TEST(TokenizerBpe, LeftmostWinsATie) {
  vocabulary_builder builder;
  const int32_t aa = builder.merge("a", "a");
  const Tokenizer tokenizer(builder.v);
  EXPECT_EQ(tokenizer.encode("aaa"), (ids{aa, 'a'}));
  EXPECT_EQ(tokenizer.encode("aaaa"), (ids{aa, aa}));
}

TEST(TokenizerBpe, MergesChainAndSpacesAreBytes) {
  vocabulary_builder builder;
  builder.merge("l", "l");
  builder.merge("h", "e");
  builder.merge("he", "ll");
  const int32_t hello = builder.merge("hell", "o");
  const int32_t space_w = builder.merge(byte_char(' '), "w");
  const Tokenizer tokenizer(builder.v);
  EXPECT_EQ(tokenizer.encode("hello"), (ids{hello}));
  EXPECT_EQ(tokenizer.encode("hello world"), (ids{hello, space_w, 'o', 'r', 'l', 'd'}));
  EXPECT_EQ(tokenizer.decode(tokenizer.encode("hello world")), "hello world");
}

TEST(TokenizerBpe, MergesThroughStringsThatAreNotTokens) {
  vocabulary_builder builder;
  builder.merge("a", "b", /*result_is_token=*/false);
  const int32_t abc = builder.merge("ab", "c");
  const Tokenizer tokenizer(builder.v);
  EXPECT_EQ(tokenizer.encode("abc"), (ids{abc}));
  // "ab" is left as a symbol that is no token: it falls back to its bytes.
  EXPECT_EQ(tokenizer.encode("ab"), (ids{'a', 'b'}));
}

TEST(TokenizerBpe, BytesWithoutTokensAreDropped) {
  vocabulary v;
  v.model = "gpt2";
  v.pre = "gpt-2";
  v.tokens = {"<unk>", "a", "b"};
  v.token_types = {2, 1, 1};
  v.unknown = 0;
  EXPECT_EQ(Tokenizer(v).encode("abz"), (ids{1, 2}));  // as llama.cpp does; never the unknown token
}

TEST(TokenizerBpe, InvalidBytesWithoutTokensBecomeReplacementCharacters) {
  vocabulary_builder builder;
  builder.v.tokens[0xFF] = "<no byte 0xFF>";
  const Tokenizer tokenizer(builder.v);
  EXPECT_EQ(tokenizer.encode("a\xFE" "b"), (ids{'a', 0xFE, 'b'}));  // has its byte token: kept
  EXPECT_EQ(tokenizer.encode("a\xFF" "b"), (ids{'a', 0xEF, 0xBF, 0xBD, 'b'}));
  EXPECT_EQ(tokenizer.decode(tokenizer.encode("a\xFF" "b")), "a\xEF\xBF\xBD" "b");
}

TEST(TokenizerBpe, IgnoreMergesTakesWholeTokens) {
  // "abc" is a token but no merge builds it: llama3 takes it whole, gpt-2 cannot.
  vocabulary_builder llama("llama3");
  const int32_t abc = llama.add("abc");
  EXPECT_EQ(Tokenizer(llama.v).encode("abc", false), (ids{abc}));
  vocabulary_builder gpt2("gpt-2");
  gpt2.add("abc");
  EXPECT_EQ(Tokenizer(gpt2.v).encode("abc"), byte_ids("abc"));
}

TEST(TokenizerBpe, RoundTripsArbitraryBytes) {
  std::mt19937 random(11);
  for (const char* pre : {"gpt-2", "smollm", "qwen2", "llama3"}) {
    vocabulary_builder builder(pre);
    builder.merge(byte_char(' '), "t");
    builder.merge("h", "e");
    builder.merge(byte_char(' ') + "t", "he");
    builder.merge(byte_char(0xC3), byte_char(0xA9));
    builder.merge(byte_char('\n'), byte_char('\n'));
    const Tokenizer tokenizer(builder.v);
    const std::string alphabet[] = {"a", "the", " ", "  ", "\n", "\t", "1", "é", "Ж", "中", "🙂", "'s", "\xFF", "\xC3",
                                    "\x80", "<", "|", "\xE2\x80\x8D"};
    for (int round = 0; round < 300; ++round) {
      std::string text;
      const int parts = static_cast<int>(random() % 12);
      for (int i = 0; i < parts; ++i) {
        if (random() % 4 == 0) {
          text += static_cast<char>(random() % 256);
        } else {
          text += alphabet[random() % std::size(alphabet)];
        }
      }
      EXPECT_EQ(tokenizer.decode(tokenizer.encode(text)), text) << pre << ": " << escaped(text);
    }
  }
}

TEST(TokenizerBpe, ThreadsShareOneTokenizer) {
  vocabulary_builder builder("qwen2");
  builder.merge("h", "e");
  builder.merge(byte_char(' '), "he");
  const Tokenizer tokenizer(builder.v);
  const std::string text = "he said: he, she, 123 \xFF\n\n  end";
  const ids expected = tokenizer.encode(text);
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int round = 0; round < 200; ++round) {
        if (tokenizer.encode(text) != expected) ++wrong;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(wrong.load(), 0);
}

// ---- special tokens, BOS/EOS, pieces -------------------------------------------------

struct chat_vocabulary {
  vocabulary_builder builder;
  int32_t start, end, tool, end_of_text, repo;

  chat_vocabulary() {
    start = builder.add("<|im_start|>", token_type::control);
    end = builder.add("<|im_end|>", token_type::control);
    tool = builder.add("<tool>", token_type::user_defined);
    end_of_text = builder.add("<|endoftext|>");   // normal in the file; llama.cpp makes it control
    repo = builder.add("<reponame>", token_type::control);
  }
};

TEST(TokenizerSpecial, ControlTokensOnlyWithParseSpecial) {
  chat_vocabulary chat;
  const Tokenizer tokenizer(chat.builder.v);
  EXPECT_EQ(tokenizer.encode("<|im_start|>hi", true, true), (ids{chat.start, 'h', 'i'}));
  ids plain = tokenizer.encode("<|im_start|>hi", true, false);
  EXPECT_EQ(plain, byte_ids("<|im_start|>hi"));
  EXPECT_EQ(tokenizer.encode("a<|im_end|><|im_end|>b", false, true), (ids{'a', chat.end, chat.end, 'b'}));
  // Made control by its text, so it too needs parse_special.
  EXPECT_EQ(tokenizer.encode("<|endoftext|>", false, true), (ids{chat.end_of_text}));
  EXPECT_EQ(tokenizer.type(chat.end_of_text), token_type::control);
}

TEST(TokenizerSpecial, UserDefinedTokensAlwaysMatch) {
  chat_vocabulary chat;
  const Tokenizer tokenizer(chat.builder.v);
  EXPECT_EQ(tokenizer.encode("x<tool>y", false, false), (ids{'x', chat.tool, 'y'}));
  EXPECT_EQ(tokenizer.encode("x<tool>y", false, true), (ids{'x', chat.tool, 'y'}));
}

TEST(TokenizerSpecial, LongerTokensSplitFirst) {
  // llama.cpp splits on each special token in turn, longest first, so "bcd"
  // wins over the "ab" that starts earlier.
  vocabulary_builder builder;
  const int32_t ab = builder.add("ab", token_type::control);
  const int32_t bcd = builder.add("bcd", token_type::control);
  const Tokenizer tokenizer(builder.v);
  EXPECT_EQ(tokenizer.encode("abcd", false, true), (ids{'a', bcd}));
  EXPECT_EQ(tokenizer.encode("abab", false, true), (ids{ab, ab}));
}

TEST(TokenizerSpecial, BosAndEos) {
  chat_vocabulary chat;
  chat.builder.v.bos = chat.start;
  chat.builder.v.eos = chat.end;
  chat.builder.v.add_bos = true;
  const Tokenizer with_bos(chat.builder.v);
  EXPECT_EQ(with_bos.encode("a"), (ids{chat.start, 'a'}));
  EXPECT_EQ(with_bos.encode("a", false), (ids{'a'}));
  EXPECT_EQ(with_bos.encode(""), (ids{chat.start}));
  chat.builder.v.add_eos = true;
  const Tokenizer with_both(chat.builder.v);
  EXPECT_EQ(with_both.encode("a"), (ids{chat.start, 'a', chat.end}));
  EXPECT_EQ(with_both.bos(), chat.start);
  EXPECT_EQ(with_both.eos(), chat.end);
}

TEST(TokenizerSpecial, Pieces) {
  chat_vocabulary chat;
  const int32_t space_w = chat.builder.merge(byte_char(' '), "w");
  const Tokenizer tokenizer(chat.builder.v);
  EXPECT_EQ(tokenizer.token_to_piece(space_w), " w");
  EXPECT_EQ(tokenizer.token_to_piece('\n'), "\n");
  EXPECT_EQ(tokenizer.token_to_piece(0xFF), "\xFF");
  EXPECT_EQ(tokenizer.token_to_piece(chat.start), "");
  EXPECT_EQ(tokenizer.token_to_piece(chat.start, true), "<|im_start|>");
  EXPECT_EQ(tokenizer.token_to_piece(chat.tool), "<tool>");
  const ids sequence{chat.start, 'h', 'i', chat.end};
  EXPECT_EQ(tokenizer.decode(sequence), "hi");
  EXPECT_EQ(tokenizer.decode(sequence, true), "<|im_start|>hi<|im_end|>");
  expect_error(status::invalid_argument, "outside the vocabulary", [&] { tokenizer.token_to_piece(-1); });
  expect_error(status::invalid_argument, "outside the vocabulary",
               [&] { tokenizer.token_to_piece(static_cast<int32_t>(tokenizer.vocab_size())); });
}

TEST(TokenizerSpecial, EndOfGeneration) {
  chat_vocabulary chat;
  chat.builder.v.eos = chat.end;
  const Tokenizer tokenizer(chat.builder.v);
  // <|im_end|> and <|endoftext|> by their text, <reponame> as the fill-in-the-middle repository token.
  EXPECT_EQ(tokenizer.end_of_generation_ids(), (ids{chat.end, chat.end_of_text, chat.repo}));
  EXPECT_TRUE(tokenizer.is_end_of_generation(chat.end));
  EXPECT_FALSE(tokenizer.is_end_of_generation(chat.start));
  EXPECT_FALSE(tokenizer.is_end_of_generation(-1));
  EXPECT_FALSE(tokenizer.is_end_of_generation(1 << 30));
  EXPECT_EQ(tokenizer.find("<tool>"), chat.tool);
  EXPECT_EQ(tokenizer.find("nothing"), std::nullopt);
}

// ---- validation -----------------------------------------------------------------------

TEST(TokenizerErrors, RefusesBadVocabularies) {
  const vocabulary good = vocabulary_builder().v;
  auto with = [&](auto change) {
    vocabulary v = good;
    change(v);
    return v;
  };
  expect_error(status::unsupported, "only byte-level BPE", [&] { Tokenizer(with([](vocabulary& v) { v.model = "llama"; })); });
  expect_error(status::unsupported, "smollm", [&] { Tokenizer(with([](vocabulary& v) { v.pre = "klingon"; })); });
  expect_error(status::unsupported, "unknown pre-tokenizer 'klingon'",
               [&] { Tokenizer(with([](vocabulary& v) { v.pre = "klingon"; })); });
  expect_error(status::bad_file, "no tokens", [&] {
    Tokenizer(with([](vocabulary& v) {
      v.tokens.clear();
      v.token_types.clear();
    }));
  });
  expect_error(status::bad_file, "token_types has 3 entries",
               [&] { Tokenizer(with([](vocabulary& v) { v.token_types.resize(3); })); });
  expect_error(status::bad_file, "type 9", [&] { Tokenizer(with([](vocabulary& v) { v.token_types[5] = 9; })); });
  expect_error(status::bad_file, "not of the form 'left right'",
               [&] { Tokenizer(with([](vocabulary& v) { v.merges = {"ab"}; })); });
  expect_error(status::bad_file, "not of the form 'left right'",
               [&] { Tokenizer(with([](vocabulary& v) { v.merges = {" a"}; })); });
  expect_error(status::bad_file, "bos token id 256",
               [&] { Tokenizer(with([](vocabulary& v) { v.bos = 256; })); });
  expect_error(status::bad_file, "eot token id -2", [&] { Tokenizer(with([](vocabulary& v) { v.eot = -2; })); });
  expect_error(status::bad_file, "add_bos is set", [&] { Tokenizer(with([](vocabulary& v) { v.add_bos = true; })); });
  expect_error(status::bad_file, "add_eos is set", [&] { Tokenizer(with([](vocabulary& v) { v.add_eos = true; })); });
  expect_error(status::bad_file, "appears twice, as ids 97 and 256", [&] {
    Tokenizer(with([](vocabulary& v) {
      v.tokens.push_back("a");
      v.token_types.push_back(1);
    }));
  });
}

TEST(TokenizerErrors, MergesMaySplitAtALeadingSpace) {
  // llama.cpp splits at the first space after position 0.
  vocabulary_builder builder;
  builder.v.merges = {"  x"};  // left " ", right "x"
  builder.add(" x");
  EXPECT_NO_THROW(Tokenizer{builder.v});
}

TEST(TokenizerErrors, EmptyTokensAreRenamedLikeLlamaCpp) {
  vocabulary_builder builder;
  const int32_t empty = builder.add("");
  const Tokenizer tokenizer(builder.v);
  EXPECT_EQ(tokenizer.token_text(empty), "[EMPTY_256]");
  EXPECT_EQ(tokenizer.encode(""), ids{});
}

TEST(TokenizerErrors, KnownPreTokenizers) {
  const auto names = lowbit::tokenizer::known_pre_tokenizers();
  for (const char* name : {"smollm", "qwen2", "deepseek-r1-qwen", "llama3", "llama-bpe", "gpt-2", "default"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), name), names.end()) << name;
    EXPECT_NO_THROW(Tokenizer(vocabulary_builder(name).v)) << name;
  }
}

// ---- vocabulary_from_gguf ---------------------------------------------------------------

lowbit::gguf::Writer tokenizer_file(const std::vector<std::string>& tokens) {
  lowbit::gguf::Writer writer;
  writer.set_string("tokenizer.ggml.model", "gpt2");
  writer.set_string_array("tokenizer.ggml.tokens", std::span<const std::string>(tokens));
  return writer;
}

std::vector<std::string> byte_tokens() {
  std::vector<std::string> tokens;
  for (unsigned b = 0; b < 256; ++b) tokens.push_back(byte_char(b));
  return tokens;
}

TEST(TokenizerGguf, ReadsTheKeys) {
  std::vector<std::string> tokens = byte_tokens();
  tokens.push_back(encoded(" t"));
  tokens.push_back("<|im_start|>");
  auto writer = tokenizer_file(tokens);
  writer.set_string("tokenizer.ggml.pre", "smollm");
  std::vector<int32_t> types(tokens.size(), 1);
  types.back() = 3;
  writer.set_i32_array("tokenizer.ggml.token_type", types);
  const std::vector<std::string> merges = {byte_char(' ') + " t"};
  writer.set_string_array("tokenizer.ggml.merges", std::span<const std::string>(merges));
  writer.set_u32("tokenizer.ggml.bos_token_id", 257);
  writer.set_u32("tokenizer.ggml.eos_token_id", 257);
  writer.set_u32("tokenizer.ggml.unknown_token_id", 0);
  writer.set_bool("tokenizer.ggml.add_bos_token", true);
  const auto file = lowbit::gguf::File::from_bytes(writer.to_bytes(), "vocab.gguf");
  const vocabulary v = lowbit::tokenizer::vocabulary_from_gguf(file);
  EXPECT_EQ(v.model, "gpt2");
  EXPECT_EQ(v.pre, "smollm");
  EXPECT_EQ(v.tokens, tokens);
  EXPECT_EQ(v.token_types, types);
  EXPECT_EQ(v.merges, merges);
  EXPECT_EQ(v.bos, 257);
  EXPECT_EQ(v.eos, 257);
  EXPECT_EQ(v.unknown, 0);
  EXPECT_EQ(v.padding, -1);
  EXPECT_TRUE(v.add_bos);
  EXPECT_FALSE(v.add_eos);
  const Tokenizer tokenizer(v);
  EXPECT_EQ(tokenizer.encode(" t", true), (ids{257, 256}));
}

TEST(TokenizerGguf, LlamaCppDefaults) {
  auto writer = tokenizer_file(byte_tokens());
  writer.set_string("tokenizer.ggml.pre", "llama3");
  writer.set_string_array("tokenizer.ggml.merges", std::span<const std::string>());
  const vocabulary v = lowbit::tokenizer::vocabulary_from_gguf(lowbit::gguf::File::from_bytes(writer.to_bytes()));
  EXPECT_EQ(v.bos, 11);  // llama.cpp's gpt2 default
  EXPECT_EQ(v.eos, 11);
  EXPECT_EQ(v.unknown, -1);
  EXPECT_TRUE(v.add_bos);  // the llama3 family adds BOS unless the file says otherwise
  EXPECT_TRUE(v.token_types.empty());

  auto no_pre = tokenizer_file(byte_tokens());
  no_pre.set_string_array("tokenizer.ggml.merges", std::span<const std::string>());
  const vocabulary fallback = lowbit::tokenizer::vocabulary_from_gguf(lowbit::gguf::File::from_bytes(no_pre.to_bytes()));
  EXPECT_EQ(fallback.pre, "default");
  EXPECT_FALSE(fallback.add_bos);
}

TEST(TokenizerGguf, RefusesBadFiles) {
  const auto read = [](const lowbit::gguf::Writer& writer) {
    return lowbit::tokenizer::vocabulary_from_gguf(lowbit::gguf::File::from_bytes(writer.to_bytes(), "bad.gguf"));
  };
  {
    lowbit::gguf::Writer writer;
    writer.set_string("tokenizer.ggml.model", "llama");
    expect_error(status::unsupported, "tokenizer.ggml.model is 'llama'", [&] { read(writer); });
  }
  {
    lowbit::gguf::Writer writer;
    expect_error(status::bad_file, "tokenizer.ggml.model", [&] { read(writer); });
  }
  expect_error(status::bad_file, "tokenizer.ggml.merges is missing", [&] { read(tokenizer_file(byte_tokens())); });
  {
    auto writer = tokenizer_file(byte_tokens());
    writer.set_string_array("tokenizer.ggml.merges", std::span<const std::string>());
    writer.set_u32("tokenizer.ggml.eos_token_id", 256);
    expect_error(status::bad_file, "tokenizer.ggml.eos_token_id is 256", [&] { read(writer); });
  }
  {
    auto writer = tokenizer_file(byte_tokens());
    writer.set_string_array("tokenizer.ggml.merges", std::span<const std::string>());
    writer.set_i32_array("tokenizer.ggml.token_type", std::vector<int32_t>(3, 1));
    expect_error(status::bad_file, "tokenizer.ggml.token_type has 3 entries", [&] { read(writer); });
  }
  {
    auto writer = tokenizer_file(byte_tokens());
    writer.set_u32("tokenizer.ggml.merges", 1);
    expect_error(status::bad_file, "tokenizer.ggml.merges", [&] { read(writer); });
  }
}

// ---- the default model ------------------------------------------------------------------

using lowbit::test::default_model_path;
using lowbit::test::model_required;

// The default model's tokenizer, loaded once; null when the model is absent.
const Tokenizer* model_tokenizer() {
  static const std::unique_ptr<Tokenizer> tokenizer = []() -> std::unique_ptr<Tokenizer> {
    const std::string path = default_model_path();
    if (!std::filesystem::exists(path)) return nullptr;
    const auto file = lowbit::gguf::File::open(path);
    return std::make_unique<Tokenizer>(lowbit::tokenizer::vocabulary_from_gguf(file));
  }();
  return tokenizer.get();
}

#define REQUIRE_MODEL_TOKENIZER(name)                                                                   \
  const Tokenizer* name = model_tokenizer();                                                             \
  if (!name) {                                                                                           \
    if (model_required()) FAIL() << "LOWBIT_REQUIRE_MODEL=1 but " << default_model_path() << " is missing"; \
    GTEST_SKIP() << "no model at " << default_model_path() << " (run: bash ci/fetch_model.sh)";          \
  }

TEST(TokenizerModel, Vocabulary) {
  REQUIRE_MODEL_TOKENIZER(tokenizer);
  EXPECT_EQ(tokenizer->vocab_size(), 49152u);
  EXPECT_EQ(tokenizer->pre(), "smollm");
  EXPECT_EQ(tokenizer->bos(), 1);
  EXPECT_EQ(tokenizer->eos(), 2);
  EXPECT_EQ(tokenizer->end_of_generation_ids(), (ids{0, 2, 4}));  // llama.cpp's EOG set for SmolLM2
  EXPECT_EQ(tokenizer->find("<|im_start|>"), 1);
  EXPECT_EQ(tokenizer->find("<|im_end|>"), 2);
  EXPECT_EQ(tokenizer->token_text(4), "<reponame>");
}

TEST(TokenizerModel, HandCheckedEncodings) {
  REQUIRE_MODEL_TOKENIZER(tokenizer);
  const auto id = [&](std::string_view text) { return tokenizer->find(encoded(text)).value_or(-1); };
  ASSERT_GE(id("Hello"), 0);
  ASSERT_GE(id(" world"), 0);
  EXPECT_EQ(tokenizer->encode("Hello"), (ids{id("Hello")}));  // add_bos_token is false for SmolLM2
  EXPECT_EQ(tokenizer->encode(" world"), (ids{id(" world")}));
  EXPECT_EQ(tokenizer->encode("Hello world"), (ids{id("Hello"), id(" world")}));
  // Digits are split one by one and a space before them stays alone.
  EXPECT_EQ(tokenizer->encode("Hello world! 123"), (ids{id("Hello"), id(" world"), id("!"), id(" "), id("1"), id("2"), id("3")}));
  // The same as numbers (checked against Hugging Face's tokenizer for this vocabulary).
  EXPECT_EQ(tokenizer->encode("Hello world! 123"), (ids{19556, 905, 17, 216, 33, 34, 35}));
  EXPECT_EQ(tokenizer->encode("  multiple   spaces"), (ids{216, 2701, 256, 5600}));
  EXPECT_EQ(tokenizer->encode("Café déjà vu."), (ids{51, 1939, 2756, 32564, 90, 16739, 386, 101, 30}));
  EXPECT_EQ(tokenizer->encode("<|im_start|>", false, true), (ids{1}));
  EXPECT_EQ(tokenizer->encode("<|im_end|>", false, true), (ids{2}));
  EXPECT_GT(tokenizer->encode("<|im_start|>", false, false).size(), 1u);
  EXPECT_EQ(tokenizer->encode("<|im_start|>user\nHi<|im_end|>\n", false, true),
            (ids{1, id("user"), id("\n"), id("Hi"), 2, id("\n")}));
  EXPECT_EQ(tokenizer->token_to_piece(1), "");
  EXPECT_EQ(tokenizer->token_to_piece(1, true), "<|im_start|>");
  EXPECT_EQ(tokenizer->token_to_piece(id(" world")), " world");
}

const char* const multi_script_corpus[] = {
    "The quick brown fox jumps over the lazy dog.",
    "Crème brûlée, naïve café, Ångström, façade — déjà vu!",
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία.",
    "اللغة العربية جميلة جداً ١٢٣",
    "हिन्दी भाषा बहुत सुंदर है। १२३",
    "日本語のテキストと中文文本，还有한국어 텍스트。",
    "Emoji: 🙂👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️",
    "Numbers 1234567890 3.14159 1,000,000 0x1F",
    "  leading and trailing spaces   ",
    "tabs\tand\t\ttabs\nnew\n\nlines\r\nwindows\n",
    "don't I'LL they've we'd she's it'S",
    "int main() {\n    return x->y[0] + (a << 2);  // comment\n}\n",
    "mixed\u00A0no-break\u2003em space\u3000ideographic",
};

TEST(TokenizerModel, RoundTripsMultiScriptText) {
  REQUIRE_MODEL_TOKENIZER(tokenizer);
  std::string all;
  for (const char* text : multi_script_corpus) {
    EXPECT_EQ(tokenizer->decode(tokenizer->encode(text)), text) << text;
    all += text;
  }
  EXPECT_EQ(tokenizer->decode(tokenizer->encode(all)), all);
  // Invalid bytes keep their value where the vocabulary has a token for them;
  // SmolLM2 has none for 0xFE and 0xFF, which become U+FFFD as in llama.cpp.
  const std::string invalid = "bad \xC3 and \xED\xA0\x80 surrogates";
  EXPECT_EQ(tokenizer->decode(tokenizer->encode(invalid)), invalid);
  EXPECT_EQ(tokenizer->decode(tokenizer->encode("x\xFF\xFEy")), "x\xEF\xBF\xBD\xEF\xBF\xBDy");
}

TEST(TokenizerModel, EncodesTenKilobytesQuickly) {
  REQUIRE_MODEL_TOKENIZER(tokenizer);
  std::string text;
  while (text.size() < 10 * 1024) {
    for (const char* part : multi_script_corpus) text += part;
  }
  const auto start = std::chrono::steady_clock::now();
  const ids tokens = tokenizer->encode(text);
  const double milliseconds =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  RecordProperty("encode_ms", std::to_string(milliseconds));
  std::printf("encoded %zu bytes into %zu tokens in %.2f ms\n", text.size(), tokens.size(), milliseconds);
  EXPECT_LT(milliseconds, 1000.0);  // a few milliseconds in a release build; generous for sanitizers
  EXPECT_EQ(tokenizer->decode(tokens), text);
}

// ---- llama.cpp's golden tokenizations ---------------------------------------------------

std::string golden_path() { return std::string(LOWBIT_TEST_DATA_DIR) + "/llama_cpp_golden.json"; }

TEST(TokenizerGolden, MatchesLlamaCpp) {
  REQUIRE_MODEL_TOKENIZER(tokenizer);
  const std::string path = golden_path();
  if (!std::filesystem::exists(path)) {
    if (model_required()) FAIL() << "LOWBIT_REQUIRE_MODEL=1, the model is present, but " << path << " is missing";
    GTEST_SKIP() << path << " is missing (it is written from llama.cpp by bench/peers)";
  }
  const lowbit::test::json golden = lowbit::test::read_json_file(path);
  if (!golden.has("tokenize")) {
    if (model_required()) FAIL() << path << " has no \"tokenize\" section";
    GTEST_SKIP() << path << " has no \"tokenize\" section";
  }
  const lowbit::test::json& cases = golden["tokenize"];
  ASSERT_GT(cases.size(), 0u) << "the \"tokenize\" section is empty";
  size_t mismatches = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const lowbit::test::json& entry = cases[i];
    const std::string& text = entry["text"].text;
    const bool add_special = entry["add_special"].boolean;
    const bool parse_special = entry["parse_special"].boolean;
    const ids expected = entry["tokens"].as_vector<int32_t>();
    const ids actual = tokenizer->encode(text, add_special, parse_special);
    if (actual != expected) {
      ++mismatches;
      ADD_FAILURE() << "golden entry " << i << " (add_special=" << add_special << ", parse_special=" << parse_special
                    << ")\n  text:     \"" << escaped(text) << "\"\n  expected: " << describe(expected)
                    << "\n  actual:   " << describe(actual);
    }
  }
  EXPECT_EQ(mismatches, 0u) << "of " << cases.size() << " golden tokenizations";
}

}  // namespace
