"""Numeric precision of the encoder on a CPU: fp32, bf16 autocast, dynamic int8.

- ``fp32``: the evaluated model's exact arithmetic; its annotations do not depend on which
  notes share a batch (hidden states differ by ~4e-6 across batchings, far below what changes
  a tag): what "2 shards == 1 run, byte for byte" rests on.
- ``bf16``: the encoder's matrix products under ``torch.autocast`` in bfloat16 (weights and
  heads stay fp32). Worth it only where the CPU does bf16 in hardware (``cpu_bf16``): on a
  2-core AMD EPYC with AVX512-BF16 a 16 x 256 forward took 0.28 s against 0.68 s in fp32, a
  training step 1.0 s against 1.66 s; on an AVX2-only EPYC a SmolLM2 step under bf16 took 20x
  longer than in fp32.
- ``int8``: dynamic int8 linear layers (int8 weights per output channel, activations
  quantized per batch): an opt-in for throughput, at an F1 cost (``make bench-extract``).
"""
from __future__ import annotations

from pathlib import Path

PRECISIONS = ("fp32", "bf16", "int8")
_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}


def cpu_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether this CPU does bf16 arithmetic in hardware (AVX512-BF16 or AMX).

    The flags are read from /proc/cpuinfo: oneDNN's own check (``torch.ops.mkldnn.
    _is_mkldnn_bf16_supported``) also says yes on AVX-512 CPUs without bf16 instructions, where
    bf16 is emulated. Elsewhere (no /proc) that check is the answer."""
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            if line.startswith("flags"):
                return bool(_BF16_FLAGS & set(line.split(":", 1)[1].split()))
    except OSError:
        pass
    try:
        import torch

        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError, ImportError):
        return False


def check(precision: str | None) -> str:
    """``precision`` normalized (None and the old ``none`` mean fp32); a clear error otherwise."""
    from clinical_ml.io import DataError

    p = "fp32" if precision in (None, "none") else precision
    if p not in PRECISIONS:
        raise DataError(f"precision={precision!r}: use one of {', '.join(PRECISIONS)}")
    return p


def quantize_int8(module):
    """Dynamic int8 quantization of every ``nn.Linear`` (per output channel). CPU only."""
    import warnings

    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig

    with warnings.catch_warnings():  # torch.ao.quantization's deprecation notice (torchao)
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(
            module, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)
