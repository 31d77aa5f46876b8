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

from poz_jax import provenance


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
    """Every cell of CSV ``committed`` that ``derived`` does not reproduce (shape changes too)."""
    name = committed.name
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
    for i, (ra, rb) in enumerate(zip(a[1:], b[1:], strict=False), start=1):
        for col, x, y in zip(header, ra, rb, strict=False):
            if not _same(x, y, tolerance):
                out.append(Difference(name, i, col, x, y))
    return out


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
    warnings = environment_warnings(config.get("environment"))
    with tempfile.TemporaryDirectory(prefix="poz_reproduce_") as tmp:
        out = Path(workdir) if workdir is not None else Path(tmp) / "out"
        if out.exists() and any(out.iterdir()):
            raise ValueError(f"workdir {out} is not empty")
        if study == "exp1":
            from poz_jax.pipelines import exp1
            from poz_jax.train import TrainConfig

            nets = folder / exp1.NETWORKS
            if not nets.exists():
                raise ValueError(
                    f"{folder} holds no {exp1.NETWORKS}: its networks were not committed"
                )
            out.mkdir(parents=True, exist_ok=True)
            shutil.copy(nets, out / exp1.NETWORKS)
            path = _path(data_dir, inputs.get("cifar10"), "CIFAR-10", "--data-dir")
            exp1.run(TrainConfig.from_dict(fields), out, path, progress=progress, verify=verify)
        elif study == "exp3":
            from poz_jax.pipelines import exp3

            path = _path(cifar10h_dir, inputs.get("cifar10h"), "CIFAR-10H", "--cifar10h")
            _check_digest(path, inputs.get("cifar10h"), "CIFAR-10H")
            exp3.run(exp3.Exp3Config.from_dict(fields), out, folder / "inputs.npz", path, progress)
        elif study == "peterson":
            from poz_jax.pipelines import peterson

            s = _path(stimuli, inputs.get("stimuli"), "stimuli", "--stimuli")
            _check_digest(s, inputs.get("stimuli"), "stimuli")
            n = _path(networks, inputs.get("networks"), "networks", "--networks")
            _check_digest(n, inputs.get("networks"), "networks")
            peterson.run(peterson.PetersonConfig.from_dict(fields), out, s, n, progress)
        elif study == "trim":
            from poz_jax.pipelines import trim

            n = _path(networks, inputs.get("networks"), "networks", "--networks")
            _check_digest(n, inputs.get("networks"), "networks")
            d = _path(data_dir, inputs.get("cifar10"), "CIFAR-10", "--data-dir")
            h = _path(cifar10h_dir, inputs.get("cifar10h"), "CIFAR-10H", "--cifar10h")
            _check_digest(h, inputs.get("cifar10h"), "CIFAR-10H")
            cfg = trim.TrimConfig.from_dict(fields)
            trim.run(cfg, out, n, d, h, progress, verify)
        elif study in ("exp2", "compare"):
            from poz_jax.pipelines import compare, exp2

            s = _path(stimuli, inputs.get("stimuli"), "stimuli", "--stimuli")
            _check_digest(s, inputs.get("stimuli"), "stimuli")
            e = (
                embeddings
                if embeddings is not None
                else (inputs.get("embeddings") or {}).get("path")
            )
            if study == "exp2":
                cfg = exp2.Exp2Config(**{**fields, "sets": _tuple(fields.get("sets"))})
                exp2.run(cfg, out, s, e, progress)
            else:
                e = _path(embeddings, inputs.get("embeddings"), "embeddings", "--embeddings")
                cfg = compare.CompareConfig(
                    **{
                        **fields,
                        "methods": tuple(fields["methods"]),
                        "sets": _tuple(fields.get("sets")),
                    }
                )
                compare.run(cfg, out, s, e, progress)
        else:
            raise ValueError(f"{folder}/config.json names no study poz-jax can re-run ({study!r})")
        tables = sorted(p.name for p in folder.glob("*.csv"))
        diffs = [d for t in tables for d in compare_tables(folder / t, out / t, tolerance)]
    return Report(study, tuple(tables), tuple(diffs), tuple(warnings))


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
