"""Region inspection: registration accuracy, heatmap alignment, refusals, persistence, determinism."""

from __future__ import annotations

import json
from dataclasses import replace

import cv2
import numpy as np
import pytest
import skimage.data

from authvision.errors import IndexFormatError, InspectionError
from authvision.inspection import InspectionParams, ProductInspection, build_product_inspection, inspect
from authvision.inspection.points import AuthenticationPoint, points_from_boxes
from authvision.inspection.registration import (
    RegistrationParams,
    Target,
    _ratio_matches,
    detect,
    gray,
    homography_problem,
    link_templates,
    listing_keypoints,
    register,
    register_templates,
)

SMALL = InspectionParams(frame=256, cell=16, erode=9, null_per_reference=2, read_text=False)


def _studio(photo: np.ndarray, rng: np.random.Generator, side: int = 320) -> np.ndarray:
    """A real photo as an 'item' on a plain pale studio background, slightly moved and relit."""
    item = cv2.resize(photo, (200, 140), interpolation=cv2.INTER_AREA)
    canvas = np.full((side, side, 3), 236, np.uint8)
    M = cv2.getRotationMatrix2D((100, 70), float(rng.uniform(-2, 2)), 1.0)
    M[:, 2] += [60 + rng.integers(-5, 6), 90 + rng.integers(-5, 6)]
    mask = cv2.warpAffine(np.ones((140, 200), np.uint8), M, (side, side)) > 0
    warped = cv2.warpAffine(item, M, (side, side))
    canvas[mask] = np.clip(warped[mask] * rng.uniform(0.95, 1.05), 0, 255).astype(np.uint8)
    return canvas


@pytest.fixture(scope="module")
def genuine() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [_studio(skimage.data.coffee(), rng) for _ in range(5)]


@pytest.fixture(scope="module")
def data(genuine) -> ProductInspection:
    return build_product_inspection(genuine, product="coffee", seed=3, templates=1, params=SMALL)


def _known_view(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The image seen through a known homography (template -> listing), and that homography."""
    h, w = image.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = np.float32([[30, 12], [w + 10, 25], [w - 8, h + 18], [14, h - 6]])
    Hk = cv2.getPerspectiveTransform(src, dst)
    return cv2.warpPerspective(image, Hk, (w + 40, h + 40), flags=cv2.INTER_LINEAR), Hk


def test_known_homography_is_recovered_within_a_pixel():
    photo = cv2.resize(skimage.data.astronaut(), (384, 384), interpolation=cv2.INTER_AREA)
    listing, Hk = _known_view(photo)
    p = RegistrationParams()
    full = np.ones(photo.shape[:2], np.uint8)
    reg = register(listing, listing_keypoints(listing, p), detect(gray(photo), None, p.nfeatures), full, full * 255, p)
    assert reg.ok, reg.reason
    assert not reg.mirrored and reg.inliers >= 50
    corners = np.float64([[0, 0], [383, 0], [383, 383], [0, 383]]).reshape(-1, 1, 2)
    expected = cv2.perspectiveTransform(corners, Hk)
    recovered = cv2.perspectiveTransform(corners, np.linalg.inv(reg.homography))
    assert np.abs(recovered - expected).max() < 1.0


def test_mirrored_listing_registers_as_mirrored():
    photo = cv2.resize(skimage.data.astronaut(), (384, 384), interpolation=cv2.INTER_AREA)
    listing = np.ascontiguousarray(_known_view(photo)[0][:, ::-1])
    p = RegistrationParams()
    full = np.ones(photo.shape[:2], np.uint8)
    reg = register(listing, listing_keypoints(listing, p), detect(gray(photo), None, p.nfeatures), full, full * 255, p)
    assert reg.ok and reg.mirrored
    assert np.linalg.det(reg.homography[:2, :2]) < 0


def test_faiss_ratio_matches_are_the_brute_force_ones():
    photo = cv2.resize(skimage.data.astronaut(), (384, 384), interpolation=cv2.INTER_AREA)
    listing, _ = _known_view(photo)
    tk = detect(gray(photo), None, 3000)
    lk = listing_keypoints(listing).plain
    li, ti = _ratio_matches(tk, lk, 0.8)
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(tk.descriptors, lk.descriptors, k=2)
    good = {(p[0].trainIdx, p[0].queryIdx) for p in pairs if len(p) == 2 and p[0].distance < 0.8 * p[1].distance}
    assert len(good) > 100
    # the same pairs (nearest-neighbour ties may be broken differently: allow a handful)
    assert len(good ^ set(zip(li.tolist(), ti.tolist()))) <= 0.01 * len(good)


@pytest.mark.parametrize("variant", [{}, {"refine_features": 1000, "refine_levels": 3}])
def test_known_homography_is_recovered_within_a_pixel_by_each_second_pass(variant):
    photo = cv2.resize(skimage.data.astronaut(), (384, 384), interpolation=cv2.INTER_AREA)
    listing, Hk = _known_view(photo)
    p = RegistrationParams(**variant)
    full = np.ones(photo.shape[:2], np.uint8)
    reg = register(listing, listing_keypoints(listing, p), detect(gray(photo), None, p.nfeatures), full, full * 255, p)
    assert reg.ok, reg.reason
    corners = np.float64([[0, 0], [383, 0], [383, 383], [0, 383]]).reshape(-1, 1, 2)
    recovered = cv2.perspectiveTransform(corners, np.linalg.inv(reg.homography))
    assert np.abs(recovered - cv2.perspectiveTransform(corners, Hk)).max() < 1.0


@pytest.fixture(scope="module")
def data3(genuine) -> ProductInspection:
    return build_product_inspection(genuine, product="coffee", seed=3, templates=3, params=SMALL)


def test_derived_registrations_recover_a_known_homography_within_a_pixel(data3, genuine):
    assert data3.links is not None and data3.links.shape == (3, 3, 3, 3)
    t1 = data3.templates[1]
    listing, Hk = _known_view(genuine[t1.source])  # template 1's own photo through a known homography
    truth = np.diag([t1.scale, t1.scale, 1.0]) @ np.linalg.inv(Hk)  # listing -> template 1's frame
    targets = data3.targets
    p = data3.params.registration
    lk = listing_keypoints(listing, p)
    ys, xs = np.nonzero(t1.item)
    box = np.float64([[xs.min(), ys.min()], [xs.max(), ys.min()], [xs.max(), ys.max()], [xs.min(), ys.max()]]).reshape(-1, 1, 2)
    expected = cv2.perspectiveTransform(box, np.linalg.inv(truth))
    for derive in (False, True):
        regs = register_templates(lk, targets, data3.links, replace(p, derive=derive))
        assert all(r.ok and not r.mirrored for r in regs), [r.reason for r in regs]
        recovered = cv2.perspectiveTransform(box, np.linalg.inv(regs[1].homography))
        assert np.abs(recovered - expected).max() < 1.0, derive


def test_a_mirrored_listing_registers_mirrored_to_every_template_when_derived():
    photo = cv2.resize(skimage.data.astronaut(), (384, 384), interpolation=cv2.INTER_AREA)
    frames = [photo, cv2.warpAffine(photo, cv2.getRotationMatrix2D((192, 192), 4.0, 0.95), (384, 384), borderValue=(236, 236, 236))]
    full = np.ones(photo.shape[:2], np.uint8)
    p = RegistrationParams(derive=True)
    targets = [Target(detect(gray(f), None, p.nfeatures), full, full * 255) for f in frames]
    links = link_templates(frames, targets, p)
    assert np.all(links[:, :, 2, 2] != 0)
    listing = np.ascontiguousarray(_known_view(frames[1])[0][:, ::-1])
    regs = register_templates(listing_keypoints(listing, p), targets, links, p)
    assert all(r.ok and r.mirrored and np.linalg.det(r.homography[:2, :2]) < 0 for r in regs), [r.reason for r in regs]


def test_links_survive_the_round_trip_and_are_checked(data3):
    arrays, meta = data3.to_arrays()
    meta = json.loads(json.dumps(meta))
    back = ProductInspection.from_arrays(dict(arrays), meta)
    assert back.links is not None and np.array_equal(back.links, data3.links)
    bad = dict(arrays)
    bad["t1.links"] = arrays["t1.links"][:2]
    with pytest.raises(IndexFormatError):
        ProductInspection.from_arrays(bad, meta)


def test_unlinked_templates_are_registered_from_scratch(data3, genuine):
    listing, _ = _known_view(genuine[4])
    p = replace(data3.params.registration, derive=True)
    unlinked = np.zeros_like(data3.links)
    regs = register_templates(listing_keypoints(listing, p), data3.targets, unlinked, p)
    assert all(r.ok for r in regs)


def test_degenerate_homographies_are_refused():
    mask = np.zeros((100, 100), np.uint8)
    mask[20:80, 20:80] = 1
    p = RegistrationParams()
    assert homography_problem(np.eye(3), (100, 100), mask, False, p) is None
    assert "degenerate" in homography_problem(np.zeros((3, 3)), (100, 100), mask, False, p)
    squash = np.diag([1.0, 0.05, 1.0])
    assert "conditioning" in homography_problem(squash, (100, 100), mask, False, p)
    assert "orientation" in homography_problem(np.diag([-1.0, 1, 1]) @ [[1, 0, -99], [0, 1, 0], [0, 0, 1]], (100, 100), mask, False, p)
    far = np.array([[1.0, 0, 500], [0, 1, 0], [0, 0, 1]])
    assert "outside" in homography_problem(far, (100, 100), mask, False, p)


def test_genuine_view_registers_and_scores_low(data, genuine):
    listing, _ = _known_view(genuine[data.templates[0].source])
    r = inspect(listing, data)
    assert r.registered and r.reason is None and r.template == 0
    assert set(r.scores) >= {"structure", "cells", "colour"}
    assert r.score < 1.5
    d = r.to_dict()
    json.dumps(d)
    assert "heatmap" not in d and len(d["regions"]) == len(r.regions) > 0


def test_an_item_cut_by_the_photos_edge_is_not_flagged_along_the_cut(data, genuine):
    listing, _ = _known_view(genuine[data.templates[0].source])
    cut = np.ascontiguousarray(listing[:, :200])  # the right third of the item is outside the photo
    whole, r = inspect(listing, data), inspect(cut, data)
    assert r.registered
    assert r.score < max(1.5, whole.score + 0.5), (r.score, whole.score)
    # the cut's edge in the frame: nothing within the margin of it is compared, nothing beside it lights up
    edge = cv2.perspectiveTransform(np.float64([[[199.5, 160.0]]]), r.homography)[0, 0, 0]
    band = r.heatmap[:, max(0, int(edge) - 20) : int(edge) + 1]
    assert np.nanmax(np.where(np.isfinite(band), band, 0)) < 3.0


def test_painted_defect_lights_up_where_it_was_painted(data, genuine):
    t = data.templates[0]
    src = genuine[t.source].copy()
    x0, y0 = 150, 150  # photo pixels, inside the item
    cv2.rectangle(src, (x0, y0), (x0 + 28, y0 + 28), (20, 20, 200), -1)
    cv2.putText(src, "X", (x0 + 4, y0 + 24), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (250, 250, 40), 2)
    listing, _ = _known_view(src)
    r = inspect(listing, data)
    assert r.registered
    painted = np.array([x0, y0, x0 + 28, y0 + 28]) * t.scale
    bx = r.regions[0].box
    overlap = min(bx[2], painted[2]) - max(bx[0], painted[0]), min(bx[3], painted[3]) - max(bx[1], painted[1])
    assert overlap[0] > 0 and overlap[1] > 0, (bx, painted)
    hy, hx = np.unravel_index(int(np.argmax(r.heatmap)), r.heatmap.shape)
    assert painted[0] - 8 <= hx <= painted[2] + 8 and painted[1] - 8 <= hy <= painted[3] + 8
    clean = inspect(_known_view(genuine[t.source])[0], data)
    assert r.score > clean.score + 1.0
    # the region's listing box is the template box mapped back through the homography
    lb = r.regions[0].listing_box
    centre = cv2.perspectiveTransform(np.float64([[[(lb[0] + lb[2]) / 2, (lb[1] + lb[3]) / 2]]]), r.homography)[0, 0]
    assert bx[0] - 2 <= centre[0] <= bx[2] + 2 and bx[1] - 2 <= centre[1] <= bx[3] + 2


def test_unrelated_photo_is_not_registered(data):
    r = inspect(skimage.data.astronaut(), data)
    assert not r.registered and r.reason
    assert r.scores == {} and np.isnan(r.score) and r.heatmap is None
    blank = inspect(np.full((200, 200, 3), 128, np.uint8), data)
    assert not blank.registered and "too few" in blank.reason
    json.dumps(r.to_dict())


def test_round_trip_gives_identical_results(data, genuine):
    arrays, meta = data.to_arrays()
    meta = json.loads(json.dumps(meta))
    back = ProductInspection.from_arrays({k: v.copy() for k, v in arrays.items()}, meta)
    listing, _ = _known_view(genuine[2])
    a, b = inspect(listing, data), inspect(listing, back)
    assert a.to_dict() == b.to_dict()
    assert np.array_equal(a.heatmap, b.heatmap)


@pytest.mark.parametrize(
    "damage",
    ["drop", "dtype", "nan", "shape", "version", "extra", "params"],
)
def test_malformed_arrays_raise_index_format_error(data, damage):
    arrays, meta = data.to_arrays()
    arrays = dict(arrays)
    meta = json.loads(json.dumps(meta))
    if damage == "drop":
        del arrays["t0.pix_sd"]
    elif damage == "dtype":
        arrays["t0.descriptors"] = arrays["t0.descriptors"].astype(np.float32)
    elif damage == "nan":
        arrays["t0.pix_mu"] = arrays["t0.pix_mu"].copy()
        arrays["t0.pix_mu"][3, 3] = np.nan
    elif damage == "shape":
        arrays["t0.cell_mu"] = arrays["t0.cell_mu"][:-1]
    elif damage == "version":
        meta["version"] = 99
    elif damage == "extra":
        arrays["t1.image"] = arrays["t0.image"]
    elif damage == "params":
        meta["params"]["bogus"] = 1
    with pytest.raises(IndexFormatError):
        ProductInspection.from_arrays(arrays, meta)


def test_build_is_deterministic_for_a_seed(data, genuine):
    again = build_product_inspection(genuine, product="coffee", seed=3, templates=1, params=SMALL)
    a, ma = data.to_arrays()
    b, mb = again.to_arrays()
    assert ma == mb and a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    other = build_product_inspection(genuine, product="coffee", seed=4, templates=1, params=SMALL)
    assert not np.array_equal(a["t0.pix_mu"], other.to_arrays()[0]["t0.pix_mu"])


def test_bad_inputs_raise_inspection_error(data, genuine):
    with pytest.raises(InspectionError):
        build_product_inspection(genuine[:1], product="coffee")
    with pytest.raises(InspectionError):
        inspect(np.zeros((10, 10), np.uint8), data)


def test_flow_refinement_follows_a_part_moved_a_few_pixels():
    from authvision.inspection.compare import TemplateView, measure

    photo = cv2.resize(skimage.data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    mask = np.zeros((256, 256), bool)
    mask[16:240, 16:240] = True
    view = TemplateView.from_image(photo, mask)
    moved = photo.copy()
    moved[:, 128:] = np.roll(photo, 3, axis=1)[:, 128:]  # the right "part" sits 3 px further right
    plain = measure(moved, np.eye(3), view, 16)
    refined = measure(moved, np.eye(3), view, 16, flow_sigma=12.0)
    right = np.s_[40:216, 150:230]
    assert refined.diff[right].mean() < 0.6 * plain.diff[right].mean()
    same = measure(photo, np.eye(3), view, 16, flow_sigma=12.0)
    assert same.diff[mask].mean() < 0.05


def _painted(photo: np.ndarray, x0: int, y0: int, side: int = 14) -> np.ndarray:
    out = photo.copy()
    cv2.rectangle(out, (x0, y0), (x0 + side, y0 + side), (20, 20, 200), -1)
    return out


def test_an_authentication_point_drawn_on_another_photo_is_scored_where_it_was_drawn(genuine):
    probe = build_product_inspection(genuine, product="coffee", seed=3, templates=1, params=SMALL)
    source = probe.templates[0].source
    drawn_on = (source + 1) % len(genuine)  # carried into the template's frame by registering that photo
    point = AuthenticationPoint("mark", (135.0, 135.0, 185.0, 185.0))
    off_item = AuthenticationPoint("background", (2.0, 2.0, 30.0, 30.0))
    data = build_product_inspection(genuine, product="coffee", seed=3, templates=1, params=SMALL, points=(drawn_on, [point, off_item]))
    t = data.templates[0]
    assert t.points == ("mark",), "a point with no compared pixels (on the studio background) is not scored"
    clean = inspect(_known_view(genuine[source])[0], data)
    listing, Hk = _known_view(_painted(genuine[source], 152, 152))  # inside the point (the photos differ by ≤ 5 px)
    r = inspect(listing, data)
    [scored] = r.points
    assert scored.name == "mark" and scored.score > 1.0 and scored.score > clean.points[0].score + 1.0
    assert r.score >= scored.score  # the point joins the fused score
    painted = cv2.perspectiveTransform(np.float64([[[159, 159]]]), Hk)[0, 0]  # the defect's centre in the listing
    lb = scored.listing_box
    assert lb[0] <= painted[0] <= lb[2] and lb[1] <= painted[1] <= lb[3]
    assert json.dumps(r.to_dict()["points"])
    again = ProductInspection.from_arrays(*data.to_arrays())
    assert again.templates[0].points == ("mark",)
    assert inspect(listing, again).points[0].score == pytest.approx(scored.score, abs=1e-5)


def test_malformed_authentication_points_are_refused(genuine):
    with pytest.raises(InspectionError, match="box"):
        points_from_boxes({"wordmark": [10, 10, 5, 20]})
    with pytest.raises(InspectionError, match="box"):
        points_from_boxes({"wordmark": [1, 2, 3]})
    with pytest.raises(InspectionError, match="photo 9"):
        build_product_inspection(genuine, product="coffee", templates=1, params=SMALL, points=(9, points_from_boxes({"m": [1, 1, 9, 9]})))
    assert points_from_boxes({"b": [0, 0, 4, 4], "a": (1, 1, 2, 2)})[0].name == "a"


def test_a_small_item_in_clutter_is_registered_again_at_full_resolution(data, genuine):
    """At 480 px the gravel's keypoints crowd out the small item's; the second try at decode resolution finds it."""
    canvas = cv2.cvtColor(cv2.resize(np.tile(skimage.data.gravel(), (2, 2)), (960, 960), interpolation=cv2.INTER_AREA), cv2.COLOR_GRAY2RGB)
    item = cv2.resize(genuine[1], None, fx=0.4, fy=0.4, interpolation=cv2.INTER_AREA)
    canvas[320 : 320 + item.shape[0], 320 : 320 + item.shape[1]] = item
    once = replace(data, params=replace(data.params, registration=replace(data.params.registration, retry_side=0)))
    assert not inspect(canvas, once, heatmap=False).registered
    r = inspect(canvas, data, heatmap=False)
    assert r.registered and r.inliers >= 30 and r.score < 1.0, (r.inliers, r.score, r.reason)
    # the homography maps the item's corners where they are: (320, 320) + 0.4 x the studio photo's
    corner = cv2.perspectiveTransform(np.array([[[320.0, 320.0]]]), r.homography).ravel()
    studio_scale = data.templates[0].scale
    assert np.allclose(corner, [0, 0], atol=3 / 0.4 * studio_scale + 2), corner
