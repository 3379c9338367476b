"""The processor a benchmark ran on, printed beside every figure (machine kinds rank differently)."""

from __future__ import annotations

import os
import platform

VECTOR_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "fma")


def processor() -> dict:
    """Model name, the vector extensions that matter for TF and LiteRT kernels, and core count."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    name = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
    except OSError:
        pass
    return {"model": name, "vector_extensions": [f for f in VECTOR_FLAGS if f in flags],
            "cores": os.cpu_count()}


def describe() -> str:
    """One line for a benchmark's header."""
    info = processor()
    return (f"{info['model']}, {info['cores']} cores, "
            f"{' '.join(info['vector_extensions']) or 'no AVX2/AVX-512'}")
