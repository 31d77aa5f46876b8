"""A model's activations and people's matrices from the field's files reach a sweep.

thingsvision and Net2Brain are not installed here: their layouts are written
by the test as their documentation describes them (thingsvision:
``features.npy`` or ``features.hdf5`` with ``file_names.txt`` in the output
folder; Net2Brain: one array per image in a consolidated ``.npz``).
rsatoolbox's files are written by rsatoolbox itself.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from conftest import ref_rsm

from poz_jax.data import load_embeddings, load_stimulus_sets
from poz_jax.data.errors import DataError
from poz_jax.data.features import load_features
from poz_jax.data.synthetic import write_stimulus_sets


def _thingsvision(folder, feats, names, fmt="npy"):
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "npy":
        np.save(folder / "features.npy", feats)
    else:
        with h5py.File(folder / "features.hdf5", "w") as f:
            f["features"] = feats
    (folder / "file_names.txt").write_text("".join(f"images/{n}\n" for n in names))


def test_each_layout_gives_the_rows_in_the_stimuli_order(rng, tmp_path):
    names = [f"im{i}.png" for i in range(6)]
    feats = rng.normal(size=(6, 3, 2, 2))  # a feature map: flattened, one node per unit
    flat = feats.reshape(6, -1)
    shuffled = [5, 3, 1, 0, 2, 4]
    _thingsvision(tmp_path / "tv", feats[shuffled], [names[i] for i in shuffled])
    _thingsvision(tmp_path / "tv5", feats[shuffled], [names[i] for i in shuffled], "hdf5")
    np.savez(
        tmp_path / "consolidated_fc7.npz", **{n[:-4]: flat[i][None] for i, n in enumerate(names)}
    )
    np.save(tmp_path / "plain.npy", flat)
    for path, layout in (("tv", "thingsvision"), ("tv/features.npy", "thingsvision"),
                         ("tv5", "thingsvision"), ("consolidated_fc7.npz", "net2brain"),
                         ("plain.npy", "npy")):  # fmt: skip
        got = load_features(tmp_path / path, items=names)
        assert got.layout == layout
        np.testing.assert_array_equal(got.array, flat, err_msg=path)
    with pytest.raises(DataError, match="differ from the stimuli"):
        load_features(tmp_path / "tv", items=[*names[:5], "other.png"])
    with pytest.raises(DataError, match="without thingsvision's"):
        load_features(tmp_path)
    np.save(tmp_path / "bad.npy", np.full((6, 2), np.nan))
    with pytest.raises(DataError, match="NaN"):
        load_features(tmp_path / "bad.npy")


def test_a_thingsvision_folder_and_an_rsatoolbox_file_go_into_a_set(rng, tmp_path):
    rsatoolbox = pytest.importorskip("rsatoolbox")
    write_stimulus_sets(tmp_path / "stimuli", names=("discs",), n_items=8)
    folder = tmp_path / "stimuli" / "discs"
    sets = load_stimulus_sets(folder)
    names = [p.name for p in sets["discs"].images]
    feats = rng.normal(size=(8, 5))
    _thingsvision(tmp_path / "tv", feats[::-1], names[::-1])
    got = load_embeddings(tmp_path / "tv", sets)
    np.testing.assert_array_equal(got["discs"], feats)
    # People's RDMs from rsatoolbox, in another order, replace the folder's matrix.
    for p in folder.iterdir():
        if p.stem == "similarity":
            p.unlink()
    people = np.stack([1 - ref_rsm(rng.normal(size=(8, 3))) for _ in range(3)])
    iu = np.triu_indices(8, 1)
    perm = rng.permutation(8)
    rdms = rsatoolbox.rdm.RDMs(
        np.stack([m[perm][:, perm][iu] for m in people]),
        pattern_descriptors={"image": [names[i] for i in perm]},
    )
    rdms.save(str(folder / "similarity.hdf5"))
    s = load_stimulus_sets(folder)["discs"]
    mean = people.mean(0)
    np.testing.assert_allclose(s.similarity, mean.max() - mean, rtol=0, atol=1e-15)
    # The file alone is one set without images.
    alone = load_stimulus_sets(folder / "similarity.hdf5")
    assert list(alone) == ["similarity"] and alone["similarity"].images is None


@pytest.mark.slow
def test_exp2_writes_rdms_rsatoolbox_scores_as_stats_and_takes_dissimilarities(tmp_path, capsys):
    rsatoolbox = pytest.importorskip("rsatoolbox")
    import scipy.io
    from conftest import read_rows

    from poz_jax.cli import main
    from poz_jax.io import files

    write_stimulus_sets(tmp_path / "stimuli", names=("discs", "hues"), n_items=12)
    emb = str(tmp_path / "stimuli" / "embeddings.npz")
    args = ["exp2", "--stimuli", str(tmp_path / "stimuli"), "--embeddings", emb,
            "--n-null", "5", "--no-progress"]  # fmt: skip
    assert main([*args, "--save-rdms", "--out", str(tmp_path / "a")]) == 0
    rows = {r["set"]: r for r in read_rows(tmp_path / "a" / "stats.csv")}
    sets = load_stimulus_sets(tmp_path / "stimuli")
    iu = np.triu_indices(12, 1)
    for name, s in sets.items():
        rdms = rsatoolbox.rdm.load_rdm(str(tmp_path / "a" / f"rdms_{name}.hdf5"))
        human = rsatoolbox.rdm.RDMs(s.similarity[iu][None])
        unpruned = rdms.subset("level", "unpruned")
        r2 = rsatoolbox.rdm.compare(unpruned, human, method="corr")[0, 0] ** 2
        assert r2 == pytest.approx(float(rows[name]["unpruned_fit"]), abs=1e-10)
        best = rdms.subset("level", "best")
        assert int(best.rdm_descriptors["keep_count"][0]) == int(
            rows[name]["best_keep_count_any_level"]
        )
        arrays = files.load_arrays(tmp_path / "a" / "analysis.npz")[0]
        assert list(arrays[f"items_{name}"]) == [p.name for p in s.images]
        assert sorted(arrays[f"order_{name}"]) == list(range(len(arrays[f"poz_{name}"])))
    # The same sets with their matrices stored as dissimilarities (max - s): refused as
    # similarities, and the same fits once their kind is said.
    for name, s in sets.items():
        path = tmp_path / "stimuli" / name / "similarity.mat"
        if path.exists():
            path.unlink()
        for p in (tmp_path / "stimuli" / name).glob("similarity.*"):
            p.unlink()
        d = s.similarity.max() - s.similarity
        np.fill_diagonal(d, 0.0)  # an RDM: each item 0 from itself (the fits never see it)
        scipy.io.savemat(tmp_path / "stimuli" / name / "similarity.mat", {"S": d})
    assert main([*args, "--out", str(tmp_path / "b")]) == 2
    assert "diagonal is all 0" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
    assert main([*args, "--human-kind", "dissimilarity", "--out", str(tmp_path / "c")]) == 0
    got = {r["set"]: r for r in read_rows(tmp_path / "c" / "stats.csv")}
    for name in sets:
        assert float(got[name]["unpruned_fit"]) == pytest.approx(
            float(rows[name]["unpruned_fit"]), abs=1e-12
        )
    config = json.loads((tmp_path / "c" / "config.json").read_text())
    assert config["config"]["human_kind"] == "dissimilarity"
