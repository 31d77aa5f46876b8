"""The array core: pure, jit- and vmap-able functions, validated at the door.

- :mod:`~poz_jax.core.ranking`: PoZ per node, keep orders, keep grids.
- :mod:`~poz_jax.core.rsa`: RSMs, their fit, class-mean items.
- :mod:`~poz_jax.core.sweeps`: fits at many nested (or masked) keep levels in one pass.
- :mod:`~poz_jax.core.nulls`: random-pruning nulls and the tests against them.
- :mod:`~poz_jax.core.validate`: the input checks (public: the rest of the
  package uses them too).
- :mod:`~poz_jax.core.kernels`: the unvalidated jitted kernels
  (``rsm_kernel``, ``sweep_kernel``, ...) the public functions above call
  after checking their inputs.
"""
