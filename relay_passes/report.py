"""Per-conv compile report: what the SNN passes found and decided."""

from dataclasses import asdict, dataclass

BITS_PER_MBIT = 1e6


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
    """

    name: str
    kernel: str
    tau: int | None
    bits_per_weight: float
    activation: str
    lowered: bool
    reason: str = ""
    weights: int = 0

    @property
    def mbit(self):
        """Weight storage in Mbit at ``bits_per_weight``."""
        return self.weights * self.bits_per_weight / BITS_PER_MBIT

    def to_json(self):
        return asdict(self)

    @classmethod
    def from_json(cls, data):
        return cls(**data)


def format_table(layers):
    """Format layer reports as a fixed-width text table with Mbit totals."""
    header = f"{'layer':<24} {'kernel':<7} {'tau':>4} {'bits/w':>7} {'act':<7} {'lowered':<8} {'Mbit':>8}  reason"
    lines = [header, "-" * len(header)]
    for layer in layers:
        tau = "-" if layer.tau is None else str(layer.tau)
        lines.append(
            f"{layer.name:<24} {layer.kernel:<7} {tau:>4} {layer.bits_per_weight:>7.3f} "
            f"{layer.activation:<7} {str(layer.lowered):<8} {layer.mbit:>8.4f}  {layer.reason}"
        )
    total = sum(layer.mbit for layer in layers)
    lowered = sum(layer.lowered for layer in layers)
    lines.append("-" * len(header))
    lines.append(f"{len(layers)} conv(s), {lowered} lowered to SNN kernels, {total:.4f} Mbit of conv weights")
    return "\n".join(lines)
