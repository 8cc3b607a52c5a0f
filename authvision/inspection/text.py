"""Reading the wordmark: the words on a genuine template, read again where they sit in a registered listing.

A misspelt, re-spaced or re-fonted wordmark changes few pixels but reads differently. At build time
each template's photo is read once (text detection and recognition, PP-OCR models on ONNX Runtime
through ``rapidocr``); the words kept are the confident ones of three letters or digits or more that
another template reads the same, with their boxes in the template frame. At inspection only recognition runs, on each word's box cut from the
listing at its own resolution through the registration's homography (so a mirrored listing reads
the right way round). A word's *mismatch* is the edit distance between what the template says and
what the listing says, over the word's length (0 = read the same, 1 = nothing alike); an unsure
reading (confidence under :data:`MIN_CONFIDENCE`) counts as neither.

Measured before it was built (``training/research/ocr_lab.py``, the demo kit's listings read whole):
the wordmark alone separates misspelt wordmarks from genuine listings at ROC-AUC 0.87, re-spaced
0.82, re-fonted 0.81; 81 % of genuine listings read exactly.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

__all__ = ["MIN_CONFIDENCE", "MIN_LENGTH", "Word", "WordReading", "consensus", "find_words", "mismatch", "read_words", "share_words"]

logger = logging.getLogger(__name__)

MIN_LENGTH = 3
"""Characters a word needs to be kept (single letters of a pattern are read everywhere)."""
MIN_CONFIDENCE = 0.8
"""Recognition confidence a template's word needs to be kept."""
_PAD = 0.2  # of the box's height, on every side, when a word is cut from a listing

_LOCK = threading.Lock()
_ENGINES: dict[bool, Any] = {}


@dataclass(frozen=True)
class Word:
    """A word a genuine template carries: its text and its box (x0, y0, x1, y1) in the template frame."""

    text: str
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class WordReading:
    """What a listing says where a template's word sits."""

    word: Word
    read: str
    confidence: float
    mismatch: float
    """NaN when the reading is unsure (confidence under :data:`MIN_CONFIDENCE`)."""

    def to_dict(self) -> dict[str, Any]:
        m = None if self.mismatch != self.mismatch else round(self.mismatch, 3)  # NaN: unsure
        return {"expected": self.word.text, "read": self.read, "confidence": round(self.confidence, 3), "mismatch": m}


def _engine(detect: bool) -> Any:
    """The OCR engine that detects and reads (building) or only reads (inspecting), one of each per process.

    Its ONNX Runtime sessions are safe to share between threads, but a call first stores its flags
    (``use_det``...) on the engine and then reads them back, so a reading-only call running beside a
    detecting one could take the other's flags. Each kind of call has its own engine (models load on
    first use: the reading one never loads the detector); calls of one kind always pass the same flags.
    """
    with _LOCK:
        if detect not in _ENGINES:
            from rapidocr import RapidOCR  # an inference dependency; imported here: it loads its models

            # It logs each model it loads, and "the text detection result is empty" for a photo without
            # text, through its own handler to stderr: a library's user must not see that.
            # One thread per call: the inspection provider already inspects listings on several threads.
            _ENGINES[detect] = RapidOCR(params={
                "Global.log_level": "error",
                "EngineConfig.onnxruntime.intra_op_num_threads": 1,
                "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            })  # fmt: skip
            logging.getLogger("RapidOCR").setLevel(logging.ERROR)
        return _ENGINES[detect]


def find_words(photo: np.ndarray, scale: float) -> tuple[Word, ...]:
    """The confident words of a genuine photo (RGB uint8), boxes scaled by ``scale`` into the template frame."""
    # every flag explicit: the engine remembers the last call's (a recognition-only read would stick)
    result = _engine(detect=True)(np.ascontiguousarray(photo[:, :, ::-1]), use_det=True, use_cls=False, use_rec=True)
    if getattr(result, "boxes", None) is None or getattr(result, "txts", None) is None:
        return ()
    out = []
    for box, text, score in zip(result.boxes, result.txts, result.scores):
        text = _clean(text)
        if len(text) >= MIN_LENGTH and float(score) >= MIN_CONFIDENCE:
            b = np.asarray(box, np.float64) * scale
            out.append(Word(text, (float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 0].max()), float(b[:, 1].max()))))
    return tuple(out)


def read_words(listing: np.ndarray, H: np.ndarray, words: Sequence[Word], scale: float) -> tuple[WordReading, ...]:
    """Each word read in a listing (RGB uint8 at decode resolution; ``H`` maps it into the template frame).

    The word's box, padded, is cut at ``1 / scale`` times the frame's resolution (the template photo's
    own), through ``H``, and recognised without detection.
    """
    if not words:
        return ()
    engine = _engine(detect=False)
    out = []
    up = 1.0 / scale
    for word in words:
        x0, y0, x1, y1 = word.box
        pad = _PAD * (y1 - y0)
        x0, y0, x1, y1 = x0 - pad, y0 - pad, x1 + pad, y1 + pad
        size = (max(8, round((x1 - x0) * up)), max(8, round((y1 - y0) * up)))
        crop_from_frame = np.array([[up, 0, -x0 * up], [0, up, -y0 * up], [0, 0, 1]], np.float64)
        crop = cv2.warpPerspective(listing, crop_from_frame @ H, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        result = engine(np.ascontiguousarray(crop[:, :, ::-1]), use_det=False, use_cls=False, use_rec=True)
        texts = result.txts or ("",)
        read = _clean(texts[0])
        confidence = float(result.scores[0]) if result.scores else 0.0
        # an unsure reading (blur, a small word in a small photo) says nothing either way
        out.append(WordReading(word, read, confidence, mismatch(word.text, read) if confidence >= MIN_CONFIDENCE else float("nan")))
    return tuple(out)


def consensus(per_template: Sequence[Sequence[Word]]) -> list[tuple[Word, ...]]:
    """Each template's words, less those no other template reads the same (a misreading, a pattern
    read as characters); with a single template, its words as they are."""
    if len(per_template) < 2:
        return [tuple(words) for words in per_template]
    counts: dict[str, int] = {}
    for words in per_template:
        for text in {w.text for w in words}:
            counts[text] = counts.get(text, 0) + 1
    return [tuple(w for w in words if counts[w.text] >= 2) for words in per_template]


def share_words(per_template: Sequence[Sequence[Word]], links: np.ndarray, frame: tuple[int, int]) -> list[tuple[Word, ...]]:
    """Each template's words, plus those another template reads where this one's photo could not.

    A moving part can hide a word on one genuine photo (a watch's hands over its wordmark) while the
    other templates read it; a listing registered to that template would otherwise go unread. A word
    of template ``j`` is carried into template ``i``'s frame through ``links[j, i]`` (frame ``j`` ->
    frame ``i``; a zero ``[2, 2]`` means no link) unless ``i`` already has the same text there (boxes
    overlapping by more than a third) or it lands outside the ``frame`` (height, width).
    """
    out = [list(words) for words in per_template]
    h, w = frame
    for i in range(len(out)):
        for j, words in enumerate(per_template):
            link = links[j, i]
            if j == i or link[2, 2] == 0:
                continue
            for word in words:
                x0, y0, x1, y1 = word.box
                corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64).reshape(-1, 1, 2)
                q = cv2.perspectiveTransform(corners, link).reshape(-1, 2)
                box = (float(q[:, 0].min()), float(q[:, 1].min()), float(q[:, 0].max()), float(q[:, 1].max()))
                if not (0 <= box[0] and 0 <= box[1] and box[2] <= w and box[3] <= h):
                    continue
                if any(o.text == word.text and _overlap(o.box, box) > 1 / 3 for o in out[i]):
                    continue
                out[i].append(Word(word.text, box))
    return [tuple(words) for words in out]


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def mismatch(expected: str, read: str) -> float:
    """Edit distance between two readings over the expected word's length, capped at 1."""
    if not expected:
        return 0.0
    row = list(range(len(read) + 1))
    for i, a in enumerate(expected, 1):
        prev, row[0] = row[0], i
        for j, b in enumerate(read, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (a != b))
    return min(1.0, row[-1] / len(expected))


def _clean(text: str) -> str:
    """Letters and digits only, upper case (spaces and punctuation are read unreliably)."""
    return "".join(c for c in str(text) if c.isalnum()).upper()
