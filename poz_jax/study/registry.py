"""Every study poz-jax runs: its name and the module that defines its ``STUDY``.

Adding a study is one line here and its own module. Modules are imported
only when a study is asked for, so ``poz-jax --help`` stays quick.
"""

from __future__ import annotations

import importlib

from poz_jax.study.contract import Study

STUDIES = {
    "exp1": "poz_jax.pipelines.exp1",
    "exp2": "poz_jax.pipelines.exp2",
    "exp3": "poz_jax.pipelines.exp3",
    "peterson": "poz_jax.pipelines.peterson",
    "trim": "poz_jax.pipelines.trim",
    "compare": "poz_jax.pipelines.compare",
    "objects92": "poz_jax.pipelines.objects92",
}


def get(name: str) -> Study:
    """The :class:`Study` registered as ``name``; ``ValueError`` for an unknown one."""
    if name not in STUDIES:
        raise ValueError(f"no study named {name!r}; poz-jax runs {', '.join(STUDIES)}")
    return importlib.import_module(STUDIES[name]).STUDY


def all_studies() -> list[Study]:
    """Every registered study, in the registry's order."""
    return [get(name) for name in STUDIES]
