// A tile unit in software, for the emulated test run only (CMake option
// LOWBIT_SOFT_AMX, which needs LOWBIT_EMU_TESTS; ci/test_emulated.sh sets
// both). The emulator tests/emu/run_emulated.py drives (Bochs' Sapphire
// Rapids model, from the bochscpu-python wheel) is built without AMX, so the
// amx tier's tile instructions would fault there. Force-included into the
// amx tier's translation unit (-include), this header replaces the tile
// intrinsics that tier uses with functions over a register file of eight
// tiles in memory, and dispatch/detect_x86.cpp then reports the tile unit
// present: the rest of the amx kernels (their staging, softmax and AVX-512
// work) runs on the emulated CPU as it would on the hardware. It also works
// around the emulator's one wrong instruction that tier uses (below).
//
// The semantics follow Intel's description of palette 1 (eight tiles of at
// most 16 rows of 64 bytes): a load fills a tile's configured rows and
// columns and zeroes the rest; TDPBF16PS adds, per destination row and
// column, the products of bf16 pairs in order (k, then the pair's two
// halves), each product exact in f32 and each sum rounded to nearest even,
// input and output denormals flushed to zero, MXCSR not consulted. Misuse the
// hardware faults on (an unconfigured unit or tile, shapes that do not
// chain, the same tile twice in one product) aborts with a message naming
// it. Tile instructions this header does not provide fail to compile.
//
// One register file per thread, as on the hardware.
#pragma once

#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace lowbit::soft_amx {

struct tile {
  uint8_t rows = 0;
  uint16_t colsb = 0;
  alignas(64) unsigned char data[16][64] = {};
};

struct unit {
  bool configured = false;
  tile t[8];
};

inline thread_local unit state;

[[noreturn]] inline void fault(const char* instruction, const char* what) {
  std::fprintf(stderr, "soft AMX: %s: %s (the hardware faults)\n", instruction, what);
  std::abort();
}

inline tile& configured_tile(const char* instruction, int index) {
  if (!state.configured) fault(instruction, "no tile configuration loaded");
  if (index < 0 || index >= 8) fault(instruction, "tile index past 7");
  tile& t = state.t[index];
  if (t.rows == 0) fault(instruction, "tile not configured (0 rows)");
  return t;
}

/// TILERELEASE: the unit back to its initial state.
inline void release() { state = unit{}; }

/// LDTILECFG: palette 0 releases the unit; palette 1 sets each tile's rows
/// and bytes a row (both zero for an unused tile) and zeroes every tile.
inline void loadconfig(const void* config) {
  const auto* c = static_cast<const unsigned char*>(config);
  if (c[0] == 0) return release();
  if (c[0] != 1) fault("ldtilecfg", "palette other than 0 or 1");
  if (c[1] != 0) fault("ldtilecfg", "start_row not 0 (restarts are not modelled)");
  for (int i = 2; i < 16; ++i)
    if (c[i] != 0) fault("ldtilecfg", "reserved byte not 0");
  // Bytes a row of tiles 0-15 at 16 + 2 i, rows at 48 + i; only 0-7 exist.
  for (int i = 32; i < 48; ++i)
    if (c[i] != 0) fault("ldtilecfg", "bytes a row set for a tile past 7");
  for (int i = 56; i < 64; ++i)
    if (c[i] != 0) fault("ldtilecfg", "rows set for a tile past 7");
  unit next;  // every tile's data zero
  for (int i = 0; i < 8; ++i) {
    uint16_t colsb;
    std::memcpy(&colsb, c + 16 + 2 * i, 2);
    const uint8_t rows = c[48 + i];
    if (rows > 16 || colsb > 64) fault("ldtilecfg", "a tile over 16 rows or 64 bytes a row");
    if ((rows == 0) != (colsb == 0)) fault("ldtilecfg", "a tile with rows but no bytes, or bytes but no rows");
    next.t[i].rows = rows;
    next.t[i].colsb = colsb;
  }
  next.configured = true;
  state = next;
}

inline void zero(int index) { std::memset(configured_tile("tilezero", index).data, 0, sizeof(tile::data)); }

/// TILELOADD: `rows` rows of `colsb` bytes, `stride` bytes apart; the rest zero.
inline void loadd(int index, const void* base, long stride) {
  tile& t = configured_tile("tileloadd", index);
  std::memset(t.data, 0, sizeof t.data);
  for (int r = 0; r < t.rows; ++r) std::memcpy(t.data[r], static_cast<const unsigned char*>(base) + r * stride, t.colsb);
}

/// TILESTORED: `rows` rows of `colsb` bytes, `stride` bytes apart.
inline void stored(int index, void* base, long stride) {
  const tile& t = configured_tile("tilestored", index);
  for (int r = 0; r < t.rows; ++r) std::memcpy(static_cast<unsigned char*>(base) + r * stride, t.data[r], t.colsb);
}

inline float flushed(float x) { return std::fpclassify(x) == FP_SUBNORMAL ? std::copysign(0.0f, x) : x; }

inline float bf16_at(const unsigned char* row, int i) {
  uint16_t h;
  std::memcpy(&h, row + 2 * i, 2);
  const uint32_t bits = uint32_t{h} << 16;
  float x;
  std::memcpy(&x, &bits, 4);
  return flushed(x);
}

/// TDPBF16PS dst, a, b: dst[m][n] += sum over k of a[m][2k] b[k][2n] +
/// a[m][2k+1] b[k][2n+1], in that order, for m < dst's rows, n < dst's
/// columns of f32, k < a's columns of bf16 pairs.
inline void dpbf16ps(int d, int a, int b) {
  constexpr const char* name = "tdpbf16ps";
  if (d == a || d == b || a == b) fault(name, "the same tile as two operands");
  tile& dst = configured_tile(name, d);
  const tile& ta = configured_tile(name, a);
  const tile& tb = configured_tile(name, b);
  if (ta.rows != dst.rows) fault(name, "the first source's rows differ from the destination's");
  if (ta.colsb != 4 * tb.rows) fault(name, "the first source's bytes a row are not 4 x the second source's rows");
  if (tb.colsb != dst.colsb) fault(name, "the second source's bytes a row differ from the destination's");
  if (dst.colsb % 4 != 0 || ta.colsb % 4 != 0) fault(name, "bytes a row not a multiple of 4");
  const int n_cols = dst.colsb / 4, k_pairs = ta.colsb / 4;
  for (int m = 0; m < dst.rows; ++m) {
    float acc[16];
    std::memcpy(acc, dst.data[m], sizeof acc);
    for (int k = 0; k < k_pairs; ++k)
      for (int n = 0; n < n_cols; ++n) {
        acc[n] = flushed(acc[n] + bf16_at(ta.data[m], 2 * k) * bf16_at(tb.data[k], 2 * n));
        acc[n] = flushed(acc[n] + bf16_at(ta.data[m], 2 * k + 1) * bf16_at(tb.data[k], 2 * n + 1));
      }
    std::memset(dst.data[m], 0, sizeof dst.data[m]);
    std::memcpy(dst.data[m], acc, dst.colsb);
  }
  for (int m = dst.rows; m < 16; ++m) std::memset(dst.data[m], 0, sizeof dst.data[m]);
}

}  // namespace lowbit::soft_amx

// GCC's <amxtileintrin.h> declares the configuration and release intrinsics
// as functions and the rest as macros; a function-like macro defined after
// them shadows both kinds at every later call.
#undef _tile_loadd
#undef _tile_stored
#undef _tile_zero
#undef _tile_dpbf16ps
#define _tile_loadconfig(config) ::lowbit::soft_amx::loadconfig(config)
#define _tile_release() ::lowbit::soft_amx::release()
#define _tile_loadd(t, base, stride) ::lowbit::soft_amx::loadd(t, base, stride)
#define _tile_stored(t, base, stride) ::lowbit::soft_amx::stored(t, base, stride)
#define _tile_zero(t) ::lowbit::soft_amx::zero(t)
#define _tile_dpbf16ps(d, a, b) ::lowbit::soft_amx::dpbf16ps(d, a, b)

// Not a tile instruction, but the one other instruction of the amx tier the
// emulator gets wrong: the pinned wheel's Bochs fills both halves of
// VCVTNE2PS2BF16's result from its second source (the low half's). Its
// one-source form, VCVTNEPS2BF16, rounds as Intel's definition says (checked
// under the emulator on 320,000 values, ties and subnormals among them), so
// the two-source conversion is taken as two of those.
namespace lowbit::soft_amx {
inline __m512bh cvtne2ps_pbh(__m512 high, __m512 low) {
  const __m256i lo = reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(low));
  const __m256i hi = reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(high));
  return reinterpret_cast<__m512bh>(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1));
}
}  // namespace lowbit::soft_amx
#define _mm512_cvtne2ps_pbh(high, low) ::lowbit::soft_amx::cvtne2ps_pbh(high, low)

// Not modelled: a kernel that starts using one must add it here first.
#undef _tile_stream_loadd
#undef _tile_dpbssd
#undef _tile_dpbsud
#undef _tile_dpbusd
#undef _tile_dpbuud
#define _tile_storeconfig(...) soft_amx_hpp_does_not_model_tilestorecfg
#define _tile_stream_loadd(...) soft_amx_hpp_does_not_model_tileloaddt1
#define _tile_dpbssd(...) soft_amx_hpp_does_not_model_tdpbssd
#define _tile_dpbsud(...) soft_amx_hpp_does_not_model_tdpbsud
#define _tile_dpbusd(...) soft_amx_hpp_does_not_model_tdpbusd
#define _tile_dpbuud(...) soft_amx_hpp_does_not_model_tdpbuud
