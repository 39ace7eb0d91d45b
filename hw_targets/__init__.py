"""The snn-fpga target: a VTA-style accelerator for sub-bit convs with binary inputs.

- :mod:`hw_targets.spec`: the accelerator's JSON spec, its presets and resource estimate;
- :mod:`hw_targets.isa`: the instructions, their encoding and dependency tokens;
- :mod:`hw_targets.layer`, :mod:`hw_targets.compiler`, :mod:`hw_targets.program`:
  a conv with its epilogue, compiled to DRAM regions and an instruction stream;
- :mod:`hw_targets.sim`: the bit-exact functional simulator;
- :mod:`hw_targets.cycles`: the cycle model; :mod:`hw_targets.networks`: ResNet shapes;
- :mod:`hw_targets.byoc`, :mod:`hw_targets.runtime`, :mod:`hw_targets.sidecar`: Relax BYOC,
  the runtime of offloaded regions, and their file beside an artifact;
- :mod:`hw_targets.driver`: devices (the simulator, a Pynq overlay, a board over RPC);
- :mod:`hw_targets.hls`: the PE array in Vitis HLS C++ and its g++ C simulation.

``docs/FPGA.md`` is the spec, the ISA and the cycle model's assumptions. This
package imports only :mod:`schedules`, :mod:`tvm_snn.errors` and
:mod:`tvm_snn.schema` of the project; ``tvm_snn.accelerator`` joins it to the
compiler.
"""
