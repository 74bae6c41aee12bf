"""CPU numerics that give the same bytes on every x86-64 machine with AVX2, and a description of the
numerics a process runs with (for audit records and their re-execution).

Floating-point results on the CPU depend on which kernels run: ATen picks its vectorised kernels by the
CPU's capability (default, AVX2, AVX-512: another summation order, FMA or not, another exp), MKL its GEMM
code path by the CPU, oneDNN (and NNPACK) their convolution kernels and blocking by the CPU and its
caches, and every parallel reduction by the thread count. Measured on one AVX-512 machine
(bench/numerics.py): the same seeded training gives a different weights file under each ATen
capability, and another again when only MKL's or oneDNN's path changes.

The reproducible profile pins each of these to a choice every AVX2 CPU makes the same way:
- ATen's AVX2 kernels (`ATEN_CPU_CAPABILITY=avx2`; an AVX-512 CPU then runs what an AVX2 one runs);
- MKL's conditional numerical reproducibility in its COMPATIBLE, STRICT mode (`MKL_CBWR`), the one
  MKL documents as giving the same results on Intel and compatible processors;
- oneDNN and NNPACK off, so convolutions run as ATen's im2col + MKL GEMM (pinned above);
- one thread, and `torch.use_deterministic_algorithms`.
The environment variables are read once, when torch's libraries start, so a process enters the profile
by being started in it (`restart_in`); `apply_flags` then sets the in-process switches.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass
from typing import Any, NoReturn

import torch

# Set in a process this module restarted: a restart that still does not match says so instead of looping.
RESTARTED_MARKER = "ERASURE_NUMERICS_RESTARTED"


class NumericsUnavailable(RuntimeError):
    """This machine cannot run the requested numerics (e.g. a CPU without AVX2 for the reproducible profile)."""


@dataclass(frozen=True)
class Numerics:
    """What decides a CPU computation's bytes, beside the code, the inputs and the seed."""

    capability: str  # ATen's kernels: DEFAULT, AVX2, AVX512 (torch.backends.cpu.get_cpu_capability())
    threads: int
    mkl_cbwr: str | None  # MKL's code-path setting; None: MKL picks by the CPU
    mkldnn: bool
    nnpack: bool
    deterministic: bool
    torch: str

    def environment(self) -> dict[str, str]:
        """Environment variables a process must be started with to run these numerics."""
        threads = str(self.threads)
        variables = {"ATEN_CPU_CAPABILITY": self.capability.lower(), "OMP_NUM_THREADS": threads,
                     "MKL_NUM_THREADS": threads, "MKL_DYNAMIC": "FALSE"}
        if self.mkl_cbwr:
            variables["MKL_CBWR"] = self.mkl_cbwr
        return variables

    def as_record(self) -> dict[str, Any]:
        return {**asdict(self), "profile": "reproducible" if self.same_kernels(REPRODUCIBLE) else "native"}

    @classmethod
    def from_record(cls, recorded: dict[str, Any]) -> "Numerics":
        fields = cls.__dataclass_fields__
        return cls(**{key: recorded[key] for key in fields if key in recorded})

    def same_kernels(self, other: "Numerics") -> bool:
        """Whether the two run the same kernels the same way (the torch version is compared separately)."""
        return all(getattr(self, key) == getattr(other, key) for key in
                   ("capability", "threads", "mkl_cbwr", "mkldnn", "nnpack", "deterministic"))

    def differences(self, other: "Numerics") -> list[str]:
        """'field: this != other' for each setting that differs, the torch version included."""
        return [f"{key}: {getattr(self, key)!r} != {getattr(other, key)!r}" for key in self.__dataclass_fields__
                if getattr(self, key) != getattr(other, key)]


REPRODUCIBLE = Numerics(capability="AVX2", threads=1, mkl_cbwr="COMPATIBLE,STRICT", mkldnn=False, nnpack=False,
                        deterministic=True, torch=torch.__version__)


def current() -> Numerics:
    """The numerics this process runs with now."""
    return Numerics(
        capability=torch.backends.cpu.get_cpu_capability(),
        threads=torch.get_num_threads(),
        mkl_cbwr=os.environ.get("MKL_CBWR") or None,
        mkldnn=bool(torch.backends.mkldnn.enabled),
        nnpack=bool(torch._C._get_nnpack_enabled()),
        deterministic=torch.are_deterministic_algorithms_enabled(),
        torch=torch.__version__,
    )


def started_in(numerics: Numerics, environ: dict[str, str] | None = None) -> bool:
    """Whether this process's environment holds what `numerics` needs from the start."""
    environ = os.environ if environ is None else environ
    return all(environ.get(key) == value for key, value in numerics.environment().items()) and (
        numerics.mkl_cbwr is not None or not environ.get("MKL_CBWR"))


def apply_flags(numerics: Numerics) -> None:
    """Set the in-process switches; raise if the kernels the environment chose are not the ones asked for."""
    torch.set_num_threads(numerics.threads)
    torch.backends.mkldnn.enabled = numerics.mkldnn
    torch.backends.nnpack.set_flags(numerics.nnpack)
    torch.use_deterministic_algorithms(numerics.deterministic)
    running = current()
    if running.capability != numerics.capability:
        raise NumericsUnavailable(
            f"this CPU runs ATen's {running.capability} kernels, not {numerics.capability} (ATEN_CPU_CAPABILITY="
            f"{os.environ.get('ATEN_CPU_CAPABILITY')!r}): a CPU without {numerics.capability} cannot reproduce these bytes")


def restart_in(numerics: Numerics, argv: list[str] | None = None) -> NoReturn:
    """Replace this process by the same command started in `numerics`' environment."""
    if os.environ.get(RESTARTED_MARKER):
        raise NumericsUnavailable("restarted once in the requested numerics and the environment still differs: "
                                  + ", ".join(f"{k}={v}" for k, v in numerics.environment().items()))
    environment = {**os.environ, **numerics.environment(), RESTARTED_MARKER: "1"}
    if numerics.mkl_cbwr is None:
        environment.pop("MKL_CBWR", None)
    argv = sys.argv if argv is None else argv
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *argv], environment)


def enter(numerics: Numerics) -> Numerics:
    """Run the rest of this process in `numerics`: restart it in their environment if it was not started
    there, then set the in-process switches. Returns the numerics now running."""
    if not started_in(numerics):
        restart_in(numerics)
    apply_flags(numerics)
    return current()
