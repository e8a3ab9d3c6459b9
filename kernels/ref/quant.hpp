// Scalar oracle: quantize and dequantize rows of every format.
//
// This file is the definition of "correct" for every quantizer and dequantizer
// in lowbit. It is written to be obviously right, not fast. The Q4_0, Q4_1,
// Q8_0, Q8_1 and Q8_K quantizers round exactly as GGUF's reference quantizers
// do (the *_ref functions of ggml), so their bytes match llama.cpp's for the
// same input. Q4_K and Q6_K use lowbit's own scale search (least squares over a
// small set of candidate scales); their bytes are valid GGUF blocks that any
// reader dequantizes to the same values, though not necessarily the bytes
// llama.cpp's search would pick.
//
// Preconditions for every row function: `k` is a multiple of the format's
// block length; `x` and `y` do not overlap.
#pragma once

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "lowbit/formats.hpp"

namespace lowbit::ref {
LOWBIT_CODEGEN_BEGIN

/// Round half away from zero (C's roundf), as the reference quantizers do.
inline int round_away(float v) noexcept { return static_cast<int>(std::round(v)); }

/// Round half to even (ggml's nearest_int), used by the K-quant quantizers.
inline int round_even(float v) noexcept { return static_cast<int>(std::nearbyint(v)); }

// ---------------------------------------------------------------- Q4_0 -----
/// f32 -> Q4_0. d = (signed value of largest magnitude) / -8; nibble = min(15, trunc(x/d + 8.5)).
inline void quantize_row_q4_0(const float* x, block_q4_0* y, size_t k) noexcept {
  for (size_t b = 0; b < k / qk4_0; ++b, x += qk4_0) {
    float amax = 0.0f, max = 0.0f;
    for (size_t j = 0; j < qk4_0; ++j) {
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = fp32_to_fp16(d);
    for (size_t j = 0; j < qk4_0 / 2; ++j) {
      const int lo = std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f)));
      const int hi = std::min(15, static_cast<int>(static_cast<int8_t>(x[j + 16] * id + 8.5f)));
      y[b].qs[j] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

inline void dequantize_row_q4_0(const block_q4_0* x, float* y, size_t k) noexcept {
  for (size_t b = 0; b < k / qk4_0; ++b, y += qk4_0) {
    const float d = fp16_to_fp32(x[b].d);
    for (size_t j = 0; j < qk4_0 / 2; ++j) {
      y[j] = static_cast<float>((x[b].qs[j] & 0x0f) - 8) * d;
      y[j + 16] = static_cast<float>((x[b].qs[j] >> 4) - 8) * d;
    }
  }
}

// ---------------------------------------------------------------- Q4_1 -----
/// f32 -> Q4_1. d = (max - min) / 15, m = min; nibble = min(15, trunc((x - min)/d + 0.5)).
inline void quantize_row_q4_1(const float* x, block_q4_1* y, size_t k) noexcept {
  for (size_t b = 0; b < k / qk4_1; ++b, x += qk4_1) {
    float min = FLT_MAX, max = -FLT_MAX;
    for (size_t j = 0; j < qk4_1; ++j) {
      min = std::min(min, x[j]);
      max = std::max(max, x[j]);
    }
    const float d = (max - min) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = fp32_to_fp16(d);
    y[b].m = fp32_to_fp16(min);
    for (size_t j = 0; j < qk4_1 / 2; ++j) {
      const int lo = std::min(15, static_cast<int>(static_cast<int8_t>((x[j] - min) * id + 0.5f)));
      const int hi = std::min(15, static_cast<int>(static_cast<int8_t>((x[j + 16] - min) * id + 0.5f)));
      y[b].qs[j] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

inline void dequantize_row_q4_1(const block_q4_1* x, float* y, size_t k) noexcept {
  for (size_t b = 0; b < k / qk4_1; ++b, y += qk4_1) {
    const float d = fp16_to_fp32(x[b].d);
    const float m = fp16_to_fp32(x[b].m);
    for (size_t j = 0; j < qk4_1 / 2; ++j) {
      y[j] = static_cast<float>(x[b].qs[j] & 0x0f) * d + m;
      y[j + 16] = static_cast<float>(x[b].qs[j] >> 4) * d + m;
    }
  }
}

// ---------------------------------------------------------------- Q8_0 -----
/// f32 -> Q8_0. d = max|x| / 127; q = roundf(x / d).
inline void quantize_row_q8_0(const float* x, block_q8_0* y, size_t k) noexcept {
  for (size_t b = 0; b < k / qk8_0; ++b, x += qk8_0) {
    float amax = 0.0f;
    for (size_t j = 0; j < qk8_0; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = fp32_to_fp16(d);
    for (size_t j = 0; j < qk8_0; ++j) y[b].qs[j] = static_cast<int8_t>(round_away(x[j] * id));
  }
}

inline void dequantize_row_q8_0(const block_q8_0* x, float* y, size_t k) noexcept {
  for (size_t b = 0; b < k / qk8_0; ++b, y += qk8_0) {
    const float d = fp16_to_fp32(x[b].d);
    for (size_t j = 0; j < qk8_0; ++j) y[j] = static_cast<float>(x[b].qs[j]) * d;
  }
}

// ---------------------------------------------------------------- Q8_1 -----
/// f32 -> Q8_1: Q8_0's rounding, plus s = fp16(sum(q) * d) with the f32 d.
inline void quantize_row_q8_1(const float* x, block_q8_1* y, size_t k) noexcept {
  for (size_t b = 0; b < k / qk8_1; ++b, x += qk8_1) {
    float amax = 0.0f;
    for (size_t j = 0; j < qk8_1; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = fp32_to_fp16(d);
    int sum = 0;
    for (size_t j = 0; j < qk8_1; ++j) {
      y[b].qs[j] = static_cast<int8_t>(round_away(x[j] * id));
      sum += y[b].qs[j];
    }
    y[b].s = fp32_to_fp16(static_cast<float>(sum) * d);
  }
}

inline void dequantize_row_q8_1(const block_q8_1* x, float* y, size_t k) noexcept {
  for (size_t b = 0; b < k / qk8_1; ++b, y += qk8_1) {
    const float d = fp16_to_fp32(x[b].d);
    for (size_t j = 0; j < qk8_1; ++j) y[j] = static_cast<float>(x[b].qs[j]) * d;
  }
}

// ---------------------------------------------------------------- Q8_K -----
/// f32 -> Q8_K. iscale = -127 / (signed value of largest magnitude);
/// q = min(127, round_even(iscale * x)); d = 1 / iscale; bsums over each 16.
/// An all-zero block gets d = 0 and zero quants and sums.
inline void quantize_row_q8_k(const float* x, block_q8_k* y, size_t k) noexcept {
  for (size_t b = 0; b < k / qk_k; ++b, x += qk_k) {
    float amax = 0.0f, max = 0.0f;
    for (size_t j = 0; j < qk_k; ++j) {
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    std::memset(&y[b], 0, sizeof y[b]);
    if (amax == 0.0f) continue;
    const float iscale = -127.0f / max;
    for (size_t j = 0; j < qk_k; ++j)
      y[b].qs[j] = static_cast<int8_t>(std::min(127, round_even(iscale * x[j])));
    for (size_t g = 0; g < qk_k / 16; ++g) {
      int sum = 0;
      for (size_t j = 0; j < 16; ++j) sum += y[b].qs[16 * g + j];
      y[b].bsums[g] = static_cast<int16_t>(sum);
    }
    y[b].d = 1.0f / iscale;
  }
}

inline void dequantize_row_q8_k(const block_q8_k* x, float* y, size_t k) noexcept {
  for (size_t b = 0; b < k / qk_k; ++b, y += qk_k)
    for (size_t j = 0; j < qk_k; ++j) y[j] = x[b].d * static_cast<float>(x[b].qs[j]);
}

// ---------------------------------------------------------------- Q4_K -----
/// The 6-bit scale and min of sub-block s (0..7) of a Q4_K block.
inline void q4_k_scale_min(const uint8_t* scales, size_t s, int& sc, int& mn) noexcept {
  if (s < 4) {
    sc = scales[s] & 63;
    mn = scales[s + 4] & 63;
  } else {
    sc = (scales[s + 4] & 0x0f) | ((scales[s - 4] >> 6) << 4);
    mn = (scales[s + 4] >> 4) | ((scales[s] >> 6) << 4);
  }
}

/// Fits x ~ scale * L - offset with L in [0, nmax], offset >= 0, trying scales
/// around (max - min) / nmax and refining each by least squares. Returns the
/// scale and offset with the smallest squared error.
inline void fit_scale_offset(const float* x, int n, int nmax, float& scale, float& offset) noexcept {
  float lo = x[0], hi = x[0];
  for (int i = 1; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  lo = std::min(lo, 0.0f);
  if (hi <= lo) {
    scale = 0.0f;
    offset = -lo;
    return;
  }
  scale = (hi - lo) / static_cast<float>(nmax);
  offset = -lo;
  auto error_of = [&](float a, float off) {
    float err = 0.0f;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(round_even((x[i] + off) / a), 0, nmax);
      const float diff = a * static_cast<float>(l) - off - x[i];
      err += diff * diff;
    }
    return err;
  };
  float best = error_of(scale, offset);
  for (int step = -6; step <= 12; ++step) {
    const float iscale = (static_cast<float>(nmax) + 0.1f * static_cast<float>(step)) / (hi - lo);
    // Quantize with this candidate, then solve the 2x2 least-squares system for (a, b) in a*L + b.
    double sl = 0, sll = 0, sx = 0, slx = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(round_even(iscale * (x[i] - lo)), 0, nmax);
      sl += l;
      sll += static_cast<double>(l) * l;
      sx += x[i];
      slx += l * static_cast<double>(x[i]);
    }
    const double det = n * sll - sl * sl;
    if (det <= 0) continue;
    double a = (n * slx - sl * sx) / det;
    double b = (sll * sx - sl * slx) / det;
    if (b > 0) {  // the offset must stay >= 0: refit the scale alone with b = 0
      b = 0;
      a = sll > 0 ? slx / sll : 0;
    }
    if (a <= 0) continue;
    const float err = error_of(static_cast<float>(a), static_cast<float>(-b));
    if (err < best) {
      best = err;
      scale = static_cast<float>(a);
      offset = static_cast<float>(-b);
    }
  }
}

/// f32 -> Q4_K: per sub-block scale/offset fit, 6-bit scales and mins relative
/// to the f16 super-block d and dmin, then the nibbles re-derived from the
/// stored (rounded) scales.
inline void quantize_row_q4_k(const float* x, block_q4_k* y, size_t k) noexcept {
  for (size_t b = 0; b < k / qk_k; ++b, x += qk_k) {
    float scales[8], offsets[8];
    float max_scale = 0.0f, max_offset = 0.0f;
    for (int s = 0; s < 8; ++s) {
      fit_scale_offset(x + 32 * s, 32, 15, scales[s], offsets[s]);
      max_scale = std::max(max_scale, scales[s]);
      max_offset = std::max(max_offset, offsets[s]);
    }
    const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
    const float inv_offset = max_offset > 0 ? 63.0f / max_offset : 0.0f;
    uint8_t sc[8], mn[8];
    for (int s = 0; s < 8; ++s) {
      sc[s] = static_cast<uint8_t>(std::min(63, round_even(inv_scale * scales[s])));
      mn[s] = static_cast<uint8_t>(std::min(63, round_even(inv_offset * offsets[s])));
    }
    block_q4_k& out = y[b];
    std::memset(&out, 0, sizeof out);
    for (int s = 0; s < 8; ++s) {
      if (s < 4) {
        out.scales[s] = sc[s];
        out.scales[s + 4] = mn[s];
      } else {
        out.scales[s + 4] = static_cast<uint8_t>((sc[s] & 0x0f) | ((mn[s] & 0x0f) << 4));
        out.scales[s - 4] = static_cast<uint8_t>(out.scales[s - 4] | ((sc[s] >> 4) << 6));
        out.scales[s] = static_cast<uint8_t>(out.scales[s] | ((mn[s] >> 4) << 6));
      }
    }
    out.d = fp32_to_fp16(max_scale / 63.0f);
    out.dmin = fp32_to_fp16(max_offset / 63.0f);
    const float d = fp16_to_fp32(out.d), dmin = fp16_to_fp32(out.dmin);
    uint8_t levels[qk_k];
    for (size_t s = 0; s < 8; ++s) {
      int isc, imn;
      q4_k_scale_min(out.scales, s, isc, imn);
      const float step = d * static_cast<float>(isc);
      const float off = dmin * static_cast<float>(imn);
      for (size_t j = 0; j < 32; ++j) {
        const int l = step != 0.0f ? round_even((x[32 * s + j] + off) / step) : 0;
        levels[32 * s + j] = static_cast<uint8_t>(std::clamp(l, 0, 15));
      }
    }
    for (size_t g = 0; g < 4; ++g)
      for (size_t l = 0; l < 32; ++l)
        out.qs[32 * g + l] = static_cast<uint8_t>(levels[64 * g + l] | (levels[64 * g + 32 + l] << 4));
  }
}

inline void dequantize_row_q4_k(const block_q4_k* x, float* y, size_t k) noexcept {
  for (size_t b = 0; b < k / qk_k; ++b, y += qk_k) {
    const float d = fp16_to_fp32(x[b].d), dmin = fp16_to_fp32(x[b].dmin);
    for (size_t g = 0; g < 4; ++g) {
      int sc0, mn0, sc1, mn1;
      q4_k_scale_min(x[b].scales, 2 * g, sc0, mn0);
      q4_k_scale_min(x[b].scales, 2 * g + 1, sc1, mn1);
      const float d0 = d * static_cast<float>(sc0), m0 = dmin * static_cast<float>(mn0);
      const float d1 = d * static_cast<float>(sc1), m1 = dmin * static_cast<float>(mn1);
      for (size_t l = 0; l < 32; ++l) {
        y[64 * g + l] = d0 * static_cast<float>(x[b].qs[32 * g + l] & 0x0f) - m0;
        y[64 * g + 32 + l] = d1 * static_cast<float>(x[b].qs[32 * g + l] >> 4) - m1;
      }
    }
  }
}

// ---------------------------------------------------------------- Q6_K -----
/// Fits x ~ scale * L with L in [-nmax, nmax - 1], trying scales around
/// (value of largest magnitude) / -nmax, refined by least squares.
inline float fit_symmetric_scale(const float* x, int n, int nmax) noexcept {
  float amax = 0.0f, max = 0.0f;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  if (amax == 0.0f) return 0.0f;
  auto error_of = [&](float a) {
    float err = 0.0f;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(round_even(x[i] / a), -nmax, nmax - 1);
      const float diff = a * static_cast<float>(l) - x[i];
      err += diff * diff;
    }
    return err;
  };
  float scale = max / static_cast<float>(-nmax);
  float best = error_of(scale);
  for (int step = -9; step <= 9; ++step) {
    const float iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(step)) / max;
    double slx = 0, sll = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(round_even(iscale * x[i]), -nmax, nmax - 1);
      slx += l * static_cast<double>(x[i]);
      sll += static_cast<double>(l) * l;
    }
    if (sll <= 0) continue;
    const float a = static_cast<float>(slx / sll);
    if (a == 0.0f) continue;
    const float err = error_of(a);
    if (err < best) {
      best = err;
      scale = a;
    }
  }
  return scale;
}

/// f32 -> Q6_K: a signed scale per 16 elements, stored as int8 relative to the
/// f16 super-block d; 6-bit codes re-derived from the stored scales.
inline void quantize_row_q6_k(const float* x, block_q6_k* y, size_t k) noexcept {
  for (size_t b = 0; b < k / qk_k; ++b, x += qk_k) {
    float scales[16];
    float max_abs = 0.0f, max_scale = 0.0f;
    for (int s = 0; s < 16; ++s) {
      scales[s] = fit_symmetric_scale(x + 16 * s, 16, 32);
      if (std::fabs(scales[s]) > max_abs) {
        max_abs = std::fabs(scales[s]);
        max_scale = scales[s];
      }
    }
    block_q6_k& out = y[b];
    std::memset(&out, 0, sizeof out);
    if (max_abs == 0.0f) continue;
    const float iscale = -128.0f / max_scale;
    for (int s = 0; s < 16; ++s)
      out.scales[s] = static_cast<int8_t>(std::min(127, round_even(iscale * scales[s])));
    out.d = fp32_to_fp16(1.0f / iscale);
    const float d = fp16_to_fp32(out.d);
    uint8_t codes[qk_k];
    for (size_t s = 0; s < 16; ++s) {
      const float step = d * static_cast<float>(out.scales[s]);
      for (size_t j = 0; j < 16; ++j) {
        const int l = step != 0.0f ? round_even(x[16 * s + j] / step) : 0;
        codes[16 * s + j] = static_cast<uint8_t>(std::clamp(l, -32, 31) + 32);
      }
    }
    for (size_t h = 0; h < 2; ++h) {
      const uint8_t* c = codes + 128 * h;
      uint8_t* ql = out.ql + 64 * h;
      uint8_t* qh = out.qh + 32 * h;
      for (size_t l = 0; l < 32; ++l) {
        ql[l] = static_cast<uint8_t>((c[l] & 0x0f) | ((c[l + 64] & 0x0f) << 4));
        ql[l + 32] = static_cast<uint8_t>((c[l + 32] & 0x0f) | ((c[l + 96] & 0x0f) << 4));
        qh[l] = static_cast<uint8_t>((c[l] >> 4) | ((c[l + 32] >> 4) << 2) | ((c[l + 64] >> 4) << 4) |
                                     ((c[l + 96] >> 4) << 6));
      }
    }
  }
}

/// The 6-bit code (0..63) of element i (0..255) of a Q6_K block.
inline int q6_k_code(const block_q6_k& blk, size_t i) noexcept {
  const size_t h = i / 128, r = i % 128, quarter = r / 32, l = r % 32;
  const uint8_t* ql = blk.ql + 64 * h;
  const uint8_t* qh = blk.qh + 32 * h;
  const int low = quarter == 0 ? (ql[l] & 0x0f)
                  : quarter == 1 ? (ql[l + 32] & 0x0f)
                  : quarter == 2 ? (ql[l] >> 4)
                                 : (ql[l + 32] >> 4);
  const int high = (qh[l] >> (2 * quarter)) & 3;
  return low | (high << 4);
}

inline void dequantize_row_q6_k(const block_q6_k* x, float* y, size_t k) noexcept {
  for (size_t b = 0; b < k / qk_k; ++b, y += qk_k) {
    const float d = fp16_to_fp32(x[b].d);
    for (size_t i = 0; i < qk_k; ++i)
      y[i] = d * static_cast<float>(x[b].scales[i / 16]) * static_cast<float>(q6_k_code(x[b], i) - 32);
  }
}

// ------------------------------------------------------- plain formats -----
inline void quantize_row_f32(const float* x, float* y, size_t k) noexcept { std::memcpy(y, x, k * sizeof(float)); }
inline void dequantize_row_f32(const float* x, float* y, size_t k) noexcept { std::memcpy(y, x, k * sizeof(float)); }
inline void quantize_row_f16(const float* x, f16_bits* y, size_t k) noexcept {
  for (size_t i = 0; i < k; ++i) y[i] = fp32_to_fp16(x[i]);
}
inline void dequantize_row_f16(const f16_bits* x, float* y, size_t k) noexcept {
  for (size_t i = 0; i < k; ++i) y[i] = fp16_to_fp32(x[i]);
}
inline void quantize_row_bf16(const float* x, bf16_bits* y, size_t k) noexcept {
  for (size_t i = 0; i < k; ++i) y[i] = fp32_to_bf16(x[i]);
}
inline void dequantize_row_bf16(const bf16_bits* x, float* y, size_t k) noexcept {
  for (size_t i = 0; i < k; ++i) y[i] = bf16_to_fp32(x[i]);
}

// --------------------------------------------------- format-generic entry --
/// Quantize one row of `k` floats into `fmt`. Returns false for an unknown format.
inline bool quantize_row(format fmt, const float* x, void* y, size_t k) noexcept {
  switch (fmt) {
    case format::f32: quantize_row_f32(x, static_cast<float*>(y), k); return true;
    case format::f16: quantize_row_f16(x, static_cast<f16_bits*>(y), k); return true;
    case format::bf16: quantize_row_bf16(x, static_cast<bf16_bits*>(y), k); return true;
    case format::q4_0: quantize_row_q4_0(x, static_cast<block_q4_0*>(y), k); return true;
    case format::q4_1: quantize_row_q4_1(x, static_cast<block_q4_1*>(y), k); return true;
    case format::q8_0: quantize_row_q8_0(x, static_cast<block_q8_0*>(y), k); return true;
    case format::q8_1: quantize_row_q8_1(x, static_cast<block_q8_1*>(y), k); return true;
    case format::q4_k: quantize_row_q4_k(x, static_cast<block_q4_k*>(y), k); return true;
    case format::q6_k: quantize_row_q6_k(x, static_cast<block_q6_k*>(y), k); return true;
    case format::q8_k: quantize_row_q8_k(x, static_cast<block_q8_k*>(y), k); return true;
  }
  return false;
}

/// Dequantize one row of `k` elements of `fmt` into floats. False for an unknown format.
inline bool dequantize_row(format fmt, const void* x, float* y, size_t k) noexcept {
  switch (fmt) {
    case format::f32: dequantize_row_f32(static_cast<const float*>(x), y, k); return true;
    case format::f16: dequantize_row_f16(static_cast<const f16_bits*>(x), y, k); return true;
    case format::bf16: dequantize_row_bf16(static_cast<const bf16_bits*>(x), y, k); return true;
    case format::q4_0: dequantize_row_q4_0(static_cast<const block_q4_0*>(x), y, k); return true;
    case format::q4_1: dequantize_row_q4_1(static_cast<const block_q4_1*>(x), y, k); return true;
    case format::q8_0: dequantize_row_q8_0(static_cast<const block_q8_0*>(x), y, k); return true;
    case format::q8_1: dequantize_row_q8_1(static_cast<const block_q8_1*>(x), y, k); return true;
    case format::q4_k: dequantize_row_q4_k(static_cast<const block_q4_k*>(x), y, k); return true;
    case format::q6_k: dequantize_row_q6_k(static_cast<const block_q6_k*>(x), y, k); return true;
    case format::q8_k: dequantize_row_q8_k(static_cast<const block_q8_k*>(x), y, k); return true;
  }
  return false;
}

LOWBIT_CODEGEN_END
}  // namespace lowbit::ref
