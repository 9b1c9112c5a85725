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

// ---- comparison and selection (Compare / CompareScalar / Select) ---------------------------------
//
// Compare writes one bit per element into a uint8_t mask (bit i % 8 of byte i / 8, set when the
// comparison holds); Select picks src0 where the bit is set and src1 (a tensor or a scalar)
// where it is not. As on the hardware, Compare's count must cover whole 256-byte repeats of the
// source type, so kernels pad their tiles to 256 / sizeof(T) elements.
namespace AscendC {

enum class CMPMODE { LT, GT, EQ, LE, GE, NE };
enum class SELMODE { VSEL_CMPMASK_SPR, VSEL_TENSOR_SCALAR_MODE, VSEL_TENSOR_TENSOR_MODE };

namespace detail {
inline bool compare(CMPMODE m, float a, float b) {
    switch (m) {
        case CMPMODE::LT: return a < b;
        case CMPMODE::GT: return a > b;
        case CMPMODE::EQ: return a == b;
        case CMPMODE::LE: return a <= b;
        case CMPMODE::GE: return a >= b;
        default: return a != b;
    }
}
template <typename T>
void check_repeats(const char *op, uint32_t n) {
    if ((uint64_t(n) * sizeof(T)) % 256 != 0)
        osum_sim::fail(str(op, ": count ", n, " is not a whole number of 256-byte repeats"));
}
template <typename T, typename F>
void compare_into(const char *op, const LocalTensor<uint8_t> &dst, const LocalTensor<T> &a,
                  uint32_t n, F rhs, CMPMODE m) {
    check_repeats<T>(op, n);
    check_ub(op, dst, n / 8);
    check_ub(op, a, n);
    uint8_t *d = dst.sim_addr();
    std::fill(d, d + n / 8, uint8_t(0));
    for (uint32_t i = 0; i < n; ++i)
        if (compare(m, float(a.sim_addr()[i]), rhs(i))) d[i / 8] |= uint8_t(1u << (i % 8));
    count_vector<T>(n);
}
inline bool mask_bit(const LocalTensor<uint8_t> &mask, uint32_t i) {
    return (mask.sim_addr()[i / 8] >> (i % 8)) & 1u;
}
}  // namespace detail

template <typename T>
void Compare(const LocalTensor<uint8_t> &dst, const LocalTensor<T> &a, const LocalTensor<T> &b,
             CMPMODE m, uint32_t n) {
    detail::check_ub("Compare", b, n);
    detail::compare_into("Compare", dst, a, n, [&](uint32_t i) { return float(b.sim_addr()[i]); },
                         m);
}
template <typename T>
void CompareScalar(const LocalTensor<uint8_t> &dst, const LocalTensor<T> &a, T s, CMPMODE m,
                   uint32_t n) {
    float v = float(s);
    detail::compare_into("CompareScalar", dst, a, n, [v](uint32_t) { return v; }, m);
}
// Tensor-tensor select (VSEL_TENSOR_TENSOR_MODE): bits are copied, not converted.
template <typename T>
void Select(const LocalTensor<T> &dst, const LocalTensor<uint8_t> &mask, const LocalTensor<T> &a,
            const LocalTensor<T> &b, SELMODE mode, uint32_t n) {
    if (mode != SELMODE::VSEL_TENSOR_TENSOR_MODE)
        osum_sim::fail("Select(tensor, tensor): mode must be VSEL_TENSOR_TENSOR_MODE");
    detail::check_ub("Select", dst, n);
    detail::check_ub("Select", mask, (n + 7) / 8);
    detail::check_ub("Select", a, n);
    detail::check_ub("Select", b, n);
    for (uint32_t i = 0; i < n; ++i)
        dst.sim_addr()[i] = detail::mask_bit(mask, i) ? a.sim_addr()[i] : b.sim_addr()[i];
    detail::count_vector<T>(n);
}
// Tensor-scalar select (VSEL_TENSOR_SCALAR_MODE).
template <typename T>
void Select(const LocalTensor<T> &dst, const LocalTensor<uint8_t> &mask, const LocalTensor<T> &a,
            T b, SELMODE mode, uint32_t n) {
    if (mode != SELMODE::VSEL_TENSOR_SCALAR_MODE)
        osum_sim::fail("Select(tensor, scalar): mode must be VSEL_TENSOR_SCALAR_MODE");
    detail::check_ub("Select", dst, n);
    detail::check_ub("Select", mask, (n + 7) / 8);
    detail::check_ub("Select", a, n);
    for (uint32_t i = 0; i < n; ++i)
        dst.sim_addr()[i] = detail::mask_bit(mask, i) ? a.sim_addr()[i] : b;
    detail::count_vector<T>(n);
}

}  // namespace AscendC
