"""Per-conv compile report: what the SNN passes found and decided."""

from dataclasses import asdict, dataclass

from tvm_snn.schema import BITS_PER_BYTE, BITS_PER_MBIT, FLOAT_BYTES

BYTES_PER_KIB = 1024


@dataclass
class LayerReport:
    """What the compiler decided for one convolution.

    Attributes
    ----------
    name : str
        The conv's name in the Relax graph.
    kernel : str
        ``"3x3"`` or ``"1x1"`` (or the shape, for other convs).
    tau : int or None
        Bits per unit; None when no sub-bit structure was found.
    bits_per_weight : float
        Storage bits per weight: tau/9, tau/8, or 32 for a dense float conv.
    activation : str
        ``"float"`` or ``"binary"``.
    lowered : bool
        Whether the conv runs on the SNN kernels.
    reason : str
        Why it was not lowered; empty when it was.
    weights : int
        Number of weights of the conv.
    stored_bytes : int
        Bytes of this conv's weight constants in the artifact: packed indices,
        codebook, alpha and bias when lowered, the float32 weight otherwise.
    frontend_tau : int or None
        Tau from the training frontend's metadata, when the model carries it.
    snn_kernel : str
        The SNN kernel that runs it (``"pixel-lane"`` or ``"lane"``, see
        ``schedules.kernels``); empty when it is not lowered.
    folded : str
        The ops the weight was computed from at compile time (``"op,op,..."``,
        see ``relay_passes.fold_weight_subgraphs``); empty for a plain constant.
    offload : str
        With an accelerator target: why the accelerator did not take the conv
        (it then runs on the CPU); empty otherwise.
    cycles : int or None
        With an accelerator target: the modelled cycles of the conv on it.
    """

    name: str
    kernel: str
    tau: int | None
    bits_per_weight: float
    activation: str
    lowered: bool
    reason: str = ""
    weights: int = 0
    stored_bytes: int = 0
    frontend_tau: int | None = None
    snn_kernel: str = ""
    folded: str = ""
    offload: str = ""
    cycles: int | None = None

    @property
    def mbit(self):
        """Weight storage in Mbit at ``bits_per_weight``."""
        return self.weights * self.bits_per_weight / BITS_PER_MBIT

    def to_json(self):
        return asdict(self)

    @classmethod
    def from_json(cls, data):
        return cls(**data)


def folded_count(layer):
    """The table's ``folded`` column: how many ops the weight was folded from, ``-`` for none."""
    return str(len(layer.folded.split(","))) if layer.folded else "-"


def format_table(layers):
    """Format layer reports as a fixed-width text table with totals.

    The ``folded`` column counts the ops a weight was computed from at compile
    time (the ops themselves are in ``LayerReport.folded``).
    """
    header = (
        f"{'layer':<20} {'kernel':<6} {'tau':>3} {'bits/w':>6} {'act':<6} {'lowered':<7} {'runs on':<10} "
        f"{'Mbit':>7} {'KiB':>8} {'folded':>6}  reason"
    )
    lines = [header, "-" * len(header)]
    for layer in layers:
        tau = "-" if layer.tau is None else str(layer.tau)
        lines.append(
            f"{layer.name:<20} {layer.kernel:<6} {tau:>3} {layer.bits_per_weight:>6.3f} {layer.activation:<6} "
            f"{str(layer.lowered):<7} {layer.snn_kernel or 'dense':<10} {layer.mbit:>7.4f} "
            f"{layer.stored_bytes / BYTES_PER_KIB:>8.1f} {folded_count(layer):>6}  {_note(layer)}"
        )
    lines.append("-" * len(header))
    lines.append(summary_line(layers))
    return "\n".join(lines)


def _note(layer):
    """The table's last column: why not lowered, the accelerator's cycles, or why it did not take the conv."""
    if layer.reason:
        return layer.reason
    if layer.cycles is not None:
        return f"{layer.cycles} cycles (modelled)"
    return f"on the CPU: {layer.offload}" if layer.offload else ""


def summary_line(layers):
    """One line of totals: convs lowered, Mbit, stored bytes against theory and dense."""
    lowered = [layer for layer in layers if layer.lowered]
    stored = sum(layer.stored_bytes for layer in layers) / BYTES_PER_KIB
    theory = sum(layer.mbit for layer in layers) * BITS_PER_MBIT / BITS_PER_BYTE / BYTES_PER_KIB
    dense = sum(layer.weights for layer in layers) * FLOAT_BYTES / BYTES_PER_KIB
    return (
        f"{len(layers)} conv(s), {len(lowered)} lowered to SNN kernels; conv weights: "
        f"{sum(layer.mbit for layer in layers):.4f} Mbit at the listed bits/w ({theory:.1f} KiB), "
        f"{stored:.1f} KiB stored, {dense:.1f} KiB as dense float32"
    )
