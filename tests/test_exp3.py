"""Experiment 3: the CIFAR-10H loader, the human similarities, and the pipeline on
generated data; the real-data checks skip without ../shared."""

import csv
from pathlib import Path

import numpy as np
import pytest
from conftest import N_NULL, ref_fit, ref_rsm_fast

from poz_jax.data import cifar10h
from poz_jax.data.errors import DataError
from poz_jax.data.synthetic import write_fake_cifar10h
from poz_jax.pipelines import exp3

pytestmark = pytest.mark.slow  # many nulls and comparisons: outside the fast loop


SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL = SHARED / "cifar10h"


@pytest.fixture(scope="module")
def local_labels():
    return np.repeat(np.arange(10), 60)  # a class-sorted local test set of 600 images


@pytest.fixture(scope="module")
def fake(tmp_path_factory, local_labels):
    folder = tmp_path_factory.mktemp("c10h")
    arrays = write_fake_cifar10h(folder, local_labels, n_matched=400, seed=1)
    return folder, arrays


# --- loader --------------------------------------------------------------------------


def test_loader_reads_and_aligns_generated_files(fake, local_labels):
    folder, arrays = fake
    counts = cifar10h.load_counts(folder)
    np.testing.assert_array_equal(counts, arrays["cifar10h-counts.npy"])
    official = cifar10h.load_official_labels(folder)
    index, rows = cifar10h.align_to_local(folder, local_labels, official)
    np.testing.assert_array_equal(index, np.arange(400))
    np.testing.assert_array_equal(local_labels[rows], official[:400])


def _copy(src, dst, **replace):
    dst.mkdir()
    for p in src.iterdir():
        np.save(dst / p.name, replace.get(p.name, np.load(p)))
    return dst


def test_loader_refuses_bad_files_with_clear_messages(fake, tmp_path, local_labels):
    folder, arrays = fake
    counts = arrays["cifar10h-counts.npy"]
    cases = [
        ({"cifar10h-counts.npy": counts[:9000]}, "has shape \\(9000, 10\\)"),
        ({"cifar10h-counts.npy": -counts}, "whole non-negative counts"),
        ({"cifar10h-counts.npy": counts + 0.5}, "whole non-negative counts"),
        ({"cifar10h-probs.npy": arrays["cifar10h-probs.npy"][::-1]}, "do not match"),
    ]
    for i, (replace, message) in enumerate(cases):
        bad = _copy(folder, tmp_path / f"bad{i}", **replace)
        with pytest.raises(DataError, match=message):
            cifar10h.load_counts(bad)
    shifted = np.roll(arrays["official_to_npz_row.npy"], 1)
    bad = _copy(folder, tmp_path / "map", **{"official_to_npz_row.npy": shifted})
    official = cifar10h.load_official_labels(bad)
    with pytest.raises(DataError, match="does not match the images' labels"):
        cifar10h.align_to_local(bad, local_labels, official)
    empty = _copy(folder, tmp_path / "empty", **{"official_to_npz_row.npy": np.zeros(0, int)})
    with pytest.raises(DataError, match="maps no images"):
        cifar10h.align_to_local(empty, local_labels, official)
    labels = np.load(folder / "cifar10_test_labels_official.npy")
    floats = _copy(
        folder, tmp_path / "floats", **{"cifar10_test_labels_official.npy": labels * 1.0}
    )
    with pytest.raises(DataError, match=r"integer labels, got float64 \(10000,\)"):
        cifar10h.load_official_labels(floats)
    (tmp_path / "trunc").mkdir()
    (tmp_path / "trunc" / "cifar10h-counts.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DataError, match="not a readable .npy"):
        cifar10h.load_counts(tmp_path / "trunc")
    with pytest.raises(DataError, match="not found"):
        cifar10h.load_counts(tmp_path / "nowhere")


def test_human_similarities_match_explicit_loops(rng):
    labels = rng.integers(0, 4, 50)
    labels[:4] = np.arange(4)
    counts = rng.integers(0, 9, (50, 4))
    counts[:, 0] += 1
    p = cifar10h.class_confusion(counts, labels, 4)
    for a in range(4):
        want = counts[labels == a].sum(0) / counts[labels == a].sum()
        np.testing.assert_allclose(p[a], want)
    np.testing.assert_allclose(cifar10h.class_similarity(p), (p + p.T) / 2)
    sh = cifar10h.class_similarity(p, "shepard")
    assert sh[1, 2] == pytest.approx(np.sqrt(p[1, 2] * p[2, 1] / (p[1, 1] * p[2, 2])))
    np.testing.assert_allclose(np.diag(sh), 1.0)
    probs = counts / counts.sum(1, keepdims=True)
    agree = cifar10h.image_similarity(probs)
    assert agree[3, 7] == pytest.approx(np.sum(probs[3] * probs[7]))
    cos = cifar10h.image_similarity(probs, "cosine")
    assert cos[3, 7] == pytest.approx(
        probs[3] @ probs[7] / np.linalg.norm(probs[3]) / np.linalg.norm(probs[7])
    )
    jsd = cifar10h.image_similarity(probs, "jsd")
    m = (probs[3] + probs[7]) / 2

    def kl(a, b):
        ok = a > 0
        return np.sum(a[ok] * np.log2(a[ok] / b[ok]))

    assert jsd[3, 7] == pytest.approx(1 - (kl(probs[3], m) + kl(probs[7], m)) / 2)
    np.testing.assert_allclose(np.diag(jsd), 1.0, atol=1e-12)


def test_matched_sets_are_disjoint_balanced_and_seeded():
    labels = np.repeat(np.arange(10), 40)
    sets = cifar10h.matched_sets(labels, per_class=12, n_sets=3, seed=2)
    assert all(np.bincount(labels[s], minlength=10).tolist() == [12] * 10 for s in sets)
    assert len(np.unique(np.concatenate(sets))) == 360
    again = cifar10h.matched_sets(labels, per_class=12, n_sets=3, seed=2)
    assert all(np.array_equal(a, b) for a, b in zip(sets, again, strict=True))
    with pytest.raises(ValueError, match="too few"):
        cifar10h.matched_sets(labels, per_class=12, n_sets=4)


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/cifar10h")
def test_real_cifar10h_confusions_and_alignment():
    counts = cifar10h.load_counts(REAL)
    official = cifar10h.load_official_labels(REAL)
    # People's majority label is the official one on 99.2% of images (row order check).
    assert cifar10h.check_row_order(counts, official) == pytest.approx(0.992, abs=0.001)
    p = cifar10h.class_confusion(counts, official)
    # SOURCES.md: cat/dog 0.042 and 0.034, deer/horse 0.043, automobile/truck 0.022.
    assert p[3, 5] == pytest.approx(0.042, abs=5e-4) and p[5, 3] == pytest.approx(0.034, abs=5e-4)
    assert p[4, 7] == pytest.approx(0.043, abs=5e-4) and p[1, 9] == pytest.approx(0.022, abs=5e-4)
    local = np.load(SHARED / "cifar10" / "cifar10_test.npz")["y"]
    index, rows = cifar10h.align_to_local(REAL, local, official)
    assert len(rows) == 1017 and np.array_equal(local[rows], official[index])


# --- the pipeline --------------------------------------------------------------------


def _fake_embeddings(path, labels, n_networks=3, seed=0):
    """fc2-like embeddings whose class means carry the planted cat/dog confusion."""
    rng = np.random.default_rng(seed)
    proto = np.abs(rng.normal(size=(10, 84)))
    proto[5] = proto[3] + 0.3 * np.abs(rng.normal(size=84))  # dog near cat
    fc2 = np.stack(
        [
            np.maximum(proto[labels] + rng.normal(scale=0.8, size=(len(labels), 84)) - 0.6, 0.0)
            for _ in range(n_networks)
        ]
    ).astype(np.float32)
    np.savez(path, fc2=fc2, labels=labels, test_accuracy=np.zeros(n_networks))
    return fc2


def test_exp3_on_generated_data_writes_results_and_resumes(
    fake, local_labels, tmp_path, monkeypatch
):
    folder, arrays = fake
    fc2 = _fake_embeddings(tmp_path / "embeddings.npz", local_labels)
    cfg = exp3.Exp3Config(n_null=N_NULL, per_class=4, n_sets=2, compare_networks=1)
    out = tmp_path / "out"
    res = exp3.run(cfg, out, tmp_path / "embeddings.npz", folder, progress=False)
    for f in ("summary.csv", "stats.csv", "inputs.npz", "figure_classes.png", "figure_images.pdf"):
        assert (out / f).is_file(), f
    with open(out / "compare.csv", newline="") as fh:
        compared = list(csv.DictReader(fh))
    assert {(r["set"], r["network"]) for r in compared} == {("set0", "0"), ("set1", "0")}
    assert len(compared) == 2 * 8
    assert [r["set"] for r in res.rows] == ["", "set0", "set1"]
    inputs = np.load(out / "inputs.npz")
    assert inputs["class_means"].shape == (3, 10, 84) and inputs["matched_fc2"].shape == (
        3,
        400,
        84,
    )
    # The class-level fits against a float64 reference, network by network.
    counts = arrays["cifar10h-counts.npy"]
    human = cifar10h.class_similarity(
        cifar10h.class_confusion(counts, arrays["cifar10_test_labels_official.npy"])
    )
    null = np.load(out / "null_classes.npz")["null_fits"]
    assert null.shape == (3, N_NULL, 84)
    means = np.stack([[f[local_labels == c].mean(0) for c in range(10)] for f in fc2.astype(float)])
    node_poz = np.mean(fc2 == 0, axis=1)
    with open(out / "summary.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["items"] == "classes"]
    for k in (84, 40, 10):
        fits = []
        for s in range(3):
            keep = np.argsort(node_poz[s], kind="stable")[:k]
            fits.append(ref_fit(ref_rsm_fast(means[s][:, keep]), human))
        row = next(r for r in rows if int(r["keep_count"]) == k)
        assert float(row["fit_mean"]) == pytest.approx(np.mean(fits), abs=1e-6)
        pooled = null[:, :, 84 - k].mean(0)
        assert float(row["null_mean"]) == pytest.approx(pooled.mean(), abs=1e-9)
    # A second run reuses every null and writes the same tables.
    names = (
        "summary.csv",
        "stats.csv",
        "null_set1.npz",
        "compare.csv",
        "compare_set1_network0.npz",
    )
    before = {f: (out / f).read_bytes() for f in names}

    def refuse(*args, **kwargs):
        raise AssertionError("a finished product was recomputed")

    monkeypatch.setattr("poz_jax.analysis.networks.null_fits", refuse)
    monkeypatch.setattr("poz_jax.analysis.comparison.compare_methods", refuse)
    exp3.run(cfg, out, out / "inputs.npz", folder, progress=False)  # from the committed inputs
    for f, b in before.items():
        assert (out / f).read_bytes() == b, f


def test_exp3_command_refuses_bad_input(fake, tmp_path, capsys, local_labels):
    from poz_jax import cli

    folder, _ = fake
    _fake_embeddings(tmp_path / "emb.npz", local_labels)
    base = ["exp3", "--inputs", str(tmp_path / "emb.npz"), "--cifar10h", str(folder)]
    assert cli.main([*base, "--n-null", "0", "--out", str(tmp_path / "o")]) == 2
    assert "--n-null" in capsys.readouterr().err
    assert cli.main([*base, "--per-class", "50", "--out", str(tmp_path / "o")]) == 2
    assert "too few" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_exp3_refuses_inputs_that_do_not_fit_and_leaves_out_as_it_was(
    fake, local_labels, tmp_path, capsys
):
    from poz_jax import cli

    folder, arrays = fake
    _fake_embeddings(tmp_path / "emb.npz", local_labels)
    out = tmp_path / "out"
    base = ["exp3", "--cifar10h", str(folder), "--out", str(out), "--no-progress"]
    small = ["--n-null", "3", "--per-class", "3", "--n-sets", "1", "--compare-networks", "0"]
    assert cli.main([*base, "--inputs", str(tmp_path / "emb.npz"), *small]) == 0
    capsys.readouterr()
    snap = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    good = dict(np.load(out / "inputs.npz"))

    def inputs(name, **change):
        data = {k: v for k, v in good.items() if k != "__meta__"}
        data.update(change)
        for k in [k for k, v in change.items() if v is None]:
            data.pop(k)
        np.savez(tmp_path / name, **data)
        return ["--inputs", str(tmp_path / name)]

    perm = np.random.default_rng(0).permutation(len(good["matched_labels"]))
    counts = arrays["cifar10h-counts.npy"]
    rows = np.random.default_rng(1).permutation(len(counts))
    probs = np.load(folder / "cifar10h-probs.npy")
    shuffled = _copy(
        folder,
        tmp_path / "shuffled",
        **{"cifar10h-counts.npy": counts[rows], "cifar10h-probs.npy": probs[rows]},
    )
    for args, message in (
        (
            inputs("a.npz", class_means=good["class_means"][:, :5]),
            "class_means must be (networks, 10",
        ),
        (inputs("b.npz", matched_labels=good["matched_labels"][perm]), "not the official labels"),
        (inputs("c.npz", matched_official=good["matched_official"] + 10**6), "indices into the"),
        (inputs("d.npz", matched_fc2=good["matched_fc2"][:, :5]), "matched_fc2 must be"),
        (inputs("e.npz", poz=None), "lacks poz"),
        (inputs("f.npz", matched_fc2=good["matched_fc2"][0]), "matched_fc2 must be"),
        (["--inputs", str(tmp_path / "missing.npz")], "it does not exist"),
        (["--inputs", str(folder / "cifar10h-counts.npy")], "it is not an .npz"),
    ):
        assert cli.main([*base, *args, *small]) == 2, message
        err = capsys.readouterr().err
        assert message in err and "delete" not in err, (message, err)
        assert {p.name: p.read_bytes() for p in sorted(out.iterdir())} == snap, message
    # CIFAR-10H rows out of the official order: people's majority meets the labels by chance.
    args = ["exp3", "--cifar10h", str(shuffled), "--out", str(out), "--no-progress"]
    assert cli.main([*args, "--inputs", str(out / "inputs.npz"), *small]) == 2
    assert "majority label matches the official label on only" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in sorted(out.iterdir())} == snap


def test_shepard_similarity_refuses_a_class_never_chosen_for_itself():
    p = np.full((3, 3), 0.5)
    np.fill_diagonal(p, [0.5, 0.0, 0.5])
    with pytest.raises(ValueError, match="class 1 was never chosen for its own images"):
        cifar10h.class_similarity(p, "shepard")
