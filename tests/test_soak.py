"""The soak of issue 16, as a bounded slow test: 6 threads checking listings while another adds, removes and
saves references and a third loads every save. No errors, no changed results, every save loaded and
identical to what was saved, memory steady.

``AUTHVISION_SOAK_SECONDS`` sets how long it runs (default 15, at most 60).
"""

from __future__ import annotations

import io
import os
import queue
import threading
import time

import pytest
from PIL import Image, ImageOps

import authvision as av
from authvision.sample_photos import sample_photo
from authvision.signing import KEY_ENV_VAR

SECONDS = min(60.0, float(os.environ.get("AUTHVISION_SOAK_SECONDS", "15")))
READERS = 6
KEY = b"soak signing key"
PRODUCTS = {
    "rocket-01": ("rocket", "acme"), "mug-01": ("coffee", "bolt"), "cat-01": ("chelsea", "bolt"), "moto-01": ("stereo_motorcycle_left", "acme"),
}


def jpeg(image: Image.Image, quality: int = 85) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def photo(name: str) -> Image.Image:
    image = Image.fromarray(sample_photo(name))
    image.thumbnail((320, 320))
    return image


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.slow
def test_soak_checks_while_references_change_and_every_save_is_loaded(embedder, tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV_VAR, raising=False)
    checker = av.AuthenticityChecker(embedder)
    for product, (name, brand) in PRODUCTS.items():
        genuine = photo(name)
        checker.add_references([jpeg(genuine), jpeg(ImageOps.mirror(genuine))], "genuine", product=product, brand=brand)
        h, s, v = genuine.convert("HSV").split()
        fake = Image.merge("HSV", (h.point(lambda x: (x + 14) % 256), s, v)).convert("RGB")
        checker.add_references([jpeg(fake)], "fake", product=product, brand=brand)
    base = len(checker.index)
    # Readers search their own brands; the writer's reference is of another brand, so it can never be a
    # neighbour and every verdict must stay exactly what it was.
    listings = [(jpeg(photo(name).rotate(3, fillcolor="white"), 70), brand) for name, brand in PRODUCTS.values()]
    expected = [checker.check_many([image], brand=brand)[0].to_dict() for image, brand in listings]
    extra = [jpeg(photo(name)) for name in ("hubble_deep_field", "astronaut", "camera")]
    target = tmp_path / "checker"

    errors: list[str] = []
    stop = threading.Event()
    counts = {"checks": 0, "adds": 0, "removes": 0, "saves": 0, "loads": 0}
    counts_lock = threading.Lock()
    saves: queue.Queue[tuple[int, int]] = queue.Queue(maxsize=1)

    def count(what: str) -> None:
        with counts_lock:
            counts[what] += 1

    def guarded(body):
        def run() -> None:
            try:
                body()
            except BaseException as exc:  # noqa: BLE001 - any failure ends the soak and is reported
                errors.append(f"{threading.current_thread().name}: {type(exc).__name__}: {exc}")
                stop.set()
        return run

    def reader(offset: int) -> None:
        i = offset
        while not stop.is_set():
            image, brand = listings[i % len(listings)]
            got = checker.check_many([image], brand=brand)[0].to_dict()
            if got != expected[i % len(listings)]:
                raise AssertionError(f"verdict of listing {i % len(listings)} changed: {got} != {expected[i % len(listings)]}")
            count("checks")
            i += 1

    def writer() -> None:
        i = 0
        while not stop.is_set():
            ids = checker.add_references([extra[i % len(extra)]], "genuine", product="nebula", brand="nasa", on_duplicate="skip")
            count("adds")
            checker.save(target, signing_key=KEY)
            hand_over((counts["saves"], len(checker.index)))  # waits while the loader still loads the previous save
            count("saves")
            checker.remove_references(ids)
            count("removes")
            i += 1
        hand_over((-1, -1))

    def hand_over(item: tuple[int, int]) -> None:
        while True:
            try:
                saves.put(item, timeout=0.2)
                return
            except queue.Full:
                if stop.is_set() and any(name.startswith("loader") for name in errors):
                    return  # the loader failed: nobody will take it

    def loader() -> None:
        while True:
            try:
                number, references = saves.get(timeout=0.5)
            except queue.Empty:
                if stop.is_set() and any(name.startswith("writer") for name in errors):
                    return  # the writer failed: no more saves
                continue
            if number < 0:
                return
            loaded = av.AuthenticityChecker.load(target, embedder=embedder, signing_key=KEY)
            if len(loaded.index) != references or len(loaded.index) != base + 1:
                raise AssertionError(f"save {number} held {references} references, the load {len(loaded.index)}")
            image, brand = listings[number % len(listings)]
            if loaded.check_many([image], brand=brand)[0].to_dict() != expected[number % len(listings)]:
                raise AssertionError(f"the checker loaded from save {number} gives another verdict")
            count("loads")

    threads = [threading.Thread(target=guarded(lambda o=o: reader(o)), name=f"reader-{o}") for o in range(READERS)]
    threads += [threading.Thread(target=guarded(writer), name="writer"), threading.Thread(target=guarded(loader), name="loader")]
    warm = time.monotonic() + min(5.0, SECONDS / 4)
    for thread in threads:
        thread.start()
    while time.monotonic() < warm and not stop.is_set():
        time.sleep(0.1)
    rss_start = rss_bytes()
    deadline = time.monotonic() + SECONDS
    while time.monotonic() < deadline and not stop.is_set():
        time.sleep(0.2)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    assert not [t.name for t in threads if t.is_alive()], "a soak thread did not stop"
    growth = rss_bytes() - rss_start

    print(f"\nsoak {SECONDS:.0f} s: {counts}, RSS {rss_start / 2**20:.0f} MiB -> +{growth / 2**20:.1f} MiB")
    assert not errors, errors
    assert counts["checks"] >= READERS and counts["saves"] >= 2
    assert counts["loads"] == counts["saves"], "a save was not loaded"
    assert len(checker.index) == base
    assert growth < 150 * 2**20, f"memory grew by {growth / 2**20:.0f} MiB"
    final = av.AuthenticityChecker.load(target, signing_key=KEY)
    assert len(final.index) == base + 1
