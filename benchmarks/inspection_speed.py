"""Region inspection speed: CPU per inspected listing, and a scan with ~20 % of listings inspected vs the screen alone.

Targets (issue "Region inspection"): inspection ≤ 15 ms of CPU per inspected listing on one core at
the demo kit's sizes; a scan in which 20 % of listings are inspected keeps ≥ 0.6× the screen-only
rate, measured in the same run.

Data: a brand kit (``authvision.brandkit``, seed 0, the demo's sizes: 800 px photos). The checker
indexes every reference; inspection is restricted to as many products as make ~20 % of the listings
(``InspectionEvidence(products=...)``), so the other listings get the screen only, as a marketplace
inspecting its protected products would.

    python benchmarks/inspection_speed.py [--listings 200] [--kit /tmp/kit]   # ~5-10 min on 2 cores
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import authvision as av  # noqa: E402
from authvision.brandkit import KitConfig, generate_kit  # noqa: E402
from authvision.evidence import InspectionEvidence, default_providers  # noqa: E402

TARGET_MS = 15.0
TARGET_RATIO = 0.6


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _scan_rate(checker: av.AuthenticityChecker, paths: list[Path]) -> tuple[float, float, int]:
    """(listings/s wall, CPU s per listing, listings inspected) of one scan of ``paths``."""
    cpu, wall = time.process_time(), time.perf_counter()
    results = list(checker.scan(paths))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    inspected = sum(1 for r in results if (r.verdict.inspection or {}).get("inspected"))
    return len(paths) / wall, cpu / len(paths), inspected


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kit", type=Path, default=Path("/tmp/authvision-bench-kit"))
    parser.add_argument("--listings", type=int, default=200)
    parser.add_argument("--share", type=float, default=0.2, help="share of listings to inspect")
    args = parser.parse_args()
    if not (args.kit / "listings.csv").is_file():
        generate_kit(args.kit, seed=0, config=KitConfig(listings=args.listings), workers=2, overwrite=True)
    refs, rows = _rows(args.kit / "references.csv"), _rows(args.kit / "listings.csv")
    paths = [args.kit / r["path"] for r in rows]
    per_product = Counter(r["product"] for r in rows)
    chosen, covered = [], 0
    for product, n in sorted(per_product.items()):
        if covered >= args.share * len(rows):
            break
        if any(ref["product"] == product for ref in refs):
            chosen.append(product)
            covered += n

    embedder = av.Embedder.load(num_threads=1)
    screen = av.AuthenticityChecker(embedder, providers=default_providers())
    ids = screen.add_references([args.kit / r["path"] for r in refs], [r["label"] for r in refs],
                                product=[r["product"] for r in refs], brand=[r["brand"] for r in refs])  # fmt: skip
    inspection = InspectionEvidence(products=chosen)
    both = av.AuthenticityChecker(embedder, screen.index, providers=[*default_providers(), inspection])
    indexed = screen.index.lookup([i for i in ids if i is not None])
    inspection.references_added([indexed[i] for i in ids if i is not None], [args.kit / r["path"] for r, i in zip(refs, ids) if i is not None], both)
    start = time.process_time()
    inspection.build()
    print(f"inspection data for {len(chosen)} products built in {time.process_time() - start:.1f} s CPU")

    # CPU of inspection alone, one listing at a time on one thread (the per-listing figure).
    listings = [p for p, r in zip(paths, rows) if r["product"] in chosen][:30]
    cpu = time.process_time()
    product_of = {p: r["product"] for p, r in zip(paths, rows)}
    for p in listings:
        inspection.inspect(p, product_of[p], heatmap=False)  # one listing, on this thread
    ms = 1000 * (time.process_time() - cpu) / len(listings)

    load = os.getloadavg()[0]
    screen_rate, screen_cpu, _ = _scan_rate(screen, paths)
    both_rate, both_cpu, inspected = _scan_rate(both, paths)
    load_end = os.getloadavg()[0]
    ratio = both_rate / screen_rate
    print(f"inspection CPU per inspected listing, 1 thread: {ms:.0f} ms (target ≤ {TARGET_MS:.0f}: {'met' if ms <= TARGET_MS else 'not met'})")
    print(f"scan of {len(paths)} listings, screen only: {screen_rate:.1f} listings/s, {1000 * screen_cpu:.1f} ms CPU per listing")
    print(f"scan with {inspected} inspected ({inspected / len(paths):.0%}): {both_rate:.1f} listings/s, {1000 * both_cpu:.1f} ms CPU per listing")
    print(f"ratio {ratio:.2f} (target ≥ {TARGET_RATIO}: {'met' if ratio >= TARGET_RATIO else 'not met'}); load average {load:.1f} → {load_end:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
