"""The studies and tools: they only orchestrate (load -> embed -> analyse -> write).

One module per registered study (:mod:`poz_jax.study.registry`), named after
its command: ``exp1``, ``exp2``, ``exp3``, ``peterson``, ``trim``, ``compare``,
``objects92``; ``demo`` (a sweep of a generated layer) and ``extract`` (the
``extract`` and ``export-scores`` tools). A study never imports another.
"""
