"""Planning: cut a name space into shards (:mod:`~purger.planning.plan`), turn names into
targets (:mod:`~purger.planning.targets`), and estimate a purge's duration
(:mod:`~purger.planning.estimate`).

Pure: no httpx, anyio or rich. May import: ``names``, ``health.control`` (the pure
controller the estimate steps), ``errors``, ``model``.
"""
