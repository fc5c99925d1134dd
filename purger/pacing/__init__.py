"""How fast: token buckets whose rate can change while running and the AIMD cap on calls in
flight (:mod:`~purger.pacing.pacer`), and retries of one call (:mod:`~purger.pacing.retrying`).

May import: ``errors``, ``model``.
"""
