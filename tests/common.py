"""Shared test constants: the explicit float tolerances of the suite, and the host's features."""

import pytest

# fp32 compiled model vs ONNX Runtime / PyTorch on small CNNs.
FLOAT_RTOL = 1e-4
FLOAT_ATOL = 1e-4

# fp32 reference forward vs a dense float conv (different summation order).
REF_RTOL = 1e-5
REF_ATOL = 1e-4

# Hypothesis budget of the training-frontend tests (tests/test_train), kept small
# so the suite runs in about a minute on two cores.
TRAIN_MAX_EXAMPLES = 20

# Hypothesis budget of the sub-bit format and reference tests (tests/test_schedules).
SCHEDULES_MAX_EXAMPLES = 40

# The lane kernel and the 64-at-a-time index unpacking need AVX-512 VBMI on the host.
HOST_HAS_VBMI = "avx512vbmi" in open("/proc/cpuinfo").read()
needs_vbmi = pytest.mark.skipif(not HOST_HAS_VBMI, reason="needs AVX-512 VBMI, which this CPU lacks")
