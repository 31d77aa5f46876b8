"""The documentation: its examples run and print what they say, the site builds, links hold.

Every ``python`` block of the pages below runs, in order, in one namespace
and a fresh folder; a ``print(...)  # text`` line must print ``text``.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXECUTED = ["docs/your-data.md", "docs/api.md"]


def _given(page: str, folder: Path, monkeypatch) -> None:
    """What a page takes as given. ``api.md``'s cluster example reads its inputs from
    ``set.npz`` and runs on many hosts: here one process stands for all of them."""
    if page == "docs/your-data.md":
        pytest.importorskip("torch")
        pytest.importorskip("rsatoolbox")
    if page == "docs/api.md":
        import jax
        import numpy as np

        monkeypatch.setattr(jax.distributed, "initialize", lambda *args, **kwargs: None)
        rng = np.random.default_rng(0)
        np.savez(
            folder / "set.npz",
            acts=np.maximum(rng.normal(size=(12, 16)), 0),
            human=np.corrcoef(rng.normal(size=(12, 5))),
            keep_counts=np.array([16, 8, 4]),
        )


def _blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)\n```", page.read_text(), re.S)


@pytest.mark.slow
@pytest.mark.parametrize("page", EXECUTED)
def test_every_example_runs_and_prints_what_it_says(page, tmp_path, monkeypatch):
    _given(page, tmp_path, monkeypatch)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for code in _blocks(ROOT / page):
        promised = [
            m.group(1).strip() for m in re.finditer(r"^print\(.*\)\s*#\s*(.*)$", code, re.M)
        ]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, page, "exec"), namespace)
        printed = out.getvalue().strip().splitlines()
        assert printed[-len(promised) :] if promised else True
        assert [line.strip() for line in printed] == promised, (page, code)
    if page == "docs/api.md":  # the cluster example wrote the whole null, as process 0
        import numpy as np

        assert np.load(tmp_path / "null.npy").shape == (100_000, 3)


def test_internal_links_of_the_readmes_and_pages_resolve():
    pages = [
        ROOT / "README.md",
        ROOT / "experiments" / "README.md",
        *sorted((ROOT / "docs").rglob("*.md")),
    ]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if re.match(r"[a-z]+://", target) or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, broken


@pytest.mark.slow
def test_the_site_builds_without_a_warning(tmp_path):
    if shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("mkdocs is not installed (the dev extra installs it)")
    mkdocs = str(Path(sys.executable).parent / "mkdocs")
    done = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "reference" / "cli" / "index.html").is_file()
    cli = (tmp_path / "site" / "reference" / "cli" / "index.html").read_text()
    assert "poz-jax objects92" in cli and "--human-kind" in cli
