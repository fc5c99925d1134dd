"""Durable state: what a run has purged, so that a crash or a kill loses nothing. SQLite on
disk (:mod:`~purger.state.sqlite`), the embedded default.

May import: ``planning`` (the plan a run records), ``errors``, ``model``.
"""
