"""The CPU features that speed figures and int8 agreement depend on, recorded beside them (kernels differ between
AVX2, AVX-512 and AMX machines, and a default must not rest on one machine's)."""

from pathlib import Path

# What `machine_facts` and `onnx/int8_recipe.json` record.
SPEED_RELEVANT_CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8")


def cpu_flags() -> list[str]:
    """This CPU's `SPEED_RELEVANT_CPU_FLAGS` (from /proc/cpuinfo; [] where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                present = set(line.split(":", 1)[1].split())
                return [flag for flag in SPEED_RELEVANT_CPU_FLAGS if flag in present]
    except OSError:
        pass
    return []
