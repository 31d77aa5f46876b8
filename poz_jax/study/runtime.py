"""Run-time settings shared by the experiment drivers: float64 scope, progress bars."""

from __future__ import annotations

import contextlib

import jax
import numpy as np


def float64():
    """A context in which JAX computes in float64."""
    return jax.enable_x64(True)


def precision_scope(precision: str):
    """The context a study's ``precision`` asks for: float64 for ``"float64"``, else none."""
    return float64() if precision == "float64" else contextlib.nullcontext()


def dtype_of(precision: str) -> type:
    """The NumPy float type a study's ``precision`` computes in."""
    return np.float64 if precision == "float64" else np.float32


def progress_bar(total: int, desc: str, enabled: bool = True):
    """A tqdm bar (notebook-aware) of ``total`` steps; silent when not ``enabled``."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=True, dynamic_ncols=True)


def status(message: str, enabled: bool = True) -> None:
    """One line of progress news, printed between progress bars (never inside one)."""
    from tqdm.auto import tqdm

    if enabled:
        tqdm.write(message)
