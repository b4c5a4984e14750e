// Portable 8-wide float vectors and the vector math the head needs (exp, sigmoid, tanh).
//
// Built on GCC/Clang vector extensions, so one source compiles to AVX/AVX2+FMA on x86-64 with
// -march=native, to pairs of NEON registers on aarch64 (Jetson), and to SSE pairs in a portable
// build. Scalar helpers run the same vector code on a splat, so tails match the vector results.
// Accuracy: Exp ≈ 1-2 ulp on [-87, 88] (Cephes-style range reduction + degree-6 polynomial);
// Tanh uses a polynomial on |x| < 0.625 and 1 - 2/(e^{2|x|} + 1) above, so small inputs keep
// their relative accuracy.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__AVX2__)
#include <immintrin.h>
#elif defined(__ARM_NEON)
#include <arm_neon.h>
#endif

#if !defined(__GNUC__) && !defined(__clang__)
#error "cmer_edge's core needs GCC or Clang (vector extensions, see core/simd.h)"
#endif

#define CMER_EDGE_INLINE inline __attribute__((always_inline))

namespace cmer_edge::simd {

constexpr int kLanes = 8;

typedef float F8 __attribute__((vector_size(32)));
typedef int32_t I8 __attribute__((vector_size(32)));
typedef uint32_t U32x8 __attribute__((vector_size(32)));
typedef uint16_t U16x8 __attribute__((vector_size(16)));
typedef int8_t S8x8 __attribute__((vector_size(8)));

CMER_EDGE_INLINE F8 Load(const float* p) {
  F8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

CMER_EDGE_INLINE void Store(float* p, F8 v) { std::memcpy(p, &v, sizeof v); }

CMER_EDGE_INLINE F8 Splat(float x) { return F8{} + x; }

// bf16 is the upper half of an fp32: widen and shift. int8 widens to int32, then converts. The
// generic vector-extension forms are correct everywhere but compilers scalarise some of them, so
// AVX2 and NEON get intrinsics.
CMER_EDGE_INLINE F8 LoadBf16(const uint16_t* p) {
#if defined(__AVX2__)
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return reinterpret_cast<F8>(_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)));
#elif defined(__ARM_NEON) && defined(__aarch64__)
  const uint16x8_t h = vld1q_u16(p);
  const float32x4_t lo = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16));
  const float32x4_t hi = vreinterpretq_f32_u32(vshll_n_u16(vget_high_u16(h), 16));
  F8 f;
  std::memcpy(&f, &lo, sizeof lo);
  std::memcpy(reinterpret_cast<char*>(&f) + sizeof lo, &hi, sizeof hi);
  return f;
#else
  U16x8 h;
  std::memcpy(&h, p, sizeof h);
  const U32x8 u = __builtin_convertvector(h, U32x8) << 16;
  F8 f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

CMER_EDGE_INLINE F8 LoadI8(const int8_t* p) {
#if defined(__AVX2__)
  const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
  return reinterpret_cast<F8>(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)));
#elif defined(__ARM_NEON) && defined(__aarch64__)
  const int16x8_t w = vmovl_s8(vld1_s8(p));
  const float32x4_t lo = vcvtq_f32_s32(vmovl_s16(vget_low_s16(w)));
  const float32x4_t hi = vcvtq_f32_s32(vmovl_s16(vget_high_s16(w)));
  F8 f;
  std::memcpy(&f, &lo, sizeof lo);
  std::memcpy(reinterpret_cast<char*>(&f) + sizeof lo, &hi, sizeof hi);
  return f;
#else
  S8x8 q;
  std::memcpy(&q, p, sizeof q);
  return __builtin_convertvector(__builtin_convertvector(q, I8), F8);
#endif
}

// Overloads so one micro-kernel template reads any weight format.
CMER_EDGE_INLINE F8 LoadWeights(const float* p) { return Load(p); }
CMER_EDGE_INLINE F8 LoadWeights(const uint16_t* p) { return LoadBf16(p); }
CMER_EDGE_INLINE F8 LoadWeights(const int8_t* p) { return LoadI8(p); }

CMER_EDGE_INLINE float HorizontalSum(F8 v) {
  float s[kLanes];
  std::memcpy(s, &v, sizeof s);
  return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

CMER_EDGE_INLINE float HorizontalMax(F8 v) {
  float s[kLanes];
  std::memcpy(s, &v, sizeof s);
  float m = s[0];
  for (int i = 1; i < kLanes; ++i) m = s[i] > m ? s[i] : m;
  return m;
}

CMER_EDGE_INLINE F8 Max(F8 a, F8 b) { return a > b ? a : b; }
CMER_EDGE_INLINE F8 Min(F8 a, F8 b) { return a < b ? a : b; }

CMER_EDGE_INLINE F8 Exp(F8 x) {
  x = Min(Max(x, Splat(-87.f)), Splat(88.f));
  const F8 fx = x * 1.44269504088896341f + 0.5f;
  const F8 truncated = __builtin_convertvector(__builtin_convertvector(fx, I8), F8);
  const F8 n = truncated + __builtin_convertvector(truncated > fx, F8);  // floor: true lanes are -1
  F8 r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  const F8 r2 = r * r;
  F8 p = Splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r2 + r + 1.f;
  const I8 bits = (__builtin_convertvector(n, I8) + 127) << 23;
  F8 scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

CMER_EDGE_INLINE F8 Sigmoid(F8 x) { return 1.f / (1.f + Exp(-x)); }

CMER_EDGE_INLINE F8 Tanh(F8 x) {
  I8 bits;
  std::memcpy(&bits, &x, sizeof bits);
  const I8 sign = bits & static_cast<int32_t>(0x80000000u);
  const I8 abs_bits = bits & 0x7fffffff;
  F8 a;
  std::memcpy(&a, &abs_bits, sizeof a);
  const F8 z = x * x;
  F8 p = Splat(-5.70498872745e-3f);
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  const F8 small = p * z * x + x;
  const F8 big_abs = 1.f - 2.f / (Exp(a + a) + 1.f);
  I8 big_bits;
  std::memcpy(&big_bits, &big_abs, sizeof big_bits);
  big_bits |= sign;
  F8 big;
  std::memcpy(&big, &big_bits, sizeof big);
  return a < 0.625f ? small : big;
}

// Scalar versions: the vector code on a splat, lane 0.
CMER_EDGE_INLINE float ExpScalar(float x) { return Exp(Splat(x))[0]; }
CMER_EDGE_INLINE float SigmoidScalar(float x) { return Sigmoid(Splat(x))[0]; }
CMER_EDGE_INLINE float TanhScalar(float x) { return Tanh(Splat(x))[0]; }

}  // namespace cmer_edge::simd
