"""``python -m authvision.brandkit OUT [--seed N]``: write a brand kit, for manual checks."""

from __future__ import annotations

import argparse
import logging
import sys
import time

from authvision.errors import OutputExistsError

from .defects import DEFECT_FAMILIES
from .kit import KitConfig, generate_kit


def main(argv: list[str] | None = None) -> int:
    defaults = KitConfig()
    parser = argparse.ArgumentParser(prog="python -m authvision.brandkit", description=__doc__)
    parser.add_argument("out", help="output directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--brands", type=int, default=defaults.brands)
    parser.add_argument("--listings", type=int, default=defaults.listings)
    parser.add_argument("--genuine-refs", type=int, default=defaults.genuine_refs)
    parser.add_argument("--fake-refs", type=int, default=defaults.fake_refs)
    parser.add_argument("--heldout-family", action="append", default=[], choices=sorted(DEFECT_FAMILIES),
                        help="a defect family seen only in test listings (repeatable)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--overwrite", action="store_true", help="replace a kit already in OUT")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = KitConfig(
        brands=args.brands,
        listings=args.listings,
        genuine_refs=args.genuine_refs,
        fake_refs=args.fake_refs,
        heldout_families=tuple(args.heldout_family),
    )
    start = time.perf_counter()
    try:
        summary = generate_kit(args.out, seed=args.seed, config=config, workers=args.workers, overwrite=args.overwrite)
    except OutputExistsError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}: pass --overwrite to replace it, or choose another OUT\n")
    print(f"wrote {summary.out_dir} in {time.perf_counter() - start:.1f} s")
    for key, value in summary.counts.items():
        print(f"  {key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
