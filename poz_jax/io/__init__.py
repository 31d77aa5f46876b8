"""Files in and out of a results folder.

- :mod:`~poz_jax.io.files`: atomic writes of arrays, pytree checkpoints, CSV
  and JSON; digests; the guards on ``--out``.
- :mod:`~poz_jax.io.cache`: the one cache: a product stored with the key it
  was computed from.
- :mod:`~poz_jax.io.provenance`: ``config.json``, what a folder came from.
"""
