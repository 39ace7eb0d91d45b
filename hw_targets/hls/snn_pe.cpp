// The PE array in Vitis HLS C++ (see snn_pe.h). Every loop is written as the
// hardware runs it: the XNOR datapath works on bit-packed operands (a sign
// bit and a nonzero bit per input element, XNOR and popcount), PRECOMPUTE is
// an adder tree per codeword, GATHER adds the responses the indices pick.
#include "snn_pe.h"

namespace {

const int kOpPrecompute = 2;
const int kOpGather = 3;
const int kOpXnor = 4;
const int kMaxUnit = 9;  // 3x3: one channel's window; 1x1: 8 channels
const int kOneByOneChannels = 8;

// Bits [offset, offset + width) of the 256-bit little-endian word.
uint32_t field(const uint8_t word[32], int offset, int width) {
    uint32_t value = 0;
    for (int bit = 0; bit < width; ++bit) {
#pragma HLS UNROLL
        int position = offset + bit;
        value |= static_cast<uint32_t>((word[position >> 3] >> (position & 7)) & 1u) << bit;
    }
    return value;
}

// The window fields shared by PRECOMPUTE and XNOR (docs/FPGA.md, "The ISA").
struct Window {
    uint32_t in_base, units, in_rows, in_cols, out_rows, out_cols, stride_h, stride_w, kernel;
    int next;  // the bit after the window fields
};

Window read_window(const uint8_t word[32]) {
    Window w;
    w.in_base = field(word, 8, 24);
    w.units = field(word, 32, 12);
    w.in_rows = field(word, 44, 10);
    w.in_cols = field(word, 54, 10);
    w.out_rows = field(word, 64, 10);
    w.out_cols = field(word, 74, 10);
    w.stride_h = field(word, 84, 3);
    w.stride_w = field(word, 87, 3);
    w.kernel = field(word, 90, 1);
    w.next = 91;
    return w;
}

// The unit_size elements of unit u at output pixel (oy, ox).
int patch(const Window &w, const int8_t *input, uint32_t u, uint32_t oy, uint32_t ox, int8_t out[kMaxUnit]) {
#pragma HLS INLINE
    const int8_t *tile = input + w.in_base;
    if (w.kernel == 0) {
        const int8_t *channel = tile + u * w.in_rows * w.in_cols;
        for (int k = 0; k < 9; ++k) {
#pragma HLS UNROLL
            uint32_t row = oy * w.stride_h + k / 3, col = ox * w.stride_w + k % 3;
            out[k] = channel[row * w.in_cols + col];
        }
        return 9;
    }
    for (int k = 0; k < kOneByOneChannels; ++k) {
#pragma HLS UNROLL
        uint32_t channel = u * kOneByOneChannels + k;
        out[k] = tile[(channel * w.in_rows + oy * w.stride_h) * w.in_cols + ox * w.stride_w];
    }
    return kOneByOneChannels;
}

int precompute(const uint8_t word[32], const int8_t *input, const int8_t *codebook, int32_t *response) {
    Window w = read_window(word);
    if (w.kernel > 1) return SNN_PE_BAD_KERNEL;
    uint32_t codebook_base = field(word, 91, 16);
    uint32_t codewords = field(word, 107, 9);
    uint32_t response_base = field(word, 116, 24);
    uint32_t pixels = w.out_rows * w.out_cols;
    for (uint32_t u = 0; u < w.units; ++u) {
        for (uint32_t p = 0; p < pixels; ++p) {
            int8_t x[kMaxUnit];
#pragma HLS ARRAY_PARTITION variable = x complete
            int unit = patch(w, input, u, p / w.out_cols, p % w.out_cols, x);
            for (uint32_t j = 0; j < codewords; ++j) {
#pragma HLS PIPELINE II = 1
                int32_t sum = 0;  // an adder tree of unit - 1 adds
                for (int k = 0; k < unit; ++k) {
#pragma HLS UNROLL
                    int8_t sign = codebook[codebook_base + j * unit + k];
                    sum += sign > 0 ? x[k] : -x[k];
                }
                response[response_base + (u * codewords + j) * pixels + p] = sum;
            }
        }
    }
    return SNN_PE_OK;
}

int gather(const uint8_t word[32], const int32_t *index, const int32_t *response, int32_t *acc) {
    uint32_t response_base = field(word, 8, 24);
    uint32_t units = field(word, 32, 12);
    uint32_t codewords = field(word, 44, 9);
    uint32_t pixels = field(word, 53, 16);
    uint32_t index_base = field(word, 69, 24);
    uint32_t index_stride = field(word, 93, 12);
    uint32_t channels = field(word, 105, 12);
    uint32_t acc_base = field(word, 117, 24);
    uint32_t reset = field(word, 141, 1);
    for (uint32_t o = 0; o < channels; ++o) {
        for (uint32_t p = 0; p < pixels; ++p) {
#pragma HLS PIPELINE II = 1
            int32_t sum = reset ? 0 : acc[acc_base + o * pixels + p];
            for (uint32_t u = 0; u < units; ++u) {
#pragma HLS UNROLL factor = 72
                int32_t j = index[index_base + o * index_stride + u];
                if (j < 0 || static_cast<uint32_t>(j) >= codewords) return SNN_PE_BAD_INDEX;
                sum += response[response_base + (u * codewords + j) * pixels + p];
            }
            acc[acc_base + o * pixels + p] = sum;
        }
    }
    return SNN_PE_OK;
}

// XNOR-popcount of one ternary patch against +-1 weights: the patch is a
// sign mask (bit k set for -1) and a nonzero mask, the weight a sign mask.
int32_t xnor_popcount(uint32_t x_sign, uint32_t x_nonzero, uint32_t w_sign) {
#pragma HLS INLINE
    uint32_t differ = (x_sign ^ w_sign) & x_nonzero;
    return static_cast<int32_t>(__builtin_popcount(x_nonzero)) - 2 * static_cast<int32_t>(__builtin_popcount(differ));
}

int xnor(const uint8_t word[32], const int8_t *input, const int8_t *weight, int32_t *acc) {
    Window w = read_window(word);
    if (w.kernel > 1) return SNN_PE_BAD_KERNEL;
    uint32_t weight_base = field(word, 91, 24);
    uint32_t channels = field(word, 115, 12);
    uint32_t acc_base = field(word, 127, 24);
    uint32_t reset = field(word, 151, 1);
    uint32_t pixels = w.out_rows * w.out_cols;
    int unit = w.kernel == 0 ? 9 : kOneByOneChannels;
    for (uint32_t o = 0; o < channels; ++o) {
        for (uint32_t p = 0; p < pixels; ++p) {
#pragma HLS PIPELINE II = 1
            int32_t sum = reset ? 0 : acc[acc_base + o * pixels + p];
            for (uint32_t u = 0; u < w.units; ++u) {
                int8_t x[kMaxUnit];
                patch(w, input, u, p / w.out_cols, p % w.out_cols, x);
                uint32_t x_sign = 0, x_nonzero = 0, w_sign = 0;
                for (int k = 0; k < unit; ++k) {
#pragma HLS UNROLL
                    x_sign |= static_cast<uint32_t>(x[k] < 0) << k;
                    x_nonzero |= static_cast<uint32_t>(x[k] != 0) << k;
                    w_sign |= static_cast<uint32_t>(weight[weight_base + (o * w.units + u) * unit + k] < 0) << k;
                }
                sum += xnor_popcount(x_sign, x_nonzero, w_sign);
            }
            acc[acc_base + o * pixels + p] = sum;
        }
    }
    return SNN_PE_OK;
}

}  // namespace

extern "C" int snn_pe_execute(const uint8_t word[32], const int8_t *input, const int8_t *codebook,
                              const int32_t *index, const int8_t *weight, int32_t *response, int32_t *acc) {
    switch (word[0] & 0x0F) {
        case kOpPrecompute:
            return precompute(word, input, codebook, response);
        case kOpGather:
            return gather(word, index, response, acc);
        case kOpXnor:
            return xnor(word, input, weight, acc);
        default:
            return SNN_PE_NOT_COMPUTE;
    }
}
