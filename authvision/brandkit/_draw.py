"""Drawing primitives for items: a supersampled canvas, masks, pattern fills, metal, stitches, marks.

Items are drawn at twice their output size without antialiasing and reduced 2x (premultiplied
alpha), which antialiases every edge, letter and stitch the same way.
"""

from __future__ import annotations

import colorsys
import functools
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from ._fonts import font

RGB = tuple[int, int, int]
Point = tuple[float, float]

SUPERSAMPLE = 2
_CAP_HEIGHT_EM = 0.73  # cap height of the DejaVu faces, in em


def mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))  # type: ignore[return-value]


def scale_rgb(rgb: RGB, factor: float) -> RGB:
    return tuple(int(min(255, max(0, round(c * factor)))) for c in rgb)  # type: ignore[return-value]


def luminance(rgb: RGB) -> float:
    return (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]) / 255.0


def hsv_adjust(rgb: RGB, hue_deg: float = 0.0, sat: float = 1.0) -> RGB:
    h, s, v = colorsys.rgb_to_hsv(*(c / 255.0 for c in rgb))
    r, g, b = colorsys.hsv_to_rgb((h + hue_deg / 360.0) % 1.0, min(1.0, s * sat), v)
    return (round(r * 255), round(g * 255), round(b * 255))


class Canvas:
    """An RGBA canvas in item units: x in [0, 1] across the width, y in [0, aspect] down."""

    def __init__(self, long_side: int, aspect: float) -> None:
        if aspect >= 1.0:
            height = long_side * SUPERSAMPLE
            width = max(1, round(height / aspect))
        else:
            width = long_side * SUPERSAMPLE
            height = max(1, round(width * aspect))
        self.k = float(width)  # pixels per unit
        self.size = (width, height)
        self.image = Image.new("RGBA", self.size, (0, 0, 0, 0))
        self.draw = ImageDraw.Draw(self.image)

    def px(self, value: float) -> float:
        return value * self.k

    def pt(self, x: float, y: float) -> Point:
        return (x * self.k, y * self.k)

    def pts(self, points: Sequence[Point]) -> list[Point]:
        return [(x * self.k, y * self.k) for x, y in points]

    def lw(self, width: float) -> int:
        """A line width of ``width`` units in pixels, at least one."""
        return max(1, int(round(width * self.k)))

    def mask(self) -> tuple[Image.Image, ImageDraw.ImageDraw]:
        m = Image.new("L", self.size, 0)
        return m, ImageDraw.Draw(m)

    def rect(
        self, x0: float, y0: float, x1: float, y1: float, radius: float = 0.0, outline: float = 0.0, value: int = 255
    ) -> Image.Image:
        """Mask of a rectangle (rounded by ``radius``), filled or outlined ``outline`` units wide."""
        m, md = self.mask()
        box = (x0 * self.k, y0 * self.k, x1 * self.k, y1 * self.k)
        if outline:
            md.rounded_rectangle(box, radius=radius * self.k, outline=value, width=self.lw(outline))
        else:
            md.rounded_rectangle(box, radius=radius * self.k, fill=value)
        return m

    def disc(self, cx: float, cy: float, r: float, outline: float = 0.0) -> Image.Image:
        """Mask of a disc, or of a ring ``outline`` units wide."""
        m, md = self.mask()
        box = ((cx - r) * self.k, (cy - r) * self.k, (cx + r) * self.k, (cy + r) * self.k)
        if outline:
            md.ellipse(box, outline=255, width=self.lw(outline))
        else:
            md.ellipse(box, fill=255)
        return m

    def polygon(self, points: Sequence[Point]) -> Image.Image:
        m, md = self.mask()
        md.polygon(self.pts(points), fill=255)
        return m

    def line(self, points: Sequence[Point], rgb: RGB, width: float) -> None:
        """An opaque line through ``points`` (units), ``width`` units wide."""
        self.draw.line(self.pts(points), fill=(*rgb, 255), width=self.lw(width))

    def dot(self, cx: float, cy: float, r: float, rgb: RGB) -> None:
        box = ((cx - r) * self.k, (cy - r) * self.k, (cx + r) * self.k, (cy + r) * self.k)
        self.draw.ellipse(box, fill=(*rgb, 255))

    def fill(self, mask: Image.Image, rgb: RGB) -> None:
        box = mask.getbbox()
        if box is not None:  # pasting only the mask's box is much faster than the whole canvas
            self.image.paste((*rgb, 255), box, mask.crop(box))

    def overlay(self, mask: Image.Image, rgb: RGB, alpha: float) -> None:
        """Blend ``rgb`` over the canvas where ``mask`` is set, keeping the canvas alpha."""
        a = mask.point(lambda v: int(v * alpha))
        colour = Image.new("RGBA", self.size, (*rgb, 255))
        keep = self.image.getchannel("A")
        self.image.paste(colour, (0, 0), a)
        self.image.putalpha(keep)

    def finish(self) -> Image.Image:
        """Reduce to the output size, averaging in premultiplied alpha (no dark fringes)."""
        return self.image.convert("RGBa").reduce(SUPERSAMPLE).convert("RGBA")


def smooth(points: Sequence[Point], iterations: int = 2, closed: bool = True) -> list[Point]:
    """Chaikin corner cutting: a polygon with rounded corners."""
    pts = list(points)
    for _ in range(iterations):
        out: list[Point] = []
        n = len(pts)
        for i in range(n if closed else n - 1):
            (x0, y0), (x1, y1) = pts[i], pts[(i + 1) % n]
            out.append((0.75 * x0 + 0.25 * x1, 0.75 * y0 + 0.25 * y1))
            out.append((0.25 * x0 + 0.75 * x1, 0.25 * y0 + 0.75 * y1))
        if not closed:
            out = [pts[0], *out, pts[-1]]
        pts = out
    return pts


def rounded_poly(x0: float, y0: float, x1: float, y1: float, r: float, taper: float = 0.0) -> list[Point]:
    """A box (optionally narrower at the top by ``taper`` each side) with round bottom corners."""
    pts: list[Point] = [(x0 + taper, y0), (x1 - taper, y0)]
    for cx, a0 in ((x1 - r, 0.0), (x0 + r, 90.0)):
        for t in np.linspace(a0, a0 + 90.0, 8):
            pts.append((cx + r * math.cos(math.radians(t)), y1 - r + r * math.sin(math.radians(t))))
    return pts


def intersect(a: Image.Image, b: Image.Image) -> Image.Image:
    return Image.fromarray(np.minimum(np.asarray(a), np.asarray(b)))


def half_plane(canvas: Canvas, p0: Point, p1: Point, right: bool) -> Image.Image:
    """Mask of the canvas on one side of the line p0-p1 (units): right=True is the +x side."""
    w, h = canvas.size
    (x0, y0), (x1, y1) = canvas.pt(*p0), canvas.pt(*p1)
    big = 4 * max(w, h)
    dx, dy = x1 - x0, y1 - y0
    norm = math.hypot(dx, dy) or 1.0
    ux, uy = dx / norm, dy / norm
    nx, ny = -uy, ux  # normal
    if (nx > 0) != right:
        nx, ny = -nx, -ny
    a, b = (x0 - ux * big, y0 - uy * big), (x1 + ux * big, y1 + uy * big)
    poly = [a, b, (b[0] + nx * big, b[1] + ny * big), (a[0] + nx * big, a[1] + ny * big)]
    m = Image.new("L", canvas.size, 0)
    ImageDraw.Draw(m).polygon(poly, fill=255)
    return m


# --- monogram pattern ---------------------------------------------------------------------------


def pattern_fill(
    canvas: Canvas, region: Image.Image, base: RGB, ink: RGB, tile: np.ndarray, phase: Point
) -> None:
    """Fill ``region`` with ``base`` and the tiled motif ``tile`` in ``ink``.

    ``phase`` (canvas pixels) is in absolute canvas coordinates, so two regions with the same phase
    continue one pattern across their seam.
    """
    box = region.getbbox()
    if box is None:
        return
    x0, y0, x1, y1 = box
    period = tile.shape[0]
    ys = (np.arange(y0, y1) + int(round(phase[1]))) % period
    xs = (np.arange(x0, x1) + int(round(phase[0]))) % period
    t = np.linspace(0.0, 1.0, 256, dtype=np.float32)[:, None]
    lut = np.rint(np.asarray(base, np.float32) * (1 - t) + np.asarray(ink, np.float32) * t).astype(np.uint8)
    rgb = lut[tile[np.ix_(ys, xs)]]  # coverage -> colour in one gather
    canvas.image.paste(Image.fromarray(rgb, "RGB"), (x0, y0), region.crop(box))


@functools.lru_cache(maxsize=64)
def pattern_tile(emblem: str, mark: str, initials: str, font_key: str, period: int) -> np.ndarray:
    """One tile (period x period, uint8 coverage) of a brand's monogram pattern."""
    tile = Image.new("L", (period, period), 0)
    draw = ImageDraw.Draw(tile)
    r = 0.17 * period
    for cx, cy in ((0.25, 0.25), (0.75, 0.75)):
        draw_emblem(draw, cx * period, cy * period, r, emblem, 2, initials, font_key)
    for cx, cy in ((0.75, 0.25), (0.25, 0.75)):
        draw_mark(draw, cx * period, cy * period, 0.1 * period, mark)
    arr = np.asarray(tile).copy()
    arr.setflags(write=False)
    return arr


def draw_mark(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, mark: str) -> None:
    """A secondary pattern mark: a four-point star, a dot or a small flower."""
    if mark == "star4":
        draw.polygon(_star(cx, cy, r, 0.3 * r, 4, 0.0), fill=255)
    elif mark == "dot":
        draw.ellipse((cx - 0.6 * r, cy - 0.6 * r, cx + 0.6 * r, cy + 0.6 * r), fill=255)
    else:
        for k in range(4):
            a = math.radians(45 + 90 * k)
            px, py = cx + 0.45 * r * math.cos(a), cy + 0.45 * r * math.sin(a)
            draw.ellipse((px - 0.4 * r, py - 0.4 * r, px + 0.4 * r, py + 0.4 * r), fill=255)
        draw.ellipse((cx - 0.18 * r, cy - 0.18 * r, cx + 0.18 * r, cy + 0.18 * r), fill=0)


def _star(cx: float, cy: float, r_out: float, r_in: float, n: int, rot: float = -90.0) -> list[Point]:
    pts = []
    for i in range(2 * n):
        r = r_out if i % 2 == 0 else r_in
        a = math.radians(rot + i * 180.0 / n)
        pts.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return pts


def _ring(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, width: float, fill: int) -> None:
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=fill, width=max(1, int(round(width))))


def _disc(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, fill: int) -> None:
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)


def draw_emblem(
    draw: ImageDraw.ImageDraw,
    cx: float,
    cy: float,
    r: float,
    style: str,
    detail: int,
    initials: str,
    font_key: str,
) -> None:
    """A brand emblem of radius ``r`` on an "L" mask (255 = ink).

    ``detail`` 2 draws it whole, 1 leaves out its finest element, 0 draws only its main element,
    thinner (what a counterfeiter's simplified emblem looks like).
    """
    thin = 1.0 if detail > 0 else 0.6
    if style == "star-circle":
        _ring(draw, cx, cy, r, 0.13 * r * thin, 255)
        if detail >= 1:
            draw.polygon(_star(cx, cy, 0.66 * r, 0.27 * r, 5), fill=255)
        else:
            draw.polygon(_star(cx, cy, 0.5 * r, 0.22 * r, 5), fill=255)
        if detail >= 2:
            _disc(draw, cx, cy, 0.11 * r, 0)
    elif style == "initials":
        size = max(4, int(1.25 * r))
        f = font(font_key, size)
        offsets = ((-0.2, -0.05), (0.2, 0.12)) if detail >= 1 else ((0.0, 0.0),)
        for (dx, dy), letter in zip(offsets, initials):
            draw.text((cx + dx * r, cy + dy * r), letter, font=f, fill=255, anchor="mm")
        if detail >= 2:
            _ring(draw, cx, cy, r, 0.07 * r, 255)
    elif style == "quatrefoil":
        for k in range(4):
            a = math.radians(90 * k)
            _disc(draw, cx + 0.5 * r * math.cos(a), cy + 0.5 * r * math.sin(a), 0.45 * r * (0.85 + 0.15 * thin), 255)
        if detail >= 1:
            _disc(draw, cx, cy, 0.3 * r, 0)
        if detail >= 2:
            _disc(draw, cx, cy, 0.13 * r, 255)
    elif style == "diamond":
        w = max(1, int(round(0.15 * r * thin)))
        pts = [(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)]
        draw.line([*pts, pts[0]], fill=255, width=w, joint="curve")
        if detail >= 1:
            draw.polygon([(cx, cy - 0.45 * r), (cx + 0.45 * r, cy), (cx, cy + 0.45 * r), (cx - 0.45 * r, cy)], fill=255)
        if detail >= 2:
            for sx, sy in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
                _disc(draw, cx + sx * 0.72 * r, cy + sy * 0.72 * r, 0.1 * r, 255)
    elif style == "sun":
        _disc(draw, cx, cy, 0.5 * r, 255)
        if detail >= 1:
            for k in range(8):
                a = math.radians(45 * k)
                ca, sa = math.cos(a), math.sin(a)
                tip = (cx + r * ca, cy + r * sa)
                b1 = (cx + 0.62 * r * ca - 0.12 * r * sa, cy + 0.62 * r * sa + 0.12 * r * ca)
                b2 = (cx + 0.62 * r * ca + 0.12 * r * sa, cy + 0.62 * r * sa - 0.12 * r * ca)
                draw.polygon([tip, b1, b2], fill=255)
        if detail >= 2:
            _ring(draw, cx, cy, 0.32 * r, 0.06 * r, 0)
    else:
        raise ValueError(f"unknown emblem style {style!r}")


# --- text ----------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=512)
def text_mask(text: str, font_key: str, px: int, tracking: float, layout: str = "") -> Image.Image:
    """``text`` laid out letter by letter with ``tracking`` em of extra spacing, cropped to its ink.

    With ``layout`` (as long as ``text``), each letter is centred in the place the letter of
    ``layout`` would take: a wrong letter printed where the right one belongs. Callers must not
    modify the returned (cached) image.
    """
    f = font(font_key, px)
    cells = layout if layout and len(layout) == len(text) else text
    advances = [f.getlength(ch) + tracking * px for ch in cells]
    width = int(sum(abs(a) for a in advances) + 2 * px)
    img = Image.new("L", (width, int(2 * px)), 0)
    draw = ImageDraw.Draw(img)
    x = float(px)
    for ch, cell, adv in zip(text, cells, advances):
        draw.text((x + (f.getlength(cell) - f.getlength(ch)) / 2, 1.4 * px), ch, font=f, fill=255, anchor="ls")
        x += adv
    box = img.getbbox()
    if box is None:
        return img
    # Horizontally the ink; vertically a fixed band centred on the capitals, so that a letter with a
    # descender (Q) does not move the word when it is centred.
    centre = 1.4 * px - _CAP_HEIGHT_EM * px / 2
    return img.crop((box[0], round(centre - 0.62 * px), box[2], round(centre + 0.62 * px)))


def cap_px(cap_height: float) -> int:
    """Font size (pixels) whose capitals are ``cap_height`` pixels tall."""
    return max(4, int(round(cap_height / _CAP_HEIGHT_EM)))


def paste_mask(canvas: Canvas, mask: Image.Image, centre: Point, rgb: RGB) -> None:
    """Paste ``rgb`` through ``mask`` centred at ``centre`` (canvas pixels)."""
    x = int(round(centre[0] - mask.width / 2))
    y = int(round(centre[1] - mask.height / 2))
    canvas.image.paste((*rgb, 255), (x, y, x + mask.width, y + mask.height), mask)


# --- metal, stitches, shading -------------------------------------------------------------------


def metal_fill(canvas: Canvas, region: Image.Image, rgb: RGB, angle: float = 90.0) -> None:
    """Fill ``region`` with a polished-metal gradient of ``rgb`` (light from the top left)."""
    box = region.getbbox()
    if box is None:
        return
    x0, y0, x1, y1 = box
    h, w = y1 - y0, x1 - x0
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = math.radians(angle)
    t = (xx / max(w, 1)) * math.cos(a) + (yy / max(h, 1)) * math.sin(a)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    # bright band a third of the way, darker towards the far edge
    factor = 1.28 - 0.55 * t + 0.25 * np.exp(-(((t - 0.3) / 0.09) ** 2))
    rgbf = np.clip(np.asarray(rgb, np.float32)[None, None, :] * factor[:, :, None], 0, 255)
    layer = np.concatenate([np.rint(rgbf).astype(np.uint8), np.full((h, w, 1), 255, np.uint8)], axis=2)
    canvas.image.paste(Image.fromarray(layer, "RGBA"), (x0, y0), region.crop(box))


def stitches(
    canvas: Canvas,
    path: Sequence[Point],
    pitch: float,
    width: float,
    rgb: RGB,
    *,
    dots: bool = False,
    closed: bool = False,
) -> None:
    """Running stitches (or dots) along ``path`` (canvas pixels), ``pitch`` pixels apart."""
    pts = list(path) + ([path[0]] if closed else [])
    seg = [(pts[i], pts[i + 1]) for i in range(len(pts) - 1)]
    lengths = [math.dist(a, b) for a, b in seg]
    total = sum(lengths)
    if total <= 0 or pitch <= 0:
        return
    n = int(total // pitch)
    start = (total - n * pitch) / 2  # centred: both ends look alike
    cum = np.concatenate([[0.0], np.cumsum(lengths)])

    def at(s: float) -> Point:
        i = min(max(int(np.searchsorted(cum, s, side="right")) - 1, 0), len(seg) - 1)
        (ax, ay), (bx, by) = seg[i]
        t = (s - cum[i]) / lengths[i] if lengths[i] else 0.0
        return (ax + (bx - ax) * t, ay + (by - ay) * t)

    w = max(1, int(round(width)))
    for j in range(n + 1):
        s = start + j * pitch
        if dots:
            x, y = at(s)
            canvas.draw.ellipse((x - width, y - width, x + width, y + width), fill=(*rgb, 255))
        else:
            a, b = at(s), at(min(s + 0.62 * pitch, total))
            canvas.draw.line([a, b], fill=(*rgb, 255), width=w)


def offset_path(points: Sequence[Point], distance: float) -> list[Point]:
    """A polyline moved ``distance`` along its left normal (image coordinates, y down)."""
    out = []
    n = len(points)
    for i, (x, y) in enumerate(points):
        (ax, ay), (bx, by) = points[max(i - 1, 0)], points[min(i + 1, n - 1)]
        dx, dy = bx - ax, by - ay
        norm = math.hypot(dx, dy) or 1.0
        out.append((x + dy / norm * distance, y - dx / norm * distance))
    return out


def shade(canvas: Canvas, region: Image.Image, axis: str, strength: float, light: bool = False) -> None:
    """Darken (or lighten) ``region`` towards its edges along ``axis`` ("x", "y" or "r")."""
    box = region.getbbox()
    if box is None:
        return
    x0, y0, x1, y1 = box
    h, w = y1 - y0, x1 - x0
    if axis == "x":
        t = np.abs(np.linspace(-1, 1, w, dtype=np.float32))[None, :] ** 2 * np.ones((h, 1), np.float32)
    elif axis == "y":
        t = np.linspace(0, 1, h, dtype=np.float32)[:, None] * np.ones((1, w), np.float32)
    else:
        yy, xx = np.mgrid[-1 : 1 : h * 1j, -1 : 1 : w * 1j].astype(np.float32)
        t = np.clip(np.hypot(xx, yy), 0, 1) ** 2
    alpha = (t * strength * 255.0 * (np.asarray(region.crop(box), np.float32) / 255.0)).astype(np.uint8)
    colour = (255, 255, 255, 255) if light else (0, 0, 0, 255)
    keep = canvas.image.getchannel("A")
    canvas.image.paste(colour, box, Image.fromarray(alpha))
    canvas.image.putalpha(keep)
