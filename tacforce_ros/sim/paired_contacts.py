"""Location-paired contacts rendered on several sensor styles (GenForce's paired collection).

Each contact is one indenter at a random place on the pad; a few frames per contact press it to
random depths and shear it (GenForce trained m2m on four frames per contact point). Every style
renders the very same contact state, so the pairs differ only in the sensor.
"""
from __future__ import annotations

import numpy as np
from tqdm import tqdm

from ..marker_pairs import MarkerPairs
from ..perception.markers import MarkerSegmentation
from .indenter_shapes import SEEN_INDENTERS
from .tactile import TactileSimulator
from .tactile_styles import SENSOR_STYLES


def render_paired_contacts(styles: list[str], indenters: tuple[str, ...] = SEEN_INDENTERS, contacts: int = 600,
                           frames_per_contact: int = 4, seed: int = 0, max_offset: float = 4e-3,
                           depth_range: tuple[float, float] = (0.2e-3, 1.6e-3), max_shear: float = 1.0e-3,
                           grid: int = 64, progress: bool = True) -> MarkerPairs:
    """Marker masks of `contacts` x `frames_per_contact` states on every style (SI units)."""
    unknown = [s for s in styles if s not in SENSOR_STYLES]
    if unknown or len(set(styles)) < 2:
        raise ValueError(f"need two or more known sensor styles, got {styles} (known: {', '.join(SENSOR_STYLES)})")
    rng = np.random.default_rng(seed)
    sims = {s: TactileSimulator(SENSOR_STYLES[s], grid=grid, seed=seed + k) for k, s in enumerate(styles)}
    rest = {s: sim.render(None) for s, sim in sims.items()}
    segmentation = {s: MarkerSegmentation.from_reference(image) for s, image in rest.items()}
    references = {s: segmentation[s].mask(image) for s, image in rest.items()}
    masks: dict[str, list[np.ndarray]] = {s: [] for s in styles}
    described = []
    for _ in tqdm(range(contacts), desc="paired contacts", unit="contact", disable=not progress):
        indenter = str(rng.choice(indenters))
        x, y = rng.uniform(-max_offset, max_offset, 2)
        for depth in np.sort(rng.uniform(*depth_range, frames_per_contact)):
            angle = rng.uniform(0.0, 2.0 * np.pi)
            shear = rng.uniform(0.0, max_shear) * np.array([np.cos(angle), np.sin(angle)])
            for s, sim in sims.items():
                state = sim.contact(indenter, x, y, depth, tuple(shear))
                masks[s].append(segmentation[s].mask(sim.render(state)))
            described.append(f"{indenter} x={x * 1e3:.2f}mm y={y * 1e3:.2f}mm depth={depth * 1e3:.3f}mm "
                             f"shear=({shear[0] * 1e3:.3f}, {shear[1] * 1e3:.3f})mm")
    return MarkerPairs({s: np.stack(m) for s, m in masks.items()}, references, segmentation, described)
