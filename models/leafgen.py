#!/usr/bin/env python3
"""Procedural generator of synthetic crop-leaf photos for the 22 CropShield classes.

Every image is a leaf of the class's crop (potato: ovate leaflet; tomato: serrated, sometimes lobed
leaflet; sugarcane and wheat: long narrow blades) on a varied background (soil, gradient, coloured
noise, plain), with random pose, scale, lighting and camera effects, and the class's disease signature
painted on the leaf (see models/DATASET.md for the table). Alongside the RGB image the generator
returns the binary lesion mask: the pixels covered by the symptom bodies (all-zero for healthy leaves).

Deterministic: the same (class_index, seed, width, height) gives the same arrays, bit for bit, with the
same numpy and Pillow. Everything is vectorised with numpy; a 256x256 image takes 10-15 ms.

API (imported by other parts of the project, keep it stable):
    leafgen.LABELS                                    # the 22 labels, in logit index order
    leafgen.generate(class_index, seed, width=256, height=256) -> (rgb uint8 HxWx3, mask bool HxW)

CLI:
    python3 models/leafgen.py --out DIR --per-class N --seed S [--width W --height H]
                              [--jpeg-quality Q] [--classes 0,5,21]
writes DIR/<index>_<label>_<k>.jpg, DIR/<index>_<label>_<k>_mask.png and DIR/labels.json
({file: class index}).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageFilter

LABELS: List[str] = [
    "Potato__early_blight",
    "Potato__healthy",
    "Potato__late_blight",
    "Sugarcane__bacterial_blight",
    "Sugarcane__healthy",
    "Sugarcane__red_rot",
    "Sugarcane__red_stripe",
    "Sugarcane__rust",
    "Tomato__bacterial_spot",
    "Tomato__early_blight",
    "Tomato__healthy",
    "Tomato__late_blight",
    "Tomato__leaf_mold",
    "Tomato__mosaic_virus",
    "Tomato__septoria_leaf_spot",
    "Tomato__spider_mites_(two_spotted_spider_mite)",
    "Tomato__target_spot",
    "Tomato__yellow_leaf_curl_virus",
    "Wheat__brown_rust",
    "Wheat__healthy",
    "Wheat__septoria",
    "Wheat__yellow_rust",
]
NUM_CLASSES = len(LABELS)
CROPS = ("Potato", "Sugarcane", "Tomato", "Wheat")
HEALTHY = frozenset(i for i, name in enumerate(LABELS) if name.endswith("__healthy"))

F32 = np.float32


def crop_of(class_index: int) -> str:
    return LABELS[class_index].split("__", 1)[0]


def is_healthy(class_index: int) -> bool:
    return class_index in HEALTHY


# --------------------------------------------------------------------------------------------------
# Small numeric helpers
# --------------------------------------------------------------------------------------------------


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells_y: float, cells_x: float) -> np.ndarray:
    """Smooth value noise of shape (h, w), roughly N(0, 0.7^2), with about cells_* blobs per axis
    (bicubic upsampling of a coarse Gaussian grid)."""
    cy = max(1, int(math.ceil(cells_y)))
    cx = max(1, int(math.ceil(cells_x)))
    g = rng.standard_normal((cy + 3, cx + 3), dtype=F32)
    im = Image.fromarray(g, "F").resize((max(1, w), max(1, h)), Image.BICUBIC, box=(1.0, 1.0, cx + 1.0, cy + 1.0))
    return np.asarray(im, dtype=F32)


def _box_blur(a: np.ndarray, r: int, axis: int) -> np.ndarray:
    """Box blur of radius r along axis, zero padded (cumulative-sum implementation)."""
    if r < 1:
        return a
    n = a.shape[axis]
    pad = [(0, 0)] * a.ndim
    pad[axis] = (r + 1, r)
    c = np.cumsum(np.pad(a, pad), axis=axis, dtype=F32)
    hi = [slice(None)] * a.ndim
    lo = [slice(None)] * a.ndim
    hi[axis] = slice(2 * r + 1, 2 * r + 1 + n)
    lo[axis] = slice(0, n)
    return (c[tuple(hi)] - c[tuple(lo)]) * F32(1.0 / (2 * r + 1))


def _blur2d(a: np.ndarray, ry: float, rx: float, passes: int = 3) -> np.ndarray:
    """Approximately Gaussian blur (repeated box blurs) with box radii ry, rx (pixels)."""
    ry_i = int(round(ry))
    rx_i = int(round(rx))
    for _ in range(passes):
        a = _box_blur(a, ry_i, 0)
        a = _box_blur(a, rx_i, 1)
    return a


def _clamp(a: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """In-place clamp of a float32 array (faster than np.clip in numpy 1.24)."""
    np.maximum(a, F32(lo), out=a)
    np.minimum(a, F32(hi), out=a)
    return a


def _clip(a, lo, hi):
    """np.clip(a, lo, hi) for finite values, bit for bit, but faster (numpy 1.24's clip has a large
    per-call overhead)."""
    out = np.maximum(a, lo)
    if isinstance(out, np.ndarray):
        np.minimum(out, hi, out=out)
        return out
    return np.minimum(out, hi)


def _c3(rgb) -> np.ndarray:
    """An RGB triple as a (3, 1, 1) float32 array (images are planar: 3 x H x W)."""
    return np.asarray(rgb, dtype=F32).reshape(3, 1, 1)


def _blend(dst: np.ndarray, color, alpha: np.ndarray) -> None:
    """dst (3, h, w) <- dst * (1 - alpha) + color * alpha; color is an RGB triple or a (3, h, w) array."""
    color = np.asarray(color, dtype=F32)
    if color.ndim == 1:
        color = color.reshape(3, 1, 1)
    dst += (color - dst) * alpha[None]


def _jitter_color(rng: np.random.Generator, rgb, amount: float = 0.06) -> np.ndarray:
    c = np.asarray(rgb, dtype=F32) * F32(1.0 + rng.uniform(-amount, amount))
    c = c + rng.uniform(-amount / 2, amount / 2, 3).astype(F32)
    return _clip(c, 0.0, 1.0).astype(F32)


# --------------------------------------------------------------------------------------------------
# The leaf: shape in leaf coordinates, pose in the image
# --------------------------------------------------------------------------------------------------


class _Leaf:
    """Leaf geometry. Leaf coordinates: u along the midrib (-1 base .. +1 tip), v across, both in units of
    L (half the blade length in pixels). The outline is |v - bend * u^2| < halfwidth(u)."""

    def __init__(self, rng: np.random.Generator, crop: str, W: int, H: int, curl: bool = False,
                 wavy: float = 0.0):
        S = min(W, H)
        self.crop = crop
        self.dicot = crop in ("Potato", "Tomato")
        # orientation: any of the four axis directions, tilted by up to +-26 degrees
        self.theta = 0.5 * math.pi * int(rng.integers(0, 4)) + rng.uniform(-0.45, 0.45)
        self.serrate = 0.0
        self.lobes = 0.0
        self.wave_amp = wavy
        self.wave_n = rng.uniform(3.0, 6.0)
        self.wave_ph = rng.uniform(0, 2 * math.pi, 2)
        if self.dicot:
            self.L = rng.uniform(0.42, 0.56) * S
            if crop == "Potato":
                self.Wmax = rng.uniform(0.50, 0.64)
                self.a, self.b = rng.uniform(0.45, 0.65), rng.uniform(0.75, 0.95)
                self.wave_amp = max(self.wave_amp, rng.uniform(0.0, 0.04))
            else:  # Tomato: serrated, sometimes lobed
                self.Wmax = rng.uniform(0.36, 0.48)
                self.a, self.b = rng.uniform(0.55, 0.85), rng.uniform(0.85, 1.15)
                self.serrate = rng.uniform(0.07, 0.13)
                self.serr_n = rng.uniform(7.0, 12.0)
                self.serr_ph = rng.uniform(0, 1, 2)
                if rng.random() < 0.6:
                    self.lobes = rng.uniform(0.12, 0.3)
                    self.lobe_m = rng.integers(2, 4)
                    self.lobe_ph = rng.uniform(0, 2 * math.pi, 2)
            if curl:
                self.Wmax *= rng.uniform(0.62, 0.78)
                self.wave_amp = rng.uniform(0.10, 0.18)
                self.wave_n = rng.uniform(4.0, 7.0)
                self.serrate *= 0.5
            ts = self.a / (self.a + self.b)
            self.peak = ts ** self.a * (1 - ts) ** self.b
            self.pet_len = rng.uniform(0.12, 0.3)  # petiole, in units of u
            self.pet_w = rng.uniform(0.014, 0.022)
            self.bend = rng.uniform(-0.06, 0.06)
            self.u_lo = -1.0 - self.pet_len
            self.vmax = self.Wmax * (1.0 + self.wave_amp + 0.02) + 0.02
            off = rng.uniform(-0.07, 0.07, 2) * S
            self.cx = W / 2 + off[0]
            self.cy = H / 2 + off[1]
            self.u_focus = 0.0
        else:  # long narrow blade crossing the frame
            if crop == "Sugarcane":
                hw_px = rng.uniform(0.16, 0.24) * S
                self.taper = rng.uniform(3.0, 6.0)
            else:  # Wheat
                hw_px = rng.uniform(0.13, 0.18) * S
                self.taper = rng.uniform(1.6, 3.0)
            self.L = rng.uniform(0.75, 1.3) * S
            self.Wmax = hw_px / self.L
            self.bend = rng.uniform(-0.07, 0.07)
            self.u_lo = -1.0
            self.vmax = self.Wmax * 1.04 + 0.01
            # the point u_focus of the midrib lies near the image centre
            self.u_focus = rng.uniform(-0.35, 0.45)
            off = rng.uniform(-0.06, 0.06, 2) * S
            c, s = math.cos(self.theta), math.sin(self.theta)
            self.cx = W / 2 + off[0] - c * self.u_focus * self.L
            self.cy = H / 2 + off[1] - s * self.u_focus * self.L

    def halfwidth(self, u: np.ndarray, pos: Optional[np.ndarray]) -> np.ndarray:
        """Half width (units of L) at u; pos (bool, broadcastable) says which side, for asymmetric margins."""
        t = (u + F32(1.0)) * F32(0.5)
        tc = _clip(t, 0.0, 1.0)
        if self.dicot:
            w = F32(self.Wmax / self.peak) * tc ** F32(self.a) * (F32(1.0) - tc) ** F32(self.b)
            if self.serrate > 0:
                ph = self.serr_ph[0] if pos is None else np.where(pos, F32(self.serr_ph[0]), F32(self.serr_ph[1]))
                saw = tc * F32(self.serr_n) + ph
                saw = saw - np.floor(saw)
                w = w * (F32(1.0) - F32(self.serrate) * saw * (tc > 0.08))
            if self.lobes > 0:
                ph = self.lobe_ph[0] if pos is None else np.where(pos, F32(self.lobe_ph[0]), F32(self.lobe_ph[1]))
                lob = F32(0.5) + F32(0.5) * np.cos(F32(2 * math.pi * self.lobe_m) * tc + ph)
                w = w * (F32(1.0) - F32(self.lobes) * lob * lob * (tc < 0.8))
            if self.wave_amp > 0:
                ph = self.wave_ph[0] if pos is None else np.where(pos, F32(self.wave_ph[0]), F32(self.wave_ph[1]))
                w = w * (F32(1.0) + F32(self.wave_amp) * np.sin(F32(2 * math.pi * self.wave_n) * tc + ph))
            pet = ((t > -self.pet_len * 0.5) & (t < 0.12)).astype(F32) * F32(self.pet_w)
            w = np.where(t < 0, pet, np.maximum(w, pet))
        else:
            w = F32(self.Wmax) * np.sqrt(np.minimum(F32(1.0), tc * F32(20.0))) * np.sqrt(
                np.maximum(F32(0.0), F32(1.0) - tc ** F32(self.taper)))
            w = np.where(t < 0, F32(0.0), w)
        return w.astype(F32, copy=False)

    def build_lut(self) -> None:
        """Tabulate halfwidth() on a fine grid of u (both sides) for fast per-pixel lookups."""
        n = int(min(16384, max(1024, 4 * self.L * (1.0 - self.u_lo))))
        self._lut_u0 = self.u_lo
        self._lut_scale = (n - 1) / (1.0 - self.u_lo)
        grid = (self.u_lo + np.arange(n, dtype=np.float64) / self._lut_scale).astype(F32)
        lut = np.zeros(2 * n + 2, F32)  # [neg side (n) | 0 | pos side (n) | 0]
        lut[:n] = self.halfwidth(grid, np.zeros(n, bool))
        lut[n + 1:2 * n + 1] = self.halfwidth(grid, np.ones(n, bool))
        self._lut = lut
        self._lut_n = n

    def halfwidth_lut(self, u: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """halfwidth(u, pos) by table lookup (nearest entry); 0 outside the leaf's u range."""
        n = self._lut_n
        idx = ((u - F32(self._lut_u0)) * F32(self._lut_scale) + F32(0.5))
        _clamp(idx, -1.0, float(n))
        idx = idx.astype(np.int32)
        idx[idx < 0] = n  # the zero entry
        idx += pos * np.int32(n + 1)
        return self._lut.take(idx)

    def to_image(self, u: np.ndarray, v: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        vb = v + self.bend * u * u
        c, s = math.cos(self.theta), math.sin(self.theta)
        x = self.cx + self.L * (u * c - vb * s)
        y = self.cy + self.L * (u * s + vb * c)
        return x, y


# --------------------------------------------------------------------------------------------------
# Canonical (leaf-aligned) raster: leaf colour, veins and disease symptoms are painted here
# --------------------------------------------------------------------------------------------------


class _Canvas:
    def __init__(self, rng: np.random.Generator, leaf: _Leaf, W: int, H: int):
        self.rng = rng
        self.leaf = leaf
        self.W, self.H = W, H
        self.S = min(W, H)
        # visible u range: project the image corners (with a margin for the bend) onto the leaf axis
        c, s = math.cos(leaf.theta), math.sin(leaf.theta)
        xs = np.array([0, W, 0, W], dtype=np.float64) - leaf.cx
        ys = np.array([0, 0, H, H], dtype=np.float64) - leaf.cy
        us = (xs * c + ys * s) / leaf.L
        margin = abs(leaf.bend) * 2 + 0.02
        self.umin = max(leaf.u_lo, float(us.min()) - margin)
        self.umax = min(1.0, float(us.max()) + margin)
        # raster resolution: about one image pixel per canvas pixel (capped for huge images)
        self.R = min(leaf.L, 2000.0)
        self.Wc = max(8, int(math.ceil((self.umax - self.umin) * self.R)) + 2)
        self.Hc = max(8, int(math.ceil(2 * leaf.vmax * self.R)) + 2)
        self.u = (self.umin + np.arange(self.Wc, dtype=F32) / F32(self.R)).astype(F32)[None, :]
        self.v = (-leaf.vmax + np.arange(self.Hc, dtype=F32) / F32(self.R)).astype(F32)[:, None]
        u1 = self.u[0]
        hw_pos = leaf.halfwidth(u1, np.ones(u1.shape, bool))
        hw_neg = leaf.halfwidth(u1, np.zeros(u1.shape, bool))
        self.hw = np.where(self.v >= 0, hw_pos[None, :], hw_neg[None, :])  # (Hc, Wc)
        self.inside = _clip((self.hw - np.abs(self.v)) * F32(self.R) + F32(0.5), 0.0, 1.0)
        self.vn = _clip(self.v / np.maximum(self.hw, F32(1e-4)), -1.5, 1.5)  # -1..1 across the blade
        self.color = np.zeros((3, self.Hc, self.Wc), dtype=F32)  # planar RGB
        self.sym = np.zeros((self.Hc, self.Wc), dtype=F32)  # symptom opacity; mask = sym >= 0.5
        self.px = self.S / 256.0  # image pixels per "reference pixel" of a 256 px image
        # central crop of the image (what the classifier sees), shrunk a little
        side = 0.80 * self.S
        self.crop_box = ((W - side) / 2, (H - side) / 2, (W + side) / 2, (H + side) / 2)

    # -- coordinates --------------------------------------------------------------------------------
    def to_px(self, u, v):
        """Leaf coordinates -> canvas pixel (col, row)."""
        return (np.asarray(u) - self.umin) * self.R, (np.asarray(v) + self.leaf.vmax) * self.R

    def halfwidth_at(self, u, v=None):
        u = np.asarray(u, dtype=F32)
        pos = None if v is None else (np.asarray(v) >= 0)
        return self.leaf.halfwidth(u, pos)

    def sample_points(self, n: int, vfrac: float = 0.85, umin: Optional[float] = None,
                      umax: Optional[float] = None, vabs: Optional[Tuple[float, float]] = None,
                      ) -> Tuple[np.ndarray, np.ndarray]:
        """n points inside the leaf blade that are visible in the central crop of the image."""
        lo = max(self.umin, -0.92 if umin is None else umin)
        hi = min(self.umax, 0.92 if umax is None else umax)
        if hi <= lo:
            lo, hi = self.umin, self.umax
        k = max(16, 8 * n)
        u = self.rng.uniform(lo, hi, k).astype(F32)
        side = np.where(self.rng.random(k) < 0.5, -1.0, 1.0).astype(F32)
        if vabs is None:
            f = self.rng.uniform(0.0, vfrac, k).astype(F32)
        else:
            f = self.rng.uniform(vabs[0], vabs[1], k).astype(F32)
        hw = self.leaf.halfwidth(u, side > 0)
        v = side * f * hw
        ok = hw > 0.6 * self.leaf.Wmax * 0.3
        x, y = self.leaf.to_image(u, v)
        x0, y0, x1, y1 = self.crop_box
        ok &= (x > x0) & (x < x1) & (y > y0) & (y < y1)
        idx = np.flatnonzero(ok)[:n]
        if idx.size == 0:  # fall back to the leaf point at the image centre
            return np.array([self.leaf.u_focus], F32), np.array([0.0], F32)
        return u[idx], v[idx]

    # -- painting primitives --------------------------------------------------------------------------
    def _bbox(self, col: float, row: float, rx: float, ry: float):
        c0 = max(0, int(col - rx) - 1)
        c1 = min(self.Wc, int(col + rx) + 2)
        r0 = max(0, int(row - ry) - 1)
        r1 = min(self.Hc, int(row + ry) + 2)
        if c1 <= c0 or r1 <= r0:
            return None
        return slice(r0, r1), slice(c0, c1)

    def spot(self, u: float, v: float, r: float, core, edge, *, elong: float = 1.0, irregular: float = 0.15,
             soft: float = 0.12, rings: float = 0.0, ring_contrast: float = 0.0, halo: float = 0.0,
             halo_color=None, halo_alpha: float = 0.5, border: float = 0.0, border_color=None,
             dots: float = 0.0) -> None:
        """A roundish lesion of radius r (units of L), elongated along the leaf axis by elong."""
        rng = self.rng
        col, row = self.to_px(u, v)
        rp = max(r * self.R, 1.0)
        ext = rp * (1.0 + halo) * (1.0 + 1.5 * irregular) + 2
        bb = self._bbox(col, row, ext * elong, ext)
        if bb is None:
            return
        ys = np.arange(bb[0].start, bb[0].stop, dtype=F32)[:, None] - F32(row)
        xs = (np.arange(bb[1].start, bb[1].stop, dtype=F32)[None, :] - F32(col)) / F32(elong)
        rho = np.sqrt(xs * xs + ys * ys) + F32(1e-3)
        cs, sn = xs / rho, ys / rho
        # angular irregularity: a few random harmonics of the radius
        k = rng.uniform(-1, 1, 6).astype(F32) * F32(irregular)
        c2, s2 = cs * cs - sn * sn, 2 * cs * sn
        c3, s3 = c2 * cs - s2 * sn, s2 * cs + c2 * sn
        rr = F32(rp) * (F32(1.0) + k[0] * cs + k[1] * sn + k[2] * c2 + k[3] * s2 + k[4] * c3 + k[5] * s3)
        d = rho / np.maximum(rr, F32(0.5))
        inside = self.inside[bb]
        col_arr = self.color[:, bb[0], bb[1]]
        if halo > 0 and halo_color is not None:
            ha = _clip((F32(1.0 + halo) - d) / F32(halo), 0.0, 1.0) * F32(halo_alpha) * inside
            _blend(col_arr, halo_color, ha)
        a = _clip((F32(1.0) - d) / F32(2 * soft) + F32(0.5), 0.0, 1.0) * inside
        t = _clip(d, 0.0, 1.0) ** F32(1.5)
        core = _c3(core)
        edge = _c3(edge)
        lc = core + (edge - core) * t[None]
        if rings > 0:
            ring = (F32(0.5) + F32(0.5) * np.cos(F32(2 * math.pi * rings) * d)) ** 4
            lc = lc * (F32(1.0) - F32(ring_contrast) * ring)[None]
        if border > 0 and border_color is not None:
            ba = _clip((d - F32(1.0 - border)) / F32(0.5 * border), 0.0, 1.0)
            lc = lc + (_c3(border_color) - lc) * ba[None]
        if dots > 0:
            dd = (rng.random(d.shape) < dots) & (d < 0.75)
            lc = np.where(dd[None], F32(0.08), lc)
        _blend(col_arr, lc, a)
        np.maximum(self.sym[bb], a, out=self.sym[bb])

    def blob(self, u: float, v: float, r: float, core, edge, *, elong: float = 1.0, noise: float = 0.35,
             cells: float = 3.0, halo: float = 0.0, halo_color=None, halo_alpha: float = 0.5,
             border: float = 0.0, border_color=None, mottle: float = 0.15, velvet: float = 0.0,
             fringe_color=None, dots: float = 0.0) -> None:
        """A large irregular patch (noise-perturbed distance field)."""
        rng = self.rng
        col, row = self.to_px(u, v)
        rp = max(r * self.R, 2.0)
        ext = rp * (1.0 + halo + noise) + 2
        bb = self._bbox(col, row, ext * elong, ext)
        if bb is None:
            return
        h = bb[0].stop - bb[0].start
        w = bb[1].stop - bb[1].start
        ys = np.arange(bb[0].start, bb[0].stop, dtype=F32)[:, None] - F32(row)
        xs = (np.arange(bb[1].start, bb[1].stop, dtype=F32)[None, :] - F32(col)) / F32(elong)
        n1 = _smooth_noise(rng, h, w, cells, cells * elong)
        d = np.sqrt(xs * xs + ys * ys) / F32(rp) + F32(noise) * n1
        inside = self.inside[bb]
        col_arr = self.color[:, bb[0], bb[1]]
        if halo > 0 and halo_color is not None:
            ha = _clip((F32(1.0 + halo) - d) / F32(halo), 0.0, 1.0) * F32(halo_alpha) * inside
            _blend(col_arr, halo_color, ha)
        a = _clip((F32(1.0) - d) * F32(rp / 2.0) + F32(0.5), 0.0, 1.0) * inside
        core = _c3(core)
        edge = _c3(edge)
        t = _clip(d, 0.0, 1.0)
        lc = core + (edge - core) * t[None]
        if mottle > 0:
            n2 = _smooth_noise(rng, h, w, cells * 3, cells * 3 * elong)
            lc = lc * (F32(1.0) + F32(mottle) * n2)[None]
        if velvet > 0:
            fine = rng.standard_normal((h, w)).astype(F32)
            fine = _blur2d(fine, 0.6 * self.px, 0.6 * self.px, passes=1)
            lc = lc * (F32(1.0) + F32(velvet) * fine)[None]
        if border > 0 and border_color is not None:
            ba = _clip(F32(1.0) - np.abs(d - F32(1.0 - border / 2)) / F32(border / 2), 0.0, 1.0)
            lc = lc + (_c3(border_color) - lc) * ba[None]
        if dots > 0:
            dd = (rng.random(d.shape) < dots) & (d < 0.8)
            lc = np.where(dd[None], F32(0.07), lc)
        _blend(col_arr, lc, a)
        if fringe_color is not None:
            fa = _clip(F32(1.0) - np.abs(d - F32(1.0)) * F32(rp / 1.5), 0.0, 1.0) * F32(0.45) * inside
            _blend(col_arr, fringe_color, fa)
        np.maximum(self.sym[bb], a, out=self.sym[bb])

    def stripe(self, u: float, v: float, half_len: float, half_w: float, core, edge=None, *,
               center_color=None, center_frac: float = 0.0, wobble: float = 0.3) -> None:
        """A streak parallel to the leaf axis with tapered ends (half length/width in units of L)."""
        col, row = self.to_px(u, v)
        lp = half_len * self.R
        wp = max(half_w * self.R, 0.7)
        bb = self._bbox(col, row, lp, wp * (1 + wobble) + 2)
        if bb is None:
            return
        ys = np.arange(bb[0].start, bb[0].stop, dtype=F32)[:, None] - F32(row)
        xs = (np.arange(bb[1].start, bb[1].stop, dtype=F32)[None, :] - F32(col)) / F32(lp)
        ph = self.rng.uniform(0, 2 * math.pi, 2)
        wob = F32(wp * wobble) * np.sin(F32(3.1) * xs + F32(ph[0]))
        prof = np.sqrt(_clip(F32(1.0) - xs * xs, 0.0, 1.0)) ** F32(0.5)
        wl = F32(wp) * prof * (F32(1.0) + F32(0.25) * np.sin(F32(7.3) * xs + F32(ph[1])))
        dist = np.abs(ys - wob)
        a = _clip(wl - dist + F32(0.5), 0.0, 1.0) * self.inside[bb]
        q = _clip(dist / np.maximum(wl, F32(0.5)), 0.0, 1.0)
        core = _c3(core)
        edge = core if edge is None else _c3(edge)
        lc = core + (edge - core) * (q * q)[None]
        if center_color is not None and center_frac > 0:
            ca = _clip((F32(center_frac) - q) / F32(0.15), 0.0, 1.0)
            lc = lc + (_c3(center_color) - lc) * ca[None]
        _blend(self.color[:, bb[0], bb[1]], lc, a)
        np.maximum(self.sym[bb], a, out=self.sym[bb])

    def splats(self, u: np.ndarray, v: np.ndarray, r: float, core, edge, *, elong: float = 1.0,
               size_var: float = 0.4, halo_color=None, halo_alpha: float = 0.4, halo: float = 0.8,
               border_color=None, border: float = 0.0, dots: float = 0.0) -> None:
        """Many small spots at once: impulses blurred into metaballs (radius about r units of L)."""
        rng = self.rng
        n = len(u)
        if n == 0:
            return
        col, row = self.to_px(u, v)
        ci = _clip(np.round(col).astype(np.int64), 0, self.Wc - 1)
        ri = _clip(np.round(row).astype(np.int64), 0, self.Hc - 1)
        rp = max(r * self.R, 0.8)
        # blur radii: 3 box passes of radius b give a Gaussian-like sigma ~ b; spot radius ~ 1.2 sigma
        by = max(1.0, rp / 1.18 - 0.5)
        bx = max(1.0, rp * elong / 1.18 - 0.5)
        imp = np.zeros((self.Hc, self.Wc), F32)
        amp = (F32(1.0) + F32(size_var) * rng.standard_normal(n).astype(F32)).clip(0.5, 2.0)
        np.add.at(imp, (ri, ci), amp)
        # normalise so that an isolated impulse of amplitude 1 peaks at 1
        ky = _box_blur(_box_blur(_box_blur(np.eye(1, 8 * int(by) + 9, 4 * int(by) + 4, F32)[0], int(round(by)), 0),
                                 int(round(by)), 0), int(round(by)), 0).max()
        kx = _box_blur(_box_blur(_box_blur(np.eye(1, 8 * int(bx) + 9, 4 * int(bx) + 4, F32)[0], int(round(bx)), 0),
                                 int(round(bx)), 0), int(round(bx)), 0).max()
        field = _blur2d(imp, by, bx) * F32(1.0 / (ky * kx))
        inside = self.inside
        if halo_color is not None:
            ha = _clip(field / F32(0.5 * (1 - halo) + 1e-3) - F32(0.0), 0.0, 1.0)
            ha = _clip(field * F32(2.0 / max(1e-3, 1.0 - halo)), 0.0, 1.0) * F32(halo_alpha) * inside
            _blend(self.color, halo_color, ha)
        a = _clip((field - F32(0.5)) * F32(6.0) + F32(0.5), 0.0, 1.0) * inside
        q = _clip((field - F32(0.5)) * F32(2.0), 0.0, 1.0)
        core = _c3(core)
        edge = _c3(edge)
        lc = edge + (core - edge) * q[None]
        if border_color is not None and border > 0:
            ba = _clip(F32(1.0) - (field - F32(0.5)) / F32(border), 0.0, 1.0)
            lc = lc + (_c3(border_color) - lc) * ba[None]
        if dots > 0:
            dd = (rng.random(field.shape) < dots) & (field > 0.75)
            lc = np.where(dd[None], F32(0.07), lc)
        _blend(self.color, lc, a)
        np.maximum(self.sym, a, out=self.sym)

    def tint(self, color, alpha: np.ndarray, count_as_symptom: bool = True) -> None:
        a = alpha * self.inside
        _blend(self.color, color, a)
        if count_as_symptom:
            np.maximum(self.sym, a, out=self.sym)


# --------------------------------------------------------------------------------------------------
# Healthy leaf appearance per crop
# --------------------------------------------------------------------------------------------------

_LEAF_COLORS = {
    # (dark, light) base greens; midrib colour
    "Potato": ((0.11, 0.27, 0.11), (0.20, 0.38, 0.16), (0.42, 0.56, 0.30)),  # dark bluish green
    "Tomato": ((0.28, 0.46, 0.13), (0.40, 0.57, 0.18), (0.58, 0.70, 0.34)),  # yellowish mid green
    "Sugarcane": ((0.16, 0.38, 0.11), (0.30, 0.53, 0.17), (0.80, 0.84, 0.66)),
    "Wheat": ((0.30, 0.47, 0.27), (0.44, 0.59, 0.35), (0.50, 0.63, 0.40)),
}


def _paint_healthy_leaf(cv: _Canvas, shade_strength: float = 1.0) -> None:
    rng = cv.rng
    leaf = cv.leaf
    dark, light, mid = (np.asarray(c, F32) for c in _LEAF_COLORS[leaf.crop])
    base = dark + (light - dark) * F32(rng.uniform(0.0, 1.0))
    base = _jitter_color(rng, base, 0.05)
    Hc, Wc = cv.Hc, cv.Wc
    lf = max(2.0, (cv.umax - cv.umin) * 2.0)
    n_lo = _smooth_noise(rng, Hc, Wc, 3 * leaf.vmax * 2, lf)
    n_hi = _smooth_noise(rng, Hc, Wc, Hc / (3.0 * cv.px) + 1, Wc / (3.0 * cv.px) + 1)
    u, v, vn = cv.u, cv.v, cv.vn
    avn = np.abs(vn)
    tex = F32(1.0) + F32(0.07) * n_lo + F32(0.035) * n_hi
    if leaf.crop == "Tomato":  # rugose (bumpy) lamina
        n_mid = _smooth_noise(rng, Hc, Wc, Hc / (9.0 * cv.px) + 1, Wc / (9.0 * cv.px) + 1)
        tex += F32(0.10) * n_mid
        # fine hairs (trichomes): sparse pale specks
        hairs = rng.random((Hc, Wc), dtype=F32) < F32(0.035)
        tex += hairs * F32(0.18)
    # shading: curvature across the blade and a fold along the midrib (one half lit)
    fold = rng.uniform(-0.12, 0.12) * shade_strength
    cup = rng.uniform(0.05, 0.2) * shade_strength
    shade = F32(1.0) - F32(cup) * avn * avn + F32(fold) * np.sign(vn) * np.minimum(avn * 4, 1.0)
    veins = np.zeros((Hc, Wc), F32)
    vw = 0.9 * max(1.0, cv.px)  # vein half width in canvas pixels
    if leaf.dicot:
        # midrib
        mw = max(0.006 * (1.0 + 0.5 * 0), vw / cv.R)
        mid_taper = _clip(F32(1.2) - (u + F32(1.0)) * F32(0.5), 0.3, 1.0)
        veins = np.maximum(veins, _clip(F32(1.0) - np.abs(v) / (F32(mw * 1.6) * mid_taper), 0.0, 1.0))
        # pinnate lateral veins: curves u - k|v| + c v^2 = const
        k = rng.uniform(0.9, 1.6)
        cc = rng.uniform(0.5, 1.5)
        npairs = rng.uniform(5.0, 8.0)
        sp = 2.0 / npairs
        s = (u - F32(k) * np.abs(v) + F32(cc) * v * v) / F32(sp) + F32(rng.uniform(0, 1))
        dist = np.abs(s - np.floor(s) - F32(0.5)) * F32(sp * cv.R / math.sqrt(1 + k * k))
        lat = _clip(F32(1.0) - dist / F32(vw * 0.8), 0.0, 1.0) * _clip(F32(1.0) - avn, 0.0, 1.0) ** F32(0.5)
        veins = np.maximum(veins, lat * F32(0.7))
        vein_color = mid
        vein_alpha = 0.55
    else:
        # parallel veins across the blade, and (for sugarcane) a broad pale midrib
        hw_px = leaf.Wmax * cv.R
        nv = max(4.0, hw_px / (3.2 * max(1.0, cv.px)))
        par = F32(0.5) + F32(0.5) * np.cos(F32(2 * math.pi * nv) * vn)
        tex *= F32(1.0) - F32(0.06) * par
        if leaf.crop == "Sugarcane":
            mw = rng.uniform(0.06, 0.1)
            veins = _clip((F32(mw) - avn) / F32(0.02) + F32(0.5), 0.0, 1.0)
            vein_alpha = 0.9
        else:
            veins = _clip(F32(1.0) - avn / F32(0.03), 0.0, 1.0) * F32(0.5)
            vein_alpha = 0.5
        vein_color = mid
    col = cv.color
    col[...] = _c3(base)
    col *= (tex * shade)[None]
    _blend(col, _jitter_color(rng, vein_color, 0.04), veins * F32(vein_alpha))


# --------------------------------------------------------------------------------------------------
# Disease signatures (one painter per diseased class)
# --------------------------------------------------------------------------------------------------

Painter = Callable[[_Canvas], None]

YELLOW_HALO = (0.78, 0.72, 0.16)


def _early_blight(cv: _Canvas, potato: bool) -> None:
    rng = cv.rng
    n = int(rng.integers(6, 12) if potato else rng.integers(4, 9))
    us, vs = cv.sample_points(n, 0.85)
    for u, v in zip(us, vs):
        r = rng.uniform(0.045, 0.08) if potato else rng.uniform(0.06, 0.1)
        cv.spot(u, v, r, _jitter_color(rng, (0.24, 0.15, 0.07)), _jitter_color(rng, (0.33, 0.22, 0.10)),
                elong=rng.uniform(0.8, 1.3), irregular=0.22, soft=0.08, rings=rng.uniform(2.0, 3.5),
                ring_contrast=0.55, halo=rng.uniform(0.5, 0.9), halo_color=_jitter_color(rng, YELLOW_HALO),
                halo_alpha=rng.uniform(0.55, 0.75), border=0.15, border_color=(0.12, 0.08, 0.04))


def _late_blight(cv: _Canvas, potato: bool) -> None:
    rng = cv.rng
    n = int(rng.integers(2, 4))
    us, vs = cv.sample_points(n, vabs=(0.25, 0.8))
    for u, v in zip(us, vs):
        r = rng.uniform(0.2, 0.32) * (cv.leaf.Wmax / 0.5)
        core = (0.13, 0.10, 0.07) if potato else (0.17, 0.12, 0.08)
        cv.blob(u, v, r, _jitter_color(rng, core), _jitter_color(rng, (0.28, 0.25, 0.14)),
                noise=0.35, cells=2.5, halo=0.35, halo_color=_jitter_color(rng, (0.40, 0.47, 0.30)),
                halo_alpha=0.6, border=0.3, border_color=_jitter_color(rng, (0.26, 0.30, 0.16)), mottle=0.35,
                velvet=0.25, fringe_color=_jitter_color(rng, (0.86, 0.87, 0.82)))


def _potato_early_blight(cv):
    _early_blight(cv, True)


def _potato_late_blight(cv):
    _late_blight(cv, True)


def _sugarcane_bacterial_blight(cv: _Canvas) -> None:
    rng = cv.rng
    n = int(rng.integers(3, 7))
    W = cv.leaf.Wmax
    us, vs = cv.sample_points(n, vabs=(0.2, 0.75))
    for u, v in zip(us, vs):
        cv.stripe(u, v, rng.uniform(0.12, 0.35), W * rng.uniform(0.09, 0.16),
                  _jitter_color(rng, (0.84, 0.78, 0.55)), _jitter_color(rng, (0.55, 0.27, 0.14)),
                  center_color=(0.9, 0.86, 0.68), center_frac=0.4, wobble=0.4)
    # water-soaked, yellowish streak margins along the lesions (diffuse)
    if rng.random() < 0.6:
        us2, vs2 = cv.sample_points(2, vabs=(0.3, 0.8))
        for u, v in zip(us2, vs2):
            cv.stripe(u, v, rng.uniform(0.08, 0.2), W * 0.06, _jitter_color(rng, (0.62, 0.58, 0.30)))


def _sugarcane_red_rot(cv: _Canvas) -> None:
    rng = cv.rng
    W = cv.leaf.Wmax
    n = int(rng.integers(1, 3))
    us, vs = cv.sample_points(n, vabs=(0.0, 0.05))
    for u, v in zip(us, vs):
        cv.stripe(u, v * 0, rng.uniform(0.2, 0.45), W * rng.uniform(0.18, 0.28),
                  _jitter_color(rng, (0.62, 0.12, 0.10)), _jitter_color(rng, (0.42, 0.08, 0.07)),
                  center_color=_jitter_color(rng, (0.86, 0.80, 0.66)), center_frac=0.45, wobble=0.15)


def _sugarcane_red_stripe(cv: _Canvas) -> None:
    rng = cv.rng
    W = cv.leaf.Wmax
    n = int(rng.integers(8, 18))
    us, vs = cv.sample_points(n, 0.9)
    for u, v in zip(us, vs):
        hw = max(W * rng.uniform(0.025, 0.045), 0.9 / cv.R)
        cv.stripe(u, v, rng.uniform(0.12, 0.5), hw, _jitter_color(rng, (0.48, 0.07, 0.08)),
                  _jitter_color(rng, (0.36, 0.05, 0.06)), wobble=0.1)


def _sugarcane_rust(cv: _Canvas) -> None:
    rng = cv.rng
    n = int(rng.integers(40, 90))
    us, vs = cv.sample_points(n, 0.92)
    r = cv.leaf.Wmax * rng.uniform(0.055, 0.07)
    cv.splats(us, vs, r, _jitter_color(rng, (0.60, 0.32, 0.10)), _jitter_color(rng, (0.38, 0.19, 0.07)),
              elong=rng.uniform(2.2, 3.2), size_var=0.2, halo_color=_jitter_color(rng, (0.58, 0.58, 0.20)), halo=0.7,
              halo_alpha=0.35)


def _tomato_bacterial_spot(cv: _Canvas) -> None:
    rng = cv.rng
    n = int(rng.integers(25, 60))
    us, vs = cv.sample_points(n, 0.92)
    r = rng.uniform(0.02, 0.03)
    # satellites make the spots irregular
    k = len(us)
    su = np.concatenate([us, us + rng.normal(0, r * 0.8, k).astype(F32)])
    sv = np.concatenate([vs, vs + rng.normal(0, r * 0.8, k).astype(F32)])
    cv.splats(su, sv, r, _jitter_color(rng, (0.10, 0.08, 0.05)), _jitter_color(rng, (0.24, 0.17, 0.08)),
              size_var=0.3, halo_color=_jitter_color(rng, (0.66, 0.63, 0.18)), halo=0.6, halo_alpha=0.5)


def _tomato_early_blight(cv):
    _early_blight(cv, False)


def _tomato_late_blight(cv):
    _late_blight(cv, False)


def _tomato_leaf_mold(cv: _Canvas) -> None:
    rng = cv.rng
    n = int(rng.integers(2, 6))
    us, vs = cv.sample_points(n, 0.8)
    for u, v in zip(us, vs):
        cv.blob(u, v, rng.uniform(0.07, 0.12), _jitter_color(rng, (0.42, 0.40, 0.30)),
                _jitter_color(rng, (0.60, 0.58, 0.30)), noise=0.45, cells=3.0, halo=1.1,
                halo_color=_jitter_color(rng, (0.86, 0.82, 0.36)), halo_alpha=0.85, mottle=0.1, velvet=0.6)


def _tomato_mosaic(cv: _Canvas) -> None:
    rng = cv.rng
    cells = rng.uniform(5.0, 9.0)
    n = _smooth_noise(rng, cv.Hc, cv.Wc, cells * cv.leaf.vmax * 2, cells * (cv.umax - cv.umin))
    thr = rng.uniform(-0.1, 0.2)
    a = _clip((n - F32(thr)) * F32(3.0), 0.0, 1.0) * F32(0.85)
    cv.tint(_jitter_color(rng, (0.64, 0.74, 0.28)), a)
    dark = _clip((F32(thr - 0.3) - n) * F32(3.0), 0.0, 1.0) * F32(0.65)
    _blend(cv.color, _jitter_color(rng, (0.08, 0.22, 0.06)), dark * cv.inside)


def _tomato_septoria(cv: _Canvas) -> None:
    rng = cv.rng
    n = int(rng.integers(15, 35))
    us, vs = cv.sample_points(n, 0.9)
    r = rng.uniform(0.032, 0.045)
    cv.splats(us, vs, r, _jitter_color(rng, (0.80, 0.78, 0.70)), _jitter_color(rng, (0.62, 0.58, 0.50)),
              size_var=0.25, border_color=_jitter_color(rng, (0.25, 0.12, 0.06)), border=0.22, dots=0.05,
              halo_color=_jitter_color(rng, (0.60, 0.62, 0.22)), halo=0.5, halo_alpha=0.3)


def _tomato_spider_mites(cv: _Canvas) -> None:
    rng = cv.rng
    env = np.zeros((cv.Hc, cv.Wc), F32)
    n = int(rng.integers(2, 4))
    us, vs = cv.sample_points(n, 0.6)
    for u, v in zip(us, vs):
        col, row = cv.to_px(u, v)
        rp = rng.uniform(0.3, 0.5) * cv.R
        yy = (np.arange(cv.Hc, dtype=F32)[:, None] - F32(row)) / F32(rp)
        xx = (np.arange(cv.Wc, dtype=F32)[None, :] - F32(col)) / F32(rp)
        env = np.maximum(env, F32(1.0) - np.sqrt(xx * xx + yy * yy))
    env = env + F32(0.25) * _smooth_noise(rng, cv.Hc, cv.Wc, 4, 4)
    env = _clip(env * F32(3.0), 0.0, 1.0)
    # bronzing / chlorotic tint of the infested area
    cv.tint(_jitter_color(rng, (0.62, 0.60, 0.30)), env * F32(0.75))
    # fine stippling
    dots = (rng.random((cv.Hc, cv.Wc)) < F32(0.28) * env).astype(F32)
    _blend(cv.color, _jitter_color(rng, (0.92, 0.92, 0.74)), dots * F32(0.85) * cv.inside)
    # faint webbing: a few thin pale lines
    for _ in range(int(rng.integers(0, 4))):
        u0, v0 = cv.sample_points(1, 0.6)
        c0, r0 = cv.to_px(u0[0], v0[0])
        ang = rng.uniform(0, math.pi)
        yy = np.arange(cv.Hc, dtype=F32)[:, None] - F32(r0)
        xx = np.arange(cv.Wc, dtype=F32)[None, :] - F32(c0)
        d = np.abs(xx * F32(math.sin(ang)) - yy * F32(math.cos(ang)))
        line = _clip(F32(1.0) - d / F32(0.7 * cv.px), 0.0, 1.0) * env
        _blend(cv.color, (0.95, 0.95, 0.95), line * F32(0.35) * cv.inside)


def _tomato_target_spot(cv: _Canvas) -> None:
    rng = cv.rng
    n = int(rng.integers(6, 12))
    us, vs = cv.sample_points(n, 0.85)
    for u, v in zip(us, vs):
        cv.spot(u, v, rng.uniform(0.05, 0.08), _jitter_color(rng, (0.66, 0.50, 0.30)),
                _jitter_color(rng, (0.50, 0.34, 0.18)), irregular=0.08, soft=0.08, rings=rng.uniform(3.0, 5.0),
                ring_contrast=0.65, border=0.15, border_color=(0.20, 0.10, 0.05), halo=0.3,
                halo_color=_jitter_color(rng, (0.58, 0.60, 0.25)), halo_alpha=0.3)


def _tomato_yellow_leaf_curl(cv: _Canvas) -> None:
    rng = cv.rng
    band = rng.uniform(0.35, 0.6)
    n = _smooth_noise(rng, cv.Hc, cv.Wc, 4, 4 * (cv.umax - cv.umin))
    avn = np.abs(cv.vn)
    a = _clip((avn - F32(1.0 - band) + F32(0.12) * n) * F32(8.0), 0.0, 1.0) * F32(0.9)
    cv.tint(_jitter_color(rng, (0.80, 0.78, 0.22)), a)
    # rolled-up margins: a bright rim and a dark fold line inside it
    rim = _clip((avn - F32(0.88)) * F32(10.0), 0.0, 1.0)
    _blend(cv.color, (0.9, 0.9, 0.5), rim * F32(0.35) * cv.inside)
    fold = _clip(F32(1.0) - np.abs(avn - F32(0.8)) * F32(25.0), 0.0, 1.0)
    cv.color *= (F32(1.0) - F32(0.3) * fold * cv.inside)[None]


def _wheat_brown_rust(cv: _Canvas) -> None:
    rng = cv.rng
    n = int(rng.integers(50, 110))
    us, vs = cv.sample_points(n, 0.92)
    r = cv.leaf.Wmax * rng.uniform(0.075, 0.095)
    cv.splats(us, vs, r, _jitter_color(rng, (0.74, 0.42, 0.12)), _jitter_color(rng, (0.52, 0.27, 0.09)),
              elong=rng.uniform(1.0, 1.3), size_var=0.2)


def _wheat_septoria(cv: _Canvas) -> None:
    rng = cv.rng
    n = int(rng.integers(3, 6))
    W = cv.leaf.Wmax
    us, vs = cv.sample_points(n, 0.5)
    for u, v in zip(us, vs):
        cv.blob(u, v, W * rng.uniform(0.45, 0.7), _jitter_color(rng, (0.68, 0.58, 0.40)),
                _jitter_color(rng, (0.55, 0.42, 0.26)), elong=rng.uniform(2.5, 4.0), noise=0.3, cells=2.0,
                halo=0.35, halo_color=_jitter_color(rng, (0.70, 0.68, 0.30)), halo_alpha=0.55, border=0.2,
                border_color=(0.40, 0.26, 0.15), mottle=0.1, dots=0.06)


def _wheat_yellow_rust(cv: _Canvas) -> None:
    rng = cv.rng
    W = cv.leaf.Wmax
    nlines = int(rng.integers(4, 9))
    us, vs = cv.sample_points(nlines, 0.85)
    r = W * rng.uniform(0.065, 0.085)
    all_u, all_v = [], []
    for u, v in zip(us, vs):
        half = rng.uniform(0.15, 0.5)
        k = max(3, int(2 * half / (r * 3.6)))
        uu = (u + np.linspace(-half, half, k) + rng.normal(0, r * 0.3, k)).astype(F32)
        vv = (v + rng.normal(0, r * 0.2, k)).astype(F32)
        keep = rng.random(k) < 0.8
        all_u.append(uu[keep])
        all_v.append(vv[keep])
        # chlorotic streak under the pustules
        cv.stripe(u, v, half, r * 1.6, _jitter_color(rng, (0.74, 0.72, 0.30)), wobble=0.05)
    cv.splats(np.concatenate(all_u), np.concatenate(all_v), r, _jitter_color(rng, (0.96, 0.80, 0.16)),
              _jitter_color(rng, (0.88, 0.62, 0.12)), elong=1.3, size_var=0.15)


def _none(cv: _Canvas) -> None:
    pass


PAINTERS: Dict[int, Painter] = {
    0: _potato_early_blight,
    1: _none,
    2: _potato_late_blight,
    3: _sugarcane_bacterial_blight,
    4: _none,
    5: _sugarcane_red_rot,
    6: _sugarcane_red_stripe,
    7: _sugarcane_rust,
    8: _tomato_bacterial_spot,
    9: _tomato_early_blight,
    10: _none,
    11: _tomato_late_blight,
    12: _tomato_leaf_mold,
    13: _tomato_mosaic,
    14: _tomato_septoria,
    15: _tomato_spider_mites,
    16: _tomato_target_spot,
    17: _tomato_yellow_leaf_curl,
    18: _wheat_brown_rust,
    19: _none,
    20: _wheat_septoria,
    21: _wheat_yellow_rust,
}

# --------------------------------------------------------------------------------------------------
# Backgrounds and camera
# --------------------------------------------------------------------------------------------------


def _background(rng: np.random.Generator, W: int, H: int) -> np.ndarray:
    """Background (3, H, W) float32 in about [0, 1]: soil, gradient, coloured noise or a plain surface."""
    S = min(W, H)
    kind = int(rng.integers(0, 4))
    if kind == 0:  # soil: two octaves of noise, grain, clods and pebbles
        base = _jitter_color(rng, (rng.uniform(0.30, 0.50), rng.uniform(0.22, 0.34), rng.uniform(0.13, 0.22)), 0.08)
        n1 = _smooth_noise(rng, H, W, 4 * H / S, 4 * W / S)
        cl = rng.uniform(14, 30)
        n2 = _smooth_noise(rng, H, W, cl * H / S, cl * W / S)
        lum = F32(1.0) + F32(0.14) * n1 + F32(0.18) * _clip(np.abs(n2) - F32(0.55), 0.0, 1.0) * np.sign(n2)
        lum += (rng.random((H, W), dtype=F32) - F32(0.5)) * F32(0.18)
        bg = lum[None] * _c3(base)
    elif kind == 1:  # linear gradient between two muted colours
        grey0, grey1 = rng.uniform(0.15, 0.85, 2)
        c0 = (grey0 + rng.uniform(-0.15, 0.15, 3)).astype(F32)
        c1 = (grey1 + rng.uniform(-0.15, 0.15, 3)).astype(F32)
        ang = rng.uniform(0, 2 * math.pi)
        ty = (np.arange(H, dtype=F32)[:, None] - F32(H / 2)) * F32(math.sin(ang) / max(W, H))
        tx = (np.arange(W, dtype=F32)[None, :] - F32(W / 2)) * F32(math.cos(ang) / max(W, H))
        t = _clip(tx + ty + F32(0.5), 0.0, 1.0)
        bg = t[None] * _c3(c1 - c0) + _c3(c0)
    elif kind == 2:  # coloured smooth noise (out-of-focus vegetation, mulch, sky)
        palette = np.array([[0.22, 0.28, 0.16], [0.45, 0.38, 0.22], [0.55, 0.60, 0.65], [0.30, 0.25, 0.15],
                            [0.65, 0.62, 0.45], [0.16, 0.18, 0.12]], F32)
        i0, i1 = rng.choice(len(palette), 2, replace=False)
        cells = rng.uniform(2.0, 6.0)
        t = _clip(F32(0.5) + F32(1.2) * _smooth_noise(rng, H, W, cells * H / S, cells * W / S), 0.0, 1.0)
        c0 = _jitter_color(rng, palette[i0], 0.1)
        c1 = _jitter_color(rng, palette[i1], 0.1)
        bg = t[None] * _c3(c1 - c0) + _c3(c0)
    else:  # plain surface (paper, tray, cloth) with a soft light falloff
        c = _jitter_color(rng, rng.uniform(0.15, 0.9) * np.ones(3, F32), 0.05)
        lum = F32(1.0) + F32(0.08) * _smooth_noise(rng, H, W, 2 * H / S, 2 * W / S)
        bg = lum[None] * _c3(c)
    return bg.astype(F32, copy=False)


def generate(class_index: int, seed: int, width: int = 256, height: int = 256) -> Tuple[np.ndarray, np.ndarray]:
    """Render one synthetic photo of class ``class_index`` (0..21).

    Returns (rgb, mask): rgb is a uint8 array of shape (height, width, 3); mask a bool array of shape
    (height, width), True on the lesion / symptom pixels (all False for healthy classes).
    Deterministic in (class_index, seed, width, height).
    """
    class_index = int(class_index)
    if not 0 <= class_index < NUM_CLASSES:
        raise ValueError(f"class_index must be in 0..{NUM_CLASSES - 1}, got {class_index}")
    if int(seed) < 0:
        raise ValueError("seed must be >= 0")
    W, H = int(width), int(height)
    if W < 16 or H < 16:
        raise ValueError("width and height must be >= 16")
    rng = np.random.default_rng([int(seed), class_index, 0x1EAF])
    crop = crop_of(class_index)
    S = min(W, H)
    px = S / 256.0

    leaf = _Leaf(rng, crop, W, H, curl=(class_index == 17), wavy=0.04 if class_index == 13 else 0.0)
    leaf.build_lut()
    cv = _Canvas(rng, leaf, W, H)
    _paint_healthy_leaf(cv, shade_strength=2.0 if class_index == 17 else 1.0)
    PAINTERS[class_index](cv)

    out = _background(rng, W, H)

    # image pixels -> leaf coordinates, inside the bounding box of the visible part of the leaf
    c, s = math.cos(leaf.theta), math.sin(leaf.theta)
    bu = np.array([cv.umin, cv.umax, cv.umin, cv.umax, 0.0, 0.0], np.float64)
    bv = np.array([-leaf.vmax, -leaf.vmax, leaf.vmax, leaf.vmax, -leaf.vmax, leaf.vmax], np.float64)
    bxs, bys = leaf.to_image(bu, bv)
    x0 = int(max(0, math.floor(bxs.min() - 2)))
    x1 = int(min(W, math.ceil(bxs.max() + 2)))
    y0 = int(max(0, math.floor(bys.min() - 2)))
    y1 = int(min(H, math.ceil(bys.max() + 2)))
    alpha = np.zeros((H, W), F32)
    mask = np.zeros((H, W), bool)
    leaf_rgb = None
    if x1 > x0 and y1 > y0:
        yy = np.arange(y0, y1, dtype=F32)[:, None] + F32(0.5 - leaf.cy)
        xx = np.arange(x0, x1, dtype=F32)[None, :] + F32(0.5 - leaf.cx)
        iL = F32(1.0 / leaf.L)
        u = xx * F32(c * iL) + yy * F32(s * iL)
        v = yy * F32(c * iL) - xx * F32(s * iL) - F32(leaf.bend) * u * u
        hw = leaf.halfwidth_lut(u, v >= 0)
        a = _clamp((hw - np.abs(v)) * F32(leaf.L) + F32(0.5), 0.0, 1.0)
        alpha[y0:y1, x0:x1] = a
        # nearest-neighbour sample of the canvas (about 1:1 with the image), packed as RGB + mask bytes
        # so that one gather fetches both
        fc = _clamp((u - F32(cv.umin)) * F32(cv.R) + F32(0.5), 0.0, cv.Wc - 1)
        fr = _clamp((v + F32(leaf.vmax)) * F32(cv.R) + F32(0.5), 0.0, cv.Hc - 1)
        idx = fr.astype(np.int32)
        idx *= np.int32(cv.Wc)
        idx += fc.astype(np.int32)
        packed = np.empty((cv.Hc, cv.Wc, 4), np.uint8)
        c255 = _clamp(cv.color * F32(255.0) + F32(0.5), 0.0, 255.0)
        for k in range(3):
            packed[..., k] = c255[k]
        packed[..., 3] = cv.sym >= 0.5
        got = packed.view(np.uint32).reshape(-1).take(idx).view(np.uint8).reshape(idx.shape + (4,))
        leaf_rgb = np.empty((3,) + idx.shape, F32)
        for k in range(3):
            np.multiply(got[..., k], F32(1.0 / 255.0), out=leaf_rgb[k], casting="unsafe")
        mask[y0:y1, x0:x1] = (got[..., 3] != 0) & (a >= 0.5)

    # cast shadow of the leaf on the background (blurred, shifted alpha)
    sh_off = rng.uniform(0.01, 0.05, 2) * S * np.where(rng.random(2) < 0.5, -1, 1)
    sh_strength = rng.uniform(0.15, 0.5)
    sh_blur = rng.uniform(1.0, 5.0) * px
    # (the leaf outline evaluated at shifted coordinates, with a soft edge of width sh_blur)
    sx0 = int(max(0, x0 + sh_off[0] - sh_blur))
    sx1 = int(min(W, x1 + sh_off[0] + sh_blur))
    sy0 = int(max(0, y0 + sh_off[1] - sh_blur))
    sy1 = int(min(H, y1 + sh_off[1] + sh_blur))
    if sx1 > sx0 and sy1 > sy0:
        yy = np.arange(sy0, sy1, dtype=F32)[:, None] + F32(0.5 - leaf.cy - sh_off[1])
        xx = np.arange(sx0, sx1, dtype=F32)[None, :] + F32(0.5 - leaf.cx - sh_off[0])
        iL = F32(1.0 / leaf.L)
        u = xx * F32(c * iL) + yy * F32(s * iL)
        v = yy * F32(c * iL) - xx * F32(s * iL) - F32(leaf.bend) * u * u
        hw = leaf.halfwidth_lut(u, v >= 0)
        sh = _clamp((hw - np.abs(v)) * F32(leaf.L / sh_blur) + F32(0.5), 0.0, 1.0)
        sh *= F32(-sh_strength)
        sh += F32(1.0)
        out[:, sy0:sy1, sx0:sx1] *= sh[None]

    if leaf_rgb is not None:
        _blend(out[:, y0:y1, x0:x1], leaf_rgb, alpha[y0:y1, x0:x1])

    # lighting: directional gradient and vignetting, colour cast, brightness, contrast, then gamma and
    # sensor noise
    ang = rng.uniform(0, 2 * math.pi)
    g = rng.uniform(0.0, 0.3)
    vig = rng.uniform(0.0, 0.25)
    yy = (np.arange(H, dtype=F32)[:, None] - F32(H / 2)) / F32(S)
    xx = (np.arange(W, dtype=F32)[None, :] - F32(W / 2)) / F32(S)
    light = (F32(g * math.sin(ang)) * yy - F32(vig) * yy * yy) + (F32(1.0) + F32(g * math.cos(ang)) * xx
                                                                 - F32(vig) * xx * xx)
    cast = np.array([1.0, 1.0, 1.0]) + rng.normal(0, 0.03, 3)
    if rng.random() < 0.3:  # warm sunlight or cool shade
        cast += np.array([0.04, 0.01, -0.04]) * rng.choice([-1.0, 1.0])
    bright = rng.uniform(0.85, 1.12)
    contrast = rng.uniform(0.9, 1.1)
    pivot = rng.uniform(0.35, 0.55)
    gain = (cast * (bright * contrast * 255.0)).astype(F32)
    sigma = rng.uniform(0.003, 0.02) * 255.0
    out *= light[None]
    out *= _c3(gain)
    noise = rng.random((H, W), dtype=F32)  # sensor noise (luminance), uniform with std sigma
    noise *= F32(sigma * 3.4641)
    noise += F32(pivot * (1 - contrast) * 255.0 + 0.5 - sigma * 1.7321)
    out += noise
    _clamp(out, 0.0, 255.0)
    rgb = np.empty((H, W, 3), np.uint8)
    for k in range(3):
        rgb[..., k] = out[k]
    gamma = rng.uniform(0.9, 1.1)
    if abs(gamma - 1.0) > 0.02:
        lut = _clip(255.0 * (np.arange(256) / 255.0) ** gamma + 0.5, 0, 255).astype(np.uint8)
        rgb = lut.take(rgb)
    if rng.random() < 0.25:  # slight defocus
        rgb = np.asarray(Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.1) * px)))
    return np.ascontiguousarray(rgb), mask


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


def file_stem(class_index: int, k: int) -> str:
    return f"{class_index:02d}_{LABELS[class_index]}_{k}"


def write_dataset(out_dir: str, per_class: int, seed: int, width: int = 256, height: int = 256,
                  jpeg_quality: int = 90, classes: Optional[Sequence[int]] = None,
                  write_masks: bool = True) -> Dict[str, int]:
    """Write per_class images of each class; image k of class c uses seed seed * 1_000_003 + k."""
    os.makedirs(out_dir, exist_ok=True)
    labels: Dict[str, int] = {}
    for ci in (range(NUM_CLASSES) if classes is None else classes):
        for k in range(per_class):
            rgb, mask = generate(ci, seed * 1_000_003 + k, width, height)
            stem = file_stem(ci, k)
            Image.fromarray(rgb).save(os.path.join(out_dir, stem + ".jpg"), quality=int(jpeg_quality))
            if write_masks:
                Image.fromarray(mask.astype(np.uint8) * 255).save(os.path.join(out_dir, stem + "_mask.png"),
                                                                  optimize=True)
            labels[stem + ".jpg"] = int(ci)
    with open(os.path.join(out_dir, "labels.json"), "w") as f:
        json.dump(labels, f, indent=1, sort_keys=True)
        f.write("\n")
    return labels


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description="Generate synthetic CropShield leaf photos with lesion masks.")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--per-class", type=int, required=True, help="images per class")
    p.add_argument("--seed", type=int, required=True, help="base seed (>= 0)")
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--jpeg-quality", type=int, default=90)
    p.add_argument("--classes", default=None, help="comma-separated class indices (default: all 22)")
    p.add_argument("--no-masks", action="store_true", help="do not write the _mask.png files")
    a = p.parse_args(argv)
    if a.per_class < 0 or a.seed < 0:
        p.error("--per-class and --seed must be >= 0")
    if not 1 <= a.jpeg_quality <= 100:
        p.error("--jpeg-quality must be in 1..100")
    classes = None
    if a.classes:
        classes = [int(x) for x in a.classes.split(",") if x.strip()]
        bad = [c for c in classes if not 0 <= c < NUM_CLASSES]
        if bad:
            p.error(f"unknown class indices {bad}")
    labels = write_dataset(a.out, a.per_class, a.seed, a.width, a.height, a.jpeg_quality, classes,
                           not a.no_masks)
    print(f"wrote {len(labels)} images to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
