"""poz-jax: rarely-firing nodes (PoZ) and representational similarity, in JAX.

The core is a set of pure, jit- and vmap-able functions on arrays:

- :func:`poz`, :func:`keep_order`, :func:`max_kept_poz`, :func:`keep_grid`
- :func:`rsm`, :func:`fit`, :func:`class_means`
- :func:`sweep`, :func:`sweep_masks`, :func:`sweep_rsms`
"""

from poz_jax.core.ranking import keep_grid, keep_order, max_kept_poz, poz
from poz_jax.core.rsa import class_means, fit, rsm
from poz_jax.core.sweeps import sweep, sweep_masks, sweep_rsms


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("poz-jax")  # one source: pyproject.toml
    except PackageNotFoundError:  # a checkout on sys.path, not installed
        return "0+unknown"


__version__ = _version()

__all__ = [
    "class_means",
    "fit",
    "keep_grid",
    "keep_order",
    "max_kept_poz",
    "poz",
    "rsm",
    "sweep",
    "sweep_masks",
    "sweep_rsms",
]
