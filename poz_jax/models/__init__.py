"""Network definitions (Flax linen), each returning its named activations."""

from poz_jax.models.lenet import LeNet5

__all__ = ["LeNet5"]
