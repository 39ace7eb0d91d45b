"""The compiler: a binary-input conv (:class:`~hw_targets.layer.FpgaConv`) to an instruction stream.

Tiling. The output is cut into row tiles of ``rows`` output rows (all
columns), the input units into tiles of ``units``. For each row tile, each
unit tile is loaded (input rows with their halo and the zero padding, and
that tile's indices or BNN weights for every output channel), then

- sub-bit: PRECOMPUTE its responses and GATHER them into every output
  channel's accumulators;
- BNN: XNOR it against the weights into the accumulators.

After the last unit tile, the ALU turns the accumulators into outputs chunk
by chunk (``channels`` output channels of the row tile at a time; a residual
chunk is loaded first), and STORE writes each chunk back.

Double buffering. The input and index (or weight) buffers hold two tiles and
the output buffer two chunks, so LOADs run ahead of compute and STOREs
behind it. Tokens order every shared access (``docs/FPGA.md``, "Hazards"):

- load -> compute: after a tile's last LOAD; the tile's first compute
  instruction pops it (the codebook and params LOADs come before the first
  tile's, so that token covers them);
- compute -> load: after the tile's last read; the LOAD that reuses the slot,
  two tiles later, pops it;
- compute -> store: after a chunk's ALU; its STORE pops it;
- store -> compute: after a STORE; the first write to its slot, two chunks
  later, pops it.

The choice: the tallest row tile whose unit tile still holds
``min(units, 16)`` units within the buffers, then the widest unit tile.
:func:`compile_conv` reports it with the buffer use and instruction counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hw_targets.cycles import cycles
from hw_targets.isa import BUFFER_IDS, Alu, Gather, Load, Precompute, Store, Xnor
from hw_targets.layer import UNIT_CHANNELS, FpgaConv, check_layer
from hw_targets.program import Program, Region, opcode_counts
from hw_targets.spec import RESPONSE_BITS, AcceleratorSpec, load_spec
from tvm_snn.errors import FpgaLayerError

__all__ = ["Tiling", "compile_conv", "buffer_elements", "dram_image", "read_output"]

_SLOTS = 2  # double buffering
_MIN_TILE_UNITS = 16
_ELEMENT_BITS = {
    "input": 2,
    "codebook": 1,
    "weight": 1,
    "params": 32,
    "output": 32,
    "response": RESPONSE_BITS,
}


def buffer_elements(spec: AcceleratorSpec) -> dict:
    """Capacity of every buffer in elements (an index takes ``max_tau`` bits, an accumulator ``accumulator_bits``)."""
    bits = dict(_ELEMENT_BITS, index=spec.max_tau, accumulator=spec.accumulator_bits)
    return {name: spec.buffer_bits(name) // width for name, width in bits.items()}


@dataclass(frozen=True)
class Tiling:
    """How a layer is cut.

    Attributes
    ----------
    rows : int
        Output rows per row tile.
    units : int
        Units per unit tile.
    channels : int
        Output channels per ALU/STORE chunk.
    in_rows, in_cols : int
        Rows and columns of an input tile in the input buffer, padding included.
    """

    rows: int
    units: int
    channels: int
    in_rows: int
    in_cols: int


def _geometry(layer: FpgaConv, rows: int) -> tuple[int, int]:
    """Rows and columns of the input tile behind ``rows`` output rows (padding included)."""
    kh, kw = layer.kernel
    sh, sw = layer.conv.stride
    ow = layer.output_shape[3]
    return (rows - 1) * sh + kh, (ow - 1) * sw + kw


def _tile_units(layer: FpgaConv, rows: int, caps: dict, codewords: int) -> int:
    """The most units a tile of ``rows`` output rows can hold (0: none fits)."""
    o, ow = layer.out_channels, layer.output_shape[3]
    pixels = rows * ow
    in_rows, in_cols = _geometry(layer, rows)
    if o * pixels > caps["accumulator"] or pixels > caps["output"] // _SLOTS:
        return 0
    per_unit = [caps["input"] // _SLOTS // (UNIT_CHANNELS[layer.kernel] * in_rows * in_cols)]
    if layer.subbit:
        per_unit += [caps["index"] // _SLOTS // o, caps["response"] // (codewords * pixels)]
    else:
        per_unit += [caps["weight"] // _SLOTS // (o * layer.unit_size)]
    return min(layer.units, *per_unit)


def choose_tiling(layer: FpgaConv, spec: AcceleratorSpec) -> Tiling:
    """The tiling (see the module docstring); :class:`FpgaLayerError` when nothing fits."""
    caps = buffer_elements(spec)
    codewords = layer.conv.codebook.shape[0] if layer.subbit else 0
    oh, ow = layer.output_shape[2:]
    want = min(layer.units, _MIN_TILE_UNITS)
    best = None
    for rows in range(oh, 0, -1):
        units = _tile_units(layer, rows, caps, codewords)
        if units >= want:
            best = (rows, units)
            break
        if units and best is None:
            best = (rows, units)
    if best is None:
        raise FpgaLayerError(
            f"no tile of the {layer.output_shape} output fits the '{spec.name}' buffers "
            f"(one output row of {layer.out_channels} channels needs {layer.out_channels * ow} accumulators)"
        )
    rows, units = best
    channels = min(layer.out_channels, caps["output"] // _SLOTS // (rows * ow))
    return Tiling(
        rows,
        _balanced(layer.units, units),
        _balanced(layer.out_channels, channels),
        *_geometry(layer, rows),
    )


def _balanced(total: int, most: int) -> int:
    """The tile size that cuts ``total`` into as few tiles of at most ``most`` as evenly as it can."""
    tiles = -(-total // most)
    return -(-total // tiles)


def _regions(layer: FpgaConv) -> list[Region]:
    n, c, h, w = layer.input_shape
    _, o, oh, ow = layer.output_shape
    out_kind, out_bits = ("ternary", 2) if layer.sign else ("float32", 32)
    regions = [
        Region("input", "ternary", n * c * h * w, 2),
        Region("output", out_kind, n * o * oh * ow, out_bits),
    ]
    regions.append(Region("params", "float32", 2 * o, 32))
    if layer.subbit:
        rows, unit = layer.codebook().shape
        regions.append(Region("codebook", "sign", rows * unit, 1))
        regions.append(Region("indices", "index", o * layer.units, layer.conv.tau))
    else:
        regions.append(Region("weights", "sign", o * layer.units * layer.unit_size, 1))
    if layer.residual:
        regions.append(Region("residual", "float32", n * o * oh * ow, 32))
    return regions


class _Emitter:
    """Builds the stream of one layer: tiles in order, with slots and tokens."""

    def __init__(self, layer: FpgaConv, tiling: Tiling, regions: list[Region], caps: dict):
        self.layer, self.tiling, self.caps = layer, tiling, caps
        self.region_id = {region.name: number for number, region in enumerate(regions)}
        self.bits = {region.name: region.bits for region in regions}
        self.out = []
        n, _, self.h, self.w = layer.input_shape
        _, self.o, self.oh, self.ow = layer.output_shape
        row_tiles = -(-self.oh // tiling.rows)
        unit_tiles = -(-layer.units // tiling.units)
        self.total_tiles = n * row_tiles * unit_tiles
        chunks = -(-self.o // tiling.channels)
        self.total_chunks = n * row_tiles * chunks
        self.tile = 0
        self.chunk = 0
        self.in_slot = caps["input"] // _SLOTS
        side = "index" if layer.subbit else "weight"
        self.side_slot = caps[side] // _SLOTS
        self.out_slot = caps["output"] // _SLOTS

    def emit_constants(self) -> None:
        o = self.o
        self.out.append(
            Load(
                buffer=BUFFER_IDS["params"],
                region=self.region_id["params"],
                elem_bits=self.bits["params"],
                z_size=1,
                y_size=1,
                x_size=2 * o,
            )
        )
        if self.layer.subbit:
            size = self.layer.codebook().size
            self.out.append(
                Load(
                    buffer=BUFFER_IDS["codebook"],
                    region=self.region_id["codebook"],
                    elem_bits=self.bits["codebook"],
                    z_size=1,
                    y_size=1,
                    x_size=size,
                )
            )

    def _input_load(self, image: int, row0: int, rows: int, unit0: int, units: int) -> Load:
        layer = self.layer
        sh = layer.conv.stride[0]
        top, left = layer.conv.padding[0], layer.conv.padding[1]
        in_rows, in_cols = _geometry(layer, rows)
        first = row0 * sh - top  # input row of the tile's first (padded) row
        real0, real1 = max(0, first), min(self.h, first + in_rows)
        x_size = min(self.w, in_cols - left)
        uc = UNIT_CHANNELS[layer.kernel]
        c = layer.in_channels
        return Load(
            buffer=BUFFER_IDS["input"],
            region=self.region_id["input"],
            elem_bits=self.bits["input"],
            sram_base=(self.tile % _SLOTS) * self.in_slot,
            dram_base=((image * c + unit0 * uc) * self.h + real0) * self.w,
            z_size=units * uc,
            y_size=real1 - real0,
            x_size=x_size,
            z_stride=self.h * self.w,
            y_stride=self.w,
            y_pad0=real0 - first,
            y_pad1=first + in_rows - real1,
            x_pad0=left,
            x_pad1=in_cols - left - x_size,
            pop_next=self.tile >= _SLOTS,
        )

    def _side_load(self, unit0: int, units: int) -> Load:
        layer = self.layer
        base = (self.tile % _SLOTS) * self.side_slot
        if layer.subbit:
            return Load(
                buffer=BUFFER_IDS["index"], region=self.region_id["indices"],
                elem_bits=self.bits["indices"], sram_base=base, dram_base=unit0,
                z_size=1, y_size=self.o, x_size=units, y_stride=layer.units, push_next=True,
            )  # fmt: skip
        unit = layer.unit_size
        return Load(
            buffer=BUFFER_IDS["weight"], region=self.region_id["weights"],
                elem_bits=self.bits["weights"], sram_base=base, dram_base=unit0 * unit,
            z_size=self.o, y_size=1, x_size=units * unit, z_stride=layer.units * unit, push_next=True,
        )  # fmt: skip

    def emit_tile(self, image: int, row0: int, rows: int, unit0: int, units: int) -> None:
        layer = self.layer
        self.out.append(self._input_load(image, row0, rows, unit0, units))
        self.out.append(self._side_load(unit0, units))
        in_rows, in_cols = _geometry(layer, rows)
        window = {
            "in_base": (self.tile % _SLOTS) * self.in_slot,
            "units": units,
            "in_rows": in_rows,
            "in_cols": in_cols,
            "out_rows": rows,
            "out_cols": self.ow,
            "stride_h": layer.conv.stride[0],
            "stride_w": layer.conv.stride[1],
            "kernel": 0 if layer.kernel == (3, 3) else 1,
        }
        frees = self.tile + _SLOTS < self.total_tiles  # a later LOAD reuses this slot
        side_base = (self.tile % _SLOTS) * self.side_slot
        reset = int(unit0 == 0)
        if layer.subbit:
            codewords = layer.codebook().shape[0]
            self.out.append(
                Precompute(
                    **window, codebook_base=0, codewords=codewords, response_base=0, pop_prev=True
                )
            )
            self.out.append(
                Gather(
                    response_base=0,
                    units=units,
                    codewords=codewords,
                    pixels=rows * self.ow,
                    index_base=side_base,
                    index_stride=units,
                    channels=self.o,
                    acc_base=0,
                    reset=reset,
                    push_prev=frees,
                )  # fmt: skip
            )
        else:
            self.out.append(
                Xnor(
                    **window,
                    weight_base=side_base,
                    channels=self.o,
                    acc_base=0,
                    reset=reset,
                    pop_prev=True,
                    push_prev=frees,
                )
            )
        self.tile += 1

    def emit_outputs(self, image: int, row0: int, rows: int) -> None:
        pixels = rows * self.ow
        for channel0 in range(0, self.o, self.tiling.channels):
            channels = min(self.tiling.channels, self.o - channel0)
            base = (self.chunk % _SLOTS) * self.out_slot
            wait = self.chunk >= _SLOTS  # the STORE two chunks back must have read the slot
            dram_base = ((image * self.o + channel0) * self.oh + row0) * self.ow
            block = {
                "z_size": channels,
                "y_size": rows,
                "x_size": self.ow,
                "z_stride": self.oh * self.ow,
                "y_stride": self.ow,
            }
            if self.layer.residual:
                self.out.append(
                    Load(buffer=BUFFER_IDS["output"], region=self.region_id["residual"],
                elem_bits=self.bits["residual"], sram_base=base,
                         dram_base=dram_base, pop_next=wait, **block)
                )  # fmt: skip
                wait = False
            self.out.append(
                Alu(
                    acc_base=channel0 * pixels,
                    channels=channels,
                    pixels=pixels,
                    params_base=2 * channel0,
                    out_base=base,
                    residual=int(self.layer.residual),
                    relu=int(self.layer.relu),
                    sign=int(self.layer.sign),
                    pop_next=wait,
                    push_next=True,
                )  # fmt: skip
            )
            self.out.append(
                Store(
                    buffer=BUFFER_IDS["output"],
                    region=self.region_id["output"],
                    elem_bits=self.bits["output"],
                    sram_base=base,
                    dram_base=dram_base,
                    pop_prev=True,
                    push_prev=self.chunk + _SLOTS < self.total_chunks,
                    **block,
                )  # fmt: skip
            )
            self.chunk += 1


def compile_conv(layer: FpgaConv, spec="paper") -> Program:
    """Compile one conv to a :class:`~hw_targets.program.Program`.

    Parameters
    ----------
    layer : FpgaConv
    spec : str, dict, path or AcceleratorSpec
        As :func:`hw_targets.spec.load_spec`.

    Returns
    -------
    Program
        Its ``info`` holds the layer, the tiling, each buffer's peak use, the
        instruction counts, and the modelled cycles and PE utilization
        (:mod:`hw_targets.cycles`).

    Raises
    ------
    FpgaLayerError
        A layer the accelerator cannot run, or one no tile of which fits.
    """
    spec = load_spec(spec)
    check_layer(layer, spec)
    caps = buffer_elements(spec)
    if layer.subbit and layer.codebook().size > caps["codebook"]:
        raise FpgaLayerError(
            f"the codebook's {layer.codebook().size} signs do not fit the codebook buffer"
        )
    if 2 * layer.out_channels > caps["params"]:
        raise FpgaLayerError(
            f"{layer.out_channels} channels' scale and bias do not fit the params buffer"
        )
    tiling = choose_tiling(layer, spec)
    regions = _regions(layer)
    emitter = _Emitter(layer, tiling, regions, caps)
    emitter.emit_constants()
    n = layer.input_shape[0]
    oh = layer.output_shape[2]
    for image in range(n):
        for row0 in range(0, oh, tiling.rows):
            rows = min(tiling.rows, oh - row0)
            for unit0 in range(0, layer.units, tiling.units):
                emitter.emit_tile(image, row0, rows, unit0, min(tiling.units, layer.units - unit0))
            emitter.emit_outputs(image, row0, rows)
    instructions = tuple(emitter.out)
    info = {
        "kind": "subbit" if layer.subbit else "bnn",
        "input_shape": tuple(layer.input_shape),
        "output_shape": layer.output_shape,
        "kernel": layer.kernel,
        "tau": layer.conv.tau if layer.subbit else None,
        "tiling": tiling,
        "buffer_use": _buffer_use(layer, tiling, caps),
        "instructions": opcode_counts(instructions),
    }
    program = Program(spec, tuple(regions), instructions, info)
    modelled = cycles(program)
    info["cycles"] = modelled.total
    info["pe_utilization"] = modelled.pe_utilization  # the PE array's busy share of the run
    return program


def _buffer_use(layer: FpgaConv, tiling: Tiling, caps: dict) -> dict:
    """Peak elements each buffer holds, over its capacity."""
    pixels = tiling.rows * layer.output_shape[3]
    o = layer.out_channels
    used = {
        "input": _SLOTS
        * tiling.units
        * UNIT_CHANNELS[layer.kernel]
        * tiling.in_rows
        * tiling.in_cols,
        "accumulator": o * pixels,
        "output": _SLOTS * tiling.channels * pixels,
        "params": 2 * o,
    }
    if layer.subbit:
        rows = layer.codebook().shape[0]
        used.update(
            index=_SLOTS * o * tiling.units,
            response=tiling.units * rows * pixels,
            codebook=layer.codebook().size,
        )
    else:
        used["weight"] = _SLOTS * o * tiling.units * layer.unit_size
    return {name: used[name] / caps[name] for name in used}


def dram_image(program: Program, layer: FpgaConv, x, residual=None) -> dict:
    """The DRAM regions of ``program`` filled for an input ``x`` (and ``residual``).

    ``x`` is ``[N, C, H, W]``; the accelerator reads ``sign(x)`` (0 at 0).
    """
    dram = program.empty_dram()
    data = np.asarray(x)
    if data.shape != tuple(layer.input_shape):
        raise FpgaLayerError(
            f"the input is {data.shape}, the program was compiled for {tuple(layer.input_shape)}"
        )
    dram["input"][:] = np.sign(data).astype(np.int8).reshape(-1)
    dram["params"][:] = layer.scale_and_bias().reshape(-1)
    if layer.subbit:
        dram["codebook"][:] = layer.codebook().reshape(-1)
        dram["indices"][:] = np.asarray(layer.conv.indices).reshape(-1)
    else:
        dram["weights"][:] = layer.weight_signs().reshape(-1)
    if layer.residual:
        if residual is None or np.asarray(residual).shape != layer.output_shape:
            raise FpgaLayerError(
                f"the layer adds a residual of shape {layer.output_shape}; got {None if residual is None else np.asarray(residual).shape}"
            )
        dram["residual"][:] = np.asarray(residual, dtype=np.float32).reshape(-1)
    return dram


def read_output(dram: dict, layer: FpgaConv) -> np.ndarray:
    """The output region as ``[N, O, OH, OW]`` float32."""
    return dram["output"].astype(np.float32).reshape(layer.output_shape)
