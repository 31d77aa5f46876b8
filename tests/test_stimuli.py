"""Stimulus sets: loaders in every layout, validation errors, image preprocessing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from poz_jax.data import (
    DataError,
    load_embeddings,
    load_similarity,
    load_stimulus_folder,
    load_stimulus_sets,
)
from poz_jax.data.images import MEAN, STD, imagenet_standardise, load_image, load_images
from poz_jax.data.synthetic import feature_similarity, write_stimulus_sets

ANIMALS = (
    Path(__file__).resolve().parents[2]
    / "shared/data/peterson2018/animals/turkResults_CogSci2016.mat"
)


@pytest.fixture(scope="module")
def stimuli(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stimuli")
    feats = write_stimulus_sets(folder, names=("discs", "hues", "mats"), n_items=9, n_nodes=50)
    return folder, feats


def test_folder_of_sets_in_every_matrix_format(stimuli):
    folder, feats = stimuli
    sets = load_stimulus_sets(folder)
    assert list(sets) == ["discs", "hues", "mats"]
    for name, s in sets.items():
        np.testing.assert_allclose(s.similarity, feature_similarity(feats[name]), rtol=1e-12)
        assert len(s.images) == 9
    assert [p.name for p in sets["discs"].images] == [f"img_{j:03d}.png" for j in range(9)]
    # hues has an order.txt listing the images in reverse
    assert [p.name for p in sets["hues"].images] == [f"img_{j:03d}.png" for j in range(9)][::-1]
    one = load_stimulus_folder(folder / "mats")
    np.testing.assert_array_equal(one.similarity, sets["mats"].similarity)


def test_single_file_layout_and_embeddings(stimuli):
    folder, feats = stimuli
    sets = load_stimulus_sets(folder / "similarity.npz", names=["hues", "discs"])
    assert list(sets) == ["hues", "discs"] and sets["hues"].images is None
    emb = load_embeddings(folder / "embeddings.npz", sets)
    assert emb["discs"].shape == (9, 50)
    with pytest.raises(DataError, match=r"no stimulus set named \['birds'\]"):
        load_stimulus_sets(folder / "similarity.npz", names=["birds"])
    np.savez(folder / "bad_emb.npz", discs=np.zeros((8, 50)), hues=np.zeros((9, 50)))
    with pytest.raises(DataError, match=r"must be \(9, n_nodes\)"):
        load_embeddings(folder / "bad_emb.npz", sets)
    np.savez(folder / "nan_emb.npz", discs=np.full((9, 5), np.nan), hues=np.zeros((9, 5)))
    with pytest.raises(DataError, match="NaN"):
        load_embeddings(folder / "nan_emb.npz", sets)
    with pytest.raises(DataError, match="no embeddings for set 'hues'"):
        np.savez(folder / "part.npz", discs=np.zeros((9, 5)))
        load_embeddings(folder / "part.npz", sets)
    with pytest.raises(DataError, match="does not exist"):
        load_embeddings(folder / "none.npz", sets)


@pytest.mark.parametrize(
    "matrix, message",
    [
        (np.ones((3, 4)), "must be square"),
        (np.array([[1.0, 2, 3], [0, 1, 2], [3, 2, 1]]), "not symmetric"),
        (np.array([[1.0, np.nan, 0], [np.nan, 1, 0], [0, 0, 1]]), "NaN"),
        (np.eye(2), "at least 3 items"),
    ],
)
@pytest.mark.parametrize("suffix", [".npy", ".csv", ".mat", ".npz"])
def test_bad_matrices_are_refused_clearly(tmp_path, matrix, message, suffix):
    path = tmp_path / f"m{suffix}"
    if suffix == ".npy":
        np.save(path, matrix)
    elif suffix == ".csv":
        np.savetxt(path, matrix, delimiter=",")
    elif suffix == ".mat":
        scipy.io.savemat(path, {"simMatrix": matrix})
    else:
        np.savez(path, sim=matrix)
    with pytest.raises(DataError, match=message):
        load_similarity(path)


def test_csv_with_header_and_labels(tmp_path):
    m = feature_similarity(np.random.default_rng(0).normal(size=(4, 3)))
    lines = ["name,a,b,c,d"] + [
        f"item{i}," + ",".join(repr(float(v)) for v in r) for i, r in enumerate(m)
    ]
    (tmp_path / "m.csv").write_text("\n".join(lines))
    np.testing.assert_array_equal(load_similarity(tmp_path / "m.csv"), m)


def test_folder_errors(tmp_path, stimuli):
    folder, _ = stimuli
    with pytest.raises(DataError, match="does not exist"):
        load_stimulus_sets(tmp_path / "nothing")
    bad = tmp_path / "set"
    bad.mkdir()
    for j in range(4):
        Image.new("RGB", (8, 8)).save(bad / f"{j}.png")
    with pytest.raises(DataError, match="expected one similarity file"):
        load_stimulus_folder(bad)
    np.save(bad / "similarity.npy", np.eye(3))
    with pytest.raises(DataError, match="4 image"):
        load_stimulus_folder(bad)
    (bad / "order.txt").write_text("0.png\n1.png\nmissing.png\n")
    with pytest.raises(DataError, match="missing.png"):
        load_stimulus_folder(bad)
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(b"not an image")
    with pytest.raises(DataError, match="broken.png"):
        load_images([folder / "discs" / "img_000.png", corrupt])
    (tmp_path / "x.mat").write_bytes(b"garbage")
    with pytest.raises(DataError, match="not a readable similarity matrix"):
        load_similarity(tmp_path / "x.mat")


@pytest.mark.parametrize("size", [(300, 400), (500, 260), (224, 224)])
def test_preprocessing_shapes_and_values(tmp_path, size):
    Image.new("RGB", size, (200, 100, 50)).save(tmp_path / "im.png")
    img = load_image(tmp_path / "im.png")
    assert img.shape == (224, 224, 3) and img.dtype == np.uint8
    assert np.all(img == (200, 100, 50))
    x = np.asarray(imagenet_standardise(img[None]))
    ref = (np.array([200, 100, 50]) / 255.0 - np.array(MEAN)) / np.array(STD)
    np.testing.assert_allclose(x[0, 0, 0], ref, rtol=1e-6)


def test_centre_crop_keeps_the_centre(tmp_path):
    # A 512 x 256 image (wide): resized to 512 x 256 -> crop columns 144..368.
    a = np.zeros((256, 512, 3), np.uint8)
    a[:, 256:] = 255
    Image.fromarray(a).save(tmp_path / "wide.png")
    img = load_image(tmp_path / "wide.png")
    assert np.all(img[:, :100] == 0) and np.all(img[:, 124:] == 255)


@pytest.mark.skipif(not ANIMALS.is_file(), reason="../shared/data is not beside the checkout")
def test_real_peterson_animals_matrix():
    m = load_similarity(ANIMALS)
    assert m.shape == (120, 120)
    np.testing.assert_array_equal(np.diag(m), 10.0)
    assert m.min() >= 0.0 and m.max() <= 10.0
    raw = scipy.io.loadmat(ANIMALS)
    np.testing.assert_array_equal(m, raw["simMatrix"])


def _write(path, array, mode=None):
    Image.fromarray(array, mode).save(path)
    return path


def test_image_modes_are_decoded_as_they_look_on_a_white_page(tmp_path):
    def colour(path):
        img = load_image(path, resize=8, crop=8)
        assert img.dtype == np.uint8 and img.shape == (8, 8, 3)
        assert np.all(img == img[0, 0]), "a flat image stays flat"
        return tuple(int(c) for c in img[0, 0])

    grey16 = _write(tmp_path / "g16.png", np.full((6, 6), 40000, np.uint16))
    assert colour(grey16) == (156, 156, 156)  # 40000 / 257, not white
    f = _write(tmp_path / "f.tiff", np.full((6, 6), 0.5, np.float32))
    assert colour(f) == (128, 128, 128)  # 0.5 * 255, not black
    red = np.zeros((6, 6, 4), np.uint8)
    red[..., 0] = 255
    assert colour(_write(tmp_path / "clear.png", red, "RGBA")) == (255, 255, 255)
    red[..., 3] = 128
    assert colour(_write(tmp_path / "half.png", red, "RGBA")) == (255, 127, 127)
    pal = Image.new("P", (6, 6), 0)
    pal.putpalette([255, 0, 0] + [0] * 765)
    pal.save(tmp_path / "pal.png", transparency=0)
    assert colour(tmp_path / "pal.png") == (255, 255, 255)
    assert colour(_write(tmp_path / "rgb.png", np.full((6, 6, 3), 7, np.uint8))) == (7, 7, 7)
    bad = _write(tmp_path / "bad.tiff", np.full((6, 6), 3.0, np.float32))
    with pytest.raises(DataError, match=r"float image must hold values in \[0, 1\]"):
        load_image(bad)
