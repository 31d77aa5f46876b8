"""poz-jax: rarely-firing nodes (PoZ) and representational similarity, in JAX.

Data flows one way: data (:mod:`poz_jax.data`) -> model (:mod:`poz_jax.models`,
:mod:`poz_jax.training`) -> activations -> analysis (:mod:`poz_jax.analysis`
over the array core :mod:`poz_jax.core`) -> tables and figures
(:mod:`poz_jax.report`, written by :mod:`poz_jax.io`). :mod:`poz_jax.pipelines`
holds the studies, :mod:`poz_jax.study` what they share (contract, registry,
runner) and :mod:`poz_jax.cli` is the command line.

The core, re-exported here, is a set of pure, jit- and vmap-able functions:

- :func:`poz`, :func:`keep_order`, :func:`max_kept_poz`
- :func:`rsm`, :func:`fit` (r squared), :func:`fit_r` (signed r), :func:`class_means`,
  :func:`participant_fits` (every model against every participant)
- :func:`noise_ceiling` (leave-one-participant-out bounds, as rsatoolbox's)
- :func:`sweep`, :func:`sweep_masks`, :func:`sweep_rsms`

and two host-side helpers that are not traced: :func:`keep_grid` (the keep
counts, plain integers) and :func:`analyse` (all of the above as one
experiment's analysis, returned as NumPy arrays).
"""

from poz_jax.analysis.pruning import Analysis, analyse
from poz_jax.core.ranking import keep_grid, keep_order, max_kept_poz, poz
from poz_jax.core.reliability import noise_ceiling
from poz_jax.core.rsa import class_means, fit, fit_r, participant_fits, rsm
from poz_jax.core.sweeps import sweep, sweep_masks, sweep_rsms


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("poz-jax")  # one source: pyproject.toml
    except PackageNotFoundError:  # a checkout on sys.path, not installed
        return "0+unknown"


__version__ = _version()

__all__ = [
    "Analysis",
    "analyse",
    "class_means",
    "fit",
    "fit_r",
    "keep_grid",
    "keep_order",
    "max_kept_poz",
    "noise_ceiling",
    "participant_fits",
    "poz",
    "rsm",
    "sweep",
    "sweep_masks",
    "sweep_rsms",
]
