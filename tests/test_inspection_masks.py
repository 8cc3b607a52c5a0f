"""Item masks on studio photos: what the genuine null cuts out of a reference must be the item, all of it."""

from __future__ import annotations

import cv2
import numpy as np
import skimage.data

from authvision.inspection.masks import cutout_mask, full_mask, inspection_mask

BACKGROUND = 236


def _two_part_item() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A studio photo of an item of two parts (a box and a bottle) 8 px apart, the box carrying a
    pale label that rises above its top edge; the label's outline fades out over 6 px at the top,
    as a soft highlight does. Returns the photo and the masks of its label interior and of the gap."""
    photo = np.full((320, 320, 3), BACKGROUND, np.uint8)
    texture = (cv2.resize(skimage.data.coffee(), (160, 200), interpolation=cv2.INTER_AREA) * 0.55).astype(np.uint8)
    photo[80:280, 40:200] = texture
    photo[120:280, 208:290] = (texture[:160, :82].astype(np.float32) * [0.6, 0.8, 1.1]).clip(0, 255).astype(np.uint8)
    cv2.rectangle(photo, (90, 64), (170, 112), (150, 150, 150), 2)
    photo[66:111, 92:169] = 250
    photo[63:67, 127:133] = 250  # the outline's gap
    cv2.putText(photo, "BRAND", (98, 96), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (30, 30, 30), 2)
    label = np.zeros(photo.shape[:2], bool)
    label[68:109, 94:167] = True
    gap = np.zeros(photo.shape[:2], bool)
    gap[130:270, 201:207] = True
    return photo, {"label": label, "gap": gap}


def test_cutout_keeps_a_pale_label_and_drops_the_gap_between_parts():
    photo, parts = _two_part_item()
    cut = cutout_mask(photo)
    assert cut[parts["label"]].mean() > 0.95, "the pale label carrying the wordmark must stay part of the item"
    assert cut[parts["gap"]].mean() < 0.1, "the background between the two parts must stay out"
    assert cut[150:250, 60:180].all() and cut[150:250, 220:280].all()
    assert not cut[:40].any() and not cut[295:].any()


def test_cutout_is_the_full_mask_less_the_gaps():
    photo, parts = _two_part_item()
    full, cut = full_mask(photo), cutout_mask(photo)
    assert not (cut & ~full).any()
    assert full[parts["gap"]].mean() > 0.9, "closing the mask bridges the gap (what the cut-out must undo)"


def test_only_the_items_own_pixels_are_compared_not_the_background_between_its_parts():
    photo, parts = _two_part_item()
    compared = inspection_mask(photo, 9)
    assert not compared[parts["gap"]].any(), "a listing shows its own background in the gap: never compared"
    assert not compared[130:270, 197:211].any(), "the parts' edges along the gap are left out, as along the outline"
    assert compared[parts["label"]].mean() > 0.9 and compared[150:250, 60:180].all()
    with_gaps = inspection_mask(photo, 9, gaps=True)
    assert with_gaps[parts["gap"]].mean() > 0.9 and not (compared & ~with_gaps).any()
