"""The steps every study's run shares, written once: guard ``--out``, stage, record.

:func:`results_folder` is the skeleton a study's ``run`` wraps its work in:
it refuses an ``--out`` that is a file, unwritable, inside an input folder
or another study's, and yields the working folder (:mod:`staging`), with
``config.json`` (the study, its config, every input with its digest and the
environment) already written there. A refused run leaves ``--out`` as it
was; a finished one lands whole.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from poz_jax import files, provenance
from poz_jax.study.staging import staged


@contextlib.contextmanager
def results_folder(
    out: str | Path, study: str, cfg: Any, inputs: dict[str, str | Path | None]
) -> Iterator[Path]:
    """The working folder of one run of ``study`` into ``out`` (see the module docstring)."""
    out = files.check_out_dir(out, **inputs)
    provenance.check_study(out, study)
    with staged(out) as work:
        records = {name: provenance.input_record(path) for name, path in inputs.items()}
        provenance.write_config(work, study, cfg, records)
        yield work
