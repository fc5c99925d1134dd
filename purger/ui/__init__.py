"""What a person sees: rich tables and summary lines (:mod:`~purger.ui.report`) and the live
view of a running purge (:mod:`~purger.ui.live_view`). Renders; decides nothing.

May import: ``launch``, ``engine`` and everything below them. Never ``cli``.
"""
