"""The trimming study end to end on generated data: tables against references, resume, CLI."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from conftest import lenet_params, read_rows, ref_fit, ref_rsm

from poz_jax.cli import main
from poz_jax.data import cifar10h
from poz_jax.data.synthetic import write_fake_cifar10, write_fake_cifar10h
from poz_jax.io import files
from poz_jax.models.lenet import LAYERS, load_networks
from poz_jax.models.trim import keep_masks, masked_eval, size
from poz_jax.pipelines import trim
from poz_jax.report.plots import trim_figure

pytestmark = pytest.mark.slow  # fine-tuning: outside the fast loop

CFG = trim.TrimConfig(
    n_networks=2,
    layers=("conv2", "fc2"),
    keep=(0.5, 0.25),
    random_draws=1,
    score_images=40,
    tune_images=50,
    rounds=2,
)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trim")
    where, data = write_fake_cifar10(folder / "cifar", "npz", n_train=60, n_test=80, seed=3)
    write_fake_cifar10h(folder / "h", np.repeat(np.arange(10), 1000), n_matched=10, seed=2)
    params = lenet_params(3, 7)
    files.save_tree(folder / "networks.npz", params, {})
    return {"cifar": where, "h": folder / "h", "networks": folder / "networks.npz", "data": data}


def _run(inputs, out, cfg=CFG, progress=False):
    return trim.run(
        cfg, out, inputs["networks"], inputs["cifar"], inputs["h"], progress=progress, verify=False
    )


def test_tables_match_references_and_a_rerun_reuses_everything(inputs, tmp_path, capfd):
    res = _run(inputs, tmp_path)
    # progress=False reaches the fine-tuning too: no epoch bars (an earlier draft
    # passed it into fine_tune's compute slot, and the bars came on).
    assert "epoch 1/" not in capfd.readouterr().err
    rows = read_rows(tmp_path / "trim.csv")
    designs = 2 + CFG.random_draws
    assert len(rows) == 2 * (1 + len(CFG.layers) * designs * len(CFG.keep))
    params, _ = load_networks(inputs["networks"])
    params = jax.tree_util.tree_map(lambda a: a[:2], params)
    x_test, y_test = inputs["data"]["test"]
    counts = cifar10h.load_counts(inputs["h"])
    human = cifar10h.class_similarity(
        cifar10h.class_confusion(counts, cifar10h.load_official_labels(inputs["h"]))
    )
    scores = files.load_arrays(tmp_path / "scores.npz")[0]
    untrimmed = files.load_arrays(tmp_path / "untrimmed.npz")[0]
    groups = {}
    rows_of = {}
    for r in rows:
        rows_of.setdefault((r["layer"], r["network"]), []).append(r)
    for r in rows:
        if r["method"] == "none":
            continue
        layer, s, k = r["layer"], int(r["network"]), int(r["nodes_kept"])
        assert k == max(1, int(np.floor(float(r["keep_fraction"]) * LAYERS[layer] + 0.5)))
        draw = int(r["draw"])
        mask = np.asarray(keep_masks(scores[f"{r['method']}_{layer}"][s, draw], [k]))[0]
        assert mask.sum() == k
        one = jax.tree_util.tree_map(lambda a, s=s: a[s : s + 1], params)
        ev = masked_eval(one, {layer: mask[None]}, x_test, y_test)
        assert float(r["accuracy_before"]) == pytest.approx(ev["accuracy"][0], abs=1e-12)
        widths = [k if n == layer else d for n, d in LAYERS.items()]
        assert int(r["parameters"]) == size(tuple(widths))["parameters"]
        # The class means the study stored are this network's (up to float32
        # summation order: 1e-4 of the largest, as in test_trim), and its fits are
        # those of the authors' loop RSM of them over the nodes kept.
        group = groups.setdefault(layer, files.load_arrays(tmp_path / f"group_{layer}.npz")[0])
        i = s * designs * len(CFG.keep) + rows_of[layer, r["network"]].index(r)
        means = group["before_class_means"][i]
        np.testing.assert_allclose(
            means, ev["class_means"][0], rtol=0, atol=1e-4 * np.abs(means).max()
        )
        if layer == "fc2":
            means = means[:, mask == 1]
        want_h = ref_fit(ref_rsm(means), human)
        want_u = ref_fit(ref_rsm(means), ref_rsm(untrimmed["class_means"][s]))
        assert float(r["fit_human_before"]) == pytest.approx(want_h, rel=1e-9, abs=1e-12)
        assert float(r["fit_untrimmed_before"]) == pytest.approx(want_u, rel=1e-9, abs=1e-12)
    # The summary is the mean over networks (and draws) of these rows.
    cell = [r for r in rows if r["layer"] == "fc2" and r["method"] == "apoz"]
    cell = [r for r in cell if float(r["keep_fraction"]) == 0.5]
    want = np.mean([float(r["accuracy_after"]) for r in cell])
    got = next(
        r
        for r in res.rows
        if r["layer"] == "fc2" and r["method"] == "apoz" and r["keep_fraction"] == 0.5
    )
    assert got["accuracy_after_mean"] == pytest.approx(want, rel=1e-12)
    # Its paired columns: each network against its own control, fine-tuned and not.
    ctrl = {r["network"]: r for r in rows if r["method"] == "none"}
    for name, ref in (("control", "accuracy_after"), ("untrimmed", "accuracy_before")):
        diff = [float(r["accuracy_after"]) - float(ctrl[r["network"]][ref]) for r in cell]
        col = f"accuracy_after_minus_{name}"
        assert got[f"{col}_mean"] == pytest.approx(np.mean(diff), rel=1e-9, abs=1e-15)
        assert got[f"{col}_sd"] == pytest.approx(np.std(diff, ddof=1), rel=1e-9, abs=1e-15)
    none = next(r for r in res.rows if r["method"] == "none")
    assert none["accuracy_after_minus_control_mean"] == 0.0
    path = read_rows(tmp_path / "iterative.csv")
    assert [int(r["round"]) for r in path] == [0, 1, 2]
    kept = [float(r["parameters_kept_mean"]) for r in path]
    assert kept[0] == 1.0 and kept[2] < kept[1] < 1.0
    assert {p.name for p in res.figures} == {"figure.png", "figure.pdf"}
    assert len(trim_figure(res.rows, res.extra["iterative"]).axes) == len(CFG.layers) + 1
    # Stored whole: no epoch checkpoint left, and a re-run recomputes nothing.
    assert not list(tmp_path.glob("fine_tune/*/checkpoint.npz"))
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*.npz")}
    _run(inputs, tmp_path)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("*.npz")} == stamps
    assert read_rows(tmp_path / "trim.csv") == rows


def test_trimmed_nodes_stay_trimmed_through_the_fine_tuning(inputs, tmp_path, capfd):
    cfg = trim.TrimConfig(**{**CFG.__dict__, "layers": ("fc1",), "rounds": 0})
    res = _run(inputs, tmp_path, cfg, progress=True)  # the bars' path, as the CLI runs it
    assert "epoch 1/1" in capfd.readouterr().err
    # No rounds: the figure has the layer's panel and no empty iterative one.
    assert len(res.extra["iterative"]) == 1
    assert len(trim_figure(res.rows, res.extra["iterative"]).axes) == 1
    group = files.load_arrays(tmp_path / "group_fc1.npz")[0]
    params, _ = load_networks(inputs["networks"])
    leaves = jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda a: a[:2], params))
    treedef = jax.tree_util.tree_structure(params)
    names = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)]
    i = names.index("['fc1']['kernel']")
    scores = files.load_arrays(tmp_path / "scores.npz")[0]
    masks = trim.layer_masks(cfg, scores, "fc1").reshape(-1, 120)
    reps = len(masks) // 2
    start = np.repeat(leaves[i], reps, 0)
    tuned = group[f"leaf{i}"]
    assert treedef.num_leaves == len(leaves)
    for n, m in enumerate(masks):
        np.testing.assert_array_equal(tuned[n][:, m == 0], start[n][:, m == 0])
        assert not np.array_equal(tuned[n][:, m == 1], start[n][:, m == 1])


def test_config_and_cli_refuse_bad_settings(inputs, tmp_path, capsys):
    for bad, match in [
        ({"keep": (0.5, 1.0)}, "strictly between 0 and 1"),
        ({"layers": ("fc3",)}, "layers"),
        ({"tune_images": 10}, "tune_images"),
        ({"sds": -1.0}, "sds"),
    ]:
        with pytest.raises(ValueError, match=match):
            trim.TrimConfig(**bad)
    code = main(["trim", "--cifar10h", str(inputs["h"]), "--keep", "0.5,x", "--out", str(tmp_path)])
    assert code == 2 and "--keep" in capsys.readouterr().err
    code = main(
        ["trim", "--cifar10h", str(inputs["h"]), "--networks", str(inputs["networks"]),
         "--n-networks", "9", "--data-dir", str(inputs["cifar"]), "--out", str(tmp_path / "o")]
    )  # fmt: skip
    assert code == 2 and "holds 3 networks" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["trim", "--help"])
    assert "Hu et al." in capsys.readouterr().out
