"""Plumbing shared by every layer of the package, written once.

- :mod:`~antialiased.support.devices`: device choice, mixed precision (autocast, grad scaler), seeding;
- :mod:`~antialiased.support.distributed`: process-group start-up (torchrun, SLURM, the paper's
  flags), rank queries, reductions and the validation shard sampler;
- :mod:`~antialiased.support.checkpoints`: checkpoint and state-dict I/O (atomic save, loading with
  ``weights_only=True``, wrapper-prefix stripping, strict loading with clear errors);
- :mod:`~antialiased.support.files`: atomic, never-clobbering file writes;
- :mod:`~antialiased.support.registry`: name -> registration tables, each name registered once.

It imports only :mod:`antialiased.errors` from the package, so every layer may use it.
"""
