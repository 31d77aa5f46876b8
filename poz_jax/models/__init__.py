"""The networks (Flax linen), each beside the function that embeds inputs with it.

- :mod:`~poz_jax.models.lenet`: LeNet5 (Experiment 1), ``embed`` for all seeds at once.
- :mod:`~poz_jax.models.vgg`: VGG-16 (Experiment 2), ``embed_sets`` for stimulus sets.
- :mod:`~poz_jax.models.convert`: torchvision / timm VGG-16 weights -> Flax ``.npz``.
"""

from poz_jax.models.lenet import LeNet5

__all__ = ["LeNet5"]
