"""Every default knob and threshold of the CPU kernels, in one place.

The plans (:mod:`schedules.subbit_plan`, :mod:`schedules.lane_plan`,
``schedules.bnn_xnor.BnnPlan``, ``schedules.dense_cpu.DensePlan``) take their
defaults from here; each plan also states the legal range of each of its
knobs, which a tuner samples.
"""

# Bytes of the vector that vectorized loops are cut to (a zmm register);
# LLVM splits it into narrower registers on AVX2 and NEON targets.
VECTOR_BYTES = 64
# float32 and int8 lanes of such a vector.
FLOAT_LANES = 16
BYTE_LANES = 64
# The target SIMD widths the register blocking knows (NEON/SSE, AVX2, AVX-512).
VECTOR_WIDTHS = (16, 32, 64)
AVX2_BYTES = 32

# Vector registers for accumulators (of 32 on AVX-512 and NEON; AVX2 has 16: half).
ACC_REGISTERS = 24

# Parallel items per core that even out without equal counts.
ITEMS_PER_CORE = 4
# The most parts the output channels are split into when there are few tiles.
MAX_CHANNEL_SPLITS = 4
# Vectors of output pixels per tile of the pixel-lane kernel.
TILE_VECTORS = 1
# A tile's responses are computed a group of units at a time, sized to stay in L1.
RESP_BUDGET_BYTES = 24 * 1024
# Up to this tau the codebook is compiled into the kernel as immediates;
# compile time grows with 2**tau (0.6 s at tau=5, 2 s at 7, 9 s at 8 per layer).
MAX_BAKED_TAU = 7

# Stages with fewer elements than this run on one core (a parallel region
# costs a fork and a join): the pad, the scalar index unpacking, the lane
# kernel's stages.
MIN_PARALLEL_WORK = 1 << 12
# The same for the VBMI index unpacking, in indices: a step of 64 takes a few
# cycles, and a fork and a join cost about 2 us here.
MIN_PARALLEL_INDICES = 1 << 14

# The lane kernel: below this many output channels the per-unit tables cost
# more than the gather saves (4x4, batch 1: 0.78x at 128 channels, 1.4x at 256).
MIN_LANE_CHANNELS = 256

# The BNN baseline: output channels whose pixel vectors share the registers.
BNN_CHANNEL_BLOCK = 4

# The dense fallback: innermost loops up to this extent are vectorized,
# reductions up to this many steps unrolled (a 3-channel 3x3 stem: 27), and a
# loop nest runs in parallel only with at least this outer extent and work.
DENSE_MAX_VECTOR_EXTENT = 64
DENSE_MAX_UNROLLED_REDUCTION = 64
DENSE_MIN_PARALLEL_EXTENT = 2
DENSE_MIN_PARALLEL_WORK = 1 << 16
# A longer innermost loop (a 1000-wide classifier row) is cut into the widest
# power-of-two vectors dividing it (kept scalar below DENSE_MIN_ROW_LANES lanes),
# blocks of them parallel; a reduction also takes its innermost outer loops (the
# batch) inside its steps, for at most this many accumulator vectors per block,
# so each weight vector is loaded once (fc 512->1000 at batch 8: 2x).
DENSE_ROW_VECTORS = 8
DENSE_MIN_ROW_LANES = 4

# The dense direct conv (schedules.dense_conv): output pixels of a row in the
# vector lanes, a block of output channels broadcast; the accumulators of a
# block's channels x a row tile's vectors take at most the accumulator registers,
# and at least this many where the shape allows (an FMA's latency is 4 cycles on
# 2 ports: fewer independent accumulators stall).
DENSE_CONV_MIN_ACCUMULATORS = 8
# Its epilogue (bias, residual add, ReLU) runs along an output row, vectorized
# whole up to this many float32 lanes (LLVM splits it into registers), else in
# pieces of the largest divisor of the row up to it.
DENSE_EPILOGUE_MAX_LANES = 128
# What a load (an input vector or a broadcast weight) costs in FMAs when the
# dense conv's default plan weighs register blocks (4x4 and 6x4 blocks beat
# 16x1 and 24x1 by 1.2x-2x on a 64x56 3x3 conv here).
DENSE_CONV_LOAD_COST = 0.5

# The dense matmul with a constant weight (schedules.dense_matmul, the
# classifier): a work item's batch rows x column vectors of accumulators stay
# in registers (at most this many), and its column block shrinks until each
# core gets at least DENSE_MATMUL_MIN_ITEMS items of the weight stream.
DENSE_MATMUL_ACCUMULATORS = 16
DENSE_MATMUL_MIN_ITEMS = 4
