"""Reading the wordmark: a template's words are read again where they sit in a registered listing."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from authvision.inspection import InspectionParams, ProductInspection, build_product_inspection, inspect
from authvision.inspection.text import mismatch

pytest.importorskip("rapidocr")


def _photo(word: str, rng: np.random.Generator) -> np.ndarray:
    """A studio photo of a dark item (a real photo) carrying a pale wordmark, slightly moved."""
    item = (cv2.resize(skimage.data.coffee(), (300, 200), interpolation=cv2.INTER_AREA) * 0.45).astype(np.uint8)
    cv2.putText(item, word, (36, 118), cv2.FONT_HERSHEY_DUPLEX, 1.7, (245, 245, 235), 3, cv2.LINE_AA)
    canvas = np.full((480, 480, 3), 236, np.uint8)
    x, y = 90 + int(rng.integers(-6, 7)), 140 + int(rng.integers(-6, 7))
    canvas[y : y + 200, x : x + 300] = item
    return canvas


def _listing(photo: np.ndarray) -> np.ndarray:
    h, w = photo.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = np.float32([[24, 10], [w + 8, 30], [w - 10, h + 14], [10, h - 8]])
    return cv2.warpPerspective(photo, cv2.getPerspectiveTransform(src, dst), (w + 40, h + 40), borderValue=(90, 120, 150))


@pytest.fixture(scope="module")
def data() -> ProductInspection:
    rng = np.random.default_rng(4)
    return build_product_inspection([_photo("TORVAL", rng) for _ in range(4)], product="p", templates=1, params=InspectionParams(read_text=True))


def test_the_templates_word_is_found_and_read_again_in_a_genuine_listing(data):
    assert [w.text for w in data.templates[0].words] == ["TORVAL"]
    r = inspect(_listing(_photo("TORVAL", np.random.default_rng(9))), data, heatmap=False)
    assert r.registered and [x.read for x in r.text] == ["TORVAL"] and r.text_mismatch == 0.0
    mirrored = inspect(np.ascontiguousarray(_listing(_photo("TORVAL", np.random.default_rng(9)))[:, ::-1]), data, heatmap=False)
    assert mirrored.mirrored and mirrored.text_mismatch == 0.0, "a mirrored listing is read the right way round"


def test_a_misspelt_wordmark_reads_differently(data):
    r = inspect(_listing(_photo("TROVAL", np.random.default_rng(9))), data, heatmap=False)
    assert r.registered and r.text_mismatch >= 0.3, [x.to_dict() for x in r.text]
    assert r.to_dict()["text"][0]["expected"] == "TORVAL"


def test_words_survive_the_round_trip(data):
    again = ProductInspection.from_arrays(*data.to_arrays())
    assert again.templates[0].words == data.templates[0].words


def test_mismatch_is_the_edit_distance_over_the_expected_length():
    assert mismatch("TORVAL", "TORVAL") == 0.0
    assert mismatch("TORVAL", "TROVAL") == pytest.approx(2 / 6)
    assert mismatch("TORVAL", "") == 1.0 and mismatch("", "X") == 0.0


def test_a_word_only_one_template_reads_is_dropped_as_a_misreading():
    from authvision.inspection.text import Word, consensus

    box = (0.0, 0.0, 10.0, 5.0)
    kept = consensus([[Word("TORVAL", box), Word("XQZ", box)], [Word("TORVAL", box)], [Word("TORVAY", box)]])
    assert [[w.text for w in ws] for ws in kept] == [["TORVAL"], ["TORVAL"], []]
    assert consensus([[Word("ONLY", box)]]) == [(Word("ONLY", box),)]


def test_reading_a_photo_without_text_finds_nothing_and_prints_nothing(capfd):
    from authvision.inspection.text import find_words

    assert find_words(np.full((200, 200, 3), 200, np.uint8), 1.0) == ()
    out, err = capfd.readouterr()
    assert out == "" and err == "", "the OCR library's own log lines must not reach the user"


def test_a_word_is_carried_through_the_template_links_with_its_box_mapped():
    from authvision.inspection.text import Word, share_words

    word = Word("TORVAL", (100.0, 50.0, 160.0, 70.0))
    shift = np.array([[1, 0, 20], [0, 1, -10], [0, 0, 1]], np.float64)  # frame 0 -> frame 1
    links = np.zeros((3, 3, 3, 3))
    links[0, 1], links[1, 0], links[0, 0], links[1, 1], links[2, 2] = shift, np.linalg.inv(shift), np.eye(3), np.eye(3), np.eye(3)
    out = share_words([[word], [], []], links, (448, 448))
    assert out[0] == (word,)
    assert [w.text for w in out[1]] == ["TORVAL"] and out[1][0].box == pytest.approx((120.0, 40.0, 180.0, 60.0))
    assert out[2] == (), "template 2 has no link from template 0: nothing is guessed"
    own = Word("TORVAL", (121.0, 41.0, 181.0, 61.0))
    assert share_words([[word], [own], []], links, (448, 448))[1] == (own,), "a word the template reads itself is not added twice"
    links[0, 1] = np.array([[1, 0, 400], [0, 1, 0], [0, 0, 1]], np.float64)
    assert share_words([[word], [], []], links, (448, 448))[1] == (), "a word carried outside the frame is dropped"


def test_a_word_hidden_on_one_genuine_photo_is_still_read_on_its_template():
    rng = np.random.default_rng(4)
    photos = [_photo("TORVAL", rng) for _ in range(4)]
    cv2.rectangle(photos[2], (186, 200), (222, 275), (40, 40, 40), -1)  # a watch hand over the wordmark's middle letters
    data = build_product_inspection(photos, product="p", templates=4, params=InspectionParams(read_text=True))
    assert len(data.templates) == 4 and 2 in [t.source for t in data.templates]
    for t in data.templates:
        assert [w.text for w in t.words] == ["TORVAL"], (t.source, t.words)
