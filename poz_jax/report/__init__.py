"""What a study shows: result tables' rows, figures and console tables.

- :mod:`~poz_jax.report.tables`: the rows of every results table (one column vocabulary).
- :mod:`~poz_jax.report.plots`: figures in the paper's layouts, PNG and PDF.
- :mod:`~poz_jax.report.console`: rows as aligned text for the terminal.
"""
