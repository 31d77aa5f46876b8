"""What a results folder came from: ``config.json``, one layout for every study.

::

    {
      "study": "exp2",                      # which command wrote the folder
      "config": {...},                      # the study's config, field by field
      "inputs": {"stimuli": {"path": ..., "sha256": ..., "digest_of": ...}, ...},
      "environment": {"poz_jax": ..., "jax": ..., "git_commit": ..., ...}
    }

Each input is recorded with its path and a sha256: of the file's bytes, of
a folder's files (their relative names and bytes, in sorted order), or of the
arrays read from it (``digest_of`` says which). A folder holds one study's
results: :func:`check_study` refuses a folder another study wrote.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import subprocess
from pathlib import Path
from typing import Any

from poz_jax.io import files

CONFIG = "config.json"
# The top-level key of each study's config.json before this layout.
_LEGACY = {"train": "exp1", "exp2": "exp2", "exp3": "exp3", "compare": "compare"}
_PACKAGES = ("poz_jax", "jax", "jaxlib", "flax", "optax", "numpy")


def digest(path: str | Path) -> tuple[str, str]:
    """``(sha256, what it is of)`` of a file's bytes or a folder's files."""
    path = Path(path)
    if path.is_file():
        return files.file_digest(path), "file bytes"
    h = hashlib.sha256()
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        h.update(f"{p.relative_to(path).as_posix()}\0{files.file_digest(p)}\n".encode())
    return h.hexdigest(), "files in folder"


def input_record(path: str | Path | None, sha256: str | None = None, of: str = "") -> dict:
    """``{"path", "sha256", "digest_of"}`` of an input; digests ``path`` unless given."""
    if path is None and sha256 is None:
        return {"path": None, "sha256": None, "digest_of": ""}
    if sha256 is None:
        sha256, of = digest(path)
    return {"path": None if path is None else str(path), "sha256": sha256, "digest_of": of}


def environment() -> dict[str, Any]:
    """Versions, backend and device kind, and the git commit (with ``git_clean``) of poz-jax."""
    import jax

    env: dict[str, Any] = {}
    for name in _PACKAGES:
        try:
            env[name] = importlib.metadata.version(name.replace("_", "-"))
        except importlib.metadata.PackageNotFoundError:
            env[name] = None
    env["backend"] = jax.default_backend()
    env["cpu_isa"] = cpu_isa()
    env["device_kind"] = jax.devices()[0].device_kind
    env["device_count"] = jax.device_count()
    env.update(_git(Path(__file__).resolve().parents[2]))  # the checkout: poz_jax/io/ -> root
    return env


_ISAS = ("SSE4_2", "AVX", "AVX2", "AVX512")


def cpu_isa() -> str:
    """The widest x86 instruction set XLA's CPU code may use here: ``AVX512``, ``AVX2``, ...

    The CPU's own (``/proc/cpuinfo``), capped by ``XLA_FLAGS=--xla_cpu_max_isa``;
    ``"unknown"`` off Linux/x86. CPU float32 results can differ between these
    (a reduction vectorised another way rounds another way).
    """
    import os
    import re

    info = Path("/proc/cpuinfo")
    flags = info.read_text() if info.exists() else ""
    if " sse4_2" not in flags:
        return "unknown"
    best = "AVX512" if " avx512f" in flags else "AVX2" if " avx2" in flags else "SSE4_2"
    cap = re.search(r"--xla_cpu_max_isa=(\w+)", os.environ.get("XLA_FLAGS", ""))
    if cap and cap.group(1).upper() in _ISAS:
        return min(best, cap.group(1).upper(), key=_ISAS.index)
    return best


def _git(root: Path) -> dict[str, Any]:
    def run(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    # An installed copy (site-packages) is not a checkout: its commit is unknown.
    if not (root / ".git").exists():
        return {"git_commit": None, "git_clean": None}
    commit = run("rev-parse", "HEAD")
    status = run("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit, "git_clean": None if status is None else status == ""}


def study_of(config: dict) -> str | None:
    """The study a ``config.json`` (this layout or an earlier one) belongs to."""
    if isinstance(config.get("study"), str):
        return config["study"]
    return next((study for key, study in _LEGACY.items() if key in config), None)


def read_config(folder: str | Path) -> dict | None:
    """A folder's ``config.json``, or ``None`` when it has none; ``ValueError`` if unreadable."""
    path = Path(folder) / CONFIG
    if not path.exists():
        return None
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(
            f"{path} is not readable JSON ({err}); if poz-jax wrote it, delete it to start "
            "over, else give another --out"
        ) from err
    if not isinstance(config, dict):
        raise ValueError(f"{path} does not hold a poz-jax config; give another --out")
    return config


def saved_config(folder: str | Path) -> tuple[str | None, dict]:
    """``(study, config fields)`` of a folder's ``config.json``, this layout or an earlier one.

    Earlier layouts kept the config under the study's own key (``"train"``
    for Experiment 1) and field names since renamed; the fields come back as
    saved (each config's ``from_dict`` brings the names up to date).
    """
    config = read_config(folder)
    if config is None:
        raise ValueError(f"{folder} has no {CONFIG}: it is not a poz-jax results folder")
    study = study_of(config)
    if "study" in config:
        return study, dict(config.get("config") or {})
    legacy_key = next((k for k, v in _LEGACY.items() if v == study), None)
    return study, dict(config.get(legacy_key) or {})


def check_study(folder: str | Path, study: str) -> None:
    """Refuse ``folder`` when another study's results are in it (it would overwrite them)."""
    config = read_config(folder)
    if config is None:
        return
    other = study_of(config)
    if other != study:
        what = f"the results of poz-jax {other}" if other else "a config.json poz-jax did not write"
        raise ValueError(f"--out {folder} holds {what}; give poz-jax {study} a folder of its own")


def write_config(folder: str | Path, study: str, config: Any, inputs: dict[str, dict]) -> None:
    """Write ``folder/config.json``: the study, its config, its inputs and the environment."""
    cfg = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    files.write_json(
        Path(folder) / CONFIG,
        {"study": study, "config": cfg, "inputs": inputs, "environment": environment()},
    )
