"""scan_with_ray on a local Ray instance (2 CPUs): the same rows as the single-process scanner."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image, ImageOps

import authvision as av
from authvision.scanner import Scanner, scan_to_jsonl

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")
pytest.importorskip("skimage")
from authvision.distributed import scan_with_ray  # noqa: E402
from authvision.sample_photos import sample_photo  # noqa: E402

PHOTOS = ("rocket", "coffee", "chelsea", "astronaut", "camera", "grace_hopper")


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def setup(embedder, tmp_path_factory) -> tuple[Path, list[tuple[str, str]]]:
    root = tmp_path_factory.mktemp("ray")
    checker = av.AuthenticityChecker(embedder)
    for name in PHOTOS[:3]:
        image = Image.fromarray(sample_photo(name))
        checker.add_references([_jpeg(image), _jpeg(ImageOps.mirror(image))], "genuine", product=name, brand="acme")
    checker.save(root / "checker")
    inputs = []
    for i in range(30):
        image = Image.fromarray(sample_photo(PHOTOS[i % len(PHOTOS)]))
        image = image.crop((i, i, image.width - 2 * i, image.height - i)).resize((200, 150))
        path = root / f"{i:02d}.jpg"
        path.write_bytes(_jpeg(image))
        inputs.append((f"sku-{i}", str(path)))
    (root / "bad.jpg").write_bytes(b"not a jpeg")
    inputs.append(("sku-bad", str(root / "bad.jpg")))
    return root / "checker", inputs


def _rows(path: Path) -> dict[int, dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len({r["seq"] for r in rows}) == len(rows)
    return {r["seq"]: r for r in rows}


def _same(a: dict, b: dict) -> None:
    for key in ("id", "path", "label", "product", "brand", "neighbor_ids", "error", "model_sha256", "checker_version"):
        assert a[key] == b[key], key
    assert a["neighbor_similarities"] == pytest.approx(b["neighbor_similarities"], abs=1e-5)


def test_ray_scan_writes_the_rows_the_scanner_writes_and_resumes(local_ray, setup, tmp_path):
    checker_dir, inputs = setup
    reference = tmp_path / "reference.jsonl"
    scan_to_jsonl(Scanner(av.AuthenticityChecker.load(checker_dir), batch_size=8), inputs, reference)
    expected = _rows(reference)

    out = tmp_path / "ray.jsonl"
    scan_to_jsonl(Scanner(av.AuthenticityChecker.load(checker_dir), batch_size=8), inputs[:11], out)  # a scan cut short
    summary = scan_with_ray(inputs, checker_dir, out, num_actors=2, batch_size=4, resume=True)
    assert summary.resumed == 11 and summary.scanned == len(inputs) - 11 and summary.rows == len(inputs)
    assert summary.errors == 1 and summary.labels["error"] == 1
    rows = _rows(out)
    assert sorted(rows) == list(range(len(inputs)))
    for seq, row in rows.items():
        _same(row, expected[seq])
    assert rows[len(inputs) - 1]["label"] == "error" and rows[len(inputs) - 1]["error"]

    folder = tmp_path / "ray-out"
    summary = scan_with_ray(inputs, checker_dir, folder, num_actors=2, batch_size=4)
    written = {}
    for file in folder.glob("*.jsonl"):
        written.update(_rows(file))
    assert summary.rows == len(written) == len(inputs)
    for seq, row in written.items():
        _same(row, expected[seq])


def test_ray_scan_takes_a_dataset_of_bytes(local_ray, setup, tmp_path):
    checker_dir, inputs = setup
    items = [{"seq": i, "id": item_id, "bytes": Path(path).read_bytes()} for i, (item_id, path) in enumerate(inputs[:6])]
    summary = scan_with_ray(ray.data.from_items(items), checker_dir, tmp_path / "b.jsonl", num_actors=1, batch_size=4)
    rows = _rows(tmp_path / "b.jsonl")
    assert summary.rows == 6 and sorted(rows) == list(range(6))
    assert all(r["path"] is None and r["label"] != "error" for r in rows.values())
    assert [rows[i]["id"] for i in range(6)] == [item_id for item_id, _ in inputs[:6]]


def test_ray_scan_refuses_non_path_inputs(local_ray, setup, tmp_path):
    checker_dir, _ = setup
    with pytest.raises(TypeError, match="paths or"):
        scan_with_ray([b"bytes"], checker_dir, tmp_path / "x.jsonl")
