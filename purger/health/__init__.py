"""Backpressure: the origin's health read from its signals (:mod:`~purger.health.signals`,
the exposition format in :mod:`~purger.health.exposition`), the pure controller that turns
it into a rate (:mod:`~purger.health.control`), and the tick loop that applies it
(:mod:`~purger.health.governor`).

``control`` is pure (no I/O, no clock). May import: ``pacing``, ``errors``, ``model``.
"""
