"""Backpressure: what a signal is (:mod:`~purger.health.signals`), reading the origin's
signals (:mod:`~purger.health.reader`, with the pure parsing of Prometheus and JSON
answers in :mod:`~purger.health.answers` and of the exposition format in
:mod:`~purger.health.exposition`), the pure controller that turns
it into a rate (:mod:`~purger.health.control`), and the tick loop that applies it
(:mod:`~purger.health.governor`).

``control``, ``answers`` and ``exposition`` are pure (no I/O, no clock).
May import: ``pacing``, ``errors``, ``model``.
"""
