"""Looking at the cache through its own nodes: probes GET each target through a cache node
(``--via``), follow redirects through the same node, and classify what came back (fresh,
stale, redirect loop, ...); ``scan`` finds the bad names before a purge, ``verify`` checks
a run's purges after it and purges again what is still bad.

The classification (:mod:`~purger.probing.classify`), the targets
(:mod:`~purger.probing.targets`) and the tallies (:mod:`~purger.probing.tally`) are pure;
:mod:`~purger.probing.prober` does the requests, :mod:`~purger.probing.verify` the rounds.

May import: ``engine``, ``planning``, ``names``, ``pacing``, ``health``, ``state``,
``providers``, ``errors``, ``model``. Never ``sim``, ``launch``, ``ui`` or ``cli``.
"""
