"""``poz-jax reproduce``: re-derive a results folder from its committed inputs and compare.

A results folder's ``config.json`` names its study, its config and its
inputs. :func:`reproduce` re-runs that study's analysis into a temporary
folder from the committed inputs (Experiment 1: ``networks.npz`` and
CIFAR-10; Experiment 3: ``inputs.npz`` and CIFAR-10H; Experiment 2 and the
comparison: the stimuli and embeddings named in ``config.json``; the Peterson
study: the stimuli and the networks it names; the trimming study: the
networks, CIFAR-10 and CIFAR-10H), then
compares every CSV table cell by cell with the committed one.

Same code, same library versions and the same machine kind give the same
bytes; another XLA release or backend may move float32 results by rounding,
which ``tolerance`` (absolute, on numbers) admits. Differences from the
recorded environment are reported as warnings.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import shutil
import tempfile
from pathlib import Path

from poz_jax.io import cache, files, provenance


@dataclasses.dataclass(frozen=True)
class Difference:
    """One table cell whose committed and re-derived values differ."""

    table: str
    row: int  # 1-based data row (the header is row 0)
    column: str
    committed: str
    derived: str

    def __str__(self) -> str:
        return (
            f"{self.table} row {self.row}, {self.column}: committed {self.committed}, "
            f"re-derived {self.derived}"
        )


@dataclasses.dataclass(frozen=True)
class Report:
    """What :func:`reproduce` found."""

    study: str
    tables: tuple[str, ...]
    differences: tuple[Difference, ...]
    warnings: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.differences


def _same(a: str, b: str, tolerance: float) -> bool:
    if a == b:
        return True
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    if math.isnan(x) and math.isnan(y):
        return True
    return abs(x - y) <= tolerance


def compare_tables(committed: Path, derived: Path, tolerance: float = 0.0) -> list[Difference]:
    """Every cell of CSV ``committed`` that ``derived`` does not reproduce.

    A missing file, another header, a missing or extra row and a row with
    another number of cells are differences too, each named.
    """
    name = committed.name
    if not committed.exists():
        return [Difference(name, 0, "(file)", "missing", "written")]
    if not derived.exists():
        return [Difference(name, 0, "(file)", "present", "not written")]
    with open(committed, newline="") as fa, open(derived, newline="") as fb:
        a, b = list(csv.reader(fa)), list(csv.reader(fb))
    if not a or not b or a[0] != b[0]:
        return [
            Difference(
                name, 0, "(header)", ",".join(a[0] if a else []), ",".join(b[0] if b else [])
            )
        ]
    out = []
    header = a[0]
    if len(a) != len(b):
        out.append(Difference(name, 0, "(rows)", str(len(a) - 1), str(len(b) - 1)))
    # Rows past the shorter table are the "(rows)" difference above.
    for i, (ra, rb) in enumerate(zip(a[1:], b[1:], strict=False), start=1):
        if len(ra) != len(header) or len(rb) != len(header):
            out.append(Difference(name, i, "(cells)", str(len(ra)), str(len(rb))))
            continue
        for col, x, y in zip(header, ra, rb, strict=True):
            if not _same(x, y, tolerance):
                out.append(Difference(name, i, col, x, y))
    return out


def compare_folders(
    committed: Path, derived: Path, written: list[Path], tolerance: float = 0.0
) -> tuple[list[str], list[Difference]]:
    """``(tables compared, differences)`` of a committed folder and its re-derivation.

    ``written``: the files the re-derivation wrote into ``derived``. Every
    table either folder holds is compared cell by cell; every other result
    it wrote (figures, arrays, records) must be in ``committed`` too. Stored
    products a run may recompute (:func:`poz_jax.io.cache.is_product`) need not
    be committed.
    """
    results = sorted(
        {p.relative_to(derived) for p in written if p.exists() and not cache.is_product(p)}
    )
    tables = sorted(
        {r.name for r in results if r.suffix == ".csv" and len(r.parts) == 1}
        | {p.name for p in committed.glob("*.csv")}
    )
    diffs = [d for t in tables for d in compare_tables(committed / t, derived / t, tolerance)]
    for r in results:
        if r.suffix != ".csv" and not (committed / r).exists():
            diffs.append(Difference(r.as_posix(), 0, "(file)", "missing", "written"))
    return tables, diffs


def environment_warnings(saved: dict | None) -> list[str]:
    """The ways the running environment differs from the one a folder records."""
    if not saved:
        return [
            "the folder records no environment (an earlier layout): exact equality is not promised"
        ]
    now = provenance.environment()
    keys = (
        "poz_jax",
        "jax",
        "jaxlib",
        "flax",
        "optax",
        "numpy",
        "backend",
        "device_kind",
        "cpu_isa",
    )
    return [
        f"{k} is {now.get(k)} here, {saved.get(k)} in the folder"
        for k in keys
        if saved.get(k) != now.get(k)
    ]


def _path(given, record: dict | None, what: str, flag: str) -> Path:
    path = given if given is not None else (record or {}).get("path")
    if not path:
        raise ValueError(f"the folder's config.json names no {what}; pass {flag}")
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{what} {path} not found; pass {flag}")
    return path


def _check_digest(path: Path, record: dict | None, what: str) -> None:
    # Only digests of bytes can be checked here (of arrays: by the pipeline itself).
    record = record or {}
    if record.get("digest_of") not in ("file bytes", "files in folder"):
        return
    if provenance.digest(path)[0] != record.get("sha256"):
        raise ValueError(
            f"{what} {path} is not the input the folder was made from (its sha256 differs)"
        )


def reproduce(
    folder: str | Path,
    tolerance: float = 0.0,
    progress: bool = False,
    verify: bool = True,
    workdir: str | Path | None = None,
    **given: str | Path | None,
) -> Report:
    """Re-derive ``folder``'s tables from its committed inputs; see the module docstring.

    ``given``: paths by input name (``stimuli=``, ``networks=``, ``data_dir=``,
    ``cifar10h=``, ...) in place of those ``config.json`` records (relative
    to the current folder). Raises ``ValueError`` when an input is missing or
    is not the one recorded. ``verify=False`` skips CIFAR-10's archive and
    size checks (for generated data only). ``workdir``: an empty folder to
    re-derive into and keep (default: a temporary one, removed).
    """
    from poz_jax.study import registry

    if "cifar10h_dir" in given:  # the name of this argument before the study registry
        given["cifar10h"] = given.pop("cifar10h_dir")
    folder = Path(folder)
    config = provenance.read_config(folder)
    if config is None:
        raise ValueError(f"{folder} has no config.json: not a poz-jax results folder")
    name, fields = provenance.saved_config(folder)
    inputs = config.get("inputs") or {}
    if not isinstance(inputs, dict):
        raise ValueError(f"{folder}/config.json: its inputs are not a mapping of names to records")
    if name not in registry.STUDIES:
        raise ValueError(f"{folder}/config.json names no study poz-jax can re-run ({name!r})")
    study = registry.get(name)
    cfg = study.config_from_saved(fields, f"{folder}/config.json")
    paths = {spec.name: _input(spec, given.get(spec.name), inputs, folder) for spec in study.inputs}
    warnings = environment_warnings(config.get("environment"))
    with tempfile.TemporaryDirectory(prefix="poz_reproduce_") as tmp:
        out = Path(workdir) if workdir is not None else Path(tmp) / "out"
        if out.exists() and any(out.iterdir()):
            raise ValueError(f"workdir {out} is not empty")
        for carried in study.carried:
            if not (folder / carried).exists():
                raise ValueError(f"{folder} holds no {carried}: it was not committed")
            out.mkdir(parents=True, exist_ok=True)
            shutil.copy(folder / carried, out / carried)
        with files.recording() as written:
            study.execute(cfg, out, paths, progress=progress, verify=verify)
        tables, diffs = compare_folders(folder, out, written, tolerance)
    return Report(name, tuple(tables), tuple(diffs), tuple(warnings))


def _input(spec, given, inputs: dict, folder: Path) -> Path | None:
    """The path of input ``spec`` for a re-derivation: given, committed, or recorded (checked)."""
    if spec.committed and given is None:
        return folder / spec.committed
    record = inputs.get(spec.recorded_as) or {}
    if given is None and record.get("path") is None and not spec.required:
        return None  # the run did without it (exp2 from weights, not embeddings)
    path = _path(given, record, spec.name.replace("_", " "), spec.option)
    if spec.digest:
        _check_digest(path, record, spec.name)
    return path


def format_report(report: Report, folder: str | Path, limit: int = 20) -> str:
    """The report as lines: warnings, each differing cell (up to ``limit``), the verdict."""
    lines = [f"warning: {w}" for w in report.warnings]
    lines += [f"differs: {d}" for d in report.differences[:limit]]
    if len(report.differences) > limit:
        lines.append(f"... and {len(report.differences) - limit} more differing cells")
    tables = ", ".join(report.tables)
    if report.ok:
        lines.append(f"reproduced {folder} ({report.study}): every cell of {tables}")
    else:
        lines.append(
            f"NOT reproduced {folder} ({report.study}): {len(report.differences)} cells differ "
            f"in {tables}"
        )
    return "\n".join(lines)
