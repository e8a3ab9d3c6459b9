// GPT-2's byte-to-unicode table, the reversible map that lets a BPE vocabulary
// of printable strings cover every byte value.
//
// Bytes 33-126, 161-172 and 174-255 stand for themselves; the other 68 bytes
// (controls, space, DEL, the C1 range, no-break space, soft hyphen) take the
// code points 256, 257, ... in byte order, so space becomes "Ġ" (U+0120) and
// newline "Ċ" (U+010A). The tables are built at compile time from that rule.
// Internal to lowbit-tokenizer.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace lowbit::tokenizer::byte_level {

/// Whether byte `b` is one GPT-2 keeps as its own code point.
constexpr bool stands_for_itself(unsigned b) {
  return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

/// The code point byte `b` is written as in a vocabulary, for every byte.
constexpr std::array<uint16_t, 256> make_byte_to_code_point() {
  std::array<uint16_t, 256> table{};
  unsigned next = 256;
  for (unsigned b = 0; b < 256; ++b) table[b] = static_cast<uint16_t>(stands_for_itself(b) ? b : next++);
  return table;
}

inline constexpr std::array<uint16_t, 256> byte_to_code_point = make_byte_to_code_point();

/// The highest code point the table uses (256 + 68 - 1).
inline constexpr unsigned last_code_point = 323;

/// The inverse table over code points 0..last_code_point; -1 where a code point
/// stands for no byte.
constexpr std::array<int16_t, last_code_point + 1> make_code_point_to_byte() {
  std::array<int16_t, last_code_point + 1> table{};
  for (auto& entry : table) entry = -1;
  for (unsigned b = 0; b < 256; ++b) table[byte_to_code_point[b]] = static_cast<int16_t>(b);
  return table;
}

inline constexpr std::array<int16_t, last_code_point + 1> code_point_to_byte = make_code_point_to_byte();

/// Appends the UTF-8 form of code point `code_point` (at most U+10FFFF) to `out`.
inline void append_utf8(std::string& out, uint32_t code_point) {
  if (code_point < 0x80) {
    out += static_cast<char>(code_point);
  } else if (code_point < 0x800) {
    out += static_cast<char>(0xC0 | (code_point >> 6));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  } else if (code_point < 0x10000) {
    out += static_cast<char>(0xE0 | (code_point >> 12));
    out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (code_point >> 18));
    out += static_cast<char>(0x80 | ((code_point >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  }
}

/// Length of the well-formed UTF-8 sequence starting at text[at] (1 to 4), or
/// 0 when the bytes there are not one (a stray continuation byte, a truncated
/// sequence, an overlong form, a surrogate, or a value above U+10FFFF).
/// Stores the code point in `code_point` when the sequence is well formed.
inline size_t utf8_sequence(std::string_view text, size_t at, uint32_t& code_point) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[at + i]); };
  const auto continuation = [&](size_t i) { return at + i < text.size() && (byte(i) & 0xC0) == 0x80; };
  const unsigned lead = byte(0);
  if (lead < 0x80) {
    code_point = lead;
    return 1;
  }
  if (lead >= 0xC2 && lead <= 0xDF) {
    if (!continuation(1)) return 0;
    code_point = ((lead & 0x1Fu) << 6) | (byte(1) & 0x3Fu);
    return 2;
  }
  if (lead >= 0xE0 && lead <= 0xEF) {
    if (!continuation(1) || !continuation(2)) return 0;
    code_point = ((lead & 0x0Fu) << 12) | ((byte(1) & 0x3Fu) << 6) | (byte(2) & 0x3Fu);
    if (code_point < 0x800 || (code_point >= 0xD800 && code_point <= 0xDFFF)) return 0;
    return 3;
  }
  if (lead >= 0xF0 && lead <= 0xF4) {
    if (!continuation(1) || !continuation(2) || !continuation(3)) return 0;
    code_point = ((lead & 0x07u) << 18) | ((byte(1) & 0x3Fu) << 12) | ((byte(2) & 0x3Fu) << 6) | (byte(3) & 0x3Fu);
    if (code_point < 0x10000 || code_point > 0x10FFFF) return 0;
    return 4;
  }
  return 0;
}

/// `bytes` written in the vocabulary's alphabet: each byte replaced by the
/// UTF-8 form of its code point.
inline std::string encode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char c : bytes) append_utf8(out, byte_to_code_point[static_cast<unsigned char>(c)]);
  return out;
}

/// The bytes a normal token's text stands for. A code point outside the table
/// (a vocabulary that stores some text unencoded) is kept as its own UTF-8, and
/// malformed UTF-8 is kept byte for byte, so nothing is lost; llama.cpp writes
/// an "[UNK_BYTE_0x..]" marker there instead.
inline std::string decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t at = 0;
  while (at < text.size()) {
    uint32_t code_point = 0;
    const size_t length = utf8_sequence(text, at, code_point);
    if (length == 0) {
      out += text[at++];
      continue;
    }
    if (code_point <= last_code_point && code_point_to_byte[code_point] >= 0) {
      out += static_cast<char>(code_point_to_byte[code_point]);
    } else {
      out.append(text.substr(at, length));
    }
    at += length;
  }
  return out;
}

}  // namespace lowbit::tokenizer::byte_level
