"""Shared test constants: the explicit float tolerances of the suite."""

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
