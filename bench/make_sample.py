"""Rebuild ``purger/data/pypi-sample.tsv.gz`` from the full PyPI list.

The sample keeps every ranked (most downloaded) project, so traffic weights stay realistic,
and every 10th of the others, so first-letter and prefix skew stay as on PyPI.

    python bench/make_sample.py ../shared/data/pypi-projects.tsv.gz
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

KEEP_EVERY = 10
OUT = Path(__file__).resolve().parent.parent / "purger" / "data" / "pypi-sample.tsv.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("projects", type=Path, help="pypi-projects.tsv.gz (name, download_rank)")
    args = parser.parse_args()
    kept = 0
    # mtime=0 keeps the file byte-for-byte reproducible.
    with (
        gzip.open(args.projects, "rt", encoding="utf-8") as src,
        OUT.open("wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=9) as dst,
    ):
        header = next(src)
        dst.write(header.encode())
        for index, line in enumerate(src):
            rank = line.rstrip("\n").split("\t")[1]
            if rank or index % KEEP_EVERY == 0:
                dst.write(line.encode())
                kept += 1
    print(f"wrote {kept:,} names to {OUT}")


if __name__ == "__main__":
    main()
