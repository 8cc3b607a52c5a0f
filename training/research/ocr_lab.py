"""Lab: can reading the wordmark (OCR) tell a misspelt one? Full-photo OCR, no registration.

For each product, the genuine wordmark is the string OCR reads most often on its genuine studio
references. A listing's *text mismatch* is the smallest normalised edit distance between that string
and anything OCR reads in the listing (1 when nothing is read; mirrored photos are read both ways).
Scored as fake ROC-AUC per defect type against all genuine test listings of indexed products. Needs
``rapidocr-onnxruntime`` (a separate virtual environment: it depends on ``opencv-python``, which
conflicts with the ``opencv-python-headless`` authvision installs).

    python training/research/ocr_lab.py KIT [--procs 2]
"""

from __future__ import annotations

import argparse
import collections
import csv
import os
import time
from multiprocessing import Pool

import numpy as np
from PIL import Image, ImageOps

_ENGINE = None


def _read(path: str) -> tuple[list[str], float]:
    global _ENGINE
    from rapidocr_onnxruntime import RapidOCR

    if _ENGINE is None:
        _ENGINE = RapidOCR()
    t = time.process_time()
    image = Image.open(path).convert("RGB")
    texts = []
    for variant in (image, ImageOps.mirror(image)):
        result, _ = _ENGINE(np.asarray(variant)[:, :, ::-1])
        texts += [str(r[1]).upper() for r in (result or [])]
    return texts, time.process_time() - t


def _distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def mismatch(word: str, texts: list[str]) -> float:
    if not texts or not word:
        return 1.0
    return min(min(_distance(word, t), len(word)) / len(word) for t in texts)


def auc(pos, neg) -> float:
    pos, neg = np.asarray(pos, float)[:, None], np.asarray(neg, float)[None, :]
    return float((pos > neg).mean() + 0.5 * (pos == neg).mean()) if pos.size and neg.size else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("kit")
    ap.add_argument("--procs", type=int, default=2)
    a = ap.parse_args()
    refs = [r for r in csv.DictReader(open(os.path.join(a.kit, "references.csv"))) if r["label"] == "genuine"]
    rows = [r for r in csv.DictReader(open(os.path.join(a.kit, "listings.csv"))) if r["split"] == "test" and r["label"] in ("genuine", "fake")]
    with Pool(a.procs) as pool:
        ref_reads = pool.map(_read, [os.path.join(a.kit, r["path"]) for r in refs])
        reads = pool.map(_read, [os.path.join(a.kit, r["path"]) for r in rows])
    words = {}
    for product in sorted({r["product"] for r in refs}):
        seen = collections.Counter(t for r, (texts, _) in zip(refs, ref_reads) if r["product"] == product for t in set(texts) if len(t) >= 3)
        words[product] = seen.most_common(1)[0][0] if seen else ""
    print("genuine wordmark read on the references:", words)
    score = np.array([mismatch(words.get(r["product"], ""), texts) for r, (texts, _) in zip(rows, reads)])
    fake = np.array([r["label"] == "fake" for r in rows])
    print(f"{len(rows)} listings, OCR CPU {1000 * np.mean([c for _, c in reads]):.0f} ms per listing (photo and mirror)")
    print(f"all fakes {auc(score[fake], score[~fake]):.3f}; genuine listings read exactly: {np.mean(score[~fake] == 0):.2f}")
    types = sorted({d.split(":")[0] for r in rows for d in r["defects"].split(";") if d})
    for t in types:
        has = np.array([t in r["defects"] for r in rows])
        exact = np.mean(score[fake & has] == 0)
        print(f"  {t:16s} {auc(score[fake & has], score[~fake]):.3f}  (read exactly on {exact:.2f} of {int((fake & has).sum())})")


if __name__ == "__main__":
    main()
