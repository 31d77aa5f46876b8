"""Training many networks at once (:mod:`~poz_jax.training.train`): one jitted
step vmapped over seeds and sharded over devices, checkpointed every epoch."""
