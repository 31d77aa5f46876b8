"""A refused run leaves its --out byte for byte as it was, and writes nothing anywhere else."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import COMPARE_ARGS, COMPARE_SETS, EXP2_SETS, N_NULL, lenet_params

from poz_jax import cli


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


NULL_ARGS = ["--n-null", str(N_NULL)]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished exp2 run and a finished compare run over generated sets."""
    from poz_jax.data.synthetic import write_stimulus_sets

    root = tmp_path_factory.mktemp("refused")
    stim = root / "stim"
    write_stimulus_sets(stim, **COMPARE_SETS)
    emb = stim / "embeddings.npz"
    exp2 = ["exp2", "--stimuli", str(stim), "--embeddings", str(emb), *NULL_ARGS]
    assert cli.main([*exp2, "--out", str(root / "e2"), "--no-progress"]) == 0
    cmp_ = ["compare", "--stimuli", str(stim), "--embeddings", str(emb)]
    cmp_ += COMPARE_ARGS
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


def test_staged_writes_land_only_when_the_block_returns(tmp_path):
    from poz_jax.io import files
    from poz_jax.study.staging import PARTIAL, staged

    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.csv").write_text("old\n")
    (out / "spent.npz").write_text("checkpoint\n")
    (out / "sub").mkdir()
    (out / "sub" / "a.txt").write_text("a\n")
    before = _snapshot(out)
    # Refused: out byte for byte as it was, no working folder left.
    with pytest.raises(ValueError, match="bad input"), staged(out) as work:
        assert (work / "keep.csv").read_text() == "old\n"  # seeded: products are found
        files.write_csv(work / "keep.csv", [{"a": 1}])
        (work / "spent.npz").unlink()
        raise ValueError("bad input")
    assert _snapshot(out) == before and not (out / PARTIAL).exists()
    # Interrupted: out as it was, the working folder kept for the next run.
    with pytest.raises(KeyboardInterrupt), staged(out) as work:
        files.write_json(work / "done.json", {"n": 1})
        raise KeyboardInterrupt
    assert _snapshot(out) == {**before, **_snapshot_of(out, PARTIAL)}
    assert (out / PARTIAL / "done.json").exists()
    # Resumed and finished: the earlier run's product is there; writes and removals land.
    with files.recording() as written, staged(out) as work:
        assert (work / "done.json").exists()
        files.write_csv(work / "keep.csv", [{"a": 1}])
        (work / "spent.npz").unlink()
    assert (out / "keep.csv").read_text() == "a\n1\n"
    assert not (out / "spent.npz").exists() and (out / "sub" / "a.txt").read_text() == "a\n"
    assert (out / "done.json").exists() and not (out / PARTIAL).exists()
    assert written == [out / "keep.csv"]  # the log names the final place


def _snapshot_of(folder, sub):
    return {
        p.relative_to(folder): p.read_bytes()
        for p in sorted((folder / sub).rglob("*"))
        if p.is_file()
    }


def test_a_refused_run_into_a_new_folder_leaves_no_folder(tmp_path, capsys):
    from poz_jax.data.synthetic import write_stimulus_sets

    write_stimulus_sets(tmp_path / "stim", **EXP2_SETS)
    before = sorted(p for p in tmp_path.rglob("*"))
    out = tmp_path / "w" / "." / "sub" / ".." / "o"
    args = ["exp2", "--stimuli", str(tmp_path / "stim"), "--embeddings"]
    args += [str(tmp_path / "stim" / "embeddings.npz"), "--n-null", "0", "--out", str(out)]
    assert cli.main([*args, "--no-progress"]) == 2
    assert "--n-null" in capsys.readouterr().err
    assert sorted(p for p in tmp_path.rglob("*")) == before
    args[-3] = NULL_ARGS[1]  # a run that succeeds makes "w/o" and nothing on the way
    assert cli.main([*args, "--no-progress"]) == 0
    assert (tmp_path / "w" / "o" / "stats.csv").exists() and not (tmp_path / "w" / "sub").exists()


@pytest.fixture(scope="module")
def peterson_done(tmp_path_factory):
    """A finished Peterson run over two generated sets and two random LeNet5s."""
    import jax

    from poz_jax.data.synthetic import write_stimulus_sets
    from poz_jax.io import files

    root = tmp_path_factory.mktemp("peterson_refused")
    write_stimulus_sets(root / "stimuli", names=("discs", "hues"), n_items=12)
    params = lenet_params(2, 7)
    files.save_tree(root / "networks.npz", params, {"epoch": 0})
    bad = jax.tree_util.tree_map(np.array, params)
    bad["fc1"]["kernel"][1, 0, 0] = np.nan
    files.save_tree(root / "nan.npz", bad, {"epoch": 0})
    args = ["peterson", "--stimuli", str(root / "stimuli"), "--n-null", "5"]
    args += ["--compare-networks", "0", "--pixel-sizes", "32", "--no-progress"]
    nets = ["--networks", str(root / "networks.npz")]
    assert cli.main([*args, *nets, "--out", str(root / "X")]) == 0
    return root, args


@pytest.mark.slow
def test_refused_peterson_runs_leave_a_finished_out_as_it_was(peterson_done, capsys):
    import shutil

    root, args = peterson_done
    capsys.readouterr()
    before = _snapshot(root / "X")
    # One truncated image in a copy of the stimuli.
    shutil.copytree(root / "stimuli", root / "cut")
    png = sorted((root / "cut" / "discs").glob("*.png"))[3]
    png.write_bytes(png.read_bytes()[:40])
    damaged = root / "damaged.npz"
    raw = bytearray((root / "networks.npz").read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one flipped byte inside a member: a CRC error
    damaged.write_bytes(bytes(raw))
    cases = [
        (["--networks", str(root / "nan.npz")], "NaN or infinite weight(s) in ['fc1']['kernel']"),
        (["--networks", str(damaged)], f"networks {damaged}"),
        (["--networks", str(root / "networks.npz"), "--stimuli", str(root / "cut")], png.name),
    ]
    for extra, message in cases:
        assert cli.main([*args, *extra, "--out", str(root / "X")]) == 2, extra
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (extra, err)
        assert _snapshot(root / "X") == before, extra
    assert cli.main(["reproduce", str(root / "X"), "--no-progress"]) == 0


def test_make_stimuli_refuses_a_folder_holding_what_it_would_write(tmp_path, capsys):
    for name, make in [
        ("embeddings.npz", lambda p: np.savez(p, a=np.zeros(2))),
        ("similarity.npz", lambda p: np.savez(p, a=np.zeros(2))),
        ("hues", lambda p: p.mkdir()),
        ("config.json", lambda p: p.write_text("{}")),
    ]:
        folder = tmp_path / name.replace(".", "_")
        folder.mkdir()
        make(folder / name)
        before = _snapshot(folder)
        assert cli.main(["make-stimuli", str(folder), "--items", "4"]) == 2
        err = capsys.readouterr().err
        assert name in err and "Traceback" not in err, err
        assert _snapshot(folder) == before and sorted(p.name for p in folder.iterdir()) == [name]
    assert cli.main(["make-stimuli", str(tmp_path / "fresh"), "--items", "4"]) == 0


def test_an_image_claiming_too_many_pixels_is_named(tmp_path):
    import struct
    import zlib

    from poz_jax.data.errors import DataError
    from poz_jax.data.images import load_image

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    path = tmp_path / "bomb.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    with pytest.raises(DataError, match=r"bomb\.png claims more pixels"):
        load_image(path)


@pytest.mark.slow
def test_an_interrupted_rerun_with_another_seed_leaves_the_finished_folder(
    finished, monkeypatch, capsys
):
    import shutil

    from poz_jax.pipelines import exp2 as exp2_pipeline
    from poz_jax.study.staging import PARTIAL

    root, exp2, _ = finished
    out = root / "e2_rerun"
    shutil.copytree(root / "e2", out)
    before = _snapshot(out)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(exp2_pipeline, "null_fits", killed)
        with pytest.raises(KeyboardInterrupt):
            cli.main([*exp2, "--seed", "3", "--out", str(out), "--no-progress"])
    shown = {p: b for p, b in _snapshot(out).items() if p.parts[0] != PARTIAL}
    assert shown == before  # config.json still says the finished run's seed
    assert cli.main([*exp2, "--seed", "3", "--out", str(out), "--no-progress"]) == 0
    assert '"seed": 3' in (out / "config.json").read_text() and not (out / PARTIAL).exists()
    assert (out / "stats.csv").read_bytes() != before[Path("stats.csv")]  # the new seed's


@pytest.mark.slow  # a pipeline or stacked-model run: outside the fast loop
def test_low_messages_name_what_the_user_can_change(peterson_done, tmp_path, capsys):
    import poz_jax as pj

    with pytest.raises(ValueError, match="paper's grid .* at least 10 nodes; pass step="):
        pj.keep_grid(5)
    root, args = peterson_done
    nets = ["--networks", str(root / "networks.npz"), "--out", str(tmp_path / "o")]
    # 12 items cannot take compare's 5 folds; peterson has no --folds to advise.
    assert cli.main([*args, *nets, "--compare-networks", "1"]) == 2
    err = capsys.readouterr().err
    assert "set discs (12 items) is too small" in err and "--compare-networks 0" in err
    assert "--folds" not in err and "use at most" not in err


def test_out_inside_a_stimulus_folder_is_refused(tmp_path, capsys):
    from poz_jax.data.synthetic import write_stimulus_sets

    stim = tmp_path / "stim"
    write_stimulus_sets(stim, n_items=8, n_nodes=20)
    emb = ["--embeddings", str(stim / "embeddings.npz")]
    for out in (stim / "discs" / "results", stim):
        args = ["exp2", "--stimuli", str(stim), *emb, "--n-null", "2", "--out", str(out)]
        assert cli.main([*args, "--no-progress"]) == 2
        assert "lies inside --stimuli" in capsys.readouterr().err
    assert not (stim / "discs" / "results").exists() and not (stim / "config.json").exists()
