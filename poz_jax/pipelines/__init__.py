"""Experiment pipelines: they only orchestrate (load -> embed -> analyse -> write).

- :mod:`~poz_jax.pipelines.exp1`: LeNet5 x many seeds on CIFAR-10 (Figure 1).
- :mod:`~poz_jax.pipelines.exp2`: VGG-16 fc7 against human similarity (Figures 2, 3).
- :mod:`~poz_jax.pipelines.demo`: a sweep of a generated layer.
"""
