"""Pixel noise in scans and photos: pepper specks removed, strong grain smoothed.

Both the segmenter (before it binarises a page) and the line normalisation (before the
recognizer sees a line) use these: a noisy scan used to fall apart into hundreds of lines, and
each line it did find was read as noise.
"""
from __future__ import annotations

import cv2
import numpy as np

NOISE_SIGMA = 6.0  # grey levels of pixel noise above which the image binarised is smoothed
PEPPER_JUMP = 80  # grey levels (and 4 noise sigmas) a speck is darker than all its neighbours
PEPPER_SHARE = 0.001  # more stray specks than this share of the pixels: the image is noisy
STRAY_DISTANCE = 2  # px: a speck this far from any other ink is noise, not an i's dot or a full stop
SPECK_AREA = 4  # px: in a noisy image, dark or light blobs this small are specks


def without_pepper(gray: np.ndarray) -> np.ndarray:
    """The image with its specks (salt-and-pepper noise: a bad scanner, a fax, dust) replaced by
    the paper or ink around them, when stray dark specks cover more than PEPPER_SHARE of it;
    else the image itself.

    Pages get it at full resolution, before anything reduces or cuts them: a reduction or a
    line cut along a sloping baseline smears each speck into a grey blot that no longer stands
    out from its neighbours and that binarisation keeps. Specks took the segmenter's text height
    down to a few pixels and every cluster of them became a line, and the network read the
    specks on a line as letters and punctuation.

    Only the specks change, never a stroke: filtering the whole image (a 3 x 3 median) erased
    every stroke one pixel wide, so a thin-pen page with a few specks read as blank. And only
    stray specks count towards the share: an i's dot or a full stop at small sizes is one dark
    pixel too, but it lies by a letter; lines of small clean text with many i's had been
    filtered and read as garbage. Figures before and after: docs/line-normalisation.md, "Noisy scans"."""
    if pepper_share(gray, PEPPER_JUMP) <= PEPPER_SHARE:  # cheap, and a higher jump finds fewer
        return gray
    jump = max(PEPPER_JUMP, 4.0 * noise_sigma(gray))
    if stray_pepper_share(gray, jump) <= PEPPER_SHARE:
        return gray
    return specks_replaced(gray, jump)


def _specks(gray: np.ndarray, jump: float) -> np.ndarray:
    """255 where a pixel is darker by `jump` than all eight neighbours, else 0."""
    ring = np.ones((3, 3), np.uint8)
    ring[1, 1] = 0
    # Replicated borders: outside the image is not paper (the image may be a crop of ink).
    darkest_neighbour = cv2.erode(gray, ring, borderType=cv2.BORDER_REPLICATE)
    # uint8 saturating differences and OpenCV counts: a third of numpy's time on a line image.
    return cv2.compare(cv2.subtract(darkest_neighbour, gray), jump, cv2.CMP_GT)


def pepper_share(gray: np.ndarray, jump: float) -> float:
    """The share of pixels darker by `jump` than all eight neighbours. A thin pen stroke has
    dark neighbours along it, so it does not count; a plain impulse test (the distance to the
    3 x 3 median) counts it, and found 0.1% "noise" on clean synthetic pages."""
    return cv2.countNonZero(_specks(gray, jump)) / gray.size


def stray_pepper_share(gray: np.ndarray, jump: float) -> float:
    """pepper_share, counting only the specks with no ink within STRAY_DISTANCE px. Ink here is
    a dark blob larger than a speck: in heavy noise most specks have another speck close by."""
    specks = _specks(gray, jump)
    # The paper is the lightest of the neighbourhood once salt is gone (a plain maximum is the
    # salt's white, and all of a darker paper would be ink).
    paper = cv2.dilate(cv2.medianBlur(gray, 5), np.ones((5, 5), np.uint8), borderType=cv2.BORDER_REPLICATE)
    dark = cv2.compare(cv2.subtract(paper, gray), jump / 2, cv2.CMP_GT)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(dark, connectivity=8)
    large = stats[:, cv2.CC_STAT_AREA] > SPECK_AREA
    large[0] = False
    side = 2 * STRAY_DISTANCE + 1
    near_ink = cv2.dilate(large[labels].view(np.uint8), np.ones((side, side), np.uint8))
    return float(np.count_nonzero(specks[near_ink == 0])) / gray.size


def specks_replaced(gray: np.ndarray, jump: float) -> np.ndarray:
    """The image with every dark blob of at most SPECK_AREA px on lighter surroundings, and every
    light one on darker surroundings (salt in a stroke), replaced by its surroundings: a 3 x 3
    median taken twice, as clusters of two or three specks survive one (and were read as
    colons). Strokes, even one pixel wide, are larger blobs and keep every pixel."""
    surroundings = cv2.medianBlur(cv2.medianBlur(gray, 3), 3)
    replace = np.zeros(gray.shape, bool)
    for differs in (cv2.subtract(surroundings, gray), cv2.subtract(gray, surroundings)):
        blobs = cv2.compare(differs, jump / 2, cv2.CMP_GT)
        _, labels, stats, _ = cv2.connectedComponentsWithStats(blobs, connectivity=8)
        small = stats[:, cv2.CC_STAT_AREA] <= SPECK_AREA
        small[0] = False
        replace |= small[labels]
    out = gray.copy()
    out[replace] = surroundings[replace]
    return out


def smoothed(gray: np.ndarray) -> np.ndarray:
    """The (reduced) page the segmenter binarises, blurred in proportion to its pixel noise when
    that is above NOISE_SIGMA grey levels (a dark phone photo, a grainy scan); else the page
    itself. On 12 synthetic validation pages (89 lines) Gaussian noise of sigma 20 gave 158
    lines (83 right) and of sigma 40 869 (26 right); now 89 (89) and 96 (89). Lines are not
    blurred for the network: it reads sigma-20 noise at 4.9% (clean 3.0%), and blurred sigma-40
    lines gained 2 points of 27."""
    sigma = noise_sigma(gray)
    if sigma <= NOISE_SIGMA:
        return gray
    return cv2.GaussianBlur(gray, (0, 0), min(2.0, 0.7 * sigma / NOISE_SIGMA))


def noise_sigma(gray: np.ndarray) -> float:
    """Pixel noise in grey levels: the median absolute residual of a second-difference filter
    that cancels flat paper and even shading (Immerkaer's mask), scaled to a Gaussian sigma.
    The median is taken over every third pixel each way: the same figure at a tenth of the cost."""
    mask = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    residual = cv2.filter2D(gray, cv2.CV_16S, mask)[1:-1:3, 1:-1:3]
    if residual.size == 0:
        return 0.0
    return 1.4826 * float(np.median(np.abs(residual))) / 6.0
