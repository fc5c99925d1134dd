"""Configuration: the one schema of every setting (:mod:`~purger.config.schema`: key, type,
bounds, flag, ``PURGER_*`` variable), and job files, variables and signal files read with
it (:mod:`~purger.config.job`).

May import: ``names``, ``providers``, ``health``, ``errors``, ``model``.
"""
