"""Cross-sensor transfer (GenForce): a force model for a target sensor from source-sensor labels.

The labelled source run is segmented into marker masks, translated frame by frame into the
target sensor's marker style by the m2m model, and drawn back as images in the target's
polarity (markers 255 on 0, or 0 on 255 for dark markers), so the target model's own in-graph
segmentation reads them exactly. With material curves, the source labels are rescaled to the
target's stiffness (`tacforce_ros.material.Compensation`). The force model then trains on these
sequences as on any recorded run (`tactile_force.config.segmenting`), and segments markers in its
graph on the live sensor too.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from tqdm import tqdm

from tacforce_ros.data.tactile_pairs import Sequence
from tacforce_ros.material import Compensation
from tacforce_ros.perception.markers import MarkerSegmentation


def masks_to_images(masks: np.ndarray, segmentation: MarkerSegmentation) -> np.ndarray:
    """Convert bool (N, H, W) marker masks -> mono8 (N, H, W, 1) that `segmentation` maps back to them."""
    markers, skin = (0, 255) if segmentation.dark_markers else (255, 0)
    if not skin < segmentation.threshold < markers and not markers <= segmentation.threshold < skin:
        raise ValueError(f"threshold {segmentation.threshold} cannot separate 0 from 255")
    return np.where(masks, np.uint8(markers), np.uint8(skin))[..., None]


def translate_sequences(sequences: list[Sequence], source: MarkerSegmentation, translator,
                        target: MarkerSegmentation, compensation: Compensation | None = None,
                        steps: int = 1, progress: bool = True) -> list[Sequence]:
    """Source sequences -> target-style sequences with the same stamps and (rescaled) labels."""
    out = []
    for seq in tqdm(sequences, desc="m2m translate", unit="seq", disable=not progress):
        images = np.asarray(seq.images)
        if images.ndim == 4 and images.shape[-1] != 1:
            raise ValueError(f"{seq.bag}: marker images must be mono8, got {images.shape[-1]} channels")
        masks = np.stack([source.mask(image) for image in images])
        translated = translator.translate(masks, steps=steps)
        forces = seq.forces
        if compensation is not None:
            if seq.phases is None:
                raise ValueError(f"{seq.bag}: material compensation needs episode phases (give --episode-topic)")
            forces = compensation.apply(seq.forces, seq.phases)
        out.append(dataclasses.replace(seq, images=masks_to_images(translated, target), forces=forces,
                                       encoding="mono8"))
    return out
