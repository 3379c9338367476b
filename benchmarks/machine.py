"""The processor a benchmark ran on, printed beside every figure (kinds rank differently)."""

from __future__ import annotations

import os
import platform

VECTOR_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "fma")


def processor() -> dict:
    """Model name, vendor, family and model numbers, the clock it reports (GHz, no turbo; 0
    when unknown), the vector extensions that matter for TF and LiteRT kernels, and core count.

    Family and model tell apart kinds that share a model name (a virtual "AMD EPYC" is an
    AVX2 Zen 2 or an AVX-512 Zen 4).
    """
    fields = {"model name": platform.processor() or platform.machine(), "vendor_id": "",
              "cpu family": "", "model": "", "cpu MHz": "", "flags": ""}
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                key, _, value = line.partition(":")
                if key.strip() in fields:
                    fields[key.strip()] = value.strip()
                elif not line.strip():  # the first processor's block is enough
                    break
    except OSError:
        pass
    flags = set(fields["flags"].split())
    return {"model": fields["model name"], "vendor": fields["vendor_id"],
            "family": _number(fields["cpu family"]), "model_number": _number(fields["model"]),
            "clock_ghz": _megahertz(fields["cpu MHz"]) / 1000,
            "vector_extensions": [f for f in VECTOR_FLAGS if f in flags],
            "cores": os.cpu_count()}


def describe() -> str:
    """One line for a benchmark's header."""
    info = processor()
    kind = "" if info["family"] is None else \
        f" (family {info['family']} model {info['model_number']})"
    return (f"{info['model']}{kind}, {info['cores']} cores, "
            f"{' '.join(info['vector_extensions']) or 'no AVX2/AVX-512'}")


def _number(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def _megahertz(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0
