"""Pixel noise in scans and photos: pepper specks removed, strong grain smoothed.

Both the segmenter (before it binarises a page) and the line normalisation (before the
recognizer sees a line) use these: a noisy scan used to fall apart into hundreds of lines, and
each line it did find was read as noise.
"""
from __future__ import annotations

import cv2
import numpy as np

PEPPER_JUMP = 80  # grey levels (and 4 noise sigmas) a speck differs from all its neighbours
PEPPER_SHARE = 0.001  # more specks than this share of the pixels: the image is median-filtered
NOISE_SIGMA = 6.0  # grey levels of pixel noise above which the image binarised is smoothed


def without_pepper(gray: np.ndarray) -> np.ndarray:
    """The image median-filtered (3 x 3, twice) when salt-and-pepper noise (isolated dark or light
    pixels: a bad scanner, a fax, dust) covers more than PEPPER_SHARE of it; else the image itself.

    Pages get it at full resolution, before anything reduces or cuts them: a reduction or a
    line cut along a sloping baseline smears each speck into a grey blot that no longer stands
    out from its neighbours and that binarisation keeps. Specks took the segmenter's text height
    down to a few pixels and every cluster of them became a line, and the network read the
    specks on a line as letters and punctuation. On 12 synthetic validation pages (89 lines),
    8% of the pixels black or white gave 823 lines, 37 of them right; now 89, all right. Six
    pages read by the shipped stage (greedy): page CER 39.5% at 3%, 71.3% at 8%; now 3.1% and
    3.5% (clean: 3.0%). One median pass left clusters of two or three specks, read as colons.
    The median erases strokes one pixel wide, which is why it runs only on noisy images: no
    line of the harder validation set or of training triggers it (at most 0.013% of pixels)."""
    # The noise is measured only when the specks are many: a higher jump finds fewer of them.
    if pepper_share(gray, PEPPER_JUMP) <= PEPPER_SHARE:
        return gray
    if pepper_share(gray, max(PEPPER_JUMP, 4.0 * noise_sigma(gray))) <= PEPPER_SHARE:
        return gray
    return cv2.medianBlur(cv2.medianBlur(gray, 3), 3)


def smoothed(gray: np.ndarray) -> np.ndarray:
    """The (reduced) page the segmenter binarises, blurred in proportion to its pixel noise when
    that is above NOISE_SIGMA grey levels (a dark phone photo, a grainy scan); else the page
    itself. On the 12 pages above Gaussian noise of sigma 20 gave 158 lines (83 right) and of
    sigma 40 869 (26 right); now 89 (89) and 96 (89). Lines are not blurred for the network: it
    reads sigma-20 noise at 4.9% (clean 3.0%), and blurred sigma-40 lines gained 2 points of 27."""
    sigma = noise_sigma(gray)
    if sigma <= NOISE_SIGMA:
        return gray
    return cv2.GaussianBlur(gray, (0, 0), min(2.0, 0.7 * sigma / NOISE_SIGMA))


def pepper_share(gray: np.ndarray, jump: float) -> float:
    """The share of pixels darker (pepper) or lighter (salt in a stroke) by `jump` than all eight
    neighbours. A thin pen stroke has dark neighbours along it, so it does not count; a plain
    impulse test (the distance to the 3 x 3 median) counts it, and found 0.1% "noise" on clean
    synthetic pages."""
    ring = np.ones((3, 3), np.uint8)
    ring[1, 1] = 0
    # Replicated borders: outside the image is not paper (the image may be a crop of ink).
    darkest_neighbour = cv2.erode(gray, ring, borderType=cv2.BORDER_REPLICATE)
    lightest_neighbour = cv2.dilate(gray, ring, borderType=cv2.BORDER_REPLICATE)
    # uint8 saturating differences and OpenCV counts: a third of numpy's time on a line image.
    pepper = cv2.compare(cv2.subtract(darkest_neighbour, gray), jump, cv2.CMP_GT)
    salt = cv2.compare(cv2.subtract(gray, lightest_neighbour), jump, cv2.CMP_GT)
    return (cv2.countNonZero(pepper) + cv2.countNonZero(salt)) / gray.size


def noise_sigma(gray: np.ndarray) -> float:
    """Pixel noise in grey levels: the median absolute residual of a second-difference filter
    that cancels flat paper and even shading (Immerkaer's mask), scaled to a Gaussian sigma.
    The median is taken over every third pixel each way: the same figure at a tenth of the cost."""
    mask = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    residual = cv2.filter2D(gray, cv2.CV_16S, mask)[1:-1:3, 1:-1:3]
    if residual.size == 0:
        return 0.0
    return 1.4826 * float(np.median(np.abs(residual))) / 6.0
