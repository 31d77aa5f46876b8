"""The steps every study's run shares, written once: guard ``--out``, stage, record.

A study's ``run`` calls :func:`check_results_folder` before it reads its
inputs (a bad ``--out`` is said first) and wraps its work in
:func:`results_folder`, which yields the working folder (:mod:`staging`)
with ``config.json`` (the study, its config, every input with its digest
and the environment) already written there. A refused run leaves ``--out``
as it was; a finished one lands whole.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from poz_jax.io import files, provenance
from poz_jax.study.staging import PARTIAL, staged


def check_results_folder(out: str | Path, study: str, **inputs: Any) -> Path:
    """``out`` checked for ``study``: writable, not a file, not inside an input folder, and
    holding no other study's results."""
    folders = {k: p for k, p in inputs.items() if p is not None and not isinstance(p, dict)}
    out = files.check_out_dir(out, **folders)
    provenance.check_study(out, study)
    # An interrupted run's working folder resumes only the same study.
    provenance.check_study(out / PARTIAL, study)
    return out


@contextlib.contextmanager
def results_folder(out: str | Path, study: str, cfg: Any, inputs: dict[str, Any]) -> Iterator[Path]:
    """The working folder of one run of ``study`` into ``out``, its ``config.json`` written.

    ``inputs``: each input's path (digested here), ``None``, or a record already
    made (:func:`poz_jax.io.provenance.input_record`).
    """
    out = check_results_folder(out, study, **inputs)
    with staged(out) as work:
        records = {
            name: value if isinstance(value, dict) else provenance.input_record(value)
            for name, value in inputs.items()
        }
        provenance.write_config(work, study, cfg, records)
        yield work
