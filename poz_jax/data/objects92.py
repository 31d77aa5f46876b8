"""The 92-image set (Kriegeskorte et al. 2008; Mur et al. 2013) as rsatoolbox's demo ships it.

A folder holding the three MATLAB files of rsatoolbox's ``demos/92imageData``
(see ``../shared/data/SOURCES.md``): ``92_behavRDMs.mat`` (16 people's
similarity judgments, one dissimilarity matrix each), ``92_brainRDMs.mat``
(human IT fMRI, 4 people x 2 sessions) and
``Kriegeskorte_Neuron2008_supplementalData.mat`` (the 92 images, and the
human and monkey IT group matrices of the 2008 paper's Figure 1).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from poz_jax.data.errors import DataError
from poz_jax.data.rdms import ParticipantRDMs, load_rdms

BEHAVIOUR = "92_behavRDMs.mat"
BRAIN = "92_brainRDMs.mat"
SUPPLEMENT = "Kriegeskorte_Neuron2008_supplementalData.mat"
N_IMAGES = 92


@dataclasses.dataclass(frozen=True)
class Objects92:
    """``images`` uint8 ``(92, 175, 175, 3)``; ``targets``: participants' dissimilarity
    matrices by name (``judgments``: 16 people; ``hIT``: 4 people, each the mean of their
    two sessions); ``references``: group dissimilarity matrices ``(92, 92)`` by name."""

    images: np.ndarray
    targets: dict[str, ParticipantRDMs]
    references: dict[str, np.ndarray]


def _need(folder: Path, name: str) -> Path:
    path = folder / name
    if not path.is_file():
        raise DataError(
            f"{folder} has no {name}; the 92-image folder holds {BEHAVIOUR}, {BRAIN} and "
            f"{SUPPLEMENT} (rsatoolbox's demos/92imageData)"
        )
    return path


def load_objects92(folder: str | Path) -> Objects92:
    """The 92-image set from ``folder``; :class:`DataError` names a missing or bad file."""
    from poz_jax.data.stimuli import read_mat

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder (the 92-image set's folder)")
    judgments = load_rdms(_need(folder, BEHAVIOUR), "dissimilarity", "rdms_behav_92")
    brain = load_rdms(_need(folder, BRAIN), "dissimilarity", "RDMs")
    if brain.matrices.shape[0] % 2:
        raise DataError(f"{folder / BRAIN}: expected each person's two sessions")
    people = len(brain.matrices) // 2
    # MATLAB's element order: every person's session 1, then every person's session 2.
    hit = brain.matrices.reshape(2, people, N_IMAGES, N_IMAGES).mean(0)
    names = tuple(n.split("|")[1].strip() if n.count("|") >= 2 else n for n in brain.participants)
    sup = read_mat(_need(folder, SUPPLEMENT))
    try:
        stimuli = sup["stimuli_92objs"].ravel()
        images = np.stack([np.asarray(s["image"], np.uint8) for s in stimuli])
    except (KeyError, ValueError, IndexError) as err:
        raise DataError(
            f"{folder / SUPPLEMENT} does not hold the 92 images and Figure 1 matrices ({err})"
        ) from None
    figure1 = load_rdms(folder / SUPPLEMENT, "dissimilarity", "RDMs_mIT_hIT_fig1")
    # The 2008 paper's names: monkey IT (674 neurons), human IT (316 voxels).
    labels = {"mIT_674neurons": "monkey IT", "hITvisStim_316vx": "human IT"}
    references = {
        labels.get(n, n): m for n, m in zip(figure1.participants, figure1.matrices, strict=True)
    }
    for name, m in (("judgments", judgments.matrices), ("hIT", hit), *references.items()):
        if m.shape[-1] != N_IMAGES:
            raise DataError(f"{folder}: the {name} matrices are not 92 x 92 ({m.shape})")
    if images.shape[:1] != (N_IMAGES,) or images.shape[-1] != 3:
        raise DataError(f"{folder / SUPPLEMENT}: expected 92 RGB images, got {images.shape}")
    targets = {
        "judgments": judgments,
        "hIT": ParticipantRDMs(hit, "dissimilarity", names[:people]),
    }
    return Objects92(images, targets, references)
