"""Data shipped with purger: a sample of real PyPI project names with download ranks."""
