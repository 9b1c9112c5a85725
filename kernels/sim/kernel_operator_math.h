// kernel_operator_math.h (simulator): more vector instructions of the AscendC API subset, used by
// the LoRA/linear epilogue (GELU) and the unary kernel. Included at the end of
// kernel_operator.h; same rules as its vector ops (UB operands, 32-byte aligned, counted).
//
// Basic API: Reciprocal, Mins. High-level math API (the devkit's math library, available on
// Atlas A2 = 910B): Erf, Tanh, Sin, Cos, Sign, Power. The simulator evaluates them with the C
// library in f32; on the NPU they are polynomial/table sequences of a few ulp error (and
// some take a scratch buffer, which our kernels always reserve).
#pragma once

// bfloat16 for the simulator (the NPU compiler has `bfloat16_t` built in): the top 16 bits of
// an f32, rounded to nearest even.
struct bfloat16_t {
    uint16_t bits = 0;
    bfloat16_t() = default;
    bfloat16_t(float f) {  // NOLINT: implicit like the built-in type
        uint32_t x;
        std::memcpy(&x, &f, 4);
        if ((x & 0x7fffffffu) > 0x7f800000u) {
            bits = static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet NaN
            return;
        }
        x += 0x7fffu + ((x >> 16) & 1u);
        bits = static_cast<uint16_t>(x >> 16);
    }
    operator float() const {
        uint32_t x = uint32_t(bits) << 16;
        float f;
        std::memcpy(&f, &x, 4);
        return f;
    }
};

namespace AscendC {

template <typename T>
void Reciprocal(const LocalTensor<T> &d, const LocalTensor<T> &a, int32_t n) {
    detail::unary("Reciprocal", d, a, n, [](float x) { return 1.0f / x; });
}
template <typename T>
void Mins(const LocalTensor<T> &d, const LocalTensor<T> &a, T s, int32_t n) {
    float v = float(s);
    detail::unary("Mins", d, a, n, [v](float x) { return x < v ? x : v; });
}
template <typename T>
void Erf(const LocalTensor<T> &d, const LocalTensor<T> &a, uint32_t n) {
    detail::unary("Erf", d, a, static_cast<int32_t>(n), [](float x) { return std::erf(x); });
}
template <typename T>
void Tanh(const LocalTensor<T> &d, const LocalTensor<T> &a, uint32_t n) {
    detail::unary("Tanh", d, a, static_cast<int32_t>(n), [](float x) { return std::tanh(x); });
}
template <typename T>
void Sin(const LocalTensor<T> &d, const LocalTensor<T> &a, uint32_t n) {
    detail::unary("Sin", d, a, static_cast<int32_t>(n), [](float x) { return std::sin(x); });
}
template <typename T>
void Cos(const LocalTensor<T> &d, const LocalTensor<T> &a, uint32_t n) {
    detail::unary("Cos", d, a, static_cast<int32_t>(n), [](float x) { return std::cos(x); });
}
// -1, 0 or 1 (0 for ±0 and NaN).
template <typename T>
void Sign(const LocalTensor<T> &d, const LocalTensor<T> &a, uint32_t n) {
    detail::unary("Sign", d, a, static_cast<int32_t>(n),
                  [](float x) { return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : 0.0f); });
}
// x ^ e for a scalar exponent.
template <typename T>
void Power(const LocalTensor<T> &d, const LocalTensor<T> &a, T e, uint32_t n) {
    float v = float(e);
    detail::unary("Power", d, a, static_cast<int32_t>(n), [v](float x) { return std::pow(x, v); });
}

}  // namespace AscendC
