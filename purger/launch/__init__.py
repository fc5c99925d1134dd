"""From an operator's options to a purge: the plan and its names, the providers on their
clients, the pacer, the state and the signals assembled (:mod:`~purger.launch.build`); the
forecast before anything is sent, one for ``estimate``, ``run --dry-run`` and a run's summary
(:mod:`~purger.launch.forecast`); and what ``purger config check`` checks offline
(:mod:`~purger.launch.preflight`).

May import: ``sim``, ``engine`` and everything below them. Never ``ui`` or ``cli``.
"""
