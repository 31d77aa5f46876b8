"""CIFAR-10H: human labels of CIFAR-10's test set (Peterson, Battleday, Griffiths &
Russakovsky, ICCV 2019).

For each of the 10,000 test images, ``cifar10h-counts.npy`` holds how many of
about 50 people (47-63) chose each of the 10 classes, and
``cifar10h-probs.npy`` the same counts normalised per row. Rows follow the
*official* test order (``test_batch``, and tfds). A local test set in
another order (poz-jax's ``cifar10_test.npz`` is sorted by class) is aligned
through a mapping ``official_to_npz_row.npy``: for official index ``i``, the
row holding the same image.

From the counts come the human similarity matrices of Experiment 3:

- classes (:func:`class_similarity`): the confusion matrix, counts summed
  per true class and rows normalised, ``P[a, b]`` = the share of choices of
  ``b`` for images of class ``a``; made symmetric as ``(P + P.T) / 2``
  (default), or with Shepard's (1957) ``sqrt(P_ab P_ba / (P_aa P_bb))``;
- images (:func:`image_similarity`): from two images' label distributions
  ``p_i``, ``p_j``, by default ``sum_k p_ik p_jk``, the chance that one
  person labelling each image gives both the same label (directly
  interpretable, no free parameter); ``"cosine"`` and ``"jsd"``
  (``1 -`` the Jensen-Shannon divergence in bits) are the alternatives.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from poz_jax.data.errors import DataError

N_TEST = 10000
N_CLASSES = 10
COUNTS = "cifar10h-counts.npy"
PROBS = "cifar10h-probs.npy"
LABELS = "cifar10_test_labels_official.npy"
MAPPING = "official_to_npz_row.npy"


def _load(path: Path, what: str) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{what}: {path} not found")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        # np.load says "pickled data" of anything that is not a plain .npy.
        raise DataError(
            f"{what}: {path} is not a readable .npy array of numbers (as numpy.save writes them)"
        ) from err


def load_counts(folder: str | Path) -> np.ndarray:
    """CIFAR-10H's counts ``(10000, 10)`` int64, in official test order, checked.

    Checks the shape, that they are whole non-negative numbers with at least
    one choice per image, and, when ``cifar10h-probs.npy`` lies beside them,
    that its rows are the counts normalised.
    """
    folder = Path(folder)
    counts = _load(folder / COUNTS, "CIFAR-10H counts")
    if counts.shape != (N_TEST, N_CLASSES):
        raise DataError(
            f"{folder / COUNTS} has shape {counts.shape}; CIFAR-10H counts are "
            f"({N_TEST}, {N_CLASSES}), one row per official test image"
        )
    if counts.dtype.kind not in "iuf" or not np.all(np.isfinite(counts)):
        raise DataError(f"{folder / COUNTS} must hold finite numbers, got dtype {counts.dtype}")
    if np.any(counts < 0) or np.any(counts != np.round(counts)):
        raise DataError(f"{folder / COUNTS} must hold whole non-negative counts")
    counts = counts.astype(np.int64)
    totals = counts.sum(1)
    if np.any(totals == 0):
        raise DataError(f"{folder / COUNTS}: {int(np.sum(totals == 0))} image(s) have no choices")
    if (folder / PROBS).is_file():
        probs = _load(folder / PROBS, "CIFAR-10H probabilities")
        if probs.shape != counts.shape or not np.allclose(probs, counts / totals[:, None]):
            raise DataError(
                f"{folder / PROBS} is not {COUNTS} normalised per row: the two files do not match"
            )
    return counts


def load_official_labels(folder: str | Path) -> np.ndarray:
    """The official test labels ``(10000,)`` int64 (``cifar10_test_labels_official.npy``)."""
    path = Path(folder) / LABELS
    labels = _load(path, "official CIFAR-10 test labels")
    if labels.shape != (N_TEST,) or labels.dtype.kind not in "iu":
        raise DataError(
            f"{path} must hold {N_TEST} integer labels, got {labels.dtype} {labels.shape}"
        )
    if labels.min() < 0 or labels.max() >= N_CLASSES:
        raise DataError(f"{path} holds labels outside 0..{N_CLASSES - 1}")
    return labels.astype(np.int64)


# People's majority label agrees with the official one on 99.2% of CIFAR-10H's
# images; counts in another row order agree on about 10% (chance). Anything
# under this share is refused as counts that do not follow the official order.
MIN_MAJORITY_AGREEMENT = 0.9


def check_row_order(counts: np.ndarray, official_labels: np.ndarray, where: str = "") -> float:
    """Refuse counts whose rows do not follow the official test order; returns the agreement.

    The agreement is the share of images whose most chosen class (the first
    of ties) is their official label.
    """
    agree = float(np.mean(np.argmax(counts, axis=1) == np.asarray(official_labels)))
    if agree < MIN_MAJORITY_AGREEMENT:
        raise DataError(
            f"{where or COUNTS}: people's majority label matches the official label on only "
            f"{100 * agree:.1f}% of images (CIFAR-10H: 99.2%); are the rows in the official "
            "test order, and are the labels the official ones?"
        )
    return agree


def align_to_local(
    folder: str | Path, local_labels: np.ndarray, official_labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Official indices and the local rows holding the same images.

    Reads ``official_to_npz_row.npy`` (entry ``i``: the local row of official
    image ``i``) and checks that every mapped row exists, appears once and
    carries the official label.

    Returns:
      ``(official_index, local_row)``, int64 ``(n_matched,)`` each.
    """
    path = Path(folder) / MAPPING
    rows = _load(path, "official-to-local mapping")
    if rows.ndim != 1 or rows.dtype.kind not in "iu" or len(rows) > N_TEST:
        raise DataError(f"{path} must be a 1-D integer array of at most {N_TEST} rows")
    rows = rows.astype(np.int64)
    if not rows.size:
        raise DataError(f"{path} maps no images")
    local_labels = np.asarray(local_labels)
    if rows.size and (rows.min() < 0 or rows.max() >= len(local_labels)):
        raise DataError(f"{path} points past the {len(local_labels)} local test images")
    if len(np.unique(rows)) != len(rows):
        raise DataError(f"{path} maps two official images to one local row")
    index = np.arange(len(rows))
    wrong = np.flatnonzero(local_labels[rows] != official_labels[index])
    if wrong.size:
        raise DataError(
            f"{path} does not match the images' labels: {wrong.size} of {len(rows)} mapped "
            f"images have another label locally (first: official image {int(wrong[0])}); "
            "is it the mapping for this copy of the test set?"
        )
    return index, rows


def class_confusion(counts: np.ndarray, labels: np.ndarray, n_classes: int = N_CLASSES):
    """``P[a, b]``: the share of human choices of ``b`` for images of class ``a``, ``(c, c)``."""
    counts, labels = np.asarray(counts), np.asarray(labels)
    if counts.ndim != 2 or counts.shape[1] != n_classes or labels.shape != (len(counts),):
        raise ValueError(
            f"counts must be (n_images, {n_classes}) and labels (n_images,), got "
            f"{counts.shape} and {labels.shape}"
        )
    totals = np.zeros((n_classes, n_classes))
    np.add.at(totals, labels, counts)
    if np.any(totals.sum(1) == 0):
        raise ValueError("every class needs at least one image with choices")
    return totals / totals.sum(1, keepdims=True)


def class_similarity(confusion: np.ndarray, method: str = "mean") -> np.ndarray:
    """A symmetric class similarity ``(c, c)`` from a confusion matrix (diagonal 1 for shepard).

    ``"mean"``: ``(P + P.T) / 2``; ``"shepard"``: ``sqrt(P_ab P_ba / (P_aa P_bb))``.
    """
    p = np.asarray(confusion, float)
    if method == "mean":
        return (p + p.T) / 2
    if method == "shepard":
        d = np.diag(p)
        if np.any(d <= 0):
            raise ValueError(
                f"Shepard's similarity divides by P_aa: class {int(np.argmin(d))} was never "
                "chosen for its own images; use the mean similarity"
            )
        return np.sqrt(p * p.T / np.outer(d, d))
    raise ValueError(f"method must be 'mean' or 'shepard', got {method!r}")


def image_similarity(probs: np.ndarray, method: str = "agreement") -> np.ndarray:
    """Image-by-image similarity ``(n, n)`` from label distributions ``(n, c)``.

    ``"agreement"``: ``sum_k p_ik p_jk``; ``"cosine"``; ``"jsd"``: 1 minus the
    Jensen-Shannon divergence in bits (in [0, 1]).
    """
    p = np.asarray(probs, float)
    if p.ndim != 2:
        raise ValueError(f"probs must be (n_images, n_classes), got {p.shape}")
    if method == "agreement":
        return p @ p.T
    if method == "cosine":
        unit = p / np.linalg.norm(p, axis=1, keepdims=True)
        return unit @ unit.T
    if method == "jsd":
        m = (p[:, None, :] + p[None, :, :]) / 2

        def kl(a, b):
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.sum(np.where(a > 0, a * np.log2(a / b), 0.0), axis=-1)

        return 1.0 - (kl(p[:, None, :], m) + kl(p[None, :, :], m)) / 2
    raise ValueError(f"method must be 'agreement', 'cosine' or 'jsd', got {method!r}")


def matched_sets(
    labels: np.ndarray, per_class: int = 12, n_sets: int = 5, seed: int = 0
) -> list[np.ndarray]:
    """Disjoint stimulus sets of ``per_class`` images of every class, seeded.

    ``labels``: ``(n,)`` labels of the candidate images (e.g. the matched
    ones). Each class's images are shuffled once (``np.random.default_rng([seed,
    class])``) and dealt out ``per_class`` at a time. Returns ``n_sets``
    sorted index arrays into ``labels``, each ``(per_class * n_classes,)``.
    """
    labels = np.asarray(labels)
    classes = np.unique(labels)
    need = per_class * n_sets
    short = {int(c): int(np.sum(labels == c)) for c in classes if np.sum(labels == c) < need}
    if short:
        raise ValueError(
            f"{n_sets} disjoint sets of {per_class} per class need {need} images of each class; "
            f"too few of classes {short}"
        )
    dealt = {
        int(c): np.random.default_rng([seed, int(c)]).permutation(np.flatnonzero(labels == c))
        for c in classes
    }
    return [
        np.sort(np.concatenate([d[s * per_class : (s + 1) * per_class] for d in dealt.values()]))
        for s in range(n_sets)
    ]
