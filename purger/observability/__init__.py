"""Observability: purger's own Prometheus metrics, read from a live run's snapshot
(:mod:`~purger.observability.metrics`), and the three ways out of the process: an HTTP
``/metrics`` page, a node_exporter textfile, a Pushgateway
(:mod:`~purger.observability.exporters`).

May import: ``engine`` (the snapshot) and everything below it. Never ``launch``, ``ui`` or
``cli``.
"""
