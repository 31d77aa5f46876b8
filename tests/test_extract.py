"""A PyTorch model's and a Flax model's layers reach a sweep without code of the user's own.

The torch model is a small ``nn.Sequential`` with an in-place ReLU and a
reused module, so nothing is downloaded; its outputs are checked against
the same forward pass written out by hand.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from poz_jax.cli import main
from poz_jax.data import load_stimulus_sets
from poz_jax.data.synthetic import write_stimulus_sets
from poz_jax.io import files

FACTORY = '''
import torch
from torch import nn

class Twice(nn.Module):
    """A block that calls its one ReLU twice (as torchvision's BasicBlock does)."""
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.relu = nn.ReLU(inplace=True)
    def forward(self, x):
        return self.relu(self.fc(self.relu(x)))

def small():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, stride=4), nn.ReLU(inplace=True), nn.Flatten(),
        nn.Linear(256, 8), Twice(), nn.Linear(8, 5),
    )
'''


@pytest.fixture
def model_module(tmp_path, monkeypatch):
    (tmp_path / "tiny_models.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "tiny_models:small"
    sys.modules.pop("tiny_models", None)


@pytest.mark.slow
# Layers 0 and 3 are taken before their ReLU: their sweeps rightly warn that no node is silent.
@pytest.mark.filterwarnings("ignore:no activation is exactly 0")
def test_torch_layers_equal_the_forward_pass_by_hand_and_reach_exp2(tmp_path, model_module):
    torch = pytest.importorskip("torch")
    from poz_jax.models.extract import imagenet_input, load_torch_model, torch_features

    write_stimulus_sets(tmp_path / "stimuli", names=("discs",), n_items=9)
    args = ["extract", "--model", model_module, "--layer", "0", "--layer", "3", "--layer", "4",
            "--stimuli", str(tmp_path / "stimuli"), "--out", str(tmp_path / "feats"),
            "--size", "32", "--resize", "36"]  # fmt: skip
    assert main(args) == 0
    sets = load_stimulus_sets(tmp_path / "stimuli")
    from poz_jax.data.images import load_images

    x = torch.from_numpy(imagenet_input(load_images(sets["discs"].images, 36, 32)))
    net = load_torch_model(model_module)
    with torch.no_grad():
        conv = net[0](x)  # before the in-place ReLU overwrites it
        want0 = conv.reshape(9, -1).numpy().copy()
        want3 = net[3](net[2](torch.relu(conv))).numpy()
    got0 = files.load_arrays(tmp_path / "feats" / "features_0.npz")[0]["discs"]
    got3 = files.load_arrays(tmp_path / "feats" / "features_3.npz")[0]["discs"]
    np.testing.assert_array_equal(got0, want0)  # not the ReLU'd values
    assert (got0 < 0).any()
    np.testing.assert_allclose(got3, want3, rtol=1e-6, atol=1e-6)
    # The sweep, in the same command: every keep count's fit, as analyse gives it.
    from conftest import read_rows

    import poz_jax as pj

    rows = [r for r in read_rows(tmp_path / "feats" / "sweep_4.csv") if r["set"] == "discs"]
    got4 = files.load_arrays(tmp_path / "feats" / "features_4.npz")[0]["discs"]
    want = pj.analyse(got4, sets["discs"].similarity, pj.keep_grid(8, step=1)).fit
    assert [int(r["keep_count"]) for r in rows] == list(range(8, 0, -1))
    np.testing.assert_array_equal([float(r["fit"]) for r in rows], want)
    record = json.loads((tmp_path / "feats" / "extract.json").read_text())
    assert record["model"] == model_module and record["layers"] == ["0", "3", "4"]
    # One more command, no code: the sweep, nulls and tables of Experiment 2, on the
    # block whose ReLU runs twice (the block itself runs once).
    out = tmp_path / "exp2"
    assert main(["exp2", "--stimuli", str(tmp_path / "stimuli"), "--embeddings",
                 str(tmp_path / "feats" / "features_4.npz"), "--n-null", "5",
                 "--keep-step", "1", "--out", str(out), "--no-progress"]) == 0  # fmt: skip
    assert (out / "stats.csv").is_file()
    # The reused ReLU is refused, naming it.
    with pytest.raises(ValueError, match="'4.relu' runs more than once"):
        torch_features(net, load_images(sets["discs"].images, 36, 32), ["4.relu"])
    with pytest.raises(ValueError, match="not modules of the model"):
        torch_features(net, load_images(sets["discs"].images, 36, 32), ["nope"])


def test_flax_intermediates_are_the_layers_outputs(rng):
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    from poz_jax.models.extract import flax_features

    class Small(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.relu(nn.Dense(6)(x))
            return nn.Dense(3)(h)

    x = jnp.asarray(rng.normal(size=(5, 4)), jnp.float32)
    model = Small()
    variables = model.init(jax.random.PRNGKey(0), x)
    got = flax_features(model, variables, x, ["Dense_0", "Dense_1"])
    p = variables["params"]
    want0 = np.asarray(x @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"])
    np.testing.assert_allclose(got["Dense_0"], want0, rtol=1e-6, atol=1e-6)
    assert got["Dense_1"].shape == (5, 3)
    with pytest.raises(ValueError, match="not a submodule"):
        flax_features(model, variables, x, ["Dense_7"])


def test_export_scores_give_poz_and_a_mask_torch_pruning_takes(rng, tmp_path):
    x = np.maximum(rng.normal(size=(20, 7)) - np.linspace(-1, 1, 7), 0)
    np.save(tmp_path / "feats.npy", x)
    assert main(["export-scores", str(tmp_path / "feats.npy"), "--keep-fraction", "0.5",
                 "--out", str(tmp_path / "s")]) == 0  # fmt: skip
    got = files.load_arrays(tmp_path / "s" / "scores.npz")[0]
    want = (x == 0).mean(0)
    # A mean of 20 zeros and ones in float64: rounding below 20 * eps = 4.4e-15.
    np.testing.assert_allclose(got["poz"], want, rtol=0, atol=20 * np.finfo(float).eps)
    np.testing.assert_array_equal(got["order"], np.argsort(want, kind="stable"))
    assert got["mask"].sum() == 3 and set(np.flatnonzero(got["mask"])) == set(got["order"][:3])
    torch = pytest.importorskip("torch")
    layer = torch.nn.Linear(4, 7)
    rows = torch.from_numpy(np.repeat(got["mask"][:, None], 4, axis=1).astype(np.float32))
    from torch.nn.utils import prune

    prune.custom_from_mask(layer, "weight", rows)
    pruned = np.flatnonzero((layer.weight.detach().numpy() == 0).all(1))
    assert set(pruned) == set(np.flatnonzero(~got["mask"]))


def test_export_scores_pool_the_sets_of_a_per_set_npz(rng, tmp_path):
    # Two sets of equal shape: never mistaken for Net2Brain's one-array-per-image layout.
    from poz_jax.data.errors import DataError
    from poz_jax.data.features import load_features

    a = np.maximum(rng.normal(size=(6, 5)), 0)
    b = np.maximum(rng.normal(size=(6, 5)), 0)
    np.savez(tmp_path / "sets.npz", discs=a, hues=b)
    with pytest.raises(DataError, match="not one image's each"):
        load_features(tmp_path / "sets.npz")
    assert main(["export-scores", str(tmp_path / "sets.npz"), "--out", str(tmp_path / "s")]) == 0
    got = files.load_arrays(tmp_path / "s" / "scores.npz")[0]
    want = (np.concatenate([a, b]) == 0).mean(0)
    # A mean of 12 zeros and ones in float64: rounding below 12 * eps.
    np.testing.assert_allclose(got["poz"], want, rtol=0, atol=12 * np.finfo(float).eps)
