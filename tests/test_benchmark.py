"""scripts/benchmark.py's agreement checks (not its timings) on the quick sizes."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # benchmarks: outside the fast loop


SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "benchmark.py"


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch")
def test_benchmark_agreement_checks_pass():
    res = subprocess.run(
        [sys.executable, str(SCRIPT), "--check-only"], capture_output=True, text=True, timeout=900
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "all agreement checks passed" in res.stdout
    # every implementation that is timed was checked first
    agreed = res.stdout.splitlines()
    for name in (
        "authors' algorithm",
        "poz_jax.sweep float32",
        "vmapped poz_jax.sweep",
        "poz_jax null",
        "after 2 SGD steps",
        "Flax VGG-16 fc7",
        "compare split 0",
        "physically trimmed (0.25)",
    ):
        assert any(ln.strip().startswith("agree:") and name in ln for ln in agreed), name
