"""Shared test set-up: float64 enabled, generated activations, float64 references."""

from __future__ import annotations

import csv
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import warnings
import zlib

# One XLA compilation cache for the run, set before JAX starts: the xdist workers
# and the child processes tests start (reproduce, the benchmark, multi-device
# runs) inherit it, so a program compiled by one is loaded, not compiled again,
# by the others (compiling is about half the suite's time on 2 cores). A cached
# program is the same executable, so results stay bit for bit. The run's own
# cache starts empty and is removed at the end; set JAX_COMPILATION_CACHE_DIR
# to keep one between runs.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _RUN_CACHE = tempfile.mkdtemp(prefix="poz-jax-xla-")
else:
    _RUN_CACHE = None
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import scipy.stats  # noqa: E402

jax.config.update("jax_enable_x64", True)

from poz_jax.training.train import TrainConfig  # noqa: E402

# The training settings every test that trains uses, on 60 training images:
# one compiled step serves them all (lenet_trainer keeps it for the process).
SMALL_TRAIN = TrainConfig(seeds=2, epochs=1, batch_size=10)

# The generated stimulus sets and settings of every exp2 and compare run on
# them, in every file, and the null orders every study on generated data
# draws: a program's shapes follow these counts, so one file's compiled
# programs (kept in the run's compilation cache) serve the others. No
# assertion depends on the counts themselves.
EXP2_SETS = dict(n_items=12, n_nodes=4096)  # Experiment 2's layer width
N_NULL = 40
COMPARE_SETS = dict(n_items=15, n_nodes=64)
COMPARE_ARGS = ("--folds", "3", "--repeats", "2", "--n-random", "3")


# The files that take longest, longest first (--durations on 2 cores; see
# docs/getting-started.md), the ones that reuse another's compiled programs
# after it. pytest-xdist hands whole files (--dist loadfile) to whichever
# worker is free, in collection order, so a long file never starts last while
# the other worker idles; files not named follow in their usual order. A
# stale list costs time, never a result.
LONGEST_FIRST = (
    "test_results.py",
    "test_compare.py",
    "test_exp2.py",
    "test_exp3.py",
    "test_nulls.py",
    "test_train.py",
    "test_trim_study.py",
    "test_benchmark.py",
    "test_peterson_study.py",
    "test_sweeps.py",
    "test_refused_runs.py",
    "test_exp1.py",
    "test_vgg.py",
    "test_trim.py",
    "test_reproduce.py",
    "test_notebooks.py",
    "test_bad_input.py",
    "test_model.py",
)


def pytest_configure(config):
    # xdist's own file order (most tests first) would start one-test files,
    # such as the benchmark's 40 s, last.
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: files stay whole


def pytest_unconfigure(config):
    # Only the process that made the cache removes it (xdist workers inherit it).
    if _RUN_CACHE is not None:
        shutil.rmtree(_RUN_CACHE, ignore_errors=True)


def lenet_params(n: int, seed: int) -> dict:
    """``n`` LeNet5s' float32 parameters, stacked: each layer's uniform on +-1/sqrt(fan-in).

    PyTorch's default scale, drawn by NumPy: no compiled initialiser (jitted,
    ``init`` takes about 2 s to compile on 2 cores; op by op, 4 s) for tests
    that need some networks, not the library's draw.
    """
    rng = np.random.default_rng(seed)
    out = {}
    from poz_jax.models.lenet import param_shapes

    for name, leaves in param_shapes().items():
        bound = 1.0 / np.sqrt(np.prod(leaves["kernel"].shape[:-1]))
        out[name] = {
            k: rng.uniform(-bound, bound, (n, *a.shape)).astype(np.float32)
            for k, a in sorted(leaves.items())
        }
    return out


def sparse_acts(rng: np.random.Generator, n_items: int, n_nodes: int) -> np.ndarray:
    """Post-ReLU-like float64 activations with many exact zeros and heavy PoZ ties.

    Nodes come in groups that never fire, always fire, or fire for a fixed
    number of items, so many nodes share one PoZ value.
    """
    x = np.abs(rng.normal(size=(n_items, n_nodes))) + 0.1
    kind = rng.integers(0, 4, size=n_nodes)
    n_fire = rng.integers(1, n_items + 1, size=n_nodes)
    for j in range(n_nodes):
        if kind[j] == 0:
            x[:, j] = 0.0
        elif kind[j] == 2:
            x[rng.permutation(n_items)[: n_items // 2], j] = 0.0
        elif kind[j] == 3:
            x[rng.permutation(n_items)[n_fire[j] :], j] = 0.0
    return x


def _flat(a: np.ndarray, rtol: float) -> bool:
    return np.ptp(a) <= rtol * np.max(np.abs(a))


def ref_pearson_sq(a: np.ndarray, b: np.ndarray, rtol: float = 0.0) -> float:
    """Squared Pearson r by SciPy; NaN where it is undefined.

    Undefined: fewer than 2 points, a NaN, or an input whose spread is at
    most ``rtol`` times its largest magnitude (exactly constant for 0).
    """
    if len(a) < 2 or np.any(np.isnan(a)) or np.any(np.isnan(b)):
        return np.nan
    if _flat(a, rtol) or _flat(b, rtol):
        return np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(scipy.stats.pearsonr(a, b)[0]) ** 2


def read_rows(path) -> list[dict]:
    """A results CSV as a list of ``{column: text}`` rows."""
    with open(path) as fh:
        return list(csv.DictReader(fh))


def ref_rsm(x: np.ndarray) -> np.ndarray:
    """The authors' RSM: a double loop of ``pearsonr``, diagonal 1, NaN for constant rows."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    out = np.ones((n, n))
    for i in range(n):
        for j in range(n):
            if i != j:
                out[i, j] = ref_pearson_sq(x[i], x[j])
    constant = np.all(x == x[:, :1], axis=1)
    out[constant, :] = np.nan
    out[:, constant] = np.nan
    return out


def ref_fit(a: np.ndarray, b: np.ndarray) -> float:
    """Squared Pearson r of the strict upper triangles, by SciPy.

    A triangle flat to within sqrt(float64 eps) counts as constant, as in
    poz_jax.fit: rounding alone spreads a constant RSM that far.
    """
    iu = np.triu_indices(a.shape[0], 1)
    ta, tb = np.asarray(a, np.float64)[iu], np.asarray(b, np.float64)[iu]
    return ref_pearson_sq(ta, tb, rtol=np.sqrt(np.finfo(np.float64).eps))


def ref_rsm_fast(x: np.ndarray) -> np.ndarray:
    """``ref_rsm`` by ``np.corrcoef`` in float64, for sizes where the loop is slow.

    Tests check it against ``ref_rsm`` before relying on it.
    """
    x = np.asarray(x, dtype=np.float64)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        out = np.corrcoef(x) ** 2
    np.fill_diagonal(out, 1.0)
    constant = np.all(x == x[:, :1], axis=1)
    out[constant, :] = np.nan
    out[:, constant] = np.nan
    return out


def ref_sweep(x, target, keep_counts, order) -> np.ndarray:
    """One RSM and one fit per level, looping as the authors' code did."""
    return np.array([ref_fit(ref_rsm(x[:, order[:k]]), target) for k in keep_counts])


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A fresh generator per test, seeded from the test's name for reproducible failures."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


def free_port() -> int:
    """A TCP port on localhost that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _subprocess_env(**extra: str) -> dict[str, str]:
    """This process's environment for a JAX child, with ``extra`` set.

    The child keeps this run's XLA flags (e.g. ``--xla_cpu_max_isa=SSE4_2``,
    so the whole suite runs under one instruction set) except the device
    count, which each helper sets itself, and it can import ``bounds``.
    """
    env = {**os.environ, **extra}
    flags = [
        f
        for f in os.environ.get("XLA_FLAGS", "").split()
        if not f.startswith("--xla_force_host_platform_device_count")
    ]
    flags += extra.get("XLA_FLAGS", "").split()
    env["XLA_FLAGS"] = " ".join(flags)
    here = os.path.dirname(os.path.abspath(__file__))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))
    return env


def run_processes(code: str, n_processes: int = 2, n_devices: int = 2) -> list[str]:
    """Run Python ``code`` as one multi-process JAX job on this machine's CPU.

    Each process sees ``n_devices`` CPU devices and the environment variables
    ``POZ_COORDINATOR``, ``POZ_N_PROCESSES`` and ``POZ_PROCESS_ID`` to pass to
    ``jax.distributed.initialize``. Returns each process's stdout; fails the
    test with a process's stderr when one fails.
    """
    port = free_port()
    procs = []
    for pid in range(n_processes):
        env = _subprocess_env(
            JAX_PLATFORMS="cpu",
            JAX_NUM_CPU_DEVICES=str(n_devices),
            JAX_CPU_COLLECTIVES_IMPLEMENTATION="gloo",
            POZ_COORDINATOR=f"localhost:{port}",
            POZ_N_PROCESSES=str(n_processes),
            POZ_PROCESS_ID=str(pid),
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", code],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, err[-3000:]
            outs.append(out)
    finally:
        for proc in procs:
            proc.kill()
    return outs


def run_on_host_devices(code: str, n_devices: int = 8) -> str:
    """Run Python ``code`` in a fresh process whose CPU shows as ``n_devices`` devices.

    Returns its stdout; fails the test with its stderr when it fails. (JAX fixes
    the device count at start-up, so multi-device tests need their own process.)
    """
    env = _subprocess_env(
        XLA_FLAGS=f"--xla_force_host_platform_device_count={n_devices}", JAX_PLATFORMS="cpu"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout
