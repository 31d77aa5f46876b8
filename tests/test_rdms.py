"""Human matrices in the field's files: rsatoolbox HDF5, NumPy, MATLAB; every model against
every participant in one product."""

from __future__ import annotations

import jax
import numpy as np
import pytest
import scipy.io
from conftest import ref_rsm

import poz_jax as pj
from poz_jax.data.errors import DataError
from poz_jax.data.rdms import load_rdms, save_rdms


def _rdms(rng, s=3, n=6):
    x = rng.normal(size=(s, n, 4))
    return np.stack([1 - ref_rsm(a) for a in x])  # dissimilarities, zero diagonal


def test_rsatoolbox_files_round_trip_exactly(rng, tmp_path):
    rsatoolbox = pytest.importorskip("rsatoolbox")
    mats = _rdms(rng, 3, 5)
    names = [f"img{i}.png" for i in range(5)]
    vec = np.stack([m[np.triu_indices(5, 1)] for m in mats])
    theirs = rsatoolbox.rdm.RDMs(
        vec,
        dissimilarity_measure="correlation",
        rdm_descriptors={"subject": ["a", "b", "c"]},
        pattern_descriptors={"image": names},
    )
    theirs.save(str(tmp_path / "r.hdf5"))
    wanted = names[::-1]
    got = load_rdms(tmp_path / "r.hdf5", items=wanted)
    assert got.kind == "dissimilarity" and got.measure == "correlation"
    assert got.participants == ("a", "b", "c") and got.items == tuple(wanted)
    np.testing.assert_array_equal(got.matrices, mats[:, ::-1][:, :, ::-1])
    # Back out, and rsatoolbox reads the same numbers and descriptors.
    save_rdms(tmp_path / "w.hdf5", got.matrices, "dissimilarity", {"subject": got.participants},
              got.items, measure="correlation")  # fmt: skip
    back = rsatoolbox.rdm.load_rdm(str(tmp_path / "w.hdf5"))
    np.testing.assert_array_equal(back.get_matrices(), got.matrices)
    assert list(back.rdm_descriptors["subject"]) == ["a", "b", "c"]
    assert list(back.pattern_descriptors["image"]) == wanted
    # A similarity is written as 1 - m: its correlation with people changes sign only.
    sim = np.stack([ref_rsm(a) for a in rng.normal(size=(2, 5, 3))])
    save_rdms(tmp_path / "s.hdf5", sim, "similarity")
    rdm = rsatoolbox.rdm.load_rdm(str(tmp_path / "s.hdf5"))
    np.testing.assert_allclose(rdm.get_matrices(), 1 - sim, rtol=0, atol=1e-15)
    with pytest.raises(DataError, match="differ from the stimuli"):
        load_rdms(tmp_path / "r.hdf5", items=[*names[:4], "other.png"])
    with pytest.raises(DataError, match="cannot be read as similarities"):
        load_rdms(tmp_path / "r.hdf5", kind="similarity")


def test_numpy_and_matlab_layouts_give_the_same_matrices(rng, tmp_path):
    mats = _rdms(rng, 4, 6)
    np.save(tmp_path / "stack.npy", mats)
    np.save(tmp_path / "one.npy", mats[0])
    iu = np.triu_indices(6, 1)
    np.savez(tmp_path / "cond.npz", rdms=mats[:, iu[0], iu[1]])
    struct = np.zeros((1, 4), dtype=[("RDM", object), ("name", object)])
    for i in range(4):
        struct[0, i] = (mats[i], f"subject{i + 1}")
    scipy.io.savemat(tmp_path / "s.mat", {"rdms": struct, "stacked": np.moveaxis(mats, 0, -1)})
    for path, key in (("stack.npy", None), ("cond.npz", None), ("s.mat", "rdms"),
                      ("s.mat", "stacked")):  # fmt: skip
        got = load_rdms(tmp_path / path, kind="dissimilarity", key=key)
        np.testing.assert_array_equal(got.matrices, mats, err_msg=path)
    assert load_rdms(tmp_path / "s.mat", "dissimilarity", "rdms").participants[3] == "subject4"
    assert load_rdms(tmp_path / "one.npy", "dissimilarity").matrices.shape == (1, 6, 6)


def test_bad_files_are_named_with_what_is_wrong(rng, tmp_path):
    mats = _rdms(rng, 2, 5)
    np.save(tmp_path / "m.npy", mats)
    with pytest.raises(DataError, match="say whether the matrices are similarities"):
        load_rdms(tmp_path / "m.npy")
    with pytest.raises(DataError, match="participant 0: read as a similarity, but its diagonal"):
        load_rdms(tmp_path / "m.npy", kind="similarity")
    (tmp_path / "r.pkl").write_bytes(b"\x80\x04.")
    with pytest.raises(DataError, match="Re-save it as HDF5"):
        load_rdms(tmp_path / "r.pkl", kind="dissimilarity")
    with pytest.raises(DataError, match="does not exist"):
        load_rdms(tmp_path / "none.npy", kind="dissimilarity")
    np.save(tmp_path / "c.npy", np.ones(7))
    with pytest.raises(DataError, match="not n\\(n-1\\)/2"):
        load_rdms(tmp_path / "c.npy", kind="dissimilarity")
    bad = mats.copy()
    bad[1, 0, 2] += 0.5
    np.save(tmp_path / "a.npy", bad)
    with pytest.raises(DataError, match="participant 1: the dissimilarity matrix is not symm"):
        load_rdms(tmp_path / "a.npy", kind="dissimilarity")
    bad = mats.copy()
    bad[0, 1, 3] = bad[0, 3, 1] = np.nan
    np.save(tmp_path / "n.npy", bad)
    with pytest.raises(DataError, match="NaN"):
        load_rdms(tmp_path / "n.npy", kind="dissimilarity")
    (tmp_path / "x.hdf5").write_bytes(b"not hdf5")
    with pytest.raises(DataError, match="not a readable HDF5"):
        load_rdms(tmp_path / "x.hdf5")
    with pytest.raises(DataError, match="kind must be one of"):
        load_rdms(tmp_path / "m.npy", kind="rdm")


def test_participant_fits_equal_fit_r_pair_by_pair(rng):
    models = np.stack([[ref_rsm(rng.normal(size=(7, 5))) for _ in range(3)] for _ in range(2)])
    people = _rdms(rng, 4, 7)
    with jax.enable_x64(True):
        got = np.asarray(pj.participant_fits(models, people, "dissimilarity"))
        assert got.shape == (2, 3, 4)
        for i in range(2):
            for j in range(3):
                want = np.asarray(pj.fit_r(models[i, j], people, "dissimilarity"))
                np.testing.assert_allclose(got[i, j], want, rtol=0, atol=1e-13)
    with pytest.raises(ValueError, match="one matrix each"):
        pj.participant_fits(models, people[0])
