"""Bad input of every class gets one clear ValueError naming it, before any work starts."""

from __future__ import annotations

import pickle
import tarfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.io
import scipy.sparse
from bounds import assert_within, fit_bound, rsm_bound, sweep_bound
from conftest import ref_fit, ref_rsm_fast

import poz_jax as pj
from poz_jax import cli
from poz_jax.core import reweight, validate
from poz_jax.data import DataError, load_cifar10, load_similarity, load_stimulus_folder
from poz_jax.data.synthetic import write_fake_cifar10 as fake_cifar
from poz_jax.models import convert

X = np.maximum(np.random.default_rng(0).normal(size=(6, 10)), 0) + 0.01
T = ref_rsm_fast(np.random.default_rng(1).normal(size=(6, 4)))
ORDER = np.arange(10)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        # not an array of real numbers
        (lambda: pj.poz(None), "acts must be a real numeric array, got NoneType"),
        (lambda: pj.rsm("abc"), "x must be a real numeric array, got str"),
        (lambda: pj.rsm([[1, 2], [3]]), "x must be a numeric array, got a list that is not"),
        (lambda: pj.rsm(X + 1j), "x must be a real numeric array, got complex numbers"),
        (lambda: pj.fit(None, T), "rsm_a must be a real numeric array"),
        (lambda: pj.keep_order(None), "poz_values must be a real numeric array"),
        (lambda: pj.sweep(X, T.astype(complex), [5], ORDER), "target must be a real numeric"),
        # counts that are not counts
        (lambda: pj.sweep(X, T, None, ORDER), "keep_counts must be a 1-D array of node counts"),
        (lambda: pj.sweep(X, T, "5", ORDER), "keep_counts must be a 1-D array of node counts"),
        (lambda: pj.sweep(X, T, [True, False], ORDER), "got booleans"),
        (lambda: pj.sweep(X, T, [2**31], ORDER), "beyond the int32 range|must lie in 1..10"),
        (lambda: pj.sweep(X, T, [11], ORDER), r"must lie in 1..10 \(the number of nodes\)"),
        (lambda: pj.keep_grid(None), "n_nodes must be a whole number, got None"),
        (lambda: pj.class_means(X, np.zeros(6, int), None), "n_classes must be a whole number"),
        (lambda: pj.class_means(X, np.full(6, 0.5), 2), "labels must be integers"),
        # shapes that do not go together
        (lambda: pj.rsm(np.zeros((5, 0))), "x has no features"),
        (lambda: pj.fit(np.stack([T] * 2), np.stack([T] * 3)), "leading axes do not broadcast"),
        (lambda: pj.sweep(np.stack([X] * 2), np.stack([T] * 3), [5], ORDER), "do not broadcast"),
        (lambda: pj.sweep(np.stack([X] * 2), T, [5], np.stack([ORDER] * 3)), "do not broadcast"),
        (lambda: pj.class_means(np.stack([X] * 2), np.zeros((3, 6), int), 2), "do not broadcast"),
        (lambda: pj.max_kept_poz(np.zeros((2, 10)), [5], np.stack([ORDER] * 3)), "broadcast"),
        (lambda: pj.sweep(X, T[:5, :5], [5], ORDER), "x has 6 items but target is 5 x 5"),
    ],
)
def test_api_refuses_bad_input_with_one_clear_message(call, message):
    with pytest.raises(ValueError, match=message):
        call()


_host_reader = validate.readable  # NumPy for values in host memory (the CPU)


def _device_reader(a):
    # What an accelerator's arrays get: their values read where they live.
    return jnp.asarray(a), jnp


@pytest.mark.parametrize("reader", [_host_reader, _device_reader], ids=["host", "device"])
def test_value_checks_say_the_same_wherever_the_values_live(reader, monkeypatch):
    want = np.asarray(pj.sweep(X, T, [10, 5], ORDER))
    monkeypatch.setattr(validate, "readable", reader)
    xn = X.copy()
    xn[2, 3] = np.nan
    masks = np.ones((3, 10), bool)
    masks[1] = False
    cases = [
        (lambda: pj.sweep(jnp.asarray(xn), T, [5], ORDER), "x holds 1 NaN or infinite"),
        (lambda: pj.sweep(X, T, jnp.asarray([0, 4]), ORDER), r"must lie in 1..10 .*got 0..4"),
        (lambda: pj.sweep(X, T, [5], ORDER[::-1] % 9), "order must be a permutation of 0..9"),
        (lambda: pj.class_means(X, np.r_[0, 0, 0, 1, 1, 7], 2), "must lie in 0..1, got 0..7"),
        (lambda: pj.sweep_masks(X, T, masks), r"masks rows \[1\] keep no node"),
        (lambda: pj.max_kept_poz(np.full(10, 1.5), [5], ORDER), r"fractions in \[0, 1\].*; 10 val"),
        (lambda: reweight.reweighting_path(X, T, [1.0, -1.0]), "alphas must be positive"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
    # Inputs that pass reach the same kernel with the same arrays.
    np.testing.assert_array_equal(np.asarray(pj.sweep(X, T, [10, 5], ORDER)), want)


def test_big_endian_arrays_are_read_as_native_ones():
    # Some .npy and .mat writers store big-endian floats; JAX refuses that dtype.
    want = np.asarray(pj.sweep(X, T, [10, 5], ORDER))
    got = pj.sweep(X.astype(">f8"), T.astype(">f8"), np.array([10, 5], ">i8"), ORDER.astype(">i4"))
    np.testing.assert_array_equal(np.asarray(got), want)


def test_numbers_at_the_edges_of_float32():
    # Pearson's r ignores each row's scale: 1e19, 1e-19 and 1e30 must give the
    # float64 answer, not 0 or NaN from overflowing squares.
    rng = np.random.default_rng(2)
    x = np.maximum(rng.normal(size=(12, 300)), 0)
    h = ref_rsm_fast(rng.normal(size=(12, 5)))
    counts = np.array([300, 120, 40])
    want = [ref_fit(ref_rsm_fast(x[:, :k]), h) for k in counts]
    # The rounding bounds are relative, so one bound serves every scale.
    bound = sweep_bound(x, h, counts, np.arange(300), np.float32, fits=want)
    rx = ref_rsm_fast(x)
    rsm_err = rsm_bound(x, np.float32, exact=rx)
    for scale in (1e19, 1e-19, 1e30, 1e-30):
        xs = (x * scale).astype(np.float32)
        got = np.asarray(pj.sweep(xs, h.astype(np.float32), counts, np.arange(300)))
        assert_within(got, want, bound, f"sweep at scale {scale}")
        assert_within(pj.rsm(xs), rx, rsm_err, f"rsm at scale {scale}")
    a, b = ref_rsm_fast(rng.normal(size=(12, 5))), ref_rsm_fast(rng.normal(size=(12, 5)))
    want = ref_fit(a, b)
    for spread in (1e10, 1e19, 1e-19):
        got = pj.fit((a * spread).astype(np.float32), (b * spread).astype(np.float32))
        assert abs(float(got) - want) <= fit_bound(a, b, np.float32, fit_value=want), spread
    # PoZ over 100,000 items in float16 and bfloat16 counts in float32.
    big = rng.random((100_000, 4)) * (rng.random((100_000, 4)) < 0.3)
    for dtype in (jnp.float16, jnp.bfloat16):
        got = pj.poz(jnp.asarray(big, dtype))
        assert got.dtype == jnp.float32
        np.testing.assert_allclose(got, (big == 0).mean(0), atol=1e-6)


def test_out_of_range_counts_under_jit_are_clamped():
    x = np.maximum(np.random.default_rng(3).normal(size=(8, 40)), 0) + 0.01
    h = ref_rsm_fast(np.random.default_rng(4).normal(size=(8, 3)))
    jitted = jax.jit(lambda k: pj.sweep(x, h, k, np.arange(40)))
    got = np.asarray(jitted(jnp.array([100, 20, 0])))
    np.testing.assert_allclose(got[:2], pj.sweep(x, h, [40, 20], np.arange(40)), rtol=1e-12)
    assert np.isnan(got[2])  # clamped to k = 1: every RSM entry undefined
    top = jax.jit(lambda k: pj.max_kept_poz(pj.poz(x), k, np.arange(40)))(jnp.array([100, 0]))
    np.testing.assert_allclose(top, pj.max_kept_poz(pj.poz(x), [40, 1], np.arange(40)))


# --- files --------------------------------------------------------------------------------


def test_bad_cifar_files(tmp_path):
    where, splits = fake_cifar(tmp_path / "ok", "npz", n_train=20, n_test=20)
    raw = (where / "cifar10_test.npz").read_bytes()
    broken = tmp_path / "broken"
    broken.mkdir()
    for data in (raw[: len(raw) // 2], _flip(raw)):  # truncated, bit-flipped
        (broken / "cifar10_test.npz").write_bytes(data)
        with pytest.raises(DataError, match="not a readable .npz file"):
            load_cifar10("test", broken, verify=False)
    x, y = splits["test"]
    for labels, message in (
        (y + 0.7, "labels must be whole numbers 0..9"),
        (np.stack([y, y], 1), r"labels must be one per image, shape \(N,\)"),
        (y.astype(complex), "labels must be whole numbers"),
    ):
        np.savez(broken / "cifar10_test.npz", x=x, y=labels)
        with pytest.raises(DataError, match=message):
            load_cifar10("test", broken, verify=False)
    # Pickled batches holding pixels outside 0..255 are refused, not wrapped (300 -> 44).
    where, _ = fake_cifar(tmp_path / "py", "python-folder", n_train=20, n_test=20)
    batch = pickle.loads((where / "test_batch").read_bytes())
    batch[b"data"] = batch[b"data"].astype(np.int64)
    batch[b"data"][0, 0] = 300
    (where / "test_batch").write_bytes(pickle.dumps(batch))
    with pytest.raises(DataError, match=r"pixels must be whole numbers in 0..255"):
        load_cifar10("test", where, verify=False)


def _flip(raw: bytes) -> bytes:
    b = bytearray(raw)
    b[len(b) // 2] ^= 0xFF  # inside the stored array: the zip CRC no longer matches
    return bytes(b)


def _stimulus_folder(folder, n=4, sim=None):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(folder / f"im{i}.png")
    np.save(folder / "similarity.npy", np.eye(n) if sim is None else sim)
    return folder


def test_bad_stimulus_sets(tmp_path):
    folder = _stimulus_folder(tmp_path / "set")
    (folder / "order.txt").write_text("im0.png\nim1.png\nim1.png\nim3.png\n")
    with pytest.raises(DataError, match=r"names image\(s\) more than once: \['im1.png'\]"):
        load_stimulus_folder(folder)
    np.save(folder / "similarity.npy", np.eye(3))
    (folder / "order.txt").write_text("im0.png\nim1.png\nim3.png\n")
    with pytest.raises(DataError, match=r"does not name image\(s\) \['im2.png'\]"):
        load_stimulus_folder(folder)
    (folder / "order.txt").unlink()
    (folder / "similarity.npy").unlink()
    np.save(folder / "similarity.NPY", np.eye(4))  # an upper-case suffix is found and read
    assert load_stimulus_folder(folder).n_items == 4
    with pytest.raises(DataError, match="the similarity matrix is complex"):
        np.save(tmp_path / "c.npy", np.eye(4) + 1j)
        load_similarity(tmp_path / "c.npy")
    scipy.io.savemat(tmp_path / "sparse.mat", {"simMatrix": scipy.sparse.csc_matrix(np.eye(4))})
    np.testing.assert_array_equal(load_similarity(tmp_path / "sparse.mat"), np.eye(4))
    v73 = tmp_path / "v73.mat"
    v73.write_bytes(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: ..." + bytes(200))
    with pytest.raises(DataError, match=r"MATLAB v7.3 \(HDF5\) file"):
        load_similarity(v73)


def test_bad_weights_files(tmp_path):
    import json
    import struct

    def safetensors(header) -> bytes:
        raw = json.dumps(header).encode()
        return struct.pack("<Q", len(raw)) + raw + bytes(16)

    for header in (
        [1, 2],
        {"w": {"dtype": "F32", "shape": [2]}},
        {"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}},
    ):
        (tmp_path / "w.safetensors").write_bytes(safetensors(header))
        with pytest.raises(ValueError, match="is not a readable safetensors file"):
            convert.read_safetensors(tmp_path / "w.safetensors")
    # The right names with the wrong shapes: refused at conversion, not deep in Flax.
    state = _vgg_state(small=True)
    with pytest.raises(ValueError, match=r"conv1_1/bias has shape \(8,\), VGG-16 needs \(64,\)"):
        convert.to_flax(state)


def _vgg_state(small: bool) -> dict:
    from poz_jax.models.convert import FEATURE_INDICES
    from poz_jax.models.vgg import BLOCKS

    state, cin = {}, 3
    outs = [c for block in BLOCKS for c in block]
    for index, cout in zip(FEATURE_INDICES, outs, strict=True):
        cout = 8 if small else cout
        state[f"features.{index}.weight"] = np.zeros((cout, cin, 3, 3), np.float32)
        state[f"features.{index}.bias"] = np.zeros(cout, np.float32)
        cin = cout
    for key, shape in (("0", (16, cin * 49)), ("3", (16, 16)), ("6", (10, 16))):
        state[f"classifier.{key}.weight"] = np.zeros(shape, np.float32)
        state[f"classifier.{key}.bias"] = np.zeros(shape[0], np.float32)
    return state


def test_pth_that_is_not_a_state_dict(tmp_path):
    torch = pytest.importorskip("torch")
    for obj, kind in ((torch.zeros(3), "Tensor"), ([torch.zeros(3)], "list")):
        torch.save(obj, tmp_path / "w.pth")
        with pytest.raises(ValueError, match=f"holds a {kind}, not a state dict"):
            convert.read_torch(tmp_path / "w.pth")


# --- the command line ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["make-stimuli", "{tmp}/s", "--items", "0"], "--items must be at least 3, got 0"),
        (["make-stimuli", "{tmp}/s", "--items", "-1"], "--items must be at least 3, got -1"),
        (["make-stimuli", "{tmp}/s", "--items", "2"], "--items must be at least 3, got 2"),
        (["make-stimuli", "{tmp}/s", "--seed", "-1"], "--seed must be in 0..2147483647"),
        (["make-stimuli", "{tmp}/file"], "is a file, not a folder"),
        (["demo", "--items", "-5"], "--items must be at least 3, got -5"),
        (["demo", "--nodes", "3"], "--nodes must be at least 10"),
        (["convert-vgg16", "{tmp}/none.pth", "{tmp}/o.npz"], "weights file .* does not exist"),
        (
            ["convert-vgg16", "{tmp}/none.pth", "{tmp}/file/o.npz"],
            "/file is a file, not a folder",
        ),
        (["exp2", "--stimuli", "{tmp}/none", "--out", "{tmp}/file"], "is a file, not a folder"),
        (["exp1", "--quick", "--out", "{tmp}/file/x"], "lies under"),
    ],
)
def test_cli_refuses_bad_values_with_one_line(args, message, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code = cli.main([a.replace("{tmp}", str(tmp_path)) for a in args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("poz-jax: error: ") and err.count("\n") == 1, err
    import re

    assert re.search(message, err), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # nothing written


def test_unwritable_out(tmp_path, capsys, monkeypatch):
    import poz_jax.io.files

    # As root every folder is writable, so say "not writable" the way the OS would.
    monkeypatch.setattr(poz_jax.io.files.os, "access", lambda path, mode: False)
    assert cli.main(["make-stimuli", str(tmp_path / "s")]) == 2
    assert "is not writable" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_tar_member_that_is_not_a_batch(tmp_path):
    where, _ = fake_cifar(tmp_path, "python", n_train=20, n_test=20)
    archive = where / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/test_batch")
        info.size = 4
        import io

        tar.addfile(info, io.BytesIO(b"junk"))
    with pytest.raises(DataError, match="not a readable CIFAR-10 batch"):
        load_cifar10("test", archive, verify=False)


def test_mixed_and_half_precision_inputs_compute_in_the_activations_dtype(rng):
    # A float64 human matrix against float32 activations: computed in float32
    # (it raised a raw cond TypeError); float16/bfloat16 activations in float32.
    x = np.maximum(rng.normal(size=(10, 30)), 0).astype(np.float32)
    h = ref_rsm_fast(rng.normal(size=(10, 4)))
    counts, order = [30, 12], np.arange(30)
    want = np.asarray(pj.sweep(x, h.astype(np.float32), counts, order))
    got = pj.sweep(x, h, counts, order)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    for half in (jnp.float16, jnp.bfloat16):
        xh = jnp.asarray(x, half)
        got = pj.sweep(xh, h, counts, order)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(
            got, pj.sweep(np.asarray(xh).astype(np.float32), h, counts, order)
        )


@pytest.mark.parametrize("scale", [1e-6, 1.0, 10.0, 1e6])
def test_one_symmetry_rule_relative_to_the_matrix_scale(scale, tmp_path):
    from poz_jax.core.validate import SYMMETRY_RTOL, check_symmetric
    from poz_jax.data.errors import DataError
    from poz_jax.data.stimuli import check_similarity

    rng = np.random.default_rng(0)
    a = rng.random((6, 6))
    m = (a + a.T) * scale
    near, far = m.copy(), m.copy()
    big = np.abs(m).max()
    near[1, 4] += 0.5 * SYMMETRY_RTOL * big  # within the rule, at any scale
    far[1, 4] += 2.0 * SYMMETRY_RTOL * big
    check_symmetric(near, "m")
    check_similarity(near, "here")
    with pytest.raises(ValueError, match=r"m must be symmetric: m\[1, 4\]"):
        check_symmetric(far, "m")
    with pytest.raises(DataError, match=r"here: the similarity matrix is not symmetric: m\[1, 4\]"):
        check_similarity(far, "here")
    nan = m.copy()
    nan[2, 3] = np.nan
    with pytest.raises(ValueError, match=r"m\[2, 3\] = nan"):
        check_symmetric(nan, "m")
    nan[3, 2] = np.nan
    check_symmetric(nan, "m")  # NaN faces NaN


@pytest.mark.slow  # compiles every kernel twice
@pytest.mark.parametrize("x64", [False, True])
def test_whole_float_keep_counts_are_counts(x64, rng):
    import jax

    from poz_jax.core.nulls import null_fits

    x = np.maximum(rng.normal(size=(12, 50)), 0)
    t = np.asarray(pj.rsm(rng.normal(size=(12, 3))))
    o = np.asarray(pj.keep_order(pj.poz(x)))
    ints, floats = np.array([40, 30]), np.array([40.0, 30.0])
    with jax.enable_x64(x64):
        p = pj.poz(x)
        for f in (
            lambda k: pj.sweep(x, t, k, o),
            lambda k: null_fits(x, t, k, 3),
            lambda k: pj.max_kept_poz(p, k, o),
            lambda k: pj.sweep_rsms(x, k, o),
        ):
            np.testing.assert_array_equal(np.asarray(f(floats)), np.asarray(f(ints)))
        with pytest.raises(ValueError, match="whole numbers of nodes"):
            pj.sweep(x, t, np.array([40.5]), o)
        with pytest.raises(
            ValueError, match=r"must lie in 1..50 \(the number of nodes\), got 1e\+10"
        ):
            pj.sweep(x, t, np.array([1e10]), o)


def test_unclear_messages_made_clear(tmp_path, capsys):
    from poz_jax import cli
    from poz_jax.core.crossval import item_splits

    with pytest.raises(ValueError, match=r"needs at least 6 \(2 folds of 3\)"):
        item_splits(5, 2, 1, 0)
    with pytest.raises(ValueError, match="use at most 3 folds"):
        item_splits(9, 4, 1, 0)
    # A folder that cannot be made: the path and the reason, not a bare errno.
    assert cli.main(["make-stimuli", "/proc/poz_jax_cannot", "--items", "3"]) == 2
    assert "cannot write /proc/poz_jax_cannot: No such file or directory" in capsys.readouterr().err
    # One set's features given for two sets; an .NPZ suffix in capitals.
    from poz_jax.data.synthetic import write_stimulus_sets

    write_stimulus_sets(tmp_path / "s", n_items=6, n_nodes=12)
    np.save(tmp_path / "e.npy", np.zeros((6, 12)))
    stim = ["--stimuli", str(tmp_path / "s")]
    assert (
        cli.main(
            ["exp2", *stim, "--embeddings", str(tmp_path / "e.npy"), "--out", str(tmp_path / "o")]
        )
        == 2
    )
    # One layer's features (a .npy, thingsvision's folder) serve one set; two need an .npz.
    assert "hold one set's features, but 2 sets are given" in capsys.readouterr().err
    (tmp_path / "s" / "similarity.npz").rename(tmp_path / "SIMS.NPZ")
    from poz_jax.data import load_stimulus_sets

    assert sorted(load_stimulus_sets(tmp_path / "SIMS.NPZ")) == ["discs", "hues"]


@pytest.mark.slow  # compiles the null and the comparison
def test_null_and_comparison_take_half_precision_activations(rng):
    # They raised a cond TypeError; now they compute in float32.
    from poz_jax.analysis.comparison import compare_methods
    from poz_jax.core.nulls import null_fits

    x = np.maximum(rng.normal(size=(10, 30)), 0).astype(np.float32)
    h = ref_rsm_fast(rng.normal(size=(10, 4)))
    counts = [30, 12]
    for half in (jnp.float16, jnp.bfloat16):
        xh = jnp.asarray(x, half)
        x32 = np.asarray(xh).astype(np.float32)
        np.testing.assert_array_equal(null_fits(xh, h, counts, 4), null_fits(x32, h, counts, 4))
        kw = dict(methods=("unpruned", "poz", "std"), folds=2, repeats=1)
        np.testing.assert_array_equal(
            compare_methods(xh, h, **kw).test_fit, compare_methods(x32, h, **kw).test_fit
        )
