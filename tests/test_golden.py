"""Training is pinned: a small golden run's losses and parameter digests, step by step.

Three LeNet5s (the paper's recipe: SGD, lr 0.001, momentum 0.9, PyTorch's
initialisation) train for 120 steps of 50 images on a fixed generated set;
every step's loss per network and each network's final parameter digest
are committed in ``tests/golden/training.json``. A change to the code that
moves any of them fails here, naming the first differing step. A change
that moves them on purpose regenerates the fixture and says so in its
commit:

    python tests/test_golden.py --write

The numbers are bit-identical for the same code, the same library versions
and the same machine kind, and only then: on the development CPU the AVX-512
and AVX2 code paths agree bit for bit, while SSE4_2 moves the 6th step's
loss by 2.4e-7 (one float32 rounding, amplified by training). So the fixture
holds one run per (library versions, instruction set) it was made on, and
the test compares with the run of its own kind; a kind the fixture lacks
(another XLA release, another CPU family) is skipped, saying so, until
``--write`` is run there.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

FIXTURE = Path(__file__).resolve().parent / "golden" / "training.json"
N_TRAIN, STEPS, BATCH = 1000, 120, 50


def golden_run() -> dict:
    """The run itself: per-step losses ``(steps, networks)`` and per-network digests."""
    from poz_jax.io import files
    from poz_jax.training.train import Compute, TrainConfig, lenet_trainer, seed_keys

    rng = np.random.default_rng(2024)
    x = rng.integers(0, 256, size=(N_TRAIN, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, size=N_TRAIN).astype(np.int32)
    cfg = TrainConfig(seeds=3, epochs=1, batch_size=BATCH)
    # One formulation on every backend: the numbers pinned are those of "rows".
    trainer = lenet_trainer(cfg, Compute(conv="rows", steps_per_call=1))
    keys = seed_keys(cfg)
    state = trainer.init(keys)
    steps = trainer.steps()
    per_epoch = N_TRAIN // BATCH
    losses = []
    for step in range(STEPS):
        epoch, first = divmod(step, per_epoch)
        order = trainer.epoch_order(keys, epoch, N_TRAIN)
        state, loss, _ = steps(state, x, y, order, first, 1)
        losses.append([float(v) for v in np.asarray(loss)])
    params = jax.device_get(state[0])
    digests = [
        files.tree_digest(jax.tree_util.tree_map(lambda a, s=s: a[s], params)) for s in range(3)
    ]
    return {"losses": losses, "param_digests": digests}


def kind() -> dict:
    """What the numbers depend on beyond the code: library versions, the instruction set."""
    import importlib.metadata as md

    from poz_jax.io.provenance import cpu_isa

    versions = {p: md.version(p) for p in ("jax", "jaxlib", "flax", "optax", "numpy")}
    return {**versions, "isa": cpu_isa()}


@pytest.mark.slow
@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the fixture pins CPU numbers")
def test_training_follows_the_golden_run_step_by_step():
    here = kind()
    runs = json.loads(FIXTURE.read_text())["runs"]
    want = next((r for r in runs if r["kind"] == here), None)
    if want is None:
        pytest.skip(
            f"no golden run of this kind {here}; make one: python tests/test_golden.py --write"
        )
    got = golden_run()
    for step, (a, b) in enumerate(zip(got["losses"], want["losses"], strict=True)):
        assert a == b, f"step {step + 1}: losses {a} differ from the golden {b} ({here})"
    assert got["param_digests"] == want["param_digests"], f"final parameters differ ({here})"


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_golden.py --write  (adds or replaces this kind's run)")
    here = kind()
    runs = json.loads(FIXTURE.read_text())["runs"] if FIXTURE.exists() else []
    runs = [r for r in runs if r["kind"] != here] + [{"kind": here, **golden_run()}]
    FIXTURE.parent.mkdir(exist_ok=True)
    FIXTURE.write_text(json.dumps({"runs": runs}, indent=1) + "\n")
    print(f"wrote {FIXTURE}: {len(runs)} kinds")
