"""Evidence a reviewer can see: the listing warped into its best genuine reference's frame, beside it,
the heatmap of where they differ, and the worst regions boxed with their scores (one PNG per listing).

Pillow and OpenCV only (no matplotlib), so it works in the inference install.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

if TYPE_CHECKING:
    from .checker import AuthenticityChecker
    from .imageio import ImageSource
    from .inspection import InspectionResult, ProductInspection
    from .verdict import Verdict

__all__ = ["explain", "render_overlay"]

HEAT_RANGE = (0.0, 6.0)
"""Heatmap colour scale: per-pixel null z from 0 (typical genuine) to 6 (far outside the genuine null)."""


def render_overlay(
    listing: np.ndarray, result: InspectionResult, data: ProductInspection, *, verdict: Verdict | None = None, title: str | None = None
) -> bytes:
    """PNG bytes: listing in the template frame | genuine template | heatmap over the listing, worst regions boxed
    (and the brand's authentication points, in amber, with their scores).

    ``listing`` is the RGB uint8 photo the result was computed on (full decode resolution). An
    unregistered result gives the listing alone with the reason.
    """
    import cv2

    header = title or ""
    if verdict is not None:
        score = "–" if verdict.authenticity is None else f"{verdict.authenticity:.3f}"
        header = f"{header}  {verdict.label} (P genuine {score}), product {verdict.product}".strip()
    if not result.registered or result.homography is None or result.template is None:
        panel = _fit(listing, 448)
        return _compose([panel], [f"not registered: {result.reason}"], header)
    template = data.templates[result.template].view.image
    h, w = template.shape[:2]
    # The homography maps the listing's own pixels, a mirrored listing's too (it reverses orientation then).
    warped = cv2.warpPerspective(listing, result.homography, (w, h), flags=cv2.INTER_AREA)
    heat = np.zeros((h, w), np.float32) if result.heatmap is None else np.nan_to_num(result.heatmap[:h, :w], nan=0.0)
    lo, hi = HEAT_RANGE
    level = np.clip((heat - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8)
    colour = cv2.cvtColor(cv2.applyColorMap(level, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    alpha = (level.astype(np.float32) / 255)[..., None] * 0.7
    blended = (warped.astype(np.float32) * (1 - alpha) + colour.astype(np.float32) * alpha).astype(np.uint8)
    panels = [Image.fromarray(warped), Image.fromarray(template), Image.fromarray(blended)]
    draw = ImageDraw.Draw(panels[2])
    for rank, region in enumerate(result.regions):
        x0, y0, x1, y1 = region.box
        draw.rectangle((x0, y0, x1, y1), outline=(255, 255, 255) if rank else (255, 0, 255), width=2)
        draw.text((x0 + 2, max(0, y0 - 11)), f"{region.score:.1f}", fill=(255, 255, 255))
    for point in result.points:  # the brand's authentication points, on the template too
        for canvas in (panels[1], panels[2]):
            x0, y0, x1, y1 = point.box
            pen = ImageDraw.Draw(canvas)
            pen.rectangle((x0, y0, x1, y1), outline=(255, 200, 0), width=2)
            pen.text((x0 + 2, y1 + 1), f"{point.name} {point.score:.1f}", fill=(255, 200, 0))
    mirror = ", mirrored" if result.mirrored else ""
    labels = [
        f"listing, registered ({result.inliers} inliers{mirror})",
        f"genuine template {result.template}",
        f"difference vs genuine null (score {result.score:.2f})",
    ]
    return _compose([np.asarray(p) for p in panels], labels, header)


def explain(checker: AuthenticityChecker, image: ImageSource, verdict: Verdict | None = None, *, title: str | None = None) -> bytes | None:
    """The overlay PNG of a listing's region inspection, or None when the checker does not inspect it.

    ``verdict``: the listing's verdict, if already computed (else it is checked here).
    """
    from .imageio import decode_image

    try:
        provider = checker.provider("inspection")
    except KeyError:
        return None
    verdict = checker.check(image) if verdict is None else verdict
    if verdict.product is None or verdict.inspection is None or not verdict.inspection.get("inspected"):
        return None
    pixels = np.ascontiguousarray(np.asarray(decode_image(image).image))
    result = provider.inspect(pixels, verdict.product, heatmap=True)  # type: ignore[attr-defined]
    data = provider.product_data(verdict.product)  # type: ignore[attr-defined]
    if result is None or data is None:
        return None
    return render_overlay(pixels, result, data, verdict=verdict, title=title)


def _fit(image: np.ndarray, side: int) -> np.ndarray:
    scale = side / max(image.shape[:2])
    pil = Image.fromarray(image)
    if scale < 1:
        pil = pil.resize((max(1, round(pil.width * scale)), max(1, round(pil.height * scale))), Image.Resampling.BILINEAR)
    return np.asarray(pil)


def _compose(panels: list[np.ndarray], labels: list[str], header: str) -> bytes:
    gap, top, caption = 8, 22 if header else 4, 16
    height = max(p.shape[0] for p in panels)
    width = sum(p.shape[1] for p in panels) + gap * (len(panels) + 1)
    canvas = Image.new("RGB", (width, height + top + caption + gap), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    if header:
        draw.text((gap, 4), header, fill=(0, 0, 0))
    x = gap
    for panel, label in zip(panels, labels):
        canvas.paste(Image.fromarray(panel), (x, top))
        draw.text((x, top + panel.shape[0] + 2), label, fill=(0, 0, 0))
        x += panel.shape[1] + gap
    buffer = io.BytesIO()
    canvas.save(buffer, "PNG")
    return buffer.getvalue()
