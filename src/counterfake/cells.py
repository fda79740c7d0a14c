"""Comparing an aligned scanned image with a registered photo's grid, cell by cell.

Global changes (recompression, colour grading, a tone curve, a semi-transparent watermark, a
greyscale copy) are fitted away first; what still differs clearly, in colour or in texture, and
forms a solid region, is altered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from counterfake.thresholds import Thresholds

# L, a, b, log contrast: cells this close "agree" for the fit
_FIT_TOLERANCE = (4.0, 3.0, 3.0, 0.2)
_MONOCHROME_SPREAD = 2.0  # Lab chroma units: a copy whose cells vary less has lost its colour
_CURVE_DEGREE = 3  # a tone curve (gamma, an S-curve) is a cubic in lightness, closely enough
_LEVEL_BAND = 16  # lightness levels (of 256) per band in which a tone curve takes the median
_BAND_CELLS = 4  # cells a band needs to count
_LINEAR_ENOUGH = 0.9  # share of cells a gain and offset must fit for no curve to be looked for
_CURVE_GAIN = 0.05  # share of cells a lightness curve must fit beyond it to try per-channel curves
_CURVE_SLOPES = (0.2, 5.0)  # the contrast in a cell is scaled by a curve's slope within these
_TRUSTED_CELLS = 16  # fewer cells holding verified features do not steer the fits


class Comparison(NamedTuple):
    """What comparing the cells found, each a bool grid in the photo's frame."""

    altered: np.ndarray  # clearly altered, in solid regions: what the decisions count
    agreeing: np.ndarray  # within the absolute thresholds
    extent: np.ndarray  # the altered regions and the cells that continue them: the mask


def compare_cells(
    photo: np.ndarray,
    scanned: np.ndarray,
    visible: np.ndarray,
    t: Thresholds,
    trusted: np.ndarray | None = None,
) -> Comparison:
    """Altered, agreeing and masked cells after the global fit.

    Altered cells differ in colour or texture beyond both the absolute thresholds and the noise
    of this particular copy (a heavily recompressed copy is noisier everywhere). Agreeing cells
    are within the absolute thresholds. Both are needed: when an alignment is a coincidence,
    every cell differs, the "noise" is huge, and nothing would stand out as altered.

    The extent grows the altered regions, as hysteresis grows an edge, through neighbouring
    cells with weaker evidence: beyond the absolute thresholds and ``mask_noise_multiple``
    times the noise. A blur or a mosaic moves the cells at a region's plainer edge less than
    those in its middle, and a cell only partly edited differs less than a whole one; such
    cells alone would be noise, but next to a region known to be altered they are its edge.
    Only the mask takes them: the decisions stay with the clear evidence.

    ``trusted``: see ``cell_differences``.
    """
    colour, texture = cell_differences(photo, scanned, visible, trusted)
    colour_noise, texture_noise = _noise(colour[visible]), _noise(texture[visible])

    def differing(noise_multiple: float) -> np.ndarray:
        return visible & (
            (colour > max(t.colour_difference, noise_multiple * colour_noise))
            | (texture > max(t.texture_difference, noise_multiple * texture_noise))
        )

    altered = _keep_regions(differing(t.noise_multiple), t.min_region_cells) & visible
    agreeing = visible & (colour <= t.colour_difference) & (texture <= t.texture_difference)
    extent = _grown(altered, differing(t.mask_noise_multiple)) & visible
    return Comparison(altered, agreeing, extent)


def cell_differences(
    photo: np.ndarray,
    scanned: np.ndarray,
    visible: np.ndarray,
    trusted: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(colour, texture) difference of each cell once global changes are fitted away.

    Colour is the CIE Lab distance, texture the |log| ratio of the local contrasts, both after
    a robust fit of what changes every cell alike: a gain and offset per channel
    (recompression, colour grading, a semi-transparent watermark), or a tone curve where that
    fits clearly more cells (see ``_tone_curve``). A copy with no colour left is compared with
    the photo as a greyscale conversion would leave it.

    ``trusted`` marks the cells holding the features that verified the alignment. A fill that
    regenerates most of the photo (60% of it, flat skin tone) leaves most cells with almost no
    contrast, and a contrast fit judged on all cells alike would scale the surviving face and
    background down to match it. So the contrast fit is judged on the trusted cells, where
    the photo's own texture is known to survive. Colour is not: a hue shift keeps the
    features, so trusted cells can lie inside a recoloured region.
    """
    if _monochrome(scanned, visible) and not _monochrome(photo, visible):
        photo = _as_grey(photo)
    cells = _Cells(visible, visible)
    if trusted is not None and (trusted & visible).sum() >= _TRUSTED_CELLS:
        anchored = _Cells(visible, trusted & visible)
    else:
        anchored = cells
    lightness, photo_lightness = scanned[:, :, 0], photo[:, :, 0]
    curve = _as_curve(_robust_fit(lightness, photo_lightness, cells, _FIT_TOLERANCE[0], 1))
    # curves are looked for only where a gain and offset leave cells out, and leave them out
    # by level: nearly every copy needs none, and fitting them costs most of a verification
    straight = cells.agreeing(curve, lightness, photo_lightness, _FIT_TOLERANCE[0])
    bent = False
    if straight < _LINEAR_ENOUGH * visible.sum() and _bends(
        curve, lightness[visible], photo_lightness[visible]
    ):
        curve = _tone_curve(lightness, photo_lightness, cells, curve)
        # an edit leaves cells out at every level, a curve at some: only a curve that fits
        # clearly more cells than the straight line is worth fitting per colour channel too
        gain = cells.agreeing(curve, lightness, photo_lightness, _FIT_TOLERANCE[0]) - straight
        bent = gain >= _CURVE_GAIN * visible.sum()
    fitted = _fitted_colour(scanned[:, :, :3], photo[:, :, :3], cells, curve, bent)
    # a tone curve changes the contrast within a cell as its secant across the cell's spread
    spread = scanned[:, :, 3]
    contrast = (curve(scanned[:, :, 0] + spread) - curve(scanned[:, :, 0] - spread)) / 2
    # contrast changes by a factor (a blur halves it, sharpening doubles it), so it is fitted
    # in the terms the texture difference is judged in: the log of contrast plus a floor
    scanned_texture = np.log(np.maximum(contrast, 0.0) + 3.0)
    photo_texture = np.log(photo[:, :, 3] + 3.0)
    texture_fit = _robust_fit(scanned_texture, photo_texture, anchored, _FIT_TOLERANCE[3], 1)
    # where the curve is steep the copy kept that much less of the photo's lightness: a
    # difference in lightness counts in the copy's levels there
    difference = fitted - photo[:, :, :3]
    difference[:, :, 0] /= np.maximum(curve.slope(scanned[:, :, 0]), 1.0)
    colour = np.linalg.norm(difference, axis=-1)
    texture = np.abs(texture_fit(scanned_texture) - photo_texture)
    return colour, texture


def _fitted_colour(
    scanned: np.ndarray,
    photo: np.ndarray,
    cells: _Cells,
    lightness: ToneCurve,
    per_channel: bool,
) -> np.ndarray:
    """The scanned cells' Lab colours mapped onto the photo's, whichever way agrees with more.

    Colour grading is a gain and offset per Lab channel after a tone curve on lightness; a
    photo app's curve acts on each of red, green and blue instead, which moves lightness by
    a colour's saturation too (a gamma darkens grey far more than pure red). Both are fitted
    when ``per_channel``.
    """
    by_lab = np.stack(
        [
            lightness(scanned[:, :, 0]),
            *(
                _robust_fit(scanned[:, :, c], photo[:, :, c], cells, _FIT_TOLERANCE[c], 1)(
                    scanned[:, :, c]
                )
                for c in (1, 2)
            ),
        ],
        axis=-1,
    )
    if not per_channel:
        return by_lab
    scanned_rgb, photo_rgb = _lab_to_rgb(scanned), _lab_to_rgb(photo)
    by_rgb = _rgb_to_lab(
        np.stack(
            [
                _tone_curve(scanned_rgb[:, :, c], photo_rgb[:, :, c], cells)(scanned_rgb[:, :, c])
                for c in range(3)
            ],
            axis=-1,
        )
    )

    def agreeing(fitted: np.ndarray) -> int:
        distance = np.linalg.norm(fitted - photo, axis=-1)
        return int((distance[cells.trusted] <= _FIT_TOLERANCE[0]).sum())

    return max((by_lab, by_rgb), key=agreeing)


def _lab_to_rgb(cells: np.ndarray) -> np.ndarray:
    """Cell colours stored as 8-bit Lab -> RGB, 0-255 (floats, not clipped to whole levels)."""
    lab = cells[:, :, :3].astype(np.float32) - np.float32([0, 128, 128])
    lab[:, :, 0] *= 100 / 255
    return np.clip(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB), 0, 1) * 255


def _rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    lab = cv2.cvtColor(np.clip(rgb, 0, 255).astype(np.float32) / 255, cv2.COLOR_RGB2Lab)
    lab[:, :, 0] *= 255 / 100
    return lab + np.float32([0, 128, 128])


def _monochrome(cells: np.ndarray, visible: np.ndarray) -> bool:
    """Whether the visible cells carry no colour beyond one flat tint (a greyscale copy)."""
    if not visible.any():
        return False
    chroma = cells[:, :, 1:3][visible]
    spread = np.hypot(*(chroma - [_percentile(chroma[:, 0], 50), _percentile(chroma[:, 1], 50)]).T)
    return _percentile(spread, 95) <= _MONOCHROME_SPREAD


def _as_grey(cells: np.ndarray) -> np.ndarray:
    """The photo's cells as a greyscale conversion would leave them.

    A greyscale copy keeps luma (0.299 R + 0.587 G + 0.114 B, what image libraries and phone
    filters compute), not CIE lightness: a saturated blue garment turns darker than its
    lightness says. Comparing lightness alone would call such cells altered; so the photo's
    cell colours go through the same conversion, and its chroma becomes neutral like the copy's.
    The contrast channel is kept: within a cell, luma and lightness vary nearly together.
    """
    luma = _lab_to_rgb(cells) @ np.float32([0.299, 0.587, 0.114])
    grey = cells.copy()
    grey[:, :, :3] = _rgb_to_lab(np.repeat(luma[:, :, None], 3, axis=2))
    grey[:, :, 1:3] = 128
    return grey


@dataclass(frozen=True)
class Polynomial:
    """A polynomial by its coefficients, highest power first (``np.polyval``'s order): numpy's
    Polynomial class costs several times as much to evaluate, for every alignment verified."""

    coefficients: np.ndarray

    def __call__(self, values: np.ndarray) -> np.ndarray:
        coefficients = self.coefficients  # float64 scalars: the result is float64, as polyval's
        result = coefficients[0] * values
        for coefficient in coefficients[1:-1]:
            result = (result + coefficient) * values
        return result + coefficients[-1]  # Horner's rule, as np.polyval, without its checks


def _robust_fit(
    source: np.ndarray, target: np.ndarray, cells: _Cells, tolerance: float, degree: int
) -> Polynomial:
    """A polynomial mapping ``source`` onto ``target``, fitted on the cells that agree.

    Altered cells would pull an ordinary least-squares fit towards themselves. So the fit
    starts from whichever of "no change" (the usual repost), "a uniform shift" (a global
    filter), and the trusted cells' own shift or gain (what an edit over most of the photo
    leaves to see) already agrees within ``tolerance`` on more trusted cells, and each round
    refits on the visible cells that agree with the previous fit. A linear fit's gain is kept
    within 0.5-2; whether a cubic rises is the caller's to check.
    """
    identity = Polynomial(np.array([1.0, 0.0]))
    if not cells.visible.any():
        return identity
    # the visible cells as flat arrays: every round works on these alone
    x_all, y_all = source[cells.visible], target[cells.visible]
    trusted = cells.trusted[cells.visible]
    x_trusted, y_trusted = x_all[trusted], y_all[trusted]

    def agreeing(model: Polynomial) -> int:
        return int((np.abs(model(x_trusted) - y_trusted) <= tolerance).sum())

    seeds = [identity]
    for x, y in ((x_all, y_all), (x_trusted, y_trusted)):
        seeds.append(Polynomial(np.array([1.0, _percentile(y - x, 50)])))
    ratio = _percentile((y_trusted + 1.0) / (x_trusted + 1.0), 50)
    seeds.append(Polynomial(np.array([float(np.clip(ratio, 0.5, 2.0)), 0.0])))
    model = max(seeds, key=agreeing)
    used = None
    for _ in range(3):
        residual = np.abs(model(x_all) - y_all)
        use = residual <= max(tolerance, 2.5 * _noise(residual))
        if used is not None and np.array_equal(use, used):
            break  # the same cells give the same fit again
        used = use
        x, y = x_all[use].astype(np.float64), y_all[use].astype(np.float64)
        if len(x) < 8 * degree or float(x.std()) < 1e-3:
            break
        if degree == 1:
            centred = x - x.mean()
            gain = float(np.clip(centred @ (y - y.mean()) / float(centred @ centred), 0.5, 2.0))
            refit = Polynomial(np.array([gain, float(np.mean(y - gain * x))]))
        else:
            refit = _fit_by_level(x, y, degree)
        # anchored, a refit that agrees with fewer trusted cells has been pulled by altered
        # ones (a flat fill agrees with the photo's flat cells by chance) and is not kept
        if cells.anchored and agreeing(refit) < agreeing(model):
            break
        model = refit
    return model


def _fit_by_level(x: np.ndarray, y: np.ndarray, degree: int) -> Polynomial:
    """A polynomial through the median ``y`` of each band of ``x`` levels, bands weighted alike.

    A photo is mostly dark or mostly bright; fitted cell by cell, a curve would follow the
    crowded levels and miss the few cells at the others, where the face often is.
    """
    bands = np.minimum((x // _LEVEL_BAND).astype(np.int64), 255 // _LEVEL_BAND)
    _, count, centres = _medians_by_band(bands, x)
    _, _, medians = _medians_by_band(bands, y)
    crowded = count >= _BAND_CELLS
    centres, medians = centres[crowded], medians[crowded]
    if len(centres) <= degree:
        return Polynomial(np.polyfit(x, y, 1))
    return Polynomial(np.polyfit(centres, medians, degree))


def _bends(straight: ToneCurve, scanned: np.ndarray, photo: np.ndarray) -> bool:
    """Whether the photo's lightness departs from ``straight`` by level: in some band of levels
    holding enough cells, the median cell misses it by more than the fit's tolerance.

    A curve moves every cell of a level alike, so the band's median moves with it; an edit
    moves some cells of many levels, and leaves the medians where the untouched cells hold
    them. Two medians cost far less than fitting the curves this decides to look for.
    """
    bands = np.minimum((scanned // _LEVEL_BAND).astype(np.int64), 255 // _LEVEL_BAND)
    _, count, missed = _medians_by_band(bands, photo - straight(scanned))
    return bool((np.abs(missed[count >= _BAND_CELLS]) > _FIT_TOLERANCE[0]).any())


def _medians_by_band(bands: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, ...]:
    """(bands, cells in each, the median of ``values`` in each), as ``np.median`` gives it, in
    one sort rather than a median per band: this runs for every alignment verified."""
    # one sort on a single key, band first then value: lexsort's two keys cost twice as much
    low = float(values.min())
    span = float(values.max()) - low + 1.0
    order = np.argsort(bands * span + (values - low))
    ordered, sorted_values = bands[order], values[order]
    present, start, count = np.unique(ordered, return_index=True, return_counts=True)
    middle = (sorted_values[start + (count - 1) // 2] + sorted_values[start + count // 2]) / 2
    return present, count, middle


@dataclass(frozen=True)
class _Cells:
    """The cells a comparison covers: ``visible`` (bool, grid shape), and among them the
    ``trusted`` ones, which every choice between fits is judged on (see ``cell_differences``)."""

    visible: np.ndarray
    trusted: np.ndarray

    @property
    def anchored(self) -> bool:
        """Whether fits are judged on a trusted part rather than on every visible cell."""
        return self.trusted is not self.visible

    def agreeing(
        self,
        model: Callable[[np.ndarray], np.ndarray],
        source: np.ndarray,
        target: np.ndarray,
        tolerance: float,
    ) -> int:
        """How many trusted cells ``model`` carries within ``tolerance`` of ``target``."""
        return int((np.abs(model(source) - target)[self.trusted] <= tolerance).sum())


@dataclass(frozen=True)
class ToneCurve:
    """A rising map from the scanned image's lightness to the photo's, as a table."""

    scanned: np.ndarray  # increasing lightness levels of the scanned image
    photo: np.ndarray  # the photo's lightness at each

    def __call__(self, values: np.ndarray) -> np.ndarray:
        return np.interp(values, self.scanned, self.photo)

    def slope(self, values: np.ndarray) -> np.ndarray:
        """The curve's steepness, within _CURVE_SLOPES (at black and white a gamma curve's
        slope runs to zero or infinity, where cells hold no contrast to scale anyway)."""
        slopes = np.clip(np.gradient(self.photo, self.scanned), *_CURVE_SLOPES)
        return np.interp(values, self.scanned, slopes)

    def rises(self) -> bool:
        """Whether both levels rise together: a tone curve never reverses lightness, a
        coincidental fit to an edit can."""
        return bool(np.diff(self.scanned).min() > 0 and np.diff(self.photo).min() > 0)


def _as_curve(linear: Polynomial) -> ToneCurve:
    levels = np.linspace(0.0, 255.0, 257)
    return ToneCurve(levels, linear(levels))


def _tone_curve(
    scanned: np.ndarray, photo: np.ndarray, cells: _Cells, linear: ToneCurve | None = None
) -> ToneCurve:
    """The map of lightness that agrees with the most cells: a gain and offset, or a tone curve.

    A gamma or S-curve bends lightness; a cubic follows it closely in one direction but not
    always in the other (gamma 2 is a square one way and a square root, infinitely steep at
    black, the other), so the cubic is fitted both ways (scanned -> photo, and photo -> scanned,
    then inverted) and each curve must rise (``ToneCurve.rises``) over the levels the cells span.
    ``linear``, the gain and offset already fitted, is not fitted again.
    """
    tolerance = _FIT_TOLERANCE[0]
    visible = cells.visible
    if linear is None:
        linear = _as_curve(_robust_fit(scanned, photo, cells, tolerance, 1))
    candidates = [linear]
    if visible.sum() >= 8 * _CURVE_DEGREE:
        inverse = _robust_fit(scanned, photo, cells, tolerance, _CURVE_DEGREE)
        span = np.linspace(float(scanned[visible].min()), float(scanned[visible].max()), 65)
        candidates.append(ToneCurve(span, inverse(span)))
        forward = _robust_fit(photo, scanned, cells, tolerance, _CURVE_DEGREE)
        span = np.linspace(float(photo[visible].min()), float(photo[visible].max()), 65)
        candidates.append(ToneCurve(forward(span), span))
    rising = [curve for curve in candidates[1:] if curve.rises()]
    return max(
        [candidates[0], *rising],
        key=lambda curve: cells.agreeing(curve, scanned, photo, tolerance),
    )


def _noise(values: np.ndarray) -> float:
    """A noise scale robust to half the cells being altered: the 20th percentile of |x|.

    For a normal distribution that percentile is 0.253 sigma.
    """
    if len(values) == 0:
        return 0.0
    return _percentile(np.abs(values), 20) / 0.253


def _percentile(values: np.ndarray, q: float) -> float:
    """``np.percentile(values, q)`` (linear between the two nearest ranks) from a partial sort:
    a comparison takes about a dozen, and np.percentile costs twenty times as much."""
    values = np.ravel(values)
    position = q / 100 * (len(values) - 1)
    low = int(position)
    high = min(low + 1, len(values) - 1)
    part = np.partition(values, [low, high])
    return float(part[low] + (part[high] - part[low]) * (position - low))


def _keep_regions(cells: np.ndarray, min_cells: int) -> np.ndarray:
    """Drop thin and small components (text and watermark strokes), keep solid regions, with
    the cells they enclose.

    A regenerated garment is one solid region, but where it was plain a blur or an inpainting
    changed nothing a cell records: those cells, enclosed by the altered ones, are part of it.
    """
    kernel = np.ones((3, 3), np.uint8)
    opened = cv2.morphologyEx(cells.astype(np.uint8), cv2.MORPH_OPEN, kernel)
    closed = cv2.morphologyEx(opened, cv2.MORPH_CLOSE, kernel)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(closed, connectivity=4)
    keep = np.zeros(count, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_cells
    return _filled(keep[labels])


def _grown(seeds: np.ndarray, weak: np.ndarray) -> np.ndarray:
    """``seeds`` with every region of ``weak`` cells that touches them (side by side), holes
    filled."""
    count, labels = cv2.connectedComponents((seeds | weak).astype(np.uint8), connectivity=4)
    keep = np.zeros(count, bool)
    keep[labels[seeds]] = True
    keep[0] = False
    return _filled(keep[labels]) | seeds


def _filled(cells: np.ndarray) -> np.ndarray:
    """``cells`` with every hole filled: what the outside cannot reach without crossing them."""
    outside = np.pad(~cells, 1, constant_values=True).astype(np.uint8)
    reach = np.zeros((outside.shape[0] + 2, outside.shape[1] + 2), np.uint8)
    cv2.floodFill(outside, reach, (0, 0), 2, flags=4)
    return cells | (outside[1:-1, 1:-1] == 1)
