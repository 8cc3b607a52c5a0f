"""Items of several rigid parts are registered part by part: a part moved in the listing still lines up."""

from __future__ import annotations

import cv2
import numpy as np
import skimage.data

from authvision.inspection import InspectionParams, build_product_inspection, inspect
from authvision.inspection.compare import TemplateView, measure
from authvision.inspection.parts import part_labels, place_parts
from authvision.inspection.registration import RegistrationParams, detect, gray, listing_keypoints, make_target, register

SIDE = 448
BOX = (60, 110, 230, 340)
"""x0, y0, x1, y1 of the box in the studio photo; the bottle stands 30 px to its right."""
BOTTLE = (260, 170, 370, 340)


def _studio(bottle_shift: tuple[int, int] = (0, 0), rng: np.random.Generator | None = None) -> np.ndarray:
    """A studio photo of a box (coffee texture) and a bottle (astronaut texture) standing apart."""
    photo = np.full((SIDE, SIDE, 3), 236, np.uint8)
    x0, y0, x1, y1 = BOX
    photo[y0:y1, x0:x1] = cv2.resize(skimage.data.coffee(), (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
    bx0, by0, bx1, by1 = BOTTLE
    dx, dy = bottle_shift
    bottle = cv2.resize(skimage.data.astronaut()[40:400, 120:380], (bx1 - bx0, by1 - by0), interpolation=cv2.INTER_AREA)
    photo[by0 + dy : by1 + dy, bx0 + dx : bx1 + dx] = bottle
    if rng is not None:
        photo = np.clip(photo.astype(np.float32) * rng.uniform(0.96, 1.04) + rng.normal(0, 1.5, photo.shape), 0, 255).astype(np.uint8)
    return photo


def _through(photo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The photo seen through a known perspective (studio -> listing pixels), and that homography."""
    src = np.float32([[0, 0], [SIDE, 0], [SIDE, SIDE], [0, SIDE]])
    dst = np.float32([[24, 10], [SIDE + 6, 22], [SIDE - 10, SIDE + 14], [12, SIDE - 4]])
    Hk = cv2.getPerspectiveTransform(src, dst)
    return cv2.warpPerspective(photo, Hk, (SIDE + 30, SIDE + 30), flags=cv2.INTER_LINEAR, borderValue=(236, 236, 236)), Hk


def test_two_parts_standing_apart_are_found_on_the_template():
    labels = part_labels(_studio())
    assert labels is not None and labels.max() == 2
    x0, y0, x1, y1 = BOX
    bx0, by0, bx1, by1 = BOTTLE
    box_label = np.bincount(labels[y0 + 10 : y1 - 10, x0 + 10 : x1 - 10].ravel()).argmax()
    bottle_label = np.bincount(labels[by0 + 10 : by1 - 10, bx0 + 10 : bx1 - 10].ravel()).argmax()
    assert {int(box_label), int(bottle_label)} == {1, 2}


def test_a_part_moved_in_the_listing_is_registered_on_its_own_within_a_pixel():
    template = _studio()
    shift = (9, -7)
    listing, Hk = _through(_studio(bottle_shift=shift))
    p = RegistrationParams()
    item = (gray(template) < 226).astype(np.uint8)
    tk = detect(gray(template), item, p.nfeatures)
    target = make_target(template, tk, item, cv2.dilate(item, np.ones((15, 15), np.uint8)) * 255, p)
    lk = listing_keypoints(listing, p)
    reg = register(listing, lk, tk, item, target.search, p)
    assert reg.ok and reg.homography is not None, reg.reason
    labels = part_labels(template)
    placement = place_parts(lk, reg.homography, target, labels, p)
    assert placement.parts_moved >= 1
    for k, H in enumerate(placement.homographies, start=1):
        part = labels == k
        ys, xs = np.nonzero(part)
        on_bottle = xs.mean() > BOX[2]
        # where this part's frame pixels truly are in the listing: the studio position (+ the shift
        # for the bottle) through the known perspective
        pts = np.float64(np.c_[xs[::97], ys[::97]]).reshape(-1, 1, 2)
        truth = cv2.perspectiveTransform(pts + (np.float64(shift) if on_bottle else 0.0), Hk)
        used = reg.homography if H is None else H
        got = cv2.perspectiveTransform(pts, np.linalg.inv(used))
        assert np.abs(got - truth).max() < 1.0, f"part {k} ({'bottle' if on_bottle else 'box'}) off by {np.abs(got - truth).max():.2f} px"


def test_comparison_of_a_moved_part_is_as_quiet_as_an_unmoved_one():
    template = _studio()
    view = TemplateView.from_image(template, cv2.erode((gray(template) < 226).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0)
    p = RegistrationParams()
    item = (gray(template) < 226).astype(np.uint8)
    tk = detect(gray(template), item, p.nfeatures)
    target = make_target(template, tk, item, cv2.dilate(item, np.ones((15, 15), np.uint8)) * 255, p)
    labels = part_labels(template)
    diffs = {}
    for name, shift in (("still", (0, 0)), ("moved", (9, -7))):
        listing, _ = _through(_studio(bottle_shift=shift))
        lk = listing_keypoints(listing, p)
        reg = register(listing, lk, tk, item, target.search, p)
        assert reg.ok and reg.homography is not None
        one = measure(listing, reg.homography, view, 16)
        per_part = measure(listing, reg.homography, view, 16, placement=place_parts(lk, reg.homography, target, labels, p))
        diffs[name] = (float(one.diff[one.mask].mean()), float(per_part.diff[per_part.mask].mean()))
    assert diffs["moved"][0] > 1.5 * diffs["still"][0], "one homography cannot line up both parts"
    assert diffs["moved"][1] < 1.15 * diffs["still"][1], "part by part, the moved bottle lines up"


def test_inspection_of_a_two_part_item_reports_its_parts():
    rng = np.random.default_rng(5)
    genuine = [_studio(rng=rng) for _ in range(4)]
    data = build_product_inspection(genuine, product="set", seed=2, templates=1, params=InspectionParams(frame=320, cell=16, erode=9))
    assert data.templates[0].parts is not None
    listing, _ = _through(_studio(bottle_shift=(8, 6)))
    result = inspect(listing, data)
    assert result.registered and result.parts_registered >= 1
    assert result.to_dict()["parts_registered"] == result.parts_registered
