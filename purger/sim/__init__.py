"""Simulation: a Varnish-like CDN and its origin as an httpx transport
(:mod:`~purger.sim.cdn`), virtual time (:mod:`~purger.sim.virtual_time`), and a whole purge
run by the real engine against them (:mod:`~purger.sim.purge`).

May import: ``engine`` and everything below it. Never ``launch``, ``ui`` or ``cli``.
"""
