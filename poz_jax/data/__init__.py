"""Data loading with clear errors: CIFAR-10 (Experiment 1) and stimulus sets (Experiment 2)."""

from poz_jax.data.cifar10 import cache_dir, download_cifar10, load_cifar10
from poz_jax.data.errors import DataError
from poz_jax.data.stimuli import (
    StimulusSet,
    check_similarity,
    load_embeddings,
    load_similarity,
    load_stimulus_folder,
    load_stimulus_sets,
)

__all__ = [
    "DataError",
    "StimulusSet",
    "cache_dir",
    "check_similarity",
    "download_cifar10",
    "load_cifar10",
    "load_embeddings",
    "load_similarity",
    "load_stimulus_folder",
    "load_stimulus_sets",
]
