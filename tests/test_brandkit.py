"""The brand-kit simulator: determinism, layout, ground truth, defects, background pools."""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import replace
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from authvision.brandkit import (
    BACKGROUND_POOLS,
    DEFECT_FAMILIES,
    DEFECT_TYPES,
    KINDS,
    LISTING_COLUMNS,
    Defect,
    KitConfig,
    Product,
    generate_kit,
    make_brands,
    make_factories,
    make_kit,
    make_products,
    render_background,
    render_item,
    render_listing,
    render_reference,
)
from authvision.brandkit._fonts import FONT_FILES

# Two products, all four families of factories, every listing sort, small photos: about a second.
TINY = KitConfig(
    brands=1,
    products_per_brand=2,
    kinds=("handbag", "watch"),
    genuine_refs=3,
    fake_refs=2,
    listings=30,
    reused_share=0.15,
    unknown_share=0.15,
    photo_size=192,
)


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("kit")
    generate_kit(out, seed=0, config=TINY)
    return out


@pytest.fixture(scope="module")
def listings(kit: Path) -> list[dict[str, str]]:
    return _rows(kit / "listings.csv")


@pytest.fixture(scope="module")
def references(kit: Path) -> list[dict[str, str]]:
    return _rows(kit / "references.csv")


# --- determinism ----------------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(kit: Path, tmp_path: Path) -> None:
    generate_kit(tmp_path / "again", seed=0, config=TINY)
    generate_kit(tmp_path / "other", seed=1, config=TINY)
    first, again, other = _digests(kit), _digests(tmp_path / "again"), _digests(tmp_path / "other")
    assert len(first) > 40
    assert first == again
    shared = set(first) & set(other)
    assert any(path.startswith("listings/") for path in shared)
    assert all(first[path] != other[path] for path in shared if path.startswith("listings/"))


def test_worker_count_does_not_change_bytes(kit: Path, tmp_path: Path) -> None:
    generate_kit(tmp_path, seed=0, config=TINY, workers=2)
    assert _digests(tmp_path) == _digests(kit)


def test_existing_kit_is_not_overwritten_by_accident(kit: Path, tmp_path: Path) -> None:
    config = KitConfig(brands=1, products_per_brand=1, genuine_refs=1, fake_refs=1, listings=3, photo_size=96)
    generate_kit(tmp_path, config=config)
    with pytest.raises(FileExistsError):
        generate_kit(tmp_path, config=config)
    generate_kit(tmp_path, seed=3, config=config, overwrite=True)
    assert json.loads((tmp_path / "kit.json").read_text())["seed"] == 3


# --- layout and ground truth ----------------------------------------------------------------------


Rows = list[dict[str, str]]


def test_layout_columns_labels_and_counts(kit: Path, listings: Rows, references: Rows) -> None:
    with open(kit / "listings.csv", newline="", encoding="utf-8") as f:
        assert tuple(next(csv.reader(f))) == LISTING_COLUMNS
    description = json.loads((kit / "kit.json").read_text())
    assert description["seed"] == 0 and description["authvision_version"]
    products = [p for p in description["products"] if p["referenced"]]
    assert len(products) == 2

    ref_files = sorted(p.relative_to(kit).as_posix() for p in (kit / "references").rglob("*.jpg"))
    assert ref_files == sorted(r["path"] for r in references)
    for row in references:
        _, brand, product, label, _name = row["path"].split("/")
        assert (brand, product, label) == (row["brand"], row["product"], row["label"])
        assert label in ("genuine", "fake")
        assert bool(row["factory"]) == (label == "fake")
    for p in products:
        labels = [r["label"] for r in references if r["product"] == p["id"]]
        assert labels.count("genuine") == TINY.genuine_refs and labels.count("fake") == TINY.fake_refs

    assert len(listings) == TINY.listings == len(list((kit / "listings").glob("*.jpg")))
    for row in listings:
        assert (kit / row["path"]).is_file()
        assert row["label"] in ("genuine", "fake", "unknown")
        assert row["split"] in ("calibration", "test")
        assert row["conditions"].startswith("background=") and "jpeg=" in row["conditions"]
        if row["label"] == "fake":
            assert row["factory"] and row["factory_seen"] in ("true", "false")
            types = [tag.split(":")[0] for tag in row["defects"].split(";")]
            assert 2 <= len(types) <= 3 and all(DEFECT_FAMILIES[row["family"]].count(t) == 1 for t in types)
            assert all(0.3 <= float(tag.split(":")[1]) <= 0.8 for tag in row["defects"].split(";"))
        else:
            assert not row["factory"] and not row["defects"] and not row["factory_seen"]
    labels = [r["label"] for r in listings]
    assert {"genuine", "fake", "unknown"} <= set(labels)
    calibration = sum(r["split"] == "calibration" for r in listings) / len(listings)
    assert 0.25 <= calibration <= 0.55
    # fakes of factories whose fakes are not in the references (new factories) are in the listings
    assert {"true", "false"} <= {r["factory_seen"] for r in listings if r["label"] == "fake"}
    seen = {r["factory"] for r in references if r["factory"]}
    assert all((r["factory"] in seen) == (r["factory_seen"] == "true") for r in listings if r["label"] == "fake")


def test_reused_listings_point_at_an_existing_reference(kit: Path, listings: Rows, references: Rows) -> None:
    label_of = {r["path"]: r["label"] for r in references}
    reused = [r for r in listings if r["reused_from"]]
    assert len(reused) == round(TINY.listings * TINY.reused_share)
    for row in reused:
        assert row["reused_from"] in label_of and (kit / row["reused_from"]).is_file()
        assert row["label"] == label_of[row["reused_from"]]  # labelled by what the photo shows
        assert row["reused_from"].split("/")[2] == row["product"]
        assert "reused" in row["conditions"].split(";")


def test_unknown_listings_show_products_without_references(kit: Path, listings: Rows) -> None:
    unknown = [r for r in listings if r["label"] == "unknown"]
    assert len(unknown) == round(TINY.listings * TINY.unknown_share)
    referenced = {p.name for p in (kit / "references").glob("*/*")}
    assert any(r["product"] for r in unknown)
    for row in unknown:
        assert row["product"] not in referenced
        if row["brand"]:  # an item of a brand the kit does not reference (else a plain photo)
            assert not (kit / "references" / row["brand"]).exists()
        else:
            assert not row["product"] and not row["kind"]


def test_heldout_families_appear_only_in_test_listings(tmp_path: Path) -> None:
    config = replace(TINY, heldout_families=("colour", "geometry"))
    generate_kit(tmp_path, seed=0, config=config)
    references, listings = _rows(tmp_path / "references.csv"), _rows(tmp_path / "listings.csv")
    held = [r for r in listings if r["family"] in config.heldout_families]
    assert held, "the kit should contain fakes of the held-out families"
    assert all(r["split"] == "test" for r in held)
    assert all(r["factory_seen"] == "false" for r in held)
    assert not {r["family"] for r in references} & set(config.heldout_families)
    assert any(r["family"] and r["split"] == "calibration" for r in listings)  # other families calibrate
    factories = json.loads((tmp_path / "kit.json").read_text())["factories"]
    assert all(f["heldout"] == (f["family"] in config.heldout_families) for f in factories)


def test_impossible_heldout_config_is_refused() -> None:
    with pytest.raises(ValueError, match="heldout_families"):
        make_kit(0, KitConfig(heldout_families=tuple(DEFECT_FAMILIES)))
    with pytest.raises(ValueError, match="unknown heldout_families"):
        KitConfig(heldout_families=("typo",))
    with pytest.raises(ValueError, match="severity_range"):
        KitConfig(severity_range=(0.0, 0.5))


# --- backgrounds ----------------------------------------------------------------------------------


def test_background_pools_are_disjoint_and_listings_use_the_test_pool(listings: Rows, references: Rows) -> None:
    assert not set(BACKGROUND_POOLS["train"]) & set(BACKGROUND_POOLS["test"])
    fresh = [r for r in listings if not r["reused_from"]]
    assert fresh and all(r["background"] in BACKGROUND_POOLS["test"] for r in fresh)
    # a re-used photo keeps the background of the reference it copies
    source = {r["path"]: r["background"] for r in references}
    assert all(r["background"] == source[r["reused_from"]] for r in listings if r["reused_from"])
    assert all(r["background"] == "studio" for r in references if r["label"] == "genuine")
    assert all(r["background"] in BACKGROUND_POOLS["train"] for r in references if r["label"] == "fake")


def test_every_background_renders() -> None:
    for name in BACKGROUND_POOLS["train"] + BACKGROUND_POOLS["test"]:
        img = render_background(name, np.random.default_rng(0), (120, 90))
        assert img.mode == "RGB" and img.size == (120, 90)
        assert np.asarray(img).std() > 1.0, name
    with pytest.raises(ValueError, match="unknown background"):
        render_background("moon", np.random.default_rng(0), (10, 10))


# --- items and defects ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def products() -> dict[str, Product]:
    brand = make_brands(0, 1)[0]
    return {p.kind: p for p in make_products(brand, seed=0)}


def _mad(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).mean())


@pytest.mark.parametrize("kind", KINDS)
def test_every_defect_changes_the_item_more_when_severe(products: dict[str, Product], kind: str) -> None:
    product = products[kind]
    genuine = render_item(product, rng=np.random.default_rng(5), size=200)
    for defect_type in DEFECT_TYPES:
        for variant in (0, 1):
            mild, severe = (
                render_item(product, (Defect(defect_type, s, variant),), rng=np.random.default_rng(5), size=200)
                for s in (0.2, 1.0)
            )
            low, high = _mad(mild, genuine), _mad(severe, genuine)
            assert 0.0 < low < high, (kind, defect_type, variant, low, high)


def test_render_item_is_rgba_deterministic_and_validates(products: dict[str, Product]) -> None:
    product = products["handbag"]
    a = render_item(product, rng=np.random.default_rng(1), size=160)
    b = render_item(product, rng=np.random.default_rng(1), size=160)
    assert a.mode == "RGBA" and max(a.size) == 160
    assert a.tobytes() == b.tobytes()
    alpha = np.asarray(a)[:, :, 3]
    assert alpha[0, 0] == 0 and alpha.max() == 255  # transparent background, opaque item
    with pytest.raises(ValueError, match="twice"):
        render_item(product, (Defect("hue", 0.5), Defect("hue", 0.6)), rng=np.random.default_rng(0))
    with pytest.raises(TypeError):
        render_item(product, rng=0)  # type: ignore[arg-type]
    for defect_type, severity in (("hue", 0.0), ("hue", 1.5), ("glitter", 0.5)):
        with pytest.raises(ValueError):
            Defect(defect_type, severity)


def test_families_partition_the_defect_types() -> None:
    members = [t for types in DEFECT_FAMILIES.values() for t in types]
    assert len(members) == len(set(members)) == len(DEFECT_TYPES)
    assert set(members) == set(DEFECT_TYPES)


def test_factories_share_fixed_defects_of_their_family(products: dict[str, Product]) -> None:
    factories = make_factories(products["watch"], seed=0, count=8, severity_range=(0.4, 0.6))
    assert factories == make_factories(products["watch"], seed=0, count=8, severity_range=(0.4, 0.6))
    assert {f.family for f in factories[:4]} == set(DEFECT_FAMILIES)
    for f in factories:
        assert 2 <= len(f.defects) <= 3
        assert all(d.family == f.family and 0.4 <= d.severity <= 0.6 for d in f.defects)
        assert len({d.type for d in f.defects}) == len(f.defects)


def test_brands_are_stable_by_index_and_distinct() -> None:
    brands = make_brands(0, 5)
    assert make_brands(0, 2) == brands[:2]
    assert len({b.name for b in brands}) == 5
    assert len({b.font for b in brands[:2]}) == 2 and len({b.emblem for b in brands[:2]}) == 2
    assert make_brands(1, 2) != brands[:2]


# --- photos ---------------------------------------------------------------------------------------


def test_reference_and_listing_photos(products: dict[str, Product]) -> None:
    product = products["perfume"]
    factory = make_factories(product, seed=0)[0]
    genuine, info = render_reference(product, "genuine", None, rng=np.random.default_rng(0), size=256)
    assert genuine.mode == "RGB" and genuine.size == (256, 256) and info["background"] == "studio"
    assert 90 <= info["jpeg"] <= 95 and abs(info["rotation"]) <= 5
    fake, info = render_reference(product, "fake", factory, rng=np.random.default_rng(0), size=256)
    assert max(fake.size) == 256 and info["background"] in BACKGROUND_POOLS["train"] and 75 <= info["jpeg"] <= 90
    with pytest.raises(ValueError):
        render_reference(product, "genuine", factory, rng=np.random.default_rng(0))
    with pytest.raises(ValueError):
        render_reference(product, "fake", None, rng=np.random.default_rng(0))

    photo, conditions = render_listing(product, factory.defects, rng=np.random.default_rng(0), size=256)
    assert max(photo.size) == 256 and 40 <= conditions["jpeg"] <= 90 and 0.35 <= conditions["scale"] <= 0.9
    assert conditions["background"] in BACKGROUND_POOLS["test"]
    _, train = render_listing(product, rng=np.random.default_rng(0), pool="train", size=128)
    assert train["background"] in BACKGROUND_POOLS["train"]


def test_defect_visibility_is_measured_on_a_genuine_twin_without_changing_the_photo(
    products: dict[str, Product],
) -> None:
    product = products["watch"]
    factory = make_factories(product, seed=0)[0]
    for seed in range(4):
        plain, _ = render_listing(product, factory.defects, rng=np.random.default_rng(seed), size=256)
        measured, c = render_listing(
            product, factory.defects, rng=np.random.default_rng(seed), size=256, measure_defects=True
        )
        assert plain.tobytes() == measured.tobytes()  # measuring renders a twin, never changes the photo
        assert 0 < c["defect_pixels_count"] <= c["item_pixels"] and 0.0 < c["defect_pixels"] <= 1.0
        assert c["defect_pixels"] == pytest.approx(c["defect_pixels_count"] / c["item_pixels"])
        # the twin of a genuine item is the very same photo: nothing changes
        _, same = render_listing(product, rng=np.random.default_rng(seed), size=256, measure_defects=True)
        assert same["defect_pixels_count"] == 0 and same["item_pixels"] > 0
    # a barely visible defect changes fewer pixels than a severe one of the same kind
    shares = [
        render_listing(product, (Defect("spacing", s),), rng=np.random.default_rng(0), size=256, measure_defects=True)[1][
            "defect_pixels"
        ]
        for s in (0.2, 1.0)
    ]
    assert shares[0] < shares[1]


def test_fake_listings_record_how_many_item_pixels_their_defects_change(listings: Rows) -> None:
    fakes = [r for r in listings if r["label"] == "fake"]
    assert any(r["reused_from"] for r in fakes)  # re-used photos of seized fakes are measured too
    for row in fakes:
        share, count = float(row["defect_pixels"]), int(row["defect_pixels_count"])
        assert 0.0 <= share <= 1.0 and count >= 0 and (share > 0) == (count > 0)
    assert sum(float(r["defect_pixels"]) > 0 for r in fakes) >= 0.9 * len(fakes)
    colour = [float(r["defect_pixels"]) for r in fakes if r["family"] == "colour"]
    typography = [float(r["defect_pixels"]) for r in fakes if r["family"] == "typography"]
    assert colour and typography and min(colour) > max(typography)  # a hue shift repaints the whole item
    assert all(r["defect_pixels"] == r["defect_pixels_count"] == "" for r in listings if r["label"] != "fake")


def test_kit_json_counts_fakes_by_defect_visibility(kit: Path, listings: Rows) -> None:
    counts = json.loads((kit / "kit.json").read_text())["counts"]
    buckets = ("below_0.1pct", "0.1_to_1pct", "1pct_or_more")
    assert sum(counts[f"listings_fake_defect_pixels_{b}"] for b in buckets) == counts["listings_fake"]
    assert counts["listings_fake_defect_pixels_1pct_or_more"] == sum(
        float(r["defect_pixels"]) >= 0.01 for r in listings if r["label"] == "fake"
    )


def test_fonts_ship_inside_the_package() -> None:
    fonts = resources.files("authvision.brandkit").joinpath("fonts")
    assert fonts.joinpath("LICENSE").read_text(encoding="utf-8").count("Bitstream") >= 1
    total = 0
    for name in FONT_FILES.values():
        data = fonts.joinpath(name).read_bytes()
        assert data[:4] == b"\x00\x01\x00\x00"  # TrueType
        total += len(data)
    assert total < 3_000_000
