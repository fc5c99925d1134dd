"""The run engine: workers walk shards heaviest first and purge them in batches
(:mod:`~purger.engine.run`, :mod:`~purger.engine.batching`), paced and checkpointed; and a
running purge as an operator's tools see and steer it (:mod:`~purger.engine.monitor`).

May import: ``planning``, ``names``, ``pacing``, ``health``, ``state``, ``providers``,
``errors``, ``model``. Never ``ui``, ``launch`` or ``cli``.
"""
