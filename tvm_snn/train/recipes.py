"""Ready-made training recipes: :func:`train_digits_snn` for the demo."""

from pathlib import Path

from tvm_snn.train.config import SNNConfig
from tvm_snn.train.data import load_dataset
from tvm_snn.train.exporter import export, freeze
from tvm_snn.train.models import ModelSpec
from tvm_snn.train.trainer import TrainConfig, fit

DIGITS_MODEL = "resnet20"
DIGITS_WIDTH = 40
"""First-stage width of the demo's ResNet-20 (40, 80, 160 channels). At tau=5 a 3x3
sub-bit conv costs fewer ops than the dense one from 36 output channels on (the
compiler's cost model), so every sub-bit conv of this model runs on SNN kernels."""

DIGITS_IMAGE_SIZE = 16
"""The digits upsampled from 8x8 (each pixel repeated), so the convs have work to do."""

DIGITS_EPOCHS = 10
DIGITS_BATCH_SIZE = 64
DIGITS_TAU = 5
DIGITS_THREADS = 2
DIGITS_ONNX_NAME = "digits_snn.onnx"


def train_digits_snn(
    out_dir,
    epochs=DIGITS_EPOCHS,
    tau=DIGITS_TAU,
    seed=0,
    *,
    binary_act=False,
    progress=False,
    width=DIGITS_WIDTH,
    image_size=DIGITS_IMAGE_SIZE,
):
    """Train a sub-bit ResNet-20 on the (upsampled) digits and export it.

    Every 3x3 conv but the first is sub-bit at ``tau`` bits per kernel; the 1x1
    shortcuts, the stem and the classifier stay in full precision; activations
    are float unless ``binary_act``. Training uses the paper's recipe
    (:class:`~tvm_snn.train.TrainConfig`) with subset refinement.

    Parameters
    ----------
    out_dir : str or Path
        Receives ``last.pt``, ``metrics.json``, ``digits_snn.onnx`` and ``digits_snn.pt2``.
    epochs : int
        Training epochs (22 steps each).
    tau : int
        Bits per 3x3 kernel (5: 0.56 bit per weight).
    seed : int
        Seeds the model, the subsets and the data order.
    binary_act : bool
        Binarize the inputs of the sub-bit convs.
    progress : bool
        Show a progress bar on stderr.
    width : int
        First-stage channels (then twice and four times that).
    image_size : int
        Side of the digits (a multiple of 8, see :func:`tvm_snn.train.data.load_digits`).

    Returns
    -------
    tuple
        ``(model, test_accuracy, onnx_path)``: the trained model frozen by
        :func:`tvm_snn.train.convert` (plain convs, eval mode), its accuracy on
        the 359 test digits, and the ONNX file.
    """
    out_dir = Path(out_dir)
    data = load_dataset("digits", image_size=image_size)
    config = SNNConfig(tau_3x3=tau, tau_1x1=None, binary_act=binary_act, seed=seed)
    spec = ModelSpec(
        DIGITS_MODEL,
        data.spec.num_classes,
        data.spec.in_channels,
        config,
        width=width,
        seed=seed,
    )
    recipe = TrainConfig(
        epochs=epochs,
        batch_size=DIGITS_BATCH_SIZE,
        seed=seed,
        threads=DIGITS_THREADS,
        progress=progress,
    )
    result = fit(spec.build(), data, recipe, out_dir, spec=spec)
    onnx_path = out_dir / DIGITS_ONNX_NAME
    export(result.model, data.example_input(), onnx_path)
    return freeze(result.model), result.test_accuracy, onnx_path
