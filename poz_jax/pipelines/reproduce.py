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

from poz_jax import cache, files, provenance


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
    products a run may recompute (:func:`poz_jax.cache.is_product`) need not
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
    data_dir: str | Path | None = None,
    cifar10h_dir: str | Path | None = None,
    stimuli: str | Path | None = None,
    embeddings: str | Path | None = None,
    networks: str | Path | None = None,
    tolerance: float = 0.0,
    progress: bool = False,
    verify: bool = True,
    workdir: str | Path | None = None,
) -> Report:
    """Re-derive ``folder``'s tables from its committed inputs; see the module docstring.

    The paths default to those ``config.json`` records (relative to the
    current folder). Raises ``ValueError`` when an input is missing or is not
    the one recorded. ``verify=False`` skips CIFAR-10's archive and size
    checks (for generated data only). ``workdir``: an empty folder to re-derive
    into and keep (default: a temporary one, removed).
    """
    folder = Path(folder)
    config = provenance.read_config(folder)
    if config is None:
        raise ValueError(f"{folder} has no config.json: not a poz-jax results folder")
    study, fields = provenance.saved_config(folder)
    inputs = config.get("inputs") or {}
    if not isinstance(inputs, dict):
        raise ValueError(f"{folder}/config.json: its inputs are not a mapping of names to records")
    warnings = environment_warnings(config.get("environment"))
    with tempfile.TemporaryDirectory(prefix="poz_reproduce_") as tmp:
        out = Path(workdir) if workdir is not None else Path(tmp) / "out"
        if out.exists() and any(out.iterdir()):
            raise ValueError(f"workdir {out} is not empty")
        given = {
            "data_dir": data_dir,
            "cifar10h_dir": cifar10h_dir,
            "stimuli": stimuli,
            "embeddings": embeddings,
            "networks": networks,
        }
        with files.recording() as written:
            _rederive(study, fields, inputs, folder, out, given, progress, verify)
        tables, diffs = compare_folders(folder, out, written, tolerance)
    return Report(study, tuple(tables), tuple(diffs), tuple(warnings))


def saved_fields(cls, fields: dict, folder: Path) -> dict:
    """``fields`` of a saved config checked against ``cls``'s: none missing, none unknown."""
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(fields) - set(names))
    missing = [n for n in names if n not in fields]
    if unknown or missing:
        what = [f"unknown field {n!r}" for n in unknown] + [f"no field {n!r}" for n in missing]
        raise ValueError(
            f"{folder}/config.json has {', '.join(what)} for {cls.__name__}: it was not written "
            "by this version of poz-jax, or was edited"
        )
    return fields


def _input(given, inputs: dict, name: str, what: str, flag: str, check: bool = True) -> Path:
    path = _path(given, inputs.get(name), what, flag)
    if check:
        _check_digest(path, inputs.get(name), what)
    return path


def _rederive(study, fields, inputs, folder: Path, out: Path, given: dict, progress, verify):
    """Re-run ``study`` with ``fields`` from the inputs ``config.json`` records into ``out``."""
    if study == "exp1":
        from poz_jax.pipelines import exp1
        from poz_jax.train import TrainConfig, _current_names

        nets = folder / exp1.NETWORKS
        if not nets.exists():
            raise ValueError(f"{folder} holds no {exp1.NETWORKS}: its networks were not committed")
        cfg = TrainConfig(**saved_fields(TrainConfig, _current_names(fields), folder))
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(nets, out / exp1.NETWORKS)
        d = _input(given["data_dir"], inputs, "cifar10", "CIFAR-10", "--data-dir", check=False)
        exp1.run(cfg, out, d, progress=progress, verify=verify)
    elif study == "exp3":
        from poz_jax.pipelines import exp3

        current = exp3.current_names(fields)
        cfg = exp3.Exp3Config(**saved_fields(exp3.Exp3Config, current, folder))
        h = _input(given["cifar10h_dir"], inputs, "cifar10h", "CIFAR-10H", "--cifar10h")
        exp3.run(cfg, out, folder / "inputs.npz", h, progress)
    elif study == "peterson":
        from poz_jax.pipelines import peterson

        cfg = peterson.PetersonConfig(**saved_fields(peterson.PetersonConfig, fields, folder))
        s = _input(given["stimuli"], inputs, "stimuli", "stimuli", "--stimuli")
        n = _input(given["networks"], inputs, "networks", "networks", "--networks")
        peterson.run(cfg, out, s, n, progress)
    elif study == "trim":
        from poz_jax.pipelines import trim

        cfg = trim.TrimConfig(**saved_fields(trim.TrimConfig, fields, folder))
        n = _input(given["networks"], inputs, "networks", "networks", "--networks")
        d = _input(given["data_dir"], inputs, "cifar10", "CIFAR-10", "--data-dir", check=False)
        h = _input(given["cifar10h_dir"], inputs, "cifar10h", "CIFAR-10H", "--cifar10h")
        trim.run(cfg, out, n, d, h, progress, verify)
    elif study in ("exp2", "compare"):
        from poz_jax.pipelines import compare, exp2

        s = _input(given["stimuli"], inputs, "stimuli", "stimuli", "--stimuli")
        record = inputs.get("embeddings") or {}
        if study == "exp2":
            cls, run = exp2.Exp2Config, exp2.run
        else:
            cls, run = compare.CompareConfig, compare.run
        saved_fields(cls, fields, folder)
        tuples = {k: _tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
        cfg = cls(**tuples)
        if record.get("path") is None and given["embeddings"] is None and study == "exp2":
            e = None
        else:
            e = _input(given["embeddings"], inputs, "embeddings", "embeddings", "--embeddings")
        run(cfg, out, s, e, progress)
    else:
        raise ValueError(f"{folder}/config.json names no study poz-jax can re-run ({study!r})")


def _tuple(value):
    return None if value is None else tuple(value)


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
