// kernel_operator.h (simulator): the subset of the AscendC API that kernels/ascend/*.cpp use,
// implemented on the CPU. On the NPU the devkit's header of the same name is used instead.
//
// Names and argument orders follow the AscendC documentation (../shared/ASCEND.md, "AscendC API
// subset"); the implementation is ours. Every call checks the rules the hardware imposes and
// throws osum_sim::Violation (turned into an aclError by the launch) when one is broken:
//   - capacities of UB / L1 / L0A / L0B / L0C (910B) for TPipe::InitBuffer,
//   - 32-byte alignment of UB addresses and of DataCopy lengths, 512-byte L0 fractals,
//   - queue discipline: AllocTensor -> EnQue -> DeQue -> FreeTensor, depth limits, no leaks,
//   - operands at the level an instruction reads (vector: UB; Mmad: L0A/L0B -> L0C),
//   - GM accesses inside the GlobalTensor (and so inside an aclrtMalloc allocation).
// It also counts bytes moved per path and vector/cube work (simulation counters, osum_sim.h).
//
// Fractal layouts (as the simulator models them; C0 = 32 bytes / sizeof(T) elements, a fractal
// is 16 rows x C0 = 512 bytes):
//   L1 "NZ"  : element (r, c) of an R x C matrix at (c / C0) * (Rpad * C0) + r * C0 + c % C0,
//   L0A "ZZ" : fractal (r/16, c/C0) at index (r/16) * Cblocks + c/C0, row-major inside,
//   L0B "ZN" : for B (k x n), fractal (k/C0, n/16) at index (k/C0) * Nblocks + n/16, each fractal
//              stored n-major (16 rows of n, C0 values of k) = an NZ fractal of B transposed,
//   L0C "NZ" : f32 C (m x n), element (r, c) at (c / 16) * (Mpad * 16) + r * 16 + c % 16.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <memory>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "sim_core.h"

// Kernel qualifiers are meaningful only to the NPU compiler.
#define __global__
#define __aicore__
#define __gm__
#define GM_ADDR uint8_t *

// IEEE binary16 for the simulator (the NPU compiler has `half` built in).
struct half {
    uint16_t bits = 0;
    half() = default;
    half(float f) : bits(from_float(f)) {}  // NOLINT: implicit like the built-in type
    operator float() const { return to_float(bits); }

    static uint16_t from_float(float f) {
        uint32_t x;
        std::memcpy(&x, &f, 4);
        uint32_t sign = (x >> 16) & 0x8000u;
        uint32_t mag = x & 0x7fffffffu;
        if (mag >= 0x7f800000u) return static_cast<uint16_t>(sign | (mag > 0x7f800000u ? 0x7e00u : 0x7c00u));
        if (mag >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow -> inf
        if (mag < 0x38800000u) {                                              // subnormal or 0
            float a;
            std::memcpy(&a, &mag, 4);
            uint32_t sub = static_cast<uint32_t>(std::nearbyint(a * 16777216.0f));  // a / 2^-24
            return static_cast<uint16_t>(sign | sub);
        }
        // Normal: round to nearest even on the 13 dropped mantissa bits.
        uint32_t r = mag - 0x38000000u;
        r = (r + 0x0fffu + ((r >> 13) & 1u)) >> 13;
        return static_cast<uint16_t>(sign | r);
    }
    static float to_float(uint16_t h) {
        uint32_t sign = (h & 0x8000u) << 16;
        uint32_t exp = (h >> 10) & 0x1fu;
        uint32_t man = h & 0x3ffu;
        float out;
        if (exp == 0) {
            out = std::ldexp(static_cast<float>(man), -24);
            uint32_t b;
            std::memcpy(&b, &out, 4);
            b |= sign;
            std::memcpy(&out, &b, 4);
            return out;
        }
        uint32_t b = exp == 31 ? (sign | 0x7f800000u | (man << 13))
                               : (sign | ((exp + 112u) << 23) | (man << 13));
        std::memcpy(&out, &b, 4);
        return out;
    }
};

namespace AscendC {

using osum_sim::Level;

// ---- positions, pipes, block index ---------------------------------------------------------------

enum class TPosition { GM, VECIN, VECOUT, VECCALC, A1, A2, B1, B2, CO1, CO2 };

inline Level level_of(TPosition p) {
    switch (p) {
        case TPosition::GM: return Level::GM;
        case TPosition::VECIN:
        case TPosition::VECOUT:
        case TPosition::VECCALC:
        case TPosition::CO2: return Level::UB;
        case TPosition::A1:
        case TPosition::B1: return Level::L1;
        case TPosition::A2: return Level::L0A;
        case TPosition::B2: return Level::L0B;
        case TPosition::CO1: return Level::L0C;
    }
    return Level::UB;
}

inline const char *position_name(TPosition p) {
    switch (p) {
        case TPosition::GM: return "GM";
        case TPosition::VECIN: return "VECIN";
        case TPosition::VECOUT: return "VECOUT";
        case TPosition::VECCALC: return "VECCALC";
        case TPosition::A1: return "A1";
        case TPosition::A2: return "A2";
        case TPosition::B1: return "B1";
        case TPosition::B2: return "B2";
        case TPosition::CO1: return "CO1";
        case TPosition::CO2: return "CO2";
    }
    return "?";
}

enum pipe_t { PIPE_S, PIPE_V, PIPE_M, PIPE_MTE1, PIPE_MTE2, PIPE_MTE3, PIPE_FIX, PIPE_ALL };

// Blocks run one after another in the simulator, so pipeline barriers have nothing to order.
template <pipe_t pipe>
inline void PipeBarrier() {}

inline int64_t GetBlockIdx() { return osum_sim::ctx().block_idx; }
inline int64_t GetBlockNum() { return osum_sim::ctx().block_num; }

// ---- tensors -------------------------------------------------------------------------------------

namespace detail {
template <typename... Args>
std::string str(const Args &...args) {
    std::ostringstream s;
    (s << ... << args);
    return s.str();
}
inline OsumSimLaunchStats &stats() { return osum_sim::ctx().stats; }
}  // namespace detail

// A tensor in on-chip memory (UB, L1, L0A/B/C), obtained from a TQue or TBuf.
template <typename T>
class LocalTensor {
   public:
    LocalTensor() = default;
    LocalTensor(T *addr, uint32_t size, Level level) : addr_(addr), size_(size), level_(level) {}

    // The tensor starting `offset` elements further (same buffer).
    LocalTensor operator[](uint32_t offset) const {
        if (offset > size_)
            osum_sim::fail(detail::str("LocalTensor[", offset, "]: past the end of a ", size_,
                                       "-element ", osum_sim::level_name(level_), " tensor"));
        return LocalTensor(addr_ + offset, size_ - offset, level_);
    }
    T GetValue(uint32_t i) const {
        check_index("GetValue", i);
        return addr_[i];
    }
    void SetValue(uint32_t i, T v) const {
        check_index("SetValue", i);
        addr_[i] = v;
    }
    uint32_t GetSize() const { return size_; }
    template <typename U>
    LocalTensor<U> ReinterpretCast() const {
        return LocalTensor<U>(reinterpret_cast<U *>(addr_),
                              static_cast<uint32_t>(size_ * sizeof(T) / sizeof(U)), level_);
    }

    // Simulator internals (not AscendC API).
    T *sim_addr() const { return addr_; }
    Level sim_level() const { return level_; }

   private:
    void check_index(const char *op, uint32_t i) const {
        if (i >= size_)
            osum_sim::fail(detail::str(op, "(", i, ") on a ", size_, "-element tensor"));
    }
    T *addr_ = nullptr;
    uint32_t size_ = 0;
    Level level_ = Level::UB;
};

// A view of device (GM) memory handed to the kernel as GM_ADDR.
template <typename T>
class GlobalTensor {
   public:
    void SetGlobalBuffer(__gm__ T *addr, uint64_t size) {
        if (!osum_sim::gm_contains(addr, size * sizeof(T)))
            osum_sim::fail(detail::str("GlobalTensor::SetGlobalBuffer: ", size,
                                       " elements at this address are not inside one aclrtMalloc "
                                       "allocation"));
        addr_ = addr;
        size_ = size;
    }
    GlobalTensor operator[](uint64_t offset) const {
        if (offset > size_)
            osum_sim::fail(detail::str("GlobalTensor[", offset, "]: past the end of ", size_,
                                       " elements"));
        GlobalTensor g;
        g.addr_ = addr_ + offset;
        g.size_ = size_ - offset;
        return g;
    }
    T GetValue(uint64_t i) const {
        check(i, 1, "GetValue");
        return addr_[i];
    }
    void SetValue(uint64_t i, T v) const {
        check(i, 1, "SetValue");
        addr_[i] = v;
    }
    uint64_t GetSize() const { return size_; }

    // Simulator internals.
    T *sim_addr() const { return addr_; }
    void check(uint64_t start, uint64_t count, const char *op) const {
        if (start + count > size_ || start + count < start)
            osum_sim::fail(detail::str(op, ": GM elements [", start, ", ", start + count,
                                       ") outside the ", size_, "-element GlobalTensor"));
    }

   private:
    T *addr_ = nullptr;
    uint64_t size_ = 0;
};

// ---- TPipe, TQue, TBuf -----------------------------------------------------------------------------

class TPipe;

namespace detail {
// Storage of a queue or buffer: `num` buffers of `bytes` at one level, carved from the pipe.
struct BufferSet {
    TPosition pos = TPosition::VECIN;
    std::vector<uint8_t *> bufs;
    uint32_t bytes = 0;
    bool initialized = false;
};
}  // namespace detail

// A queue of on-chip buffers (depth = how many may be enqueued at once; 2 = double buffering).
template <TPosition pos, int32_t depth>
class TQue {
   public:
    TQue() { set_.pos = pos; }
    TQue(const TQue &) = delete;
    TQue &operator=(const TQue &) = delete;
    ~TQue() {
        // Leaks are a discipline error, but destructors cannot throw: defer to the launch.
        if (!osum_sim::in_launch() || std::uncaught_exceptions() > 0) return;
        size_t live = 0;
        for (int s : state_) live += s != 0;
        auto &c = osum_sim::ctx();
        if (live > 0 && c.deferred.empty())
            c.deferred = detail::str("TQue<", position_name(pos), ">: ", live,
                                     " buffer(s) still allocated or queued when the kernel ended "
                                     "(FreeTensor missing)");
    }

    template <typename T>
    LocalTensor<T> AllocTensor() {
        require_init("AllocTensor");
        for (size_t i = 0; i < state_.size(); ++i) {
            if (state_[i] == 0) {
                state_[i] = 1;
                return LocalTensor<T>(reinterpret_cast<T *>(set_.bufs[i]),
                                      set_.bytes / sizeof(T), level_of(pos));
            }
        }
        osum_sim::fail(detail::str("TQue<", position_name(pos), ">::AllocTensor: all ",
                                   state_.size(), " buffer(s) in use (FreeTensor missing?)"));
    }

    template <typename T>
    bool EnQue(const LocalTensor<T> &t) {
        require_init("EnQue");
        size_t i = index_of(t.sim_addr(), "EnQue");
        if (state_[i] != 1)
            osum_sim::fail(detail::str("TQue<", position_name(pos), ">::EnQue: tensor is ",
                                       state_[i] == 2 ? "already queued" : "not allocated"));
        if (fifo_.size() >= static_cast<size_t>(depth))
            osum_sim::fail(detail::str("TQue<", position_name(pos), ">::EnQue: queue of depth ",
                                       depth, " is full (DeQue missing)"));
        state_[i] = 2;
        fifo_.push_back(i);
        return true;
    }

    template <typename T>
    LocalTensor<T> DeQue() {
        require_init("DeQue");
        if (fifo_.empty())
            osum_sim::fail(detail::str("TQue<", position_name(pos),
                                       ">::DeQue: queue is empty (EnQue missing)"));
        size_t i = fifo_.front();
        fifo_.pop_front();
        state_[i] = 1;
        return LocalTensor<T>(reinterpret_cast<T *>(set_.bufs[i]), set_.bytes / sizeof(T),
                              level_of(pos));
    }

    template <typename T>
    void FreeTensor(LocalTensor<T> &t) {
        require_init("FreeTensor");
        size_t i = index_of(t.sim_addr(), "FreeTensor");
        if (state_[i] != 1)
            osum_sim::fail(detail::str("TQue<", position_name(pos), ">::FreeTensor: tensor is ",
                                       state_[i] == 2 ? "still queued (DeQue it first)"
                                                      : "not allocated (double free?)"));
        state_[i] = 0;
    }

    // Simulator internals.
    detail::BufferSet &sim_set() { return set_; }
    void sim_ready() { state_.assign(set_.bufs.size(), 0); }

   private:
    void require_init(const char *op) const {
        if (!set_.initialized)
            osum_sim::fail(detail::str("TQue<", position_name(pos), ">::", op,
                                       " before TPipe::InitBuffer"));
    }
    size_t index_of(const void *addr, const char *op) const {
        for (size_t i = 0; i < set_.bufs.size(); ++i)
            if (set_.bufs[i] == addr) return i;
        osum_sim::fail(detail::str("TQue<", position_name(pos), ">::", op,
                                   ": tensor does not start one of this queue's buffers"));
    }
    detail::BufferSet set_;
    std::vector<int> state_;  // 0 free, 1 allocated, 2 queued
    std::deque<size_t> fifo_;
};

// A scratch buffer outside any queue (TPosition::VECCALC for vector temporaries).
template <TPosition pos>
class TBuf {
   public:
    TBuf() { set_.pos = pos; }
    TBuf(const TBuf &) = delete;
    TBuf &operator=(const TBuf &) = delete;
    template <typename T>
    LocalTensor<T> Get() {
        return Get<T>(set_.bytes / sizeof(T));
    }
    template <typename T>
    LocalTensor<T> Get(uint32_t len) {
        if (!set_.initialized)
            osum_sim::fail(detail::str("TBuf<", position_name(pos), ">::Get before InitBuffer"));
        if (static_cast<uint64_t>(len) * sizeof(T) > set_.bytes)
            osum_sim::fail(detail::str("TBuf<", position_name(pos), ">::Get(", len,
                                       "): larger than the ", set_.bytes, "-byte buffer"));
        return LocalTensor<T>(reinterpret_cast<T *>(set_.bufs[0]), len, level_of(pos));
    }
    detail::BufferSet &sim_set() { return set_; }
    void sim_ready() {}

   private:
    detail::BufferSet set_;
};

// Owner of a kernel's on-chip memory: carves queue and scratch buffers out of each level,
// refusing allocations beyond the level's 910B capacity.
class TPipe {
   public:
    TPipe() = default;
    TPipe(const TPipe &) = delete;
    TPipe &operator=(const TPipe &) = delete;

    template <class Q>
    bool InitBuffer(Q &que, uint8_t num, uint32_t len) {
        init(que.sim_set(), num, len);
        que.sim_ready();
        return true;
    }
    template <TPosition pos>
    bool InitBuffer(TBuf<pos> &buf, uint32_t len) {
        init(buf.sim_set(), 1, len);
        return true;
    }
    void Destroy() {}

   private:
    void init(detail::BufferSet &set, uint32_t num, uint32_t len) {
        if (set.initialized)
            osum_sim::fail(detail::str("TPipe::InitBuffer: ", position_name(set.pos),
                                       " buffer initialised twice"));
        if (num == 0 || len == 0)
            osum_sim::fail("TPipe::InitBuffer: zero buffers or zero length");
        Level level = level_of(set.pos);
        size_t align = osum_sim::level_alignment(level);
        size_t each = osum_sim::round_up(len, align);
        auto &c = osum_sim::ctx();
        size_t &used = c.level_used[static_cast<int>(level)];
        size_t need = used + each * num;
        size_t cap = osum_sim::level_capacity(level);
        if (need > cap)
            osum_sim::fail(detail::str("TPipe::InitBuffer: ", position_name(set.pos), " needs ",
                                       num, " x ", each, " bytes; ", osum_sim::level_name(level),
                                       " would hold ", need, " of its ", cap, " usable bytes"));
        used = need;
        uint64_t *peak = nullptr;
        switch (level) {
            case Level::UB: peak = &c.stats.peak_ub_bytes; break;
            case Level::L1: peak = &c.stats.peak_l1_bytes; break;
            case Level::L0A: peak = &c.stats.peak_l0a_bytes; break;
            case Level::L0B: peak = &c.stats.peak_l0b_bytes; break;
            case Level::L0C: peak = &c.stats.peak_l0c_bytes; break;
            case Level::GM: break;
        }
        if (peak != nullptr) *peak = std::max<uint64_t>(*peak, used);
        for (uint32_t i = 0; i < num; ++i) {
            // Poison new memory with 0xFF bytes (NaN for floats) so reads of data never written
            // show up in results instead of passing by luck.
            arenas_.emplace_back(new uint8_t[each + align]);
            uint8_t *raw = arenas_.back().get();
            uint8_t *p = reinterpret_cast<uint8_t *>(
                osum_sim::round_up(reinterpret_cast<uintptr_t>(raw), align));
            std::memset(p, 0xff, each);
            set.bufs.push_back(p);
        }
        set.bytes = static_cast<uint32_t>(each);
        set.initialized = true;
    }
    std::vector<std::unique_ptr<uint8_t[]>> arenas_;
};

// ---- data movement ---------------------------------------------------------------------------------

namespace detail {
template <typename T>
void check_ub(const char *op, const LocalTensor<T> &t, uint64_t count) {
    if (t.sim_level() != Level::UB)
        osum_sim::fail(str(op, ": operand is in ", osum_sim::level_name(t.sim_level()),
                           ", this instruction reads and writes UB"));
    if (reinterpret_cast<uintptr_t>(t.sim_addr()) % 32 != 0)
        osum_sim::fail(str(op, ": UB address is not 32-byte aligned"));
    if (count > t.GetSize())
        osum_sim::fail(str(op, ": ", count, " elements exceed the ", t.GetSize(),
                           "-element UB tensor"));
}
template <typename T>
void check_copy_len(const char *op, uint64_t count) {
    if ((count * sizeof(T)) % 32 != 0)
        osum_sim::fail(str(op, ": ", count * sizeof(T),
                           " bytes is not a multiple of 32 (the hardware would round it down "
                           "silently; use DataCopyPad for ragged lengths)"));
}
}  // namespace detail

// GM -> UB (MTE2). `count` elements; count * sizeof(T) must be a multiple of 32 bytes.
template <typename T>
void DataCopy(const LocalTensor<T> &dst, const GlobalTensor<T> &src, uint32_t count) {
    detail::check_copy_len<T>("DataCopy GM->UB", count);
    detail::check_ub("DataCopy GM->UB", dst, count);
    src.check(0, count, "DataCopy GM->UB");
    std::memcpy(dst.sim_addr(), src.sim_addr(), count * sizeof(T));
    detail::stats().gm_to_ub_bytes += count * sizeof(T);
}

// UB -> GM (MTE3).
template <typename T>
void DataCopy(const GlobalTensor<T> &dst, const LocalTensor<T> &src, uint32_t count) {
    detail::check_copy_len<T>("DataCopy UB->GM", count);
    detail::check_ub("DataCopy UB->GM", src, count);
    dst.check(0, count, "DataCopy UB->GM");
    std::memcpy(dst.sim_addr(), src.sim_addr(), count * sizeof(T));
    detail::stats().ub_to_gm_bytes += count * sizeof(T);
}

// UB -> UB.
template <typename T>
void DataCopy(const LocalTensor<T> &dst, const LocalTensor<T> &src, uint32_t count) {
    detail::check_copy_len<T>("DataCopy UB->UB", count);
    detail::check_ub("DataCopy UB->UB", dst, count);
    detail::check_ub("DataCopy UB->UB", src, count);
    std::memmove(dst.sim_addr(), src.sim_addr(), count * sizeof(T));
    detail::stats().ub_to_ub_bytes += count * sizeof(T);
}

// Parameters of DataCopyPad: blockCount blocks of blockLen bytes. GM side strides are in
// bytes, UB side strides in 32-byte blocks (each UB block starts 32-byte aligned).
struct DataCopyExtParams {
    uint16_t blockCount = 1;
    uint32_t blockLen = 0;
    uint32_t srcStride = 0;
    uint32_t dstStride = 0;
    uint32_t rsv = 0;
};

template <typename T>
struct DataCopyPadExtParams {
    bool isPad = false;
    uint8_t leftPadding = 0;
    uint8_t rightPadding = 0;
    T paddingValue = T();
};

// GM -> UB for lengths that are not a multiple of 32 bytes (910B). The tail of each UB block up to
// the next 32-byte boundary is filled with paddingValue when isPad is set.
template <typename T>
void DataCopyPad(const LocalTensor<T> &dst, const GlobalTensor<T> &src,
                 const DataCopyExtParams &p, const DataCopyPadExtParams<T> &pad) {
    if (p.blockLen % sizeof(T) != 0)
        osum_sim::fail("DataCopyPad GM->UB: blockLen is not a whole number of elements");
    if (pad.leftPadding != 0) osum_sim::fail("DataCopyPad: leftPadding is not simulated");
    uint64_t n = p.blockLen / sizeof(T);
    uint64_t ub_block = osum_sim::round_up(p.blockLen, 32) + uint64_t(p.dstStride) * 32;
    uint64_t gm_block = p.blockLen + uint64_t(p.srcStride);
    detail::check_ub("DataCopyPad GM->UB", dst,
                     (uint64_t(p.blockCount) * ub_block - uint64_t(p.dstStride) * 32) / sizeof(T));
    for (uint32_t b = 0; b < p.blockCount; ++b) {
        uint64_t s = b * gm_block / sizeof(T);
        src.check(s, n, "DataCopyPad GM->UB");
        T *d = dst.sim_addr() + b * ub_block / sizeof(T);
        std::memcpy(d, src.sim_addr() + s, p.blockLen);
        if (pad.isPad) {
            uint64_t padded = osum_sim::round_up(p.blockLen, 32) / sizeof(T);
            for (uint64_t i = n; i < padded; ++i) d[i] = pad.paddingValue;
        }
    }
    detail::stats().gm_to_ub_bytes += uint64_t(p.blockCount) * p.blockLen;
}

// UB -> GM for ragged lengths: writes exactly blockLen bytes per block.
template <typename T>
void DataCopyPad(const GlobalTensor<T> &dst, const LocalTensor<T> &src, const DataCopyExtParams &p) {
    if (p.blockLen % sizeof(T) != 0)
        osum_sim::fail("DataCopyPad UB->GM: blockLen is not a whole number of elements");
    uint64_t n = p.blockLen / sizeof(T);
    uint64_t ub_block = osum_sim::round_up(p.blockLen, 32) + uint64_t(p.srcStride) * 32;
    uint64_t gm_block = p.blockLen + uint64_t(p.dstStride);
    detail::check_ub("DataCopyPad UB->GM", src,
                     (uint64_t(p.blockCount) * ub_block - uint64_t(p.srcStride) * 32) / sizeof(T));
    for (uint32_t b = 0; b < p.blockCount; ++b) {
        uint64_t d = b * gm_block / sizeof(T);
        dst.check(d, n, "DataCopyPad UB->GM");
        std::memcpy(dst.sim_addr() + d, src.sim_addr() + b * ub_block / sizeof(T), p.blockLen);
    }
    detail::stats().ub_to_gm_bytes += uint64_t(p.blockCount) * p.blockLen;
}

// ---- vector instructions (UB only) ---------------------------------------------------------------

namespace detail {
template <typename T>
void count_vector(uint64_t count) {
    auto &s = stats();
    s.vector_elems += count;
    s.vector_repeats += (count * sizeof(T) + 255) / 256;  // one repeat = 256 bytes
}
template <typename T, typename F>
void binary(const char *op, const LocalTensor<T> &dst, const LocalTensor<T> &a,
            const LocalTensor<T> &b, int32_t count, F f) {
    if (count < 0) osum_sim::fail(str(op, ": negative count"));
    check_ub(op, dst, count);
    check_ub(op, a, count);
    check_ub(op, b, count);
    T *d = dst.sim_addr();
    const T *x = a.sim_addr();
    const T *y = b.sim_addr();
    for (int32_t i = 0; i < count; ++i) d[i] = T(f(float(x[i]), float(y[i])));
    count_vector<T>(count);
}
template <typename T, typename F>
void unary(const char *op, const LocalTensor<T> &dst, const LocalTensor<T> &a, int32_t count,
           F f) {
    if (count < 0) osum_sim::fail(str(op, ": negative count"));
    check_ub(op, dst, count);
    check_ub(op, a, count);
    T *d = dst.sim_addr();
    const T *x = a.sim_addr();
    for (int32_t i = 0; i < count; ++i) d[i] = T(f(float(x[i])));
    count_vector<T>(count);
}
}  // namespace detail

template <typename T>
void Add(const LocalTensor<T> &d, const LocalTensor<T> &a, const LocalTensor<T> &b, int32_t n) {
    detail::binary("Add", d, a, b, n, [](float x, float y) { return x + y; });
}
template <typename T>
void Sub(const LocalTensor<T> &d, const LocalTensor<T> &a, const LocalTensor<T> &b, int32_t n) {
    detail::binary("Sub", d, a, b, n, [](float x, float y) { return x - y; });
}
template <typename T>
void Mul(const LocalTensor<T> &d, const LocalTensor<T> &a, const LocalTensor<T> &b, int32_t n) {
    detail::binary("Mul", d, a, b, n, [](float x, float y) { return x * y; });
}
template <typename T>
void Div(const LocalTensor<T> &d, const LocalTensor<T> &a, const LocalTensor<T> &b, int32_t n) {
    detail::binary("Div", d, a, b, n, [](float x, float y) { return x / y; });
}
template <typename T>
void Max(const LocalTensor<T> &d, const LocalTensor<T> &a, const LocalTensor<T> &b, int32_t n) {
    detail::binary("Max", d, a, b, n, [](float x, float y) { return x > y ? x : y; });
}
template <typename T>
void Min(const LocalTensor<T> &d, const LocalTensor<T> &a, const LocalTensor<T> &b, int32_t n) {
    detail::binary("Min", d, a, b, n, [](float x, float y) { return x < y ? x : y; });
}
template <typename T>
void Adds(const LocalTensor<T> &d, const LocalTensor<T> &a, T s, int32_t n) {
    float v = float(s);
    detail::unary("Adds", d, a, n, [v](float x) { return x + v; });
}
template <typename T>
void Muls(const LocalTensor<T> &d, const LocalTensor<T> &a, T s, int32_t n) {
    float v = float(s);
    detail::unary("Muls", d, a, n, [v](float x) { return x * v; });
}
template <typename T>
void Maxs(const LocalTensor<T> &d, const LocalTensor<T> &a, T s, int32_t n) {
    float v = float(s);
    detail::unary("Maxs", d, a, n, [v](float x) { return x > v ? x : v; });
}
template <typename T>
void Exp(const LocalTensor<T> &d, const LocalTensor<T> &a, int32_t n) {
    detail::unary("Exp", d, a, n, [](float x) { return std::exp(x); });
}
template <typename T>
void Ln(const LocalTensor<T> &d, const LocalTensor<T> &a, int32_t n) {
    detail::unary("Ln", d, a, n, [](float x) { return std::log(x); });
}
template <typename T>
void Sqrt(const LocalTensor<T> &d, const LocalTensor<T> &a, int32_t n) {
    detail::unary("Sqrt", d, a, n, [](float x) { return std::sqrt(x); });
}
template <typename T>
void Abs(const LocalTensor<T> &d, const LocalTensor<T> &a, int32_t n) {
    detail::unary("Abs", d, a, n, [](float x) { return std::fabs(x); });
}
template <typename T>
void Relu(const LocalTensor<T> &d, const LocalTensor<T> &a, int32_t n) {
    detail::unary("Relu", d, a, n, [](float x) { return x > 0.0f ? x : 0.0f; });
}
template <typename T>
void Duplicate(const LocalTensor<T> &d, T value, int32_t n) {
    detail::check_ub("Duplicate", d, n);
    std::fill(d.sim_addr(), d.sim_addr() + n, value);
    detail::count_vector<T>(n);
}

enum class RoundMode { CAST_NONE, CAST_RINT, CAST_FLOOR, CAST_CEIL, CAST_ROUND, CAST_TRUNC };

// Type conversion. float <-> half round to nearest even (CAST_NONE / CAST_RINT); other modes
// are refused rather than approximated.
template <typename D, typename S>
void Cast(const LocalTensor<D> &dst, const LocalTensor<S> &src, RoundMode mode, uint32_t n) {
    if (mode != RoundMode::CAST_NONE && mode != RoundMode::CAST_RINT)
        osum_sim::fail("Cast: only CAST_NONE / CAST_RINT are simulated");
    detail::check_ub("Cast", dst, n);
    detail::check_ub("Cast", src, n);
    if constexpr (std::is_integral_v<D>) {
        // float -> int needs an explicit rounding mode on the hardware.
        if (mode != RoundMode::CAST_RINT) osum_sim::fail("Cast to an integer type needs CAST_RINT");
        for (uint32_t i = 0; i < n; ++i)
            dst.sim_addr()[i] = D(std::nearbyint(float(src.sim_addr()[i])));
    } else {
        for (uint32_t i = 0; i < n; ++i) dst.sim_addr()[i] = D(float(src.sim_addr()[i]));
    }
    detail::count_vector<float>(n);
}

// Reductions: dst[0] = max / sum of src[0..n); `work` is the scratch buffer the hardware needs.
template <typename T>
void ReduceMax(const LocalTensor<T> &dst, const LocalTensor<T> &src, const LocalTensor<T> &work,
               int32_t n, bool calIndex = false) {
    if (n <= 0) osum_sim::fail("ReduceMax: count must be positive");
    if (calIndex) osum_sim::fail("ReduceMax: calIndex is not simulated");
    detail::check_ub("ReduceMax", dst, 1);
    detail::check_ub("ReduceMax", src, n);
    detail::check_ub("ReduceMax", work, 1);
    float m = float(src.sim_addr()[0]);
    for (int32_t i = 1; i < n; ++i) m = std::max(m, float(src.sim_addr()[i]));
    dst.sim_addr()[0] = T(m);
    detail::count_vector<T>(n);
}
template <typename T>
void ReduceSum(const LocalTensor<T> &dst, const LocalTensor<T> &src, const LocalTensor<T> &work,
               int32_t n) {
    if (n <= 0) osum_sim::fail("ReduceSum: count must be positive");
    detail::check_ub("ReduceSum", dst, 1);
    detail::check_ub("ReduceSum", src, n);
    detail::check_ub("ReduceSum", work, 1);
    float s = 0.0f;
    for (int32_t i = 0; i < n; ++i) s += float(src.sim_addr()[i]);
    dst.sim_addr()[0] = T(s);
    detail::count_vector<T>(n);
}

// ---- cube path: GM -> L1 (ND -> NZ) -> L0A / L0B -> Mmad -> L0C -> Fixpipe -> GM ------------------

namespace detail {
template <typename T>
constexpr uint32_t c0() {
    return 32 / sizeof(T);
}
constexpr uint32_t kFractalBytes = 512;
template <typename T>
void check_level(const char *op, const LocalTensor<T> &t, Level want) {
    if (t.sim_level() != want)
        osum_sim::fail(str(op, ": operand is in ", osum_sim::level_name(t.sim_level()),
                           ", expected ", osum_sim::level_name(want)));
}
}  // namespace detail

// ND (row-major, row stride srcDValue) -> NZ in L1. Strides of the NZ side are in C0-element
// (32-byte) units: dstNzC0Stride = padded row count between column blocks, dstNzNStride = 1.
struct Nd2NzParams {
    uint16_t ndNum = 1;
    uint16_t nValue = 0;
    uint16_t dValue = 0;
    uint16_t srcNdMatrixStride = 0;
    uint16_t srcDValue = 0;
    uint16_t dstNzC0Stride = 0;
    uint16_t dstNzNStride = 1;
    uint16_t dstNzMatrixStride = 0;
};

template <typename T>
void DataCopy(const LocalTensor<T> &dst, const GlobalTensor<T> &src, const Nd2NzParams &p) {
    const char *op = "DataCopy GM->L1 (Nd2Nz)";
    detail::check_level(op, dst, Level::L1);
    if (p.ndNum != 1) osum_sim::fail(detail::str(op, ": ndNum ", p.ndNum, " (only 1 simulated)"));
    if (p.nValue == 0 || p.dValue == 0) return;
    if (p.srcDValue < p.dValue) osum_sim::fail(detail::str(op, ": srcDValue < dValue"));
    constexpr uint32_t C0 = detail::c0<T>();
    uint64_t last_row = uint64_t(p.nValue - 1) * p.srcDValue;
    src.check(0, last_row + p.dValue, op);
    uint64_t blocks = (p.dValue + C0 - 1) / C0;
    uint64_t dst_need = (blocks - 1) * uint64_t(p.dstNzC0Stride) * C0 +
                        uint64_t(p.nValue - 1) * p.dstNzNStride * C0 + C0;
    if (dst_need > dst.GetSize())
        osum_sim::fail(detail::str(op, ": NZ tile needs ", dst_need, " elements, L1 tensor has ",
                                   dst.GetSize()));
    if (p.dstNzC0Stride < p.nValue)
        osum_sim::fail(detail::str(op, ": dstNzC0Stride ", p.dstNzC0Stride, " < nValue ",
                                   p.nValue, " (column blocks would overlap)"));
    T *d = dst.sim_addr();
    const T *s = src.sim_addr();
    for (uint32_t r = 0; r < p.nValue; ++r)
        for (uint32_t c = 0; c < p.dValue; ++c)
            d[(c / C0) * p.dstNzC0Stride * C0 + r * p.dstNzNStride * C0 + c % C0] =
                s[uint64_t(r) * p.srcDValue + c];
    detail::stats().gm_to_l1_bytes += uint64_t(p.nValue) * p.dValue * sizeof(T);
}

// L1 -> L0A/L0B: repeatTimes fractals (512 bytes each), the i-th read from fractal
// startIndex + i * srcStride and written at fractal i * (1 + dstGap).
struct LoadData2DParams {
    uint16_t startIndex = 0;
    uint8_t repeatTimes = 0;
    uint16_t srcStride = 0;
    uint8_t sid = 0;
    uint16_t dstGap = 0;
    bool ifTranspose = false;
    uint8_t addrMode = 0;
};

template <typename T>
void LoadData(const LocalTensor<T> &dst, const LocalTensor<T> &src, const LoadData2DParams &p) {
    const char *op = "LoadData L1->L0";
    detail::check_level(op, src, Level::L1);
    if (dst.sim_level() != Level::L0A && dst.sim_level() != Level::L0B)
        osum_sim::fail(detail::str(op, ": destination is in ",
                                   osum_sim::level_name(dst.sim_level()), ", expected L0A/L0B"));
    if (p.ifTranspose) osum_sim::fail(detail::str(op, ": ifTranspose is not simulated"));
    if (reinterpret_cast<uintptr_t>(dst.sim_addr()) % detail::kFractalBytes != 0)
        osum_sim::fail(detail::str(op, ": L0 address is not 512-byte (fractal) aligned"));
    constexpr uint32_t F = detail::kFractalBytes / sizeof(T);  // elements per fractal
    for (uint32_t i = 0; i < p.repeatTimes; ++i) {
        uint64_t s = (uint64_t(p.startIndex) + uint64_t(i) * p.srcStride) * F;
        uint64_t d = uint64_t(i) * (1 + p.dstGap) * F;
        if (s + F > src.GetSize())
            osum_sim::fail(detail::str(op, ": source fractal ", s / F, " past the L1 tensor"));
        if (d + F > dst.GetSize())
            osum_sim::fail(detail::str(op, ": destination fractal ", d / F, " past the L0 tensor"));
        std::memcpy(dst.sim_addr() + d, src.sim_addr() + s, detail::kFractalBytes);
    }
    detail::stats().l1_to_l0_bytes += uint64_t(p.repeatTimes) * detail::kFractalBytes;
}

struct MmadParams {
    uint16_t m = 0;
    uint16_t n = 0;
    uint16_t k = 0;
    bool isBias = false;
    bool cmatrixInitVal = true;  // true: C = A*B; false: C += A*B
};

// C (L0C, f32 NZ) = / += A (L0A, ZZ) x B (L0B, ZN), exact m x n x k (padding never read).
template <typename TA, typename TB>
void Mmad(const LocalTensor<float> &c, const LocalTensor<TA> &a, const LocalTensor<TB> &b,
          const MmadParams &p) {
    static_assert(std::is_same<TA, TB>::value, "Mmad: A and B must share a type");
    const char *op = "Mmad";
    detail::check_level(op, c, Level::L0C);
    detail::check_level(op, a, Level::L0A);
    detail::check_level(op, b, Level::L0B);
    if (p.isBias) osum_sim::fail("Mmad: isBias is not simulated");
    constexpr uint32_t C0 = detail::c0<TA>();
    uint64_t mb = (p.m + 15) / 16, nb = (p.n + 15) / 16, kb = (p.k + C0 - 1) / C0;
    if (mb * kb * 16 * C0 > a.GetSize())
        osum_sim::fail(detail::str(op, ": A needs ", mb * kb, " fractals, L0A tensor is smaller"));
    if (kb * nb * 16 * C0 > b.GetSize())
        osum_sim::fail(detail::str(op, ": B needs ", kb * nb, " fractals, L0B tensor is smaller"));
    if (mb * nb * 256 > c.GetSize())
        osum_sim::fail(detail::str(op, ": C needs ", mb * nb * 256, " floats, L0C tensor has ",
                                   c.GetSize()));
    const TA *A = a.sim_addr();
    const TB *B = b.sim_addr();
    float *C = c.sim_addr();
    uint64_t mpad = mb * 16;
    for (uint32_t r = 0; r < p.m; ++r) {
        for (uint32_t col = 0; col < p.n; ++col) {
            float acc = 0.0f;
            for (uint32_t kk = 0; kk < p.k; ++kk) {
                float av = float(A[((r / 16) * kb + kk / C0) * 16 * C0 + (r % 16) * C0 + kk % C0]);
                float bv =
                    float(B[((kk / C0) * nb + col / 16) * 16 * C0 + (col % 16) * C0 + kk % C0]);
                acc += av * bv;
            }
            float &out = C[(col / 16) * mpad * 16 + r * 16 + col % 16];
            out = p.cmatrixInitVal ? acc : out + acc;
        }
    }
    detail::stats().cube_macs += uint64_t(p.m) * p.n * p.k;
}

// L0C (NZ, f32) -> GM (ND, row stride dstStride elements). srcStride: padded row count of the
// L0C tile (a multiple of 16).
struct FixpipeParamsV220 {
    uint16_t nSize = 0;
    uint16_t mSize = 0;
    uint16_t srcStride = 0;
    uint32_t dstStride = 0;
};

template <typename T>
void Fixpipe(const GlobalTensor<T> &dst, const LocalTensor<float> &src,
             const FixpipeParamsV220 &p) {
    const char *op = "Fixpipe L0C->GM";
    detail::check_level(op, src, Level::L0C);
    if (p.srcStride % 16 != 0 || p.srcStride < p.mSize)
        osum_sim::fail(detail::str(op, ": srcStride ", p.srcStride,
                                   " must be a multiple of 16 and >= mSize"));
    if (p.mSize == 0 || p.nSize == 0) return;
    uint64_t nb = (p.nSize + 15) / 16;
    if (nb * p.srcStride * 16 > src.GetSize())
        osum_sim::fail(detail::str(op, ": tile larger than the L0C tensor"));
    dst.check(0, uint64_t(p.mSize - 1) * p.dstStride + p.nSize, op);
    const float *s = src.sim_addr();
    T *d = dst.sim_addr();
    for (uint32_t r = 0; r < p.mSize; ++r)
        for (uint32_t col = 0; col < p.nSize; ++col)
            d[uint64_t(r) * p.dstStride + col] =
                T(s[(col / 16) * uint64_t(p.srcStride) * 16 + r * 16 + col % 16]);
    detail::stats().l0c_to_gm_bytes += uint64_t(p.mSize) * p.nSize * sizeof(T);
}

}  // namespace AscendC

#include "kernel_operator_math.h"
