"""The machine a benchmark ran on, printed at its top: the CPU model, the instruction sets that decide
which kernels are fast (the machines of this project change between sessions), cores, torch and threads."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

import lstmkit

# the flags of /proc/cpuinfo that matter for the LSTM's matrix products, in the order they are printed
INSTRUCTION_SETS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


def describe() -> str:
    """One line: 'Intel(R) Xeon(R) Processor, 2 cores, avx2 fma avx512f ... ; torch 2.13.0, 2 threads'."""
    model, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name") and model in ("", platform.machine(), platform.processor()):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    present = [name for name in INSTRUCTION_SETS if name in flags] or [
        "none of " + " ".join(INSTRUCTION_SETS)
    ]
    return (
        f"{model}, {os.cpu_count()} cores, {' '.join(present)}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, lstmkit {lstmkit.__version__}"
    )
