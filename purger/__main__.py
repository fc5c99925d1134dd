"""``python -m purger``."""

from purger.cli import main

main()
