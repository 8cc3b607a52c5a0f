"""The drawers of the four product kinds (handbag, sneaker, watch, perfume) and their photo-to-photo variations.

A drawer paints a product's :class:`~authvision.brandkit._item_look._Look` on a canvas; a variation
draws, from the photo's generator, what differs between photos of one item (how a handle or lace
falls, the time on a watch, how full a bottle is).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _draw as d
from ._item_look import RGB, _Look
from ._item_marks import _engrave, _logo, _margin, _phase, _stitch, _tile, _wordmark
from .catalog import Product

# --- handbag -------------------------------------------------------------------------------------


def _handbag_variation(rng: np.random.Generator) -> dict[str, Any]:
    return {"handle_dx": float(rng.uniform(-0.02, 0.02)), "handle_lift": float(rng.uniform(-0.03, 0.03))}


def _handbag(canvas: d.Canvas, product: Product, look: _Look, var: dict[str, Any]) -> None:
    p, b = product.params, product.brand
    aspect = float(p["aspect"])
    top, bottom = float(p["handle_h"]), aspect - 0.02
    body_h = bottom - top
    taper, trim = float(p["taper"]), float(p["trim"])
    body_rgb, accent, ink = look.dye(p["body"]), look.dye(p["accent"]), look.dye(b.pattern_colour)
    dark_accent = d.scale_rgb(accent, 0.75)

    # handle behind the body, attached at two rings
    hx0, hx1 = 0.27 + var["handle_dx"], 0.73 + var["handle_dx"]
    htop = 0.03 + max(0.0, var["handle_lift"])
    hb = (canvas.px(hx0), canvas.px(htop), canvas.px(hx1), canvas.px(2 * top - htop))
    canvas.draw.arc(hb, 180, 360, fill=(*dark_accent, 255), width=canvas.lw(0.04))
    canvas.draw.arc(hb, 180, 360, fill=(*accent, 255), width=canvas.lw(0.028))

    # monogram canvas in two pieces meeting at a seam down the middle
    body = canvas.polygon(d.rounded_poly(0.03, top, 0.97, bottom, float(p["corner"]), taper))
    seam = ((0.5, top), (0.5, bottom))
    tile = _tile(canvas, product)
    left = d.intersect(body, d.half_plane(canvas, *seam, right=False))
    right = d.intersect(body, d.half_plane(canvas, *seam, right=True))
    d.pattern_fill(canvas, left, body_rgb, ink, tile, _phase(canvas, product))
    d.pattern_fill(canvas, right, body_rgb, ink, tile, _phase(canvas, product, look.seam_shift[::-1]))
    canvas.line(seam, d.scale_rgb(body_rgb, 0.6), 0.003)

    # leather trim along the top and bottom
    for y0, y1 in ((top, top + trim), (bottom - trim, bottom)):
        canvas.fill(d.intersect(canvas.rect(0.0, y0, 1.0, y1), body), accent)
    d.shade(canvas, body, "x", 0.35)

    m = _margin(product, look)
    _stitch(canvas, product, look, [(0.05 + taper, top + m), (0.95 - taper, top + m)])
    _stitch(canvas, product, look, [(0.08, bottom - m), (0.92, bottom - m)])
    for sx in (1, -1):
        x_top, x_bot = 0.5 - sx * (0.47 - taper - m), 0.5 - sx * (0.47 - m)
        _stitch(canvas, product, look, [(x_top, top + trim + m), (x_bot, bottom - trim - m - 0.05)])

    # rings and tabs where the handle meets the body
    for hx in (hx0 + 0.02, hx1 - 0.02):
        canvas.fill(canvas.rect(hx - 0.025, top - 0.02, hx + 0.025, top + trim + 0.03), dark_accent)
        d.metal_fill(canvas, canvas.disc(hx, top - 0.01, 0.028, outline=0.011), look.hardware)

    # plate with the wordmark, under a turn-lock clasp
    pw, ph = float(p["plate_w"]), float(p["plate_h"])
    py = top + trim + float(p["plate_y"]) * body_h
    d.metal_fill(canvas, canvas.rect(0.47, top - 0.005, 0.53, py, radius=0.012), look.hardware, angle=0.0)
    plate = canvas.rect(0.5 - pw / 2, py - ph / 2, 0.5 + pw / 2, py + ph / 2, radius=0.25 * ph)
    d.metal_fill(canvas, plate, look.hardware)
    _wordmark(canvas, product, look, (0.5, py), 0.42 * ph, 0.86 * pw, _engrave(look.hardware))

    logo_at = (float(p["logo_x"]), top + float(p["logo_y"]) * body_h)
    _logo(canvas, product, look, logo_at, float(p["logo_r"]), ink, patch=dark_accent)


# --- sneaker -------------------------------------------------------------------------------------


def _sneaker_variation(rng: np.random.Generator) -> dict[str, Any]:
    return {"lace": [float(a) for a in rng.uniform(-25, 25, size=2)], "lace_len": float(rng.uniform(0.06, 0.1))}


def _sneaker(canvas: d.Canvas, product: Product, look: _Look, var: dict[str, Any]) -> None:
    p, b = product.params, product.brand
    aspect = float(p["aspect"])
    st = aspect - float(p["sole_h"]) - 0.01  # top of the sole
    cy, tx = float(p["collar_y"]), float(p["tongue_x"])
    body_rgb, accent, ink = look.dye(p["body"]), look.dye(p["accent"]), look.dye(b.pattern_colour)
    lace_end = (0.76, st - 0.15)
    outline = d.smooth(
        [(0.04, st + 0.01), (0.018, st - 0.1), (0.03, cy + 0.04), (0.07, cy), (0.16, cy + 0.05),
         (0.26, cy + 0.07), (tx - 0.05, cy - 0.01), (tx, cy - 0.08), (tx + 0.05, cy - 0.07),
         lace_end, (0.87, st - 0.12), (0.95, st - 0.08), (0.985, st - 0.02), (0.97, st + 0.01)],
        iterations=3,
    )  # fmt: skip
    upper = canvas.polygon(outline)

    # quarter and vamp: monogram canvas in two pieces meeting at a slanted seam
    sx = float(p["seam_x"])
    seam = ((sx, cy - 0.1), (sx - 0.07, st))
    tile = _tile(canvas, product)
    quarter = d.intersect(upper, d.half_plane(canvas, *seam, right=False))
    vamp = d.intersect(upper, d.half_plane(canvas, *seam, right=True))
    d.pattern_fill(canvas, quarter, body_rgb, ink, tile, _phase(canvas, product))
    d.pattern_fill(canvas, vamp, body_rgb, ink, tile, _phase(canvas, product, look.seam_shift[::-1]))
    seam_line, sld = canvas.mask()
    sld.line(canvas.pts(seam), fill=255, width=canvas.lw(0.004))
    canvas.fill(d.intersect(seam_line, upper), d.scale_rgb(body_rgb, 0.55))

    hw = float(p["heel_w"])
    heel_line = ((hw - 0.04, cy - 0.05), (hw, st + 0.02))
    canvas.fill(d.intersect(upper, d.half_plane(canvas, *heel_line, right=False)), accent)
    d.shade(canvas, upper, "y", 0.3)

    m = _margin(product, look)
    _stitch(canvas, product, look, [(seam[0][0] + m, seam[0][1] + 0.1), (seam[1][0] + m, seam[1][1] - 0.01)])
    _stitch(canvas, product, look, [(heel_line[0][0] + m, cy + 0.06), (heel_line[1][0] + m, st - 0.01)])
    _stitch(canvas, product, look, [(0.05, st - m), (0.95, st - m)])

    # sole with its stripe and tread
    sole_rgb: RGB = tuple(p["sole"])
    sole = canvas.rect(0.012, st - 0.004, 0.988, aspect - 0.008, radius=0.035)
    canvas.fill(sole, sole_rgb if d.luminance(sole_rgb) > 0.8 else look.dye(sole_rgb))
    d.shade(canvas, sole, "y", 0.2)
    stripe_y = st + 0.45 * (aspect - st)
    canvas.line([(0.03, stripe_y), (0.97, stripe_y)], accent, 0.01)
    for x in np.arange(0.05, 0.96, 0.03):
        canvas.line([(x, aspect - 0.03), (x, aspect - 0.012)], d.scale_rgb(sole_rgb, 0.7), 0.004)

    # eyelets and laces along the lacing line
    a, z = (tx + 0.07, cy - 0.035), (lace_end[0] - 0.05, lace_end[1])
    steps = np.linspace(0, 1, int(p["eyelets"]))
    eyes = [(a[0] + (z[0] - a[0]) * t, a[1] + (z[1] - a[1]) * t + 0.02) for t in steps]
    lace_rgb = d.mix(b.thread, (255, 255, 255), 0.5)
    for (x0, y0), (x1, y1) in zip(eyes[:-1], eyes[1:]):
        canvas.line([(x0, y0 - 0.02), (x1, y1)], lace_rgb, 0.007)
    for ex, ey in eyes:
        d.metal_fill(canvas, canvas.disc(ex, ey, 0.011), look.hardware)
        canvas.dot(ex, ey, 0.011 / 2.4, d.scale_rgb(body_rgb, 0.4))
    bx, by = eyes[0]
    for angle in var["lace"]:
        t = math.radians(-120 + angle)
        tip = (bx + var["lace_len"] * math.cos(t), by + 0.6 * var["lace_len"] * math.sin(t))
        canvas.line([(bx, by), tip], lace_rgb, 0.007)

    _wordmark(canvas, product, look, (0.55 * hw + 0.01, 0.5 * (cy + 0.08 + st)), 0.03, 0.7 * hw, _engrave(accent))
    logo_at = (float(p["logo_x"]), float(p["logo_y"]) * aspect)
    _logo(canvas, product, look, logo_at, float(p["logo_r"]), ink, patch=d.scale_rgb(accent, 0.85))


# --- watch ---------------------------------------------------------------------------------------


def _watch_variation(rng: np.random.Generator) -> dict[str, Any]:
    hour, minute, second = rng.uniform(0, 12), rng.uniform(0, 60), rng.uniform(0, 60)
    return {"hour": float(hour), "minute": float(minute), "second": float(second)}


def _watch(canvas: d.Canvas, product: Product, look: _Look, var: dict[str, Any]) -> None:
    p, b = product.params, product.brand
    aspect = float(p["aspect"])
    cx, cy = 0.5, aspect / 2
    case_r, bezel, sw = float(p["case_r"]), float(p["bezel"]), float(p["strap_w"])
    body_rgb, accent, ink = look.dye(p["body"]), look.dye(p["accent"]), look.dye(b.pattern_colour)
    tile = _tile(canvas, product)
    m = _margin(product, look)

    # two monogram straps whose pattern lines up across the case
    for y0, y1, shift in ((0.02, cy - 0.1, (0.0, 0.0)), (cy + 0.1, aspect - 0.02, look.seam_shift)):
        strap = canvas.rect(cx - sw / 2, y0, cx + sw / 2, y1, radius=0.05)
        d.pattern_fill(canvas, strap, body_rgb, ink, tile, _phase(canvas, product, shift))
        d.shade(canvas, strap, "x", 0.35)
        for side in (-1, 1):
            x = cx + side * (sw / 2 - m)
            _stitch(canvas, product, look, [(x, y0 + 0.06), (x, y1 - 0.02)])
    # buckle at the end of the top strap, keeper on the bottom one
    buckle = canvas.rect(cx - sw / 2 - 0.025, 0.06, cx + sw / 2 + 0.025, 0.13, radius=0.015, outline=0.014)
    d.metal_fill(canvas, buckle, look.hardware)
    keeper = canvas.rect(cx - sw / 2 - 0.008, aspect - 0.24, cx + sw / 2 + 0.008, aspect - 0.2)
    canvas.fill(keeper, d.scale_rgb(accent, 0.8))

    # lugs, crown and case in one piece of metal, a bezel ring
    metal, md = canvas.mask()
    for sy in (-1, 1):
        lug_y = cy + sy * case_r * 0.75
        md.rectangle(canvas.pts([(cx - sw / 2 - 0.01, lug_y - 0.06), (cx + sw / 2 + 0.01, lug_y + 0.06)]), fill=255)
    crown = canvas.pts([(cx + case_r - 0.01, cy - 0.035), (cx + case_r + 0.045, cy + 0.035)])
    md.rounded_rectangle(crown, radius=canvas.px(0.01), fill=255)
    md.ellipse(canvas.pts([(cx - case_r, cy - case_r), (cx + case_r, cy + case_r)]), fill=255)
    d.metal_fill(canvas, metal, look.hardware, angle=60.0)
    canvas.fill(canvas.disc(cx, cy, case_r - 0.45 * bezel, outline=0.006), d.scale_rgb(look.hardware, 0.7))

    # dial: minute track, indices, wordmark under 12, emblem above 6
    dial_r = case_r - bezel
    dial_rgb: RGB = tuple(p["dial"])
    if 0.15 <= d.luminance(dial_rgb) <= 0.85:  # a coloured dial is dyed; white and black ones are not
        dial_rgb = look.dye(dial_rgb)
    light_dial = d.luminance(dial_rgb) > 0.5
    dial = canvas.disc(cx, cy, dial_r)
    canvas.fill(dial, dial_rgb)
    d.shade(canvas, dial, "r", 0.18)
    print_rgb = _engrave(dial_rgb)
    index_rgb = d.scale_rgb(look.hardware, 0.6) if light_dial else look.hardware
    for k in range(60):
        a = math.radians(k * 6 - 90)
        ca, sa = math.cos(a), math.sin(a)
        if k % 5:
            r0, r1 = 0.93 * dial_r, 0.97 * dial_r
            canvas.line([(cx + r0 * ca, cy + r0 * sa), (cx + r1 * ca, cy + r1 * sa)], print_rgb, 0.003)
        elif p["indices"] == "dot":
            canvas.dot(cx + 0.82 * dial_r * ca, cy + 0.82 * dial_r * sa, 0.022, index_rgb)
        else:
            for off in (-0.012, 0.012) if k == 0 else (0.0,):
                ox, oy = -sa * off, ca * off
                r0, r1 = 0.72 * dial_r, 0.9 * dial_r
                bar = [(cx + r0 * ca + ox, cy + r0 * sa + oy), (cx + r1 * ca + ox, cy + r1 * sa + oy)]
                canvas.line(bar, index_rgb, 0.014)
    word_at = (cx, cy - float(p["word_y"]) * dial_r)
    _wordmark(canvas, product, look, word_at, float(p["word_h"]) * dial_r, 0.95 * dial_r, print_rgb)
    _logo(canvas, product, look, (cx, cy + float(p["logo_y"]) * dial_r), float(p["logo_r"]) * dial_r, print_rgb)

    def hand(angle_deg: float, length: float, width: float, rgb: RGB) -> None:
        a = math.radians(angle_deg - 90)
        ca, sa = math.cos(a), math.sin(a)
        tail = (cx - 0.12 * length * ca, cy - 0.12 * length * sa)
        pts = [(tail[0] - width * sa, tail[1] + width * ca), (cx + length * ca, cy + length * sa),
               (tail[0] + width * sa, tail[1] - width * ca)]  # fmt: skip
        canvas.draw.polygon(canvas.pts(pts), fill=(*rgb, 255))

    hand_rgb = d.scale_rgb(look.hardware, 0.55 if light_dial else 1.15)
    hand(30 * (var["hour"] + var["minute"] / 60), 0.55 * dial_r, 0.022, hand_rgb)
    hand(6 * var["minute"], 0.85 * dial_r, 0.016, hand_rgb)
    hand(6 * var["second"], 0.9 * dial_r, 0.005, accent)
    canvas.dot(cx, cy, 0.018, hand_rgb)
    d.shade(canvas, dial, "r", 0.12, light=True)  # glass


# --- perfume -------------------------------------------------------------------------------------


def _perfume_variation(rng: np.random.Generator) -> dict[str, Any]:
    return {"level": float(rng.uniform(0.55, 0.92))}


def _perfume(canvas: d.Canvas, product: Product, look: _Look, var: dict[str, Any]) -> None:
    p, b = product.params, product.brand
    aspect = float(p["aspect"])
    body_rgb, accent, ink = look.dye(p["body"]), look.dye(p["accent"]), look.dye(b.pattern_colour)
    tile = _tile(canvas, product)
    m = _margin(product, look)

    # box seen from the left: side face and front face (the pattern runs on across the fold), lid
    depth, bw = float(p["box_depth"]), float(p["box_w"])
    bottom = aspect - 0.03
    top = bottom - float(p["box_h"]) * aspect
    x0, x1, x2 = 0.03, 0.03 + depth, 0.03 + depth + bw
    lift = 0.6 * depth
    side = canvas.polygon([(x0, top - lift), (x1, top), (x1, bottom), (x0, bottom - lift)])
    front = canvas.polygon([(x1, top), (x2, top), (x2, bottom), (x1, bottom)])
    d.pattern_fill(canvas, side, d.scale_rgb(body_rgb, 0.78), d.scale_rgb(ink, 0.8), tile, _phase(canvas, product))
    d.pattern_fill(canvas, front, body_rgb, ink, tile, _phase(canvas, product, look.seam_shift[::-1]))
    lid = canvas.polygon([(x0, top - lift), (x2 - depth, top - lift), (x2, top), (x1, top)])
    canvas.fill(lid, d.scale_rgb(body_rgb, 1.15))
    canvas.line([(x1, top), (x1, bottom)], d.scale_rgb(body_rgb, 0.5), 0.003)
    d.shade(canvas, front, "x", 0.2)

    band_y = top + float(p["band_y"]) * (bottom - top)
    canvas.fill(canvas.rect(x1, band_y - 0.05, x2, band_y + 0.05), accent)
    for y in (band_y - 0.05 + m, band_y + 0.05 - m):
        _stitch(canvas, product, look, [(x1 + 0.01, y), (x2 - 0.01, y)], dots=True)
    _wordmark(canvas, product, look, ((x1 + x2) / 2, band_y), 0.03, 0.8 * bw, _engrave(accent))

    # bottle in front, to the right: glass, liquid, a highlight
    bottle_w = float(p["bottle_w"])
    by1 = aspect - 0.015
    by0 = by1 - float(p["bottle_h"]) * aspect
    bx0, bx1 = 0.975 - bottle_w, 0.975
    glass = d.mix(accent, (245, 245, 245), 0.6)
    bottle = canvas.rect(bx0, by0, bx1, by1, radius=0.05)
    canvas.fill(bottle, glass)
    level = by0 + 0.03 + (1 - var["level"]) * (by1 - by0 - 0.06)
    canvas.fill(canvas.rect(bx0 + 0.025, level, bx1 - 0.025, by1 - 0.03, radius=0.03), d.mix(accent, glass, 0.35))
    d.shade(canvas, bottle, "x", 0.3)
    highlight = canvas.rect(bx0 + 0.03, by0 + 0.04, bx0 + 0.055, by1 - 0.05, radius=0.01, value=150)
    canvas.overlay(highlight, (255, 255, 255), 1.0)

    # neck and knurled cap
    cx = (bx0 + bx1) / 2
    cw = float(p["cap_w"]) * bottle_w
    ch = float(p["cap_h"]) * (by1 - by0)
    canvas.fill(canvas.rect(cx - 0.3 * cw, by0 - 0.03, cx + 0.3 * cw, by0 + 0.01), d.scale_rgb(glass, 0.85))
    cap = canvas.rect(cx - cw / 2, by0 - 0.03 - ch, cx + cw / 2, by0 - 0.025, radius=0.012)
    d.metal_fill(canvas, cap, look.hardware, angle=0.0)
    for x in np.linspace(cx - cw / 2 + 0.015, cx + cw / 2 - 0.015, 9):
        canvas.line([(x, by0 - 0.02 - ch), (x, by0 - 0.035)], d.scale_rgb(look.hardware, 0.7), 0.003)

    # label with a dotted frame, the emblem, the wordmark and a line of small print
    lw, lh = 0.74 * bottle_w, float(p["label_h"]) * (by1 - by0)
    ly = by0 + 0.52 * (by1 - by0)
    label_rgb: RGB = tuple(p["label"])
    canvas.fill(canvas.rect(cx - lw / 2, ly - lh / 2, cx + lw / 2, ly + lh / 2), label_rgb)
    fx, fy = lw / 2 - m - 0.004, lh / 2 - m - 0.004
    frame = [(cx - fx, ly - fy), (cx + fx, ly - fy), (cx + fx, ly + fy), (cx - fx, ly + fy)]
    _stitch(canvas, product, look, frame, dots=True, closed=True)
    text_rgb = (40, 36, 34)
    _logo(canvas, product, look, (cx, ly - 0.2 * lh), float(p["logo_r"]), text_rgb)
    _wordmark(canvas, product, look, (cx, ly + 0.12 * lh), 0.032, 0.8 * lw, text_rgb)
    small = d.text_mask("EAU DE PARFUM", b.font, d.cap_px(canvas.px(0.012)), 0.15)
    d.paste_mask(canvas, small, canvas.pt(cx, ly + 0.3 * lh), (90, 86, 80))


_DRAWERS: dict[str, Callable[[d.Canvas, Product, _Look, dict[str, Any]], None]] = {
    "handbag": _handbag,
    "sneaker": _sneaker,
    "watch": _watch,
    "perfume": _perfume,
}
_VARIATIONS: dict[str, Callable[[np.random.Generator], dict[str, Any]]] = {
    "handbag": _handbag_variation,
    "sneaker": _sneaker_variation,
    "watch": _watch_variation,
    "perfume": _perfume_variation,
}
