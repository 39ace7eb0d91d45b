"""Shared test constants: the explicit float tolerances of the suite, and the host's features.

Every ``rtol``/``atol`` the tests pass is named here, with what it covers. Integer and
popcount paths (binary activations, packing, index unpacking, the XNOR kernel) have no
tolerance: they are compared bit for bit with ``np.testing.assert_array_equal``.
"""

import pytest

# A compiled kernel with float activations (sub-bit gather, lane kernel, the dense
# fallback's conv) vs the NumPy reference: the kernel sums responses and segments in
# another order than the reference's dense conv.
KERNEL_RTOL = 1e-5
KERNEL_ATOL = 1e-4

# The same legalized TIR compiled with and without ScheduleDenseFallback: the schedule
# only reorders (and unrolls/vectorizes) the reduction.
SCHEDULED_RTOL = 1e-5
SCHEDULED_ATOL = 1e-5

# fp32 compiled model vs ONNX Runtime / PyTorch on small CNNs (end-to-end comparisons,
# also the training frontend's ONNX export vs the PyTorch model).
FLOAT_RTOL = 1e-4
FLOAT_ATOL = 1e-4

# A conv of an STE residue ``sign(x) - clamp(x) + clamp(x)`` compiled (SimplifySTE makes
# its input exactly ``sign(x)``) vs ONNX Runtime (which rounds ``sign - clamp`` and the sum:
# at most 2**-22 per input element). The conv sums 64 * 9 such inputs under weights of at
# most 1/24 in magnitude: 576 / 24 * 2**-22 = 6e-6, plus the float summation order.
STE_RESIDUE_RTOL = 1e-5
STE_RESIDUE_ATOL = 2e-5

# The logits of a dyadic Bi-Real network (tests/qat_models.make_dyadic_) vs ONNX Runtime and
# PyTorch: every sign input is exact, but three average-pooled shortcuts and the PReLUs put
# the features on a grid finer than float32 keeps at their magnitude (about 2**11), so the
# classifier's 512-term sums round in each runtime's order (observed: 1e-4 relative). A
# flipped sign anywhere would move a logit by far more.
DYADIC_LOGITS_RTOL = 1e-3
DYADIC_LOGITS_ATOL = 1e-2

# A conv's alpha folded by TVM (mean |w| summed in TVM's order) vs the same mean computed by
# PyTorch when its weight is frozen: up to 4608 magnitudes summed in two orders, a few
# float32 ulps (observed 6e-7 relative). Indices and codebooks agree exactly.
FOLDED_ALPHA_RTOL = 1e-5

# fp32 compiled model vs ONNX Runtime / PyTorch on a deep float net whose logits grow to ~1e6 (random latent weights, no
# normalization of the quantized weights' scale): entries that nearly cancel cannot meet an
# elementwise rtol, so the absolute tolerance is this fraction of the largest |logit|
# (seen: 1.3e-6 of it, from summing in another order).
LOGIT_SCALE_ATOL = 1e-5

# fp32 reference forward vs a dense float conv (different summation order).
REF_RTOL = 1e-5
REF_ATOL = 1e-4

# A dense weight rebuilt from its sub-bit form (codebook row times alpha) vs the weight:
# one float32 rounding of alpha.
ROUNDTRIP_RTOL = 1e-6

# A float32 statistic whose exact value is known (a nearest-codeword distance vs the
# row minimum, the mean of a centred weight): absolute, about 100 float32 ulps of 1.
STATISTIC_ATOL = 1e-5

# A normalized data set's mean (about 0) and standard deviation (about 1), computed in
# float32 over the whole split.
NORMALIZED_MEAN_ATOL = 1e-4
NORMALIZED_STD_ATOL = 1e-3

# A learning-rate schedule's value in double precision (``cos(pi)`` is not exactly -1).
LR_ATOL = 1e-12

# The BitOPs reconstruction vs the README of yikaiw/SNN, in G: one unit of the last
# printed digit.
BITOPS_G_ATOL = 1e-3

# Hypothesis budget of the training-frontend tests (tests/test_train), kept small
# so the suite runs in about a minute on two cores.
TRAIN_MAX_EXAMPLES = 20

# Hypothesis budget of the sub-bit format and reference tests (tests/test_schedules).
SCHEDULES_MAX_EXAMPLES = 40

# A TVM CLI target string for the host's own CPU (the x86 preset's -mcpu): code built for it
# runs here, whatever this machine is (AVX-512 or not).
def _host_cpu_target():
    from tvm_snn.target import target_spec

    return f"llvm -mcpu={target_spec('x86')['mcpu']}"


HOST_CPU_TARGET = _host_cpu_target()

# Code built for an AVX-512 -mcpu (skylake-avx512) runs only on a host that has AVX-512F.
HOST_HAS_AVX512 = "avx512f" in open("/proc/cpuinfo").read()
needs_avx512 = pytest.mark.skipif(not HOST_HAS_AVX512, reason="needs AVX-512, which this CPU lacks")

# The lane kernel and the 64-at-a-time index unpacking need AVX-512 VBMI on the host.
HOST_HAS_VBMI = "avx512vbmi" in open("/proc/cpuinfo").read()
needs_vbmi = pytest.mark.skipif(not HOST_HAS_VBMI, reason="needs AVX-512 VBMI, which this CPU lacks")

# The dense direct conv (schedules.dense_conv) vs PyTorch's conv2d on unit-variance inputs
# and 1/sqrt(fan-in) weights: the same fp32 sums in another order, up to 3x3x64 taps.
DENSE_CONV_RTOL = 1e-4
DENSE_CONV_ATOL = 1e-4
