"""``python -m poz_jax``: the ``poz-jax`` command."""

import sys

from poz_jax.cli import main

sys.exit(main())
