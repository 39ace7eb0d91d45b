/* The PE array of the snn-fpga accelerator: PRECOMPUTE, GATHER and XNOR, in C++ for Vitis HLS.
 *
 * Plain C++: the pragmas are Vitis HLS's and g++ ignores them, so the same
 * source runs as the C simulation (tests/test_hw_targets/test_hls.py checks
 * it against the functional simulator, instruction for instruction).
 * docs/FPGA.md gives the ISA these functions decode.
 */
#ifndef SNN_PE_H
#define SNN_PE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes of snn_pe_execute. */
enum {
    SNN_PE_OK = 0,
    SNN_PE_NOT_COMPUTE = 1,   /* the word is not PRECOMPUTE, GATHER or XNOR */
    SNN_PE_BAD_INDEX = 2,     /* an index at or beyond the codewords */
    SNN_PE_BAD_KERNEL = 3     /* a kernel code other than 0 (3x3) and 1 (1x1) */
};

/* Run one compute instruction (a 32-byte little-endian word) on the buffers.
 *
 * input: ternary values (-1, 0, +1); codebook, weight: signs (+-1);
 * index: indices; response, acc: the response and accumulator buffers, read
 * and written. Addresses in the word are element offsets into these arrays.
 */
int snn_pe_execute(const uint8_t word[32], const int8_t *input, const int8_t *codebook,
                   const int32_t *index, const int8_t *weight, int32_t *response, int32_t *acc);

#ifdef __cplusplus
}
#endif

#endif
