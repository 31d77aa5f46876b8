"""A refused run leaves its --out byte for byte as it was, and writes nothing anywhere else."""

from __future__ import annotations

import numpy as np
import pytest

from poz_jax import cli


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished exp2 run and a finished compare run over generated sets."""
    from poz_jax.synthetic import write_stimulus_sets

    root = tmp_path_factory.mktemp("refused")
    stim = root / "stim"
    write_stimulus_sets(stim, n_items=12, n_nodes=40)
    emb = stim / "embeddings.npz"
    exp2 = ["exp2", "--stimuli", str(stim), "--embeddings", str(emb), "--n-null", "5"]
    assert cli.main([*exp2, "--out", str(root / "e2"), "--no-progress"]) == 0
    cmp_ = ["compare", "--stimuli", str(stim), "--embeddings", str(emb)]
    cmp_ += ["--folds", "2", "--repeats", "1", "--n-random", "2", "--inner-folds", "2"]
    assert cli.main([*cmp_, "--out", str(root / "cmp"), "--no-progress"]) == 0
    return root, exp2, cmp_


@pytest.mark.slow
def test_refused_runs_leave_a_finished_out_as_it_was(finished, capsys):
    root, exp2, cmp_ = finished
    before = {name: _snapshot(root / name) for name in ("e2", "cmp")}
    cases = [
        # a check inside the comparison, once reached after config.json was rewritten
        ([*cmp_, "--inner-folds", "5", "--out", str(root / "cmp")], "inner folds"),
        ([*cmp_, "--sets", "nope", "--out", str(root / "cmp")], "no stimulus set named"),
        ([*exp2, "--sets", "nope", "--out", str(root / "e2")], "no stimulus set named"),
        ([*exp2, "--n-null", "0", "--out", str(root / "e2")], "--n-null"),
        # another study's folder
        ([*cmp_, "--out", str(root / "e2")], "holds the results of poz-jax exp2"),
        ([*exp2, "--out", str(root / "cmp")], "holds the results of poz-jax compare"),
        (
            ["exp3", "--inputs", "x.npz", "--cifar10h", "c", "--out", str(root / "e2")],
            "holds the results of poz-jax exp2",
        ),
    ]
    for args, message in cases:
        assert cli.main([*args, "--no-progress"]) == 2, args
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (args, err)
        for name, snap in before.items():
            assert _snapshot(root / name) == snap, (args, name)


@pytest.mark.parametrize("bad", ["../../ESCAPED", "x/y", ".hidden", "a b"])
def test_set_names_that_would_be_paths_are_refused(tmp_path, capsys, bad):
    rng = np.random.default_rng(0)
    a = rng.random((6, 6))
    np.savez(tmp_path / "sims.npz", **{bad: a + a.T, "ok": a + a.T})
    np.savez(tmp_path / "emb.npz", **{bad: rng.random((6, 8)), "ok": rng.random((6, 8))})
    out = tmp_path / "deep" / "er" / "out"
    base = ["--stimuli", str(tmp_path / "sims.npz"), "--embeddings", str(tmp_path / "emb.npz")]
    for cmd in (["exp2", *base, "--n-null", "2"], ["compare", *base, "--folds", "2"]):
        assert cli.main([*cmd, "--out", str(out), "--no-progress"]) == 2
        assert "cannot name files" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["emb.npz", "sims.npz"]
