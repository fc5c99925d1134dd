"""The public surface: what ``purger`` exports."""

from __future__ import annotations

import purger


def test_all_is_sorted_and_every_name_exists():
    """``__all__`` is sorted, has no duplicates, and every entry is importable."""
    assert list(purger.__all__) == sorted(set(purger.__all__))
    for name in purger.__all__:
        assert hasattr(purger, name), name
