"""Names: where they come from (files, tables, stdin, the bundled sample, a Simple API
index), PEP 503 normalization, validation, weights, and the sorted :class:`NameSet`.

May import: ``purger.errors``, ``purger.model``. Pure but for the sources' file and
network reads, which stay in :mod:`purger.names.sources`.
"""
