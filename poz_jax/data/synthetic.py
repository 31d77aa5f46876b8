"""Generated data with known structure, for demos, tests and benchmarks."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

from poz_jax.data.cifar10 import SPLIT_FILES


def synthetic_activations(
    n_items: int, n_nodes: int, seed: int = 0, dtype=np.float32
) -> np.ndarray:
    """Post-ReLU-like activations ``(n_items, n_nodes)``: most nodes silent for most items.

    Each node gets its own firing threshold, so PoZ spreads from about 0 to
    1 as in trained fc layers; a few nodes never fire at all (PoZ = 1).
    """
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n_items, 8))
    weights = rng.normal(size=(8, n_nodes)) / np.sqrt(8)
    drive = latent @ weights + rng.normal(size=(n_items, n_nodes))
    threshold = rng.uniform(-1.0, 3.0, size=n_nodes)
    threshold[rng.random(n_nodes) < 0.05] = np.inf
    return np.maximum(drive - threshold, 0.0).astype(dtype)


def planted_embeddings(
    n_items: int, n_nodes: int, seed: int = 0, signal: float = 0.25, n_features: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """Items' features ``(n_items, n_features)`` and embeddings ``(n_items, n_nodes)`` with a plant.

    A ``signal`` share of the nodes fire for most items and encode the
    features; the rest fire rarely and at random. So the RSM of the
    low-PoZ nodes matches a similarity built from the features better than
    the RSM of all nodes: PoZ pruning should improve the fit, peaking near
    ``100 * signal`` % kept, and beat random pruning. Used to test Experiment 2
    where the right answer is known.
    """
    rng = np.random.default_rng(seed)
    feats = rng.normal(size=(n_items, n_features))
    n_sig = int(round(signal * n_nodes))
    w = rng.normal(size=(n_features, n_sig))
    sig = np.maximum(feats @ w + 2.0, 0.0)  # PoZ about 0.1
    noise = 3.0 * np.maximum(rng.normal(size=(n_items, n_nodes - n_sig)) - 1.5, 0.0)  # about 0.93
    x = np.concatenate([sig, noise], axis=1)[:, rng.permutation(n_nodes)]
    return feats, x


def planted_comparison(
    informative: str, n_items: int = 60, n_informative: int = 20, n_noise: int = 40, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Activations ``(n_items, n_informative + n_noise)`` and a target with a planted answer.

    The target is the RSM of the informative nodes; the other nodes are noise.

    - ``informative="dense"``: the informative nodes fire for most items (PoZ
      about 0.25) and the noise nodes rarely (PoZ about 0.9). Pruning the
      rarely-firing nodes removes exactly the noise: PoZ pruning should fit
      new items about as well as supervised pruning, and better than all nodes.
    - ``informative="rare"``: the informative nodes fire rarely (PoZ about
      0.75) and the noise nodes for most items. PoZ pruning removes the
      signal first and should lose; supervised pruning should not.

    Informative nodes come first, then noise. Returns ``(x, target)``.
    """
    if informative not in ("dense", "rare"):
        raise ValueError(f"informative must be 'dense' or 'rare', got {informative!r}")
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n_items, 3))
    drive = latent @ rng.normal(size=(3, n_informative))
    if informative == "dense":
        signal = np.maximum(drive + 1.0, 0.0)
        fires = rng.random((n_items, n_noise)) < 0.1
        noise = np.where(fires, rng.exponential(2.0, (n_items, n_noise)), 0.0)
    else:
        signal = np.maximum(drive - 1.0, 0.0)
        signal[~np.any(signal > 0, axis=1), 0] = 0.1  # every item fires somewhere
        noise = np.maximum(2.0 * rng.normal(size=(n_items, n_noise)) + 1.0, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        target = np.corrcoef(signal) ** 2
    np.fill_diagonal(target, 1.0)
    return np.concatenate([signal, noise], axis=1), target


def feature_similarity(feats: np.ndarray, scale: float = 10.0) -> np.ndarray:
    """A human-like similarity ``(n, n)`` on a 0..``scale`` rating scale from item features.

    The squared cosine between feature vectors: what the RSM of nodes tuned
    linearly to the features recovers (see :func:`planted_embeddings`).
    """
    unit = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    return scale * np.clip(unit @ unit.T, -1.0, 1.0) ** 2


def draw_images(feats: np.ndarray, size: int = 64) -> np.ndarray:
    """uint8 ``(n, size, size, 3)`` images drawn from features: hue, size and place of a disc."""
    import colorsys

    from PIL import Image, ImageDraw

    out = []
    for f in feats:
        hue = (np.arctan2(f[1], f[0]) / (2 * np.pi)) % 1.0
        rgb = tuple(int(255 * c) for c in colorsys.hsv_to_rgb(hue, 0.9, 0.9))
        radius = size * (0.15 + 0.1 * np.tanh(f[2] if len(f) > 2 else 0.0))
        cx = size / 2 + 0.15 * size * np.tanh(f[0])
        im = Image.new("RGB", (size, size), (128, 128, 128))
        ImageDraw.Draw(im).ellipse(
            (cx - radius, size / 2 - radius, cx + radius, size / 2 + radius), fill=rgb
        )
        out.append(np.asarray(im))
    return np.stack(out)


def write_stimulus_sets(
    folder, names=("discs", "hues"), n_items: int = 24, n_nodes: int = 4096, seed: int = 0
):
    """Write generated stimulus sets in every layout :mod:`poz_jax.data` reads.

    ``folder/<name>/`` holds PNG images and the similarity matrix (``.csv``
    for the first set, ``.npy`` for the next, ``.mat`` after, with an
    ``order.txt`` in the second); ``folder/similarity.npz`` is the authors'
    single-file layout, and ``folder/embeddings.npz`` planted embeddings
    (:func:`planted_embeddings`) of the same items. Returns ``{name: features}``.
    """
    from pathlib import Path

    import scipy.io
    from PIL import Image

    from poz_jax.io.files import atomic_save

    folder = Path(folder)
    feats_by_set, sims, embs = {}, {}, {}
    for i, name in enumerate(names):
        feats, emb = planted_embeddings(n_items, n_nodes, seed=seed + i)
        sim = feature_similarity(feats)
        d = folder / name
        d.mkdir(parents=True, exist_ok=True)
        files = [f"img_{j:03d}.png" for j in range(n_items)]
        if i == 1:  # a given row order, unlike the sorted file names
            files = files[::-1]
            text = "\n".join(files) + "\n"
            atomic_save(d / "order.txt", lambda p, text=text: p.write_text(text))
        for f, img in zip(files, draw_images(feats), strict=True):
            atomic_save(d / f, lambda p, img=img: Image.fromarray(img).save(p))
        fmt = (".csv", ".npy", ".mat")[min(i, 2)]
        if fmt == ".csv":
            atomic_save(d / "similarity.csv", lambda p, s=sim: np.savetxt(p, s, delimiter=","))
        elif fmt == ".npy":
            atomic_save(d / "similarity.npy", lambda p, s=sim: np.save(p, s))
        else:
            atomic_save(
                d / "similarity.mat", lambda p, s=sim: scipy.io.savemat(p, {"simMatrix": s})
            )
        feats_by_set[name], sims[name], embs[name] = feats, sim, emb.astype(np.float32)
    atomic_save(folder / "similarity.npz", lambda p: np.savez(p, **sims))
    atomic_save(folder / "embeddings.npz", lambda p: np.savez(p, **embs))
    return feats_by_set


def check_stimuli_folder_free(folder, names=("discs", "hues")) -> None:
    """Refuse ``folder`` when it holds anything :func:`write_stimulus_sets` would write.

    (Its set folders, ``similarity.npz``, ``embeddings.npz``) or a poz-jax
    results folder's ``config.json``: a user's files are never replaced.
    """
    from pathlib import Path

    folder = Path(folder)
    if (folder / "config.json").exists():
        raise ValueError(
            f"folder {folder} holds a config.json (a results folder?); make the stimuli elsewhere"
        )
    taken = [n for n in (*names, "similarity.npz", "embeddings.npz") if (folder / n).exists()]
    if taken:
        raise ValueError(
            f"folder {folder} already holds {', '.join(taken)}, which make-stimuli would replace; "
            "give an empty or new folder"
        )


def write_fake_cifar10(folder: Path, layout: str, n_train: int, n_test: int, seed: int = 0):
    """Write small random CIFAR-10 look-alikes in a layout that ``load_cifar10`` reads.

    ``layout`` is ``"npz"``, ``"python"`` (tar.gz), ``"python-folder"``,
    ``"binary"`` (tar.gz) or ``"binary-folder"``. Returns the path to pass as
    ``data_dir`` and the ``{split: (x, y)}`` written.
    """
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    splits = {}
    for split, n in (("train", n_train), ("test", n_test)):
        splits[split] = (
            rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8),
            rng.integers(0, 10, size=n).astype(np.int64),
        )
    if layout == "npz":
        for split, (x, y) in splits.items():
            np.savez(folder / f"cifar10_{split}.npz", x=x, y=y.astype(np.uint8))
        return folder, splits
    binary = layout.startswith("binary")
    members = {}
    for split, (x, y) in splits.items():
        parts = np.array_split(np.arange(len(x)), len(SPLIT_FILES[split]))
        for name, idx in zip(SPLIT_FILES[split], parts, strict=True):
            chw = x[idx].transpose(0, 3, 1, 2).reshape(len(idx), -1)
            if binary:
                raw = np.concatenate([y[idx, None].astype(np.uint8), chw], axis=1).tobytes()
                members[f"{name}.bin"] = raw
            else:
                members[name] = pickle.dumps({b"data": chw, b"labels": y[idx].tolist()})
    sub = "cifar-10-batches-bin" if binary else "cifar-10-batches-py"
    if layout.endswith("folder"):
        (folder / sub).mkdir(exist_ok=True)
        for name, raw in members.items():
            (folder / sub / name).write_bytes(raw)
        return folder / sub, splits
    archive = folder / ("cifar-10-binary.tar.gz" if binary else "cifar-10-python.tar.gz")
    with tarfile.open(archive, "w:gz") as tar:
        for name, raw in members.items():
            info = tarfile.TarInfo(f"{sub}/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return folder, splits


def write_fake_cifar10h(
    folder, local_labels: np.ndarray, n_matched: int = 300, seed: int = 0
) -> dict[str, np.ndarray]:
    """Write a CIFAR-10H-shaped folder whose first ``n_matched`` official images are local ones.

    Official labels: 1,000 per class, shuffled. ``official_to_npz_row.npy``
    maps official image ``i < n_matched`` to a distinct local row with the
    same label. Counts: 50 choices per image, 85% the true class, the rest
    spread with a planted confusion between classes 3 and 5 (cat and dog).
    Returns the arrays written.
    """
    rng = np.random.default_rng(seed)
    official = rng.permutation(np.repeat(np.arange(10), 1000)).astype(np.uint8)
    local_labels = np.asarray(local_labels)
    free = {c: list(rng.permutation(np.flatnonzero(local_labels == c))) for c in range(10)}
    rows = []
    for i in range(n_matched):
        if not free[int(official[i])]:
            raise ValueError(f"too few local images of class {official[i]} for {n_matched}")
        rows.append(free[int(official[i])].pop())
    choice = np.full((10, 10), 0.15 / 9)
    np.fill_diagonal(choice, 0.85)
    choice[3, 5] = choice[5, 3] = 0.1
    choice /= choice.sum(1, keepdims=True)
    counts = np.stack([rng.multinomial(50, choice[c]) for c in official]).astype(np.int64)
    out = {
        "cifar10h-counts.npy": counts,
        "cifar10h-probs.npy": counts / counts.sum(1, keepdims=True),
        "cifar10_test_labels_official.npy": official,
        "official_to_npz_row.npy": np.array(rows, dtype=np.int32),
    }
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in out.items():
        np.save(folder / name, arr)
    return out


def write_objects92(folder: Path, n_judges: int = 5, n_brain: int = 2, seed: int = 0) -> Path:
    """A generated stand-in for the 92-image folder, in its three MATLAB files' layout.

    92 disc images (175 x 175) drawn from item features; each judge's and
    each brain participant's (two sessions) dissimilarity is ``scale -
    feature_similarity`` plus their own symmetric noise; the Figure 1 group
    matrices as condensed rows. For tests and examples without the real data.
    """
    import scipy.io

    from poz_jax.data import objects92 as o

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    feats = rng.normal(size=(o.N_IMAGES, 4))
    base = 10.0 - feature_similarity(feats)

    def person() -> np.ndarray:
        noise = rng.normal(scale=2.0, size=base.shape)
        d = base + noise + noise.T
        np.fill_diagonal(d, 0.0)
        return d

    def struct(mats, names, shape):
        s = np.zeros(shape, dtype=[("RDM", object), ("name", object), ("color", object)])
        flat = s.reshape(-1, order="F")  # MATLAB's element order
        for i, (m, n) in enumerate(zip(mats, names, strict=True)):
            flat[i] = (m, n, np.zeros((1, 3)))
        return flat.reshape(shape, order="F")

    judges = [person() for _ in range(n_judges)]
    names = [f"simJudge | subject{i + 1}" for i in range(n_judges)]
    scipy.io.savemat(folder / o.BEHAVIOUR, {"rdms_behav_92": struct(judges, names, (1, n_judges))})
    brain = [person() for _ in range(2 * n_brain)]
    names = [f"hIT | P{i % n_brain} | Session: {i // n_brain + 1}" for i in range(2 * n_brain)]
    scipy.io.savemat(folder / o.BRAIN, {"RDMs": struct(brain, names, (1, n_brain, 2))})
    images = draw_images(feats, 175)
    stimuli = np.zeros((1, o.N_IMAGES), dtype=[("image", object)])
    for i, im in enumerate(images):
        stimuli[0, i] = (im,)
    iu = np.triu_indices(o.N_IMAGES, 1)
    groups = [person()[iu][None], person()[iu][None]]
    fig1 = struct(groups, ["mIT_674neurons", "hITvisStim_316vx"], (1, 2))
    scipy.io.savemat(folder / o.SUPPLEMENT, {"stimuli_92objs": stimuli, "RDMs_mIT_hIT_fig1": fig1})
    return folder
