"""Durable state: what a run has purged, so that a crash or a kill loses nothing. SQLite on
disk (:mod:`~purger.state.sqlite`), the embedded default, or PostgreSQL
(:mod:`~purger.state.postgres`, several runs in one database); both are a
:class:`~purger.state.protocol.Store`, and :func:`~purger.state.stores.open_store` picks
one from ``--state`` (a path or a ``postgresql://`` URL). The record types and the rules
both stores keep are in :mod:`~purger.state.records`; the SQLite file's schema in
:mod:`~purger.state.sqliteschema`; ``purger status``'s document in
:mod:`~purger.state.status`.

May import: ``planning`` (the plan a run records), ``errors``, ``model``.
"""
