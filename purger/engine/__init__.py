"""The run engine: workers walk shards heaviest first and purge them in batches
(:mod:`~purger.engine.run`, :mod:`~purger.engine.queues`, :mod:`~purger.engine.batching`),
sent, retried and split by :mod:`~purger.engine.sending`, their stop bounded by
:mod:`~purger.engine.stopping`, their rate and ETA in :mod:`~purger.engine.estimating`;
paced and checkpointed
(:mod:`~purger.engine.checkpoints`, its types in :mod:`~purger.engine.outcome`), or, on a
run several runners share, claimed by lease (:mod:`~purger.engine.leasing`); and a
running purge as an operator's tools see and steer it (:mod:`~purger.engine.monitor`).

May import: ``planning``, ``names``, ``pacing``, ``health``, ``state``, ``providers``,
``errors``, ``model``. Never ``ui``, ``launch`` or ``cli``.
"""
