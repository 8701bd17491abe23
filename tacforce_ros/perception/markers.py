"""Marker segmentation and marker-image comparison (GenForce's binary marker images).

Cross-sensor transfer works on binary marker masks: a sensor's grey image is segmented into
markers (True) and skin (False), so sensors that differ in lighting and polarity (bright dots on
a dark gel, dark pins on a bright skin) meet in one representation. The threshold and polarity
come from the sensor's reference (no-contact) image: Otsu's split, the threshold midway between
the two classes' mean grey levels, and the markers are the minority class.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class MarkerSegmentation:
    """Grey image -> marker mask: markers are above `threshold` (below it with `dark_markers`)."""

    threshold: float
    dark_markers: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 255.0:
            raise ValueError(f"marker threshold must be a grey level 0..255, got {self.threshold}")

    @classmethod
    def from_reference(cls, reference: np.ndarray) -> "MarkerSegmentation":
        """Otsu's threshold of the no-contact image; markers are the smaller class."""
        grey = _mono(reference)
        threshold, bright = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
        bright = bright > 0
        bright_fraction = float(np.count_nonzero(bright)) / bright.size
        if bright_fraction in (0.0, 1.0):
            raise ValueError("reference image has no contrast: cannot tell markers from skin")
        midway = 0.5 * (float(grey[bright].mean()) + float(grey[~bright].mean()))  # between the class means
        return cls(midway, dark_markers=bright_fraction > 0.5)

    def mask(self, image: np.ndarray) -> np.ndarray:
        """Return a bool (H, W) mask, True on markers, from a mono8 (H, W) or (H, W, 1) image."""
        grey = _mono(image)
        return grey <= self.threshold if self.dark_markers else grey > self.threshold

    def info(self) -> dict:
        return {"threshold": self.threshold, "dark_markers": self.dark_markers}


def _mono(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim != 2 or image.dtype != np.uint8:
        raise ValueError(f"expected a mono8 image (H, W) uint8, got {image.dtype} {image.shape}")
    return image


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two marker masks (1.0 when both are empty)."""
    if a.shape != b.shape:
        raise ValueError(f"mask shapes differ: {a.shape} vs {b.shape}")
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


def marker_centroids(mask: np.ndarray, min_area: int = 4) -> np.ndarray:
    """Centroids (column, row) of the connected markers of at least `min_area` pixels, (K, 2)."""
    count, _, stats, centroids = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = stats[1:, cv2.CC_STAT_AREA] >= min_area  # label 0 is the background
    return centroids[1:][keep].astype(float)


@dataclass(frozen=True)
class CentroidMatch:
    """Mutual nearest-neighbour matching of predicted to expected marker centroids."""

    mean_error_px: float  # over matched pairs; nan when nothing matched
    matched: int
    predicted: int
    expected: int

    @property
    def matched_fraction(self) -> float:
        return self.matched / self.expected if self.expected else 1.0


def match_centroids(predicted: np.ndarray, expected: np.ndarray, max_distance_px: float) -> CentroidMatch:
    """Pairs each expected centroid with the predicted one it is nearest to and vice versa,
    within `max_distance_px`; the error is their mean distance.
    """
    if len(predicted) == 0 or len(expected) == 0:
        return CentroidMatch(float("nan"), 0, len(predicted), len(expected))
    distance = np.linalg.norm(expected[:, None, :] - predicted[None, :, :], axis=2)
    nearest_predicted = distance.argmin(axis=1)
    nearest_expected = distance.argmin(axis=0)
    rows = np.arange(len(expected))
    mutual = (nearest_expected[nearest_predicted] == rows) & (distance[rows, nearest_predicted] <= max_distance_px)
    errors = distance[rows[mutual], nearest_predicted[mutual]]
    mean = float(errors.mean()) if len(errors) else float("nan")
    return CentroidMatch(mean, int(mutual.sum()), len(predicted), len(expected))


def marker_spacing_px(reference_mask: np.ndarray) -> float:
    """Median distance from each marker to its nearest neighbour in a no-contact mask."""
    centres = marker_centroids(reference_mask)
    if len(centres) < 2:
        raise ValueError("reference mask has fewer than two markers")
    distance = np.linalg.norm(centres[:, None, :] - centres[None, :, :], axis=2)
    np.fill_diagonal(distance, np.inf)
    return float(np.median(distance.min(axis=1)))
