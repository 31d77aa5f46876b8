"""Analysis on the host, over the array core: what every study computes and reports.

- :mod:`~poz_jax.analysis.pruning`: ``analyse`` (PoZ order, the sweep at every
  keep count, max kept PoZ), the tests against a random-pruning null, pooling.
- :mod:`~poz_jax.analysis.networks`: the same per network for studies of many
  networks (sweep, cached null, tests, the networks' mean curve).
- :mod:`~poz_jax.analysis.comparison`: out-of-sample comparison of keep
  orders, supervised pruning and reweighting.
- :mod:`~poz_jax.analysis.stats`: the summary statistics (mean, sd, quantiles,
  best level, intervals, across-participant tests), one definition each.
"""
