"""The committed results follow from their committed inputs (``poz-jax reproduce``)."""

from __future__ import annotations

import csv
import functools
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import read_rows

from poz_jax.analysis.pruning import Analysis
from poz_jax.core.ranking import keep_grid
from poz_jax.io import files, provenance
from poz_jax.pipelines import exp1, exp3
from poz_jax.report.tables import exp1_tables
from poz_jax.study.reproduce import environment_warnings, format_report, reproduce

RESULTS = Path(__file__).resolve().parents[1] / "experiments" / "results"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
# Every committed folder, by name: its study and the data beside the checkout it needs.
FOLDERS = {
    "exp1": ("exp1", "cifar10"),
    "cifar10h": ("exp3", "cifar10h"),
    "peterson": ("peterson", "peterson2018"),
    "trim": ("trim", "cifar10"),
    "trim-fc1-full-epoch": ("trim", "cifar10"),
    "objects92": ("objects92", "kriegeskorte92"),
}


def test_every_committed_folder_is_checked_and_says_what_it_is():
    # A new folder without an entry here fails until it gets one (and a check below).
    committed = {p.name for p in RESULTS.iterdir() if p.is_dir()}
    assert committed == set(FOLDERS)
    for name, (study, _) in FOLDERS.items():
        config = provenance.read_config(RESULTS / name)
        assert provenance.study_of(config) == study
        assert set(config) == {"study", "config", "inputs", "environment"}, name


def test_exp1_tables_follow_from_its_analysis(tmp_path):
    # Without the data: the tables are the analysis's, digit for digit.
    run = RESULTS / "exp1"
    arrays, _ = files.load_arrays(run / "analysis.npz")
    arrays.pop("rsm")
    with open(run / "accuracy.csv") as fh:
        acc = np.array([float(r["test_accuracy"]) for r in csv.DictReader(fh)])
    tables = exp1_tables(Analysis(**arrays), keep_grid(exp1.N_NODES), acc)
    for name, rows in zip(("summary.csv", "per_network.csv", "accuracy.csv"), tables, strict=True):
        files.write_csv(tmp_path / name, rows)
        assert (tmp_path / name).read_text() == (run / name).read_text(), name


def test_the_committed_networks_are_the_recorded_ones():
    nets = RESULTS / "exp1" / exp1.NETWORKS
    meta = files.load_meta(nets)
    assert meta["epoch"] == 10 and meta["train"]["seeds"] == 50
    recorded = provenance.read_config(RESULTS / "exp1")["inputs"]["networks"]
    assert files.file_digest(nets) == recorded["sha256"]


def opt_in(what: str, minutes: int):
    """Skip a full re-derivation unless POZ_REPRODUCE=1 asks for it (it takes ``minutes``)."""
    return pytest.mark.skipif(
        os.environ.get("POZ_REPRODUCE") != "1",
        reason=f"re-runs {what} (about {minutes} min on 2 cores); set POZ_REPRODUCE=1",
    )


def _same_kind_or_skip(folder: Path) -> None:
    # Bit-identical tables are promised for the same library versions and
    # machine kind only (README, "Checking a result"); elsewhere, say why not.
    differs = environment_warnings(provenance.read_config(folder)["environment"])
    if differs:
        pytest.skip(f"not the environment {folder.name} was made in: {'; '.join(differs)}")


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "cifar10").is_dir(), reason="needs ../shared/data/cifar10")
def test_exp1_is_reproduced_from_its_networks_and_feeds_experiment_3(tmp_path):
    _same_kind_or_skip(RESULTS / "exp1")
    work = tmp_path / "exp1"
    report = reproduce(RESULTS / "exp1", data_dir=SHARED / "cifar10", workdir=work)
    assert report.ok, format_report(report, RESULTS / "exp1")
    if (SHARED / "cifar10h").is_dir():
        # Experiment 3's committed inputs are these networks' embeddings, prepared.
        derived = exp3.prepare_inputs(work / "embeddings.npz", SHARED / "cifar10h")
        committed = files.load_arrays(RESULTS / "cifar10h" / "inputs.npz")[0]
        assert derived.keys() == committed.keys()
        for key, value in derived.items():
            np.testing.assert_array_equal(value, committed[key], err_msg=key)


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "cifar10h").is_dir(), reason="needs ../shared/data/cifar10h")
@opt_in("Experiment 3's nulls and comparisons", minutes=35)
def test_cifar10h_is_reproduced_from_its_inputs():
    _same_kind_or_skip(RESULTS / "cifar10h")
    report = reproduce(RESULTS / "cifar10h", cifar10h_dir=SHARED / "cifar10h")
    assert report.ok, format_report(report, RESULTS / "cifar10h")


# The Peterson study's columns that follow from the networks and images alone,
# not from the random-pruning nulls or the comparison.
_NULL_FREE = {
    "summary.csv": ("set", "layer", "keep_count", "fit_mean", "fit_sd", "max_poz_mean", "n_nan"),
    "stats.csv": (
        "set", "layer", "network", "unpruned_fit", "best_keep_count", "best_fit",
        "share_poz_above_80", "noise_ceiling", "unpruned_fit_of_ceiling",
    ),
    "ceiling.csv": ("set", "measure", "fit", "noise_ceiling", "split_half_r"),
}  # fmt: skip


def _columns(path: Path, names) -> list[tuple]:
    return [tuple(r[c] for c in names) for r in read_rows(path)]


@pytest.mark.slow
@pytest.mark.skipif(
    not (SHARED / "peterson2018").is_dir(), reason="needs ../shared/data/peterson2018"
)
def test_peterson_fits_follow_from_the_committed_networks_and_images(tmp_path):
    # Everything but the nulls and comparisons, re-derived in about a minute:
    # the same run with 2 random orders and no comparison.
    from poz_jax.pipelines import peterson

    folder = RESULTS / "peterson"
    _same_kind_or_skip(folder)
    _, fields = provenance.saved_config(folder)
    cfg = peterson.PetersonConfig.from_dict({**fields, "n_null": 2, "compare_networks": 0})
    nets = RESULTS / "exp1" / exp1.NETWORKS
    recorded = provenance.read_config(folder)["inputs"]["networks"]
    assert files.file_digest(nets) == recorded["sha256"]
    peterson.run(cfg, tmp_path, SHARED / "peterson2018", nets, progress=False)
    for table, names in _NULL_FREE.items():
        assert _columns(tmp_path / table, names) == _columns(folder / table, names), table


@pytest.mark.slow
@pytest.mark.skipif(
    not (SHARED / "peterson2018").is_dir(), reason="needs ../shared/data/peterson2018"
)
@opt_in("the Peterson study's nulls and comparisons", minutes=35)
def test_peterson_is_reproduced_from_the_committed_networks():
    folder = RESULTS / "peterson"
    _same_kind_or_skip(folder)
    report = reproduce(
        folder, stimuli=SHARED / "peterson2018", networks=RESULTS / "exp1" / exp1.NETWORKS
    )
    assert report.ok, format_report(report, folder)


def trim_rows(path: Path) -> list[dict]:
    """``trim.csv`` rows with the types the study wrote them from (CSV round-trips floats)."""
    ints = ("draw", "network", "nodes_kept", "parameters")
    rows = read_rows(path)
    for r in rows:
        for k, v in r.items():
            if k not in ("layer", "method"):
                r[k] = None if v == "" else int(v) if k in ints else float(v)
    return rows


@pytest.mark.parametrize("name", ["trim", "trim-fc1-full-epoch"])
def test_trim_summary_follows_from_its_rows(name, tmp_path):
    # Without the data: summary.csv is trim.summarise of trim.csv, byte for byte.
    from poz_jax.pipelines import trim

    folder = RESULTS / name
    files.write_csv(tmp_path / "summary.csv", trim.summarise(trim_rows(folder / "trim.csv")))
    assert (tmp_path / "summary.csv").read_text() == (folder / "summary.csv").read_text()


@functools.cache
def _untrimmed(n_networks: int) -> dict[str, np.ndarray]:
    """The first ``n_networks`` committed networks measured as the trimming study measures them.

    Accuracy and both fits before any trimming: one pass serves both trim folders
    (the same 10 networks, the same test images and people).
    """
    import jax

    from poz_jax.core.rsa import rsm
    from poz_jax.data import cifar10h
    from poz_jax.data.cifar10 import load_cifar10
    from poz_jax.models.lenet import load_networks
    from poz_jax.pipelines import trim
    from poz_jax.study.runtime import float64

    params, _ = load_networks(RESULTS / "exp1" / exp1.NETWORKS)
    params = jax.tree_util.tree_map(lambda a: np.asarray(a[:n_networks]), params)
    counts = cifar10h.load_counts(SHARED / "cifar10h")
    official = cifar10h.load_official_labels(SHARED / "cifar10h")
    human = cifar10h.class_similarity(cifar10h.class_confusion(counts, official))
    evals = trim.Evaluator(None, human, load_cifar10("test", SHARED / "cifar10"))
    got = evals.measure(params, {})
    with float64():
        evals.own = np.asarray(rsm(got["class_means"]))
    got.update(evals.fits(got["class_means"], np.ones((n_networks, 84)), np.arange(n_networks)))
    return got


@pytest.mark.slow
@pytest.mark.skipif(
    not (SHARED / "cifar10").is_dir() or not (SHARED / "cifar10h").is_dir(),
    reason="needs ../shared/data/cifar10 and cifar10h",
)
@pytest.mark.parametrize("name", ["trim", "trim-fc1-full-epoch"])
def test_trim_untrimmed_rows_follow_from_the_committed_networks(name):
    # A sample that needs no fine-tuning: each folder's untrimmed networks, their
    # accuracy and fits, for the whole group the study evaluated (XLA's float32
    # rounding follows the batch's shape: a 12-network slice of a 60-network group
    # moved class means by 4e-7), so the same program on the same machine kind
    # gives the same bits. The trimmed groups (60 to 150 networks, 0.5 to 3 minutes
    # each before fine-tuning) and the fine-tuning are left to POZ_REPRODUCE=1.
    from poz_jax.pipelines import trim

    folder = RESULTS / name
    _same_kind_or_skip(folder)
    _, fields = provenance.saved_config(folder)
    cfg = trim.TrimConfig.from_dict(fields)
    nets = RESULTS / "exp1" / exp1.NETWORKS
    assert files.file_digest(nets) == provenance.read_config(folder)["inputs"]["networks"]["sha256"]
    got = _untrimmed(cfg.n_networks)
    committed = [r for r in read_rows(folder / "trim.csv") if r["layer"] == "none"]
    assert len(committed) == cfg.n_networks
    for m in ("accuracy", "fit_untrimmed", "fit_human"):
        want = [float(r[f"{m}_before"]) for r in committed]
        np.testing.assert_array_equal(got[m], want, err_msg=f"{name} {m}")


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "cifar10").is_dir(), reason="needs ../shared/data/cifar10")
@opt_in("the trimming study's fine-tuning", minutes=46)
def test_trim_is_reproduced_from_the_committed_networks():
    folder = RESULTS / "trim"
    _same_kind_or_skip(folder)
    report = reproduce(
        folder,
        data_dir=SHARED / "cifar10",
        cifar10h_dir=SHARED / "cifar10h",
        networks=RESULTS / "exp1" / exp1.NETWORKS,
    )
    assert report.ok, format_report(report, folder)


@pytest.mark.slow
@pytest.mark.skipif(
    not (SHARED / "kriegeskorte92").is_dir(), reason="needs ../shared/data/kriegeskorte92"
)
def test_objects92_fits_and_ceilings_follow_from_the_networks_and_data():
    # The columns that need no null (every participant's unpruned and best r of
    # fc2 at 32 px, each reference model's group row, both ceilings), computed the
    # way the study computes them: bit for bit on the machine kind it was made on.
    # POZ_REPRODUCE=1 re-runs the whole study (about 20 minutes on 2 cores).
    import jax.numpy as jnp

    from poz_jax.analysis import stats
    from poz_jax.core.ranking import keep_order, poz
    from poz_jax.core.reliability import noise_ceiling
    from poz_jax.core.rsa import participant_fits
    from poz_jax.core.sweeps import sweep_rsms
    from poz_jax.data.images import resize_images
    from poz_jax.data.objects92 import load_objects92
    from poz_jax.models.lenet import layer_outputs, load_networks
    from poz_jax.pipelines import objects92
    from poz_jax.study.runtime import float64

    folder = RESULTS / "objects92"
    _same_kind_or_skip(folder)
    _, fields = provenance.saved_config(folder)
    cfg = objects92.Objects92Config(**{k: tuple(v) if isinstance(v, list) else v
                                       for k, v in fields.items()})  # fmt: skip
    d = load_objects92(SHARED / "kriegeskorte92")
    people = np.concatenate([t.matrices for t in d.targets.values()])
    params, _ = load_networks(RESULTS / "exp1" / exp1.NETWORKS)
    acts = layer_outputs(params, resize_images(d.images, 32, 32), ("fc2",))["fc2"]
    with float64():
        acts = np.asarray(acts, np.float64)
        counts = keep_grid(84, step=1)
        order = keep_order(np.asarray(poz(jnp.asarray(acts))))
        r = np.mean(
            [participant_fits(sweep_rsms(acts[i], counts, order[i]), people, "dissimilarity")
             for i in range(len(acts))], axis=0,
        )  # fmt: skip
        refs = objects92._references(objects92._pixel_rsms(cfg, d.images, np.float64), d, people)
        ceilings = {n: noise_ceiling(t.matrices) for n, t in d.targets.items()}
    rows = [r_ for r_ in read_rows(folder / "stats.csv")
            if (r_["layer"], r_["scale"]) == ("fc2", "32")]  # fmt: skip
    assert len(rows) == r.shape[1]
    best = [int(stats.best_along(r[:, s])) for s in range(r.shape[1])]
    np.testing.assert_array_equal([float(x["unpruned_r"]) for x in rows], r[0])
    np.testing.assert_array_equal(
        [float(x["best_r"]) for x in rows], [r[b, s] for s, b in enumerate(best)]
    )
    group = read_rows(folder / "group.csv")
    n_judged = len(d.targets["judgments"].participants)
    for model, values in refs.items():
        row = next(g for g in group if g["target"] == "judgments" and g["model"] == model)
        assert float(row["mean"]) == stats.across(values[:n_judged])["mean"], model
    for row in read_rows(folder / "ceiling.csv"):
        c = ceilings[row["target"]]
        assert (float(row["lower_r"]), float(row["upper_r"])) == (float(c.lower), float(c.upper))


@pytest.mark.slow
@pytest.mark.skipif(
    not (SHARED / "kriegeskorte92").is_dir(), reason="needs ../shared/data/kriegeskorte92"
)
@opt_in("the 92-image study", minutes=20)
def test_objects92_is_reproduced():
    folder = RESULTS / "objects92"
    _same_kind_or_skip(folder)
    report = reproduce(folder, data=SHARED / "kriegeskorte92")
    assert report.ok, format_report(report, folder)
