"""Reference-index benchmark: recall@10 against exact search, latency, build time, bytes per reference.

Target (issue 3): 1M references, single-query p50 <= 1 ms at recall@10 >= 0.95, <= 1 KB per reference.

Vectors imitate pooled CNN embeddings: a common mean direction (unrelated photos have cosine ~0.4),
a cluster per product (photos of one product ~0.85), and within each a power-law spectrum
(variance of the i-th principal direction ~ i^-decay) under a random rotation, L2-normalised.
Queries are new photos of indexed products, plus a share (``--unseen``) of products the index does
not hold. Everything is seeded. Ground truth: exact inner-product search (``faiss.knn``).

    python benchmarks/index_search.py --quick                 # 10k and 100k, ~10 min on 2 cores
    python benchmarks/index_search.py --sizes 1000000 --out bench.json
    python benchmarks/index_search.py --dim 256 --sizes 1000000

For each index type and each search setting (IVF nprobe / HNSW efSearch): recall@10 over all queries
(and split seen / unseen products), single-query latency p50/p99 with 1 FAISS thread and p50 with
all threads, batched latency per query (batches of 256, all threads). The "operating point" of an
index type is its cheapest setting reaching the target recall. A last row per size measures
``authvision.ReferenceIndex`` itself (factory="auto", metadata, locks) end to end.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from authvision import index as av_index  # noqa: E402
from authvision.index import ReferenceIndex, SearchParams  # noqa: E402

CHUNK = 50_000


# -- data --------------------------------------------------------------------------------------------


class Generator:
    """Seeded synthetic embeddings with product clusters; see the module docstring."""

    def __init__(self, n: int, dim: int, *, seed: int, per_product: int, decay: float,
                 mean_var: float = 0.4, between_var: float = 0.45, within_var: float = 0.15) -> None:
        rng = np.random.default_rng(seed)
        spectrum = np.arange(1, dim + 1, dtype=np.float64) ** (-decay / 2)
        spectrum /= np.sqrt((spectrum**2).sum())
        rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
        self.basis = (rotation * spectrum).astype(np.float32)  # columns: principal directions, scaled
        mean = rng.standard_normal(dim)
        self.mean = (mean * math.sqrt(mean_var) / np.linalg.norm(mean)).astype(np.float32)
        self.products = max(1, n // per_product)
        self.centres = (rng.standard_normal((self.products, dim)) * math.sqrt(between_var)).astype(np.float32)
        self.within = np.float32(math.sqrt(within_var))
        self.between = np.float32(math.sqrt(between_var))
        self.dim = dim
        self.rng = rng

    def _make(self, latent: np.ndarray) -> np.ndarray:
        x = self.mean + latent @ self.basis.T
        faiss.normalize_L2(x)
        return x

    def references(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        out = np.empty((n, self.dim), dtype=np.float32)
        product = np.empty(n, dtype=np.int64)
        for start in range(0, n, CHUNK):
            stop = min(n, start + CHUNK)
            pid = self.rng.integers(0, self.products, stop - start)
            latent = self.centres[pid] + self.within * self.rng.standard_normal((stop - start, self.dim), dtype=np.float32)
            out[start:stop] = self._make(latent)
            product[start:stop] = pid
        return out, product

    def queries(self, n: int, unseen: float) -> tuple[np.ndarray, np.ndarray]:
        x, _ = self.references(n)
        is_unseen = self.rng.random(n) < unseen
        if is_unseen.any():
            m = int(is_unseen.sum())
            centres = self.between * self.rng.standard_normal((m, self.dim), dtype=np.float32)
            x[is_unseen] = self._make(centres + self.within * self.rng.standard_normal((m, self.dim), dtype=np.float32))
        return x, is_unseen


# -- measurement -------------------------------------------------------------------------------------


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per query: share of the exact top-k found (the usual k-recall@k)."""
    k = truth.shape[1]
    return np.array([np.intersect1d(f[f >= 0], t).size / k for f, t in zip(found, truth)])


def nlist_for(n: int) -> int:
    return int(2 ** round(math.log2(max(64.0, 4 * math.sqrt(n)))))


def candidates(n: int, dim: int) -> list[str]:
    nlist = nlist_for(n)
    auto = av_index.auto_factory(dim)
    out = ["Flat", auto]
    if dim > 512:
        out += ["HNSW32,SQ4", "HNSW16,SQ6", "HNSW32,SQ8", f"PCA256,IVF{nlist},SQ8", f"IVF{nlist},SQ6"]
    else:
        out += ["HNSW32,SQ8", "HNSW16,SQ8", f"IVF{nlist},SQ8"]
    out = list(dict.fromkeys(out))
    if n >= 1_000_000:  # keep the 1M run within reach of 2 cores: auto, and the types that fit 1 KB/ref
        out = [f for f in out if f in ("Flat", auto) or bytes_estimate(f, dim) <= 1024]
    return out


def bytes_estimate(factory: str, dim: int) -> float:
    code = {"SQ4": 0.5, "SQ6": 0.75, "SQ8": 1.0, "Flat": 4.0}
    parts = factory.split(",")
    d = dim
    for part in parts:
        if part.startswith("PCA"):
            d = int(part[3:])
    per = code.get(parts[-1], 1.0) * d
    if parts[0].startswith("HNSW"):
        per += 8 * int(parts[0][4:]) + 8
    return per + 8


def build(factory: str, xb: np.ndarray, train_max: int) -> faiss.Index:
    metric = faiss.METRIC_INNER_PRODUCT if factory == "Flat" else faiss.METRIC_L2
    index = faiss.index_factory(xb.shape[1], factory, metric)
    if not index.is_trained:
        need = train_max
        if "IVF" in factory:
            need = max(train_max, 40 * faiss.extract_index_ivf(index).nlist)
        rng = np.random.default_rng(1)
        sample = xb if len(xb) <= need else xb[np.sort(rng.choice(len(xb), need, replace=False))]
        index.train(sample)
    for start in range(0, len(xb), CHUNK):
        index.add(xb[start : start + CHUNK])
    return index


def settings(factory: str, index: faiss.Index) -> list[tuple[str, int, object]]:
    if "HNSW" in factory:
        return [("efSearch", ef, faiss.SearchParametersHNSW(efSearch=ef)) for ef in (16, 32, 64, 128, 256)]
    if "IVF" in factory:
        nlist = faiss.extract_index_ivf(index).nlist
        return [("nprobe", p, faiss.SearchParametersIVF(nprobe=p)) for p in (4, 8, 16, 32, 64, 128, 256) if p <= nlist]
    return [("exact", 0, None)]


def single_latencies(search, queries: np.ndarray, threads: int) -> np.ndarray:
    faiss.omp_set_num_threads(threads)
    for q in queries[:10]:  # warm-up
        search(q[None])
    out = np.empty(len(queries))
    for i, q in enumerate(queries):
        t0 = time.perf_counter()
        search(q[None])
        out[i] = time.perf_counter() - t0
    return out * 1e3


def batch_latency(search, queries: np.ndarray, threads: int, batch: int = 256) -> float:
    faiss.omp_set_num_threads(threads)
    reps = max(1, math.ceil(batch / len(queries)))
    block = np.ascontiguousarray(np.tile(queries, (reps, 1))[:batch])
    search(block)
    t0 = time.perf_counter()
    search(block)
    return (time.perf_counter() - t0) * 1e3 / len(block)


def measure_index(name, build_s, nbytes, n, search_for, truth, xq, unseen, args, max_threads):
    rows = []
    lat_q = xq[: args.latency_queries]
    for param_name, value, search in search_for:
        faiss.omp_set_num_threads(max_threads)
        found = search(xq)[1]
        rec = recall_at_k(found, truth)
        single1 = single_latencies(search, lat_q, 1)
        row = {
            "factory": name, "param": param_name, "value": value, "n": n,
            "recall": float(rec.mean()),
            "recall_seen": float(rec[~unseen].mean()) if (~unseen).any() else None,
            "recall_unseen": float(rec[unseen].mean()) if unseen.any() else None,
            "p50_ms_1t": float(np.percentile(single1, 50)), "p99_ms_1t": float(np.percentile(single1, 99)),
            "p50_ms_all": float(np.percentile(single_latencies(search, lat_q, max_threads), 50)),
            "batch_ms_per_query": batch_latency(search, lat_q, max_threads),
            "build_s": build_s, "bytes_per_ref": nbytes / n,
        }
        row["meets_target"] = bool(row["recall"] >= args.target_recall and row["p50_ms_1t"] <= 1.0 and row["bytes_per_ref"] <= 1024)
        rows.append(row)
        print(format_row(row), flush=True)
        if row["recall"] >= 0.995:
            break
    faiss.omp_set_num_threads(max_threads)
    return rows


HEADER = (f"{'n':>8} {'factory':<22} {'setting':<14} {'recall@10':>9} {'seen/unseen':>11} {'p50 1t':>8} {'p99 1t':>8} "
          f"{'p50 all':>8} {'batch/q':>8} {'build s':>8} {'B/ref':>7}")


def format_row(r: dict) -> str:
    setting = f"{r['param']}={r['value']}" if r["param"] != "exact" else "exact"
    split = f"{r['recall_seen']:.3f}/{r['recall_unseen']:.2f}" if r["recall_unseen"] is not None else f"{r['recall_seen']:.3f}"
    flag = " *" if r.get("meets_target") else ""
    return (f"{r['n']:>8} {r['factory']:<22} {setting:<14} {r['recall']:>9.3f} {split:>11} {r['p50_ms_1t']:>8.3f} "
            f"{r['p99_ms_1t']:>8.3f} {r['p50_ms_all']:>8.3f} {r['batch_ms_per_query']:>8.3f} {r['build_s']:>8.1f} {r['bytes_per_ref']:>7.0f}{flag}")


def run_size(n: int, args, max_threads: int) -> dict:
    faiss.omp_set_num_threads(max_threads)
    t0 = time.perf_counter()
    gen = Generator(n, args.dim, seed=args.seed, per_product=args.per_product, decay=args.decay)
    xb, product = gen.references(n)
    xq, unseen = gen.queries(args.queries, args.unseen)
    gen_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    truth_sims, truth = faiss.knn(xq, xb, args.k, metric=faiss.METRIC_INNER_PRODUCT)
    gt_s = time.perf_counter() - t0
    print(f"\n# n={n} dim={args.dim}: data {gen_s:.1f}s, ground truth {gt_s:.1f}s for {len(xq)} queries; "
          f"mean cosine to 1st / 10th exact neighbour {truth_sims[~unseen, 0].mean():.3f} / {truth_sims[~unseen, 9].mean():.3f}", flush=True)
    print(HEADER, flush=True)
    factories = args.factories or candidates(n, args.dim)
    rows: list[dict] = []
    for factory in factories:
        if factory == "Flat":
            # exact search on the array itself (same kernel as IndexFlatIP, no 2nd copy of the data)
            exact_q = xq[: min(args.latency_queries, 20 if n >= 500_000 else args.latency_queries)]
            search = lambda q: faiss.knn(q, xb, args.k, metric=faiss.METRIC_INNER_PRODUCT)  # noqa: E731, F821 - used before the del below
            rows += measure_index("Flat", 0.0, n * (4 * args.dim + 8), n, [("exact", 0, search)], truth[: len(exact_q)],
                                  exact_q, unseen[: len(exact_q)], args, max_threads)
            continue
        t0 = time.perf_counter()
        index = build(factory, xb, args.train_max)
        build_s = time.perf_counter() - t0
        nbytes = faiss.serialize_index(index).nbytes
        # measured right here, before the next factory rebinds index (and before the del below)
        search_for = [(p, v, (lambda q, sp=sp: index.search(q, args.k, params=sp))) for p, v, sp in settings(factory, index)]  # noqa: B023, F821
        rows += measure_index(factory, build_s, nbytes, n, search_for, truth, xq, unseen, args, max_threads)
        del index

    if n <= args.library_max_size:
        rows += library_rows(n, xb, product, xq, truth, unseen, args, max_threads)
    del xb
    best = {}
    for row in rows:
        if row["recall"] >= args.target_recall and (row["factory"] not in best or row["p50_ms_1t"] < best[row["factory"]]["p50_ms_1t"]):
            best[row["factory"]] = row
    return {"n": n, "data_s": gen_s, "ground_truth_s": gt_s, "rows": rows, "operating_points": list(best.values())}


def library_rows(n, xb, product, xq, truth, unseen, args, max_threads) -> list[dict]:
    """authvision.ReferenceIndex(factory="auto") end to end: metadata, validation, locks included."""
    faiss.omp_set_num_threads(max_threads)
    t0 = time.perf_counter()
    index = ReferenceIndex(args.dim)
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        index.add(xb[start:stop], "genuine", products=[f"p{p}" for p in product[start:stop]],
                  brands=[f"b{p % 50}" for p in product[start:stop]])
    build_s = time.perf_counter() - t0
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        index.save(Path(tmp) / "idx")
        nbytes = sum(p.stat().st_size for p in (Path(tmp) / "idx").iterdir())
    name = f"ReferenceIndex(auto)={index.factory}"
    if index.is_exact:
        search_for = [("exact", 0, lambda q: index.search(q, args.k))]
    else:
        search_for = [("efSearch" if "HNSW" in index.factory else "nprobe", v,
                       (lambda q, v=v: index.search(q, args.k, params=SearchParams(nprobe=v, ef_search=v))))
                      for v in (32, 64, 128)]
    return measure_index(name, build_s, nbytes, n, search_for, truth, xq, unseen, args, max_threads)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--quick", action="store_true", help="10k and 100k only")
    parser.add_argument("--dim", type=int, default=1280, help="1280: pooled EfficientNet-Lite0; 256: projection head")
    parser.add_argument("--factories", nargs="+", help="faiss factory strings (default: per size and dim)")
    parser.add_argument("--queries", type=int, default=500, help="queries for recall (exact ground truth)")
    parser.add_argument("--latency-queries", type=int, default=300)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--target-recall", type=float, default=0.95)
    parser.add_argument("--train-max", type=int, default=100_000)
    parser.add_argument("--per-product", type=int, default=24, help="references per product")
    parser.add_argument("--decay", type=float, default=1.0, help="spectrum power law exponent")
    parser.add_argument("--unseen", type=float, default=0.1, help="share of queries of unindexed products")
    parser.add_argument("--library-max-size", type=int, default=100_000,
                        help="also measure ReferenceIndex end to end up to this size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write results as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes = [10_000, 100_000]
    max_threads = faiss.omp_get_max_threads()
    print(f"faiss {faiss.__version__}, {max_threads} threads, {platform.processor() or platform.machine()}; "
          f"dim {args.dim}, decay {args.decay}, {args.per_product} refs/product, {args.unseen:.0%} unseen-product queries; "
          f"ReferenceIndex auto: Flat below {av_index.EXACT_MAX_REFS}, then {av_index.auto_factory(args.dim)}", flush=True)
    results = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "faiss": faiss.__version__, "threads": max_threads, "sizes": [],
    }
    for n in args.sizes:
        results["sizes"].append(run_size(n, args, max_threads))
        if args.out:
            args.out.write_text(json.dumps(results, indent=2))
    print("\nOperating points (cheapest setting with recall@10 >= %.2f; * = meets all targets):" % args.target_recall)
    print(HEADER)
    for size in results["sizes"]:
        for row in size["operating_points"]:
            print(format_row(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
