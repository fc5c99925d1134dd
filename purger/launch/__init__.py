"""From an operator's options to a purge: the parts of a run assembled from options
(:mod:`~purger.launch.build`) and run, with the state, the governor and the signals
(:mod:`~purger.launch.execute`); the forecast before anything is sent, one for
``estimate``, ``run --dry-run`` and a run's summary (:mod:`~purger.launch.forecast`); what
``purger config check`` checks offline (:mod:`~purger.launch.preflight`); and the verbs of
the Python API that ``purger/__init__.py`` exports (:mod:`~purger.launch.api`).

May import: ``sim``, ``engine`` and everything below them. Never ``ui`` or ``cli``.
"""
