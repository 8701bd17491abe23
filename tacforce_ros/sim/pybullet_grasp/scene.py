"""A randomised PyBullet table scene and its top-down RGB-D camera (plain numpy + pybullet, no ROS).

World frame: z up, the table is the plane z = 0. The camera looks straight down from
(x, y, height); its image u runs along world +x and v along world -y, so the optical frame
(REP-103: x right, y down, z forward) is world (x, -y, -z) about the camera. Depth is metric
(m) along the optical axis.

Grasp angles follow ``tacforce_ros.perception.grasp_angles``: theta in [0, pi) is the jaw
closing line from image +u towards +v, i.e. the image direction (cos theta, sin theta). In the
world that is (cos theta, -sin theta): the gripper's yaw about world z is ``-theta``
(``angle_to_yaw``).

Everything random is drawn up front from one ``numpy.random.Generator`` into a ``SceneSpec``
(``sample_scene``), so a scene depends only on its seed; ``build_scene`` then resets the
simulation and builds it, which makes a scene independent of what the process simulated
before.
"""
from __future__ import annotations

import colorsys
import math
import os
from dataclasses import dataclass

import cv2
import numpy as np

from ...perception.grasp_angles import wrap_angle
from ...perception.grasp_map import Intrinsics
from ..grasp_scenes import check_range

OBJECT_COUNT = 1000  # pybullet_data/random_urdfs/000..999
TRAIN_OBJECTS = (0, 799)
HELD_OUT_OBJECTS = (800, 999)
OBJECT_SETS = {"train": TRAIN_OBJECTS, "heldout": HELD_OUT_OBJECTS}
TABLE_STYLES = ("plain", "wood", "checker")
# Table hues (HSV, 0..1) no training scene uses, so a test can show a table colour never seen:
# purple to magenta, e.g. UNSEEN_TABLE_RGB.
HELD_OUT_TABLE_HUES = (0.72, 0.92)
UNSEEN_TABLE_RGB = (200, 40, 220)
TIME_STEP = 1.0 / 240.0
TABLE_SIZE_M = 1.4  # the textured quad; the collision plane is infinite
TEXTURE_PX = 1024


def object_range(objects) -> tuple[int, int]:
    """``"train"`` / ``"heldout"`` or an inclusive (first, last) index range into random_urdfs.

    A range that mixes training (0-799) and held-out (800-999) objects is refused: every
    reported number must be on objects no model was trained on.
    """
    if isinstance(objects, str):
        if objects not in OBJECT_SETS:
            raise ValueError(f"object set must be one of {sorted(OBJECT_SETS)} or (first, last), got {objects!r}")
        return OBJECT_SETS[objects]
    try:
        first, last = (int(x) for x in objects)
    except (TypeError, ValueError):
        raise ValueError(f"object range must be (first, last) indices, got {objects!r}") from None
    if not 0 <= first <= last < OBJECT_COUNT:
        raise ValueError(f"object range must satisfy 0 <= first <= last <= {OBJECT_COUNT - 1}, got ({first}, {last})")
    if first <= TRAIN_OBJECTS[1] < last:
        raise ValueError(f"object range {first}-{last} mixes training objects ({TRAIN_OBJECTS[0]}-{TRAIN_OBJECTS[1]}) "
                         f"and held-out objects ({HELD_OUT_OBJECTS[0]}-{HELD_OUT_OBJECTS[1]}); use one side only")
    return first, last


def is_held_out(objects) -> bool:
    return object_range(objects)[0] >= HELD_OUT_OBJECTS[0]


def held_out_indices(indices) -> list[int]:
    """Return the held-out random_urdfs indices among ``indices`` (of any scenes), sorted."""
    return sorted(int(i) for i in indices if i >= HELD_OUT_OBJECTS[0])


@dataclass(frozen=True)
class TrialSceneConfig:
    """What a scene randomises, and over which ranges (SI units, angles in degrees where named)."""

    objects: tuple[int, int] = TRAIN_OBJECTS  # inclusive random_urdfs index range (object_range)
    objects_per_scene: tuple[int, int] = (1, 4)  # inclusive
    object_scale: tuple[float, float] = (0.45, 0.75)  # random_urdfs are ~10 cm blobs at scale 1
    object_mass_kg: tuple[float, float] = (0.05, 0.3)
    object_friction: tuple[float, float] = (0.5, 1.0)  # Bullet multiplies it with the other body's
    spawn_half_width_m: tuple[float, float] = (0.05, 0.13)  # clutter: objects dropped in +-this square
    width: int = 640
    height: int = 480
    camera_height_m: tuple[float, float] = (0.5, 0.75)
    fov_deg: tuple[float, float] = (40.0, 55.0)  # vertical field of view
    camera_xy_jitter_m: float = 0.03
    table_styles: tuple[str, ...] = TABLE_STYLES
    table_rgb: tuple[int, int, int] | None = None  # fixed plain table colour (an unseen-colour test)
    table_hue_exclude: tuple[float, float] | None = HELD_OUT_TABLE_HUES  # random table colours avoid these hues
    settle_s: float = 1.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "objects", object_range(self.objects))
        check_range("objects_per_scene", self.objects_per_scene, 1)
        for name in ("object_scale", "object_mass_kg", "spawn_half_width_m", "camera_height_m", "fov_deg"):
            check_range(name, getattr(self, name), 1e-6)
        check_range("object_friction", self.object_friction)
        if self.camera_height_m[0] < 0.2:
            raise ValueError(f"camera_height_m must be >= 0.2 m (the gripper descends below it), got "
                             f"{self.camera_height_m}")
        if self.fov_deg[1] >= 120:
            raise ValueError(f"fov_deg must be < 120, got {self.fov_deg}")
        if not self.table_styles or set(self.table_styles) - set(TABLE_STYLES):
            raise ValueError(f"table_styles must be a non-empty subset of {TABLE_STYLES}, got {self.table_styles!r}")
        if self.table_rgb is not None and (len(self.table_rgb) != 3 or not all(0 <= c <= 255 for c in self.table_rgb)):
            raise ValueError(f"table_rgb must be three values 0..255, got {self.table_rgb!r}")
        if self.table_hue_exclude is not None:
            check_range("table_hue_exclude", self.table_hue_exclude)
            if self.table_hue_exclude[1] - self.table_hue_exclude[0] >= 1.0:
                raise ValueError(f"table_hue_exclude must leave some hues, got {self.table_hue_exclude}")
        if self.width < 16 or self.height < 16 or self.settle_s < 0:
            raise ValueError("image must be at least 16x16 and settle_s >= 0")


@dataclass(frozen=True)
class Camera:
    """A top-down pinhole camera at (x, y, height_m) with square pixels."""

    x: float
    y: float
    height_m: float
    fov_deg: float  # vertical
    width: int
    height: int

    @property
    def near(self) -> float:
        return 0.05

    @property
    def far(self) -> float:
        return self.height_m + 0.5

    def intrinsics(self) -> Intrinsics:
        f = (self.height / 2) / math.tan(math.radians(self.fov_deg) / 2)
        return Intrinsics(f, f, (self.width - 1) / 2, (self.height - 1) / 2)

    def camera_matrix(self) -> list[float]:
        """CameraInfo.k (row-major 3x3)."""
        k = self.intrinsics()
        return [k.fx, 0.0, k.cx, 0.0, k.fy, k.cy, 0.0, 0.0, 1.0]

    def pixel_to_world(self, u: float, v: float, depth_m: float) -> np.ndarray:
        """World point (m) seen at pixel (u, v) at optical depth ``depth_m``."""
        ray = self.intrinsics().ray(u, v) * depth_m
        return np.array([self.x + ray[0], self.y - ray[1], self.height_m - ray[2]])

    def world_to_pixel(self, xyz) -> tuple[float, float]:
        k = self.intrinsics()
        depth = self.height_m - xyz[2]
        return k.cx + k.fx * (xyz[0] - self.x) / depth, k.cy - k.fy * (xyz[1] - self.y) / depth


def angle_to_yaw(theta: float) -> float:
    """World yaw (rad, about +z) of the gripper's closing axis for image grasp angle ``theta``."""
    return -float(theta)


def yaw_to_angle(yaw: float) -> float:
    """Image grasp angle in [0, pi) of a closing axis at world yaw ``yaw``."""
    return float(wrap_angle(-yaw))


@dataclass(frozen=True)
class ObjectSpec:
    index: int  # random_urdfs index
    scale: float
    xy: tuple[float, float]
    drop_z: float
    quaternion: tuple[float, float, float, float]
    rgba: tuple[float, float, float, float]
    mass_kg: float
    friction: float


@dataclass(frozen=True)
class Lighting:
    direction: tuple[float, float, float]
    colour: tuple[float, float, float]
    ambient: float
    diffuse: float
    specular: float
    shadow: bool


@dataclass(frozen=True)
class SceneSpec:
    """Every random choice of one scene."""

    seed: tuple[int, ...]
    objects: tuple[ObjectSpec, ...]
    camera: Camera
    table_style: str
    table_colours: tuple[tuple[int, int, int], ...]
    table_cell_m: float
    table_grain: tuple[float, ...]
    lighting: Lighting


def _random_colour(rng: np.random.Generator, hue=(0.0, 1.0), sat=(0.0, 1.0), val=(0.15, 0.95)) -> tuple[int, ...]:
    r, g, b = colorsys.hsv_to_rgb(rng.uniform(*hue) % 1.0, rng.uniform(*sat), rng.uniform(*val))
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))


def _table_colour(rng: np.random.Generator, exclude: tuple[float, float] | None) -> tuple[int, ...]:
    """Draw a colour of any hue outside ``exclude``, any saturation and most brightnesses."""
    if exclude is None:
        return _random_colour(rng)
    hue = rng.uniform(0.0, 1.0 - (exclude[1] - exclude[0]))
    hue = hue + (exclude[1] - exclude[0]) if hue >= exclude[0] else hue
    return _random_colour(rng, hue=(hue, hue))


def _random_quaternion(rng: np.random.Generator) -> tuple[float, float, float, float]:
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    return tuple(float(x) for x in q)


def sample_scene(config: TrialSceneConfig, seed: tuple[int, ...]) -> SceneSpec:
    """Draw one scene from ``config`` with ``numpy.random.default_rng(seed)``."""
    rng = np.random.default_rng(list(seed))
    first, last = config.objects
    count = int(rng.integers(config.objects_per_scene[0], config.objects_per_scene[1] + 1))
    indices = rng.choice(np.arange(first, last + 1), size=min(count, last - first + 1), replace=False)
    spread = rng.uniform(*config.spawn_half_width_m)
    objects = []
    for k, index in enumerate(indices):
        objects.append(ObjectSpec(
            int(index), float(rng.uniform(*config.object_scale)),
            (float(rng.uniform(-spread, spread)), float(rng.uniform(-spread, spread))), 0.08 + 0.08 * k,
            _random_quaternion(rng), tuple(c / 255 for c in _random_colour(rng, sat=(0.2, 1.0))) + (1.0,),
            float(rng.uniform(*config.object_mass_kg)), float(rng.uniform(*config.object_friction))))
    jitter = config.camera_xy_jitter_m
    camera = Camera(float(rng.uniform(-jitter, jitter)), float(rng.uniform(-jitter, jitter)),
                    float(rng.uniform(*config.camera_height_m)), float(rng.uniform(*config.fov_deg)),
                    config.width, config.height)
    style = str(rng.choice(config.table_styles))
    if config.table_rgb is not None:
        style, colours = "plain", (tuple(int(c) for c in config.table_rgb),)
    elif style == "wood":
        light = _random_colour(rng, hue=(0.03, 0.13), sat=(0.3, 0.8), val=(0.35, 0.95))
        colours = (light, tuple(int(c * rng.uniform(0.55, 0.85)) for c in light))
    else:
        colours = tuple(_table_colour(rng, config.table_hue_exclude) for _ in range(2))
    elevation = rng.uniform(math.radians(35), math.radians(90))
    azimuth = rng.uniform(0, 2 * math.pi)
    lighting = Lighting(
        (math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth), math.sin(elevation)),
        tuple(float(x) for x in rng.uniform(0.85, 1.0, size=3)), float(rng.uniform(0.35, 0.7)),
        float(rng.uniform(0.3, 0.7)), float(rng.uniform(0.0, 0.3)), bool(rng.random() < 0.5))
    return SceneSpec(tuple(int(s) for s in seed), tuple(objects), camera, style, colours,
                     float(rng.uniform(0.01, 0.08)),
                     tuple(float(x) for x in rng.uniform(0.0, 1.0, size=4)), lighting)


# --------------------------------------------------------------------------- table texture

def table_texture(spec: SceneSpec, size: int = TEXTURE_PX) -> np.ndarray:
    """RGB uint8 ``size`` x ``size`` texture of the table quad (TABLE_SIZE_M square)."""
    rng = np.random.default_rng([*spec.seed, 7])
    metres = np.linspace(0.0, TABLE_SIZE_M, size, endpoint=False)
    x, y = np.meshgrid(metres, metres)
    base = np.array(spec.table_colours[0], np.float32)
    if spec.table_style == "checker":
        cell = spec.table_cell_m
        odd = ((np.floor(x / cell) + np.floor(y / cell)) % 2).astype(bool)
        image = np.where(odd[..., None], np.array(spec.table_colours[1], np.float32), base)
    elif spec.table_style == "wood":
        a, b, c, d = spec.table_grain
        warp = 0.004 * np.sin(2 * math.pi * (x * (1 + 3 * a) + 4 * b)) + 0.002 * np.sin(2 * math.pi * 9 * x + c)
        rings = 0.5 + 0.5 * np.sin(2 * math.pi * (y + warp) / (0.004 + 0.008 * d))
        rings = rings ** 3
        image = base + (np.array(spec.table_colours[1], np.float32) - base) * rings[..., None]
    else:
        image = np.broadcast_to(base, (size, size, 3)).astype(np.float32)
    image = image + rng.normal(0.0, 4.0, size=(size, size, 1))
    return np.clip(image, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- building

def random_urdf(index: int) -> str:
    import pybullet_data
    return os.path.join(pybullet_data.getDataPath(), "random_urdfs", f"{index:03d}", f"{index:03d}.urdf")


@dataclass
class BuiltScene:
    spec: SceneSpec
    table: int
    bodies: list[int]


def build_scene(p, spec: SceneSpec, texture_dir: str, settle_s: float = 1.5) -> BuiltScene:
    """Reset the simulation of client ``p`` (a ``pybullet_utils.bullet_client.BulletClient``),
    build ``spec`` in it and let the objects settle. The camera sees the table and objects only.
    """
    p.resetSimulation()
    p.setGravity(0, 0, -9.81)
    p.setPhysicsEngineParameter(fixedTimeStep=TIME_STEP, numSolverIterations=60, deterministicOverlappingPairs=1)
    half = TABLE_SIZE_M / 2
    vertices = [[-half, -half, 0], [half, -half, 0], [half, half, 0], [-half, half, 0]]
    visual = p.createVisualShape(p.GEOM_MESH, vertices=vertices, indices=[0, 1, 2, 0, 2, 3],
                                 uvs=[[0, 0], [1, 0], [1, 1], [0, 1]], normals=[[0, 0, 1]] * 4)
    table = p.createMultiBody(0, p.createCollisionShape(p.GEOM_PLANE), visual)
    p.changeDynamics(table, -1, lateralFriction=0.6)
    # pybullet caches textures by file name: one name per scene
    path = os.path.join(texture_dir, "table_" + "_".join(str(s) for s in spec.seed) + ".png")
    cv2.imwrite(path, table_texture(spec)[::-1, :, ::-1])  # image row 0 is v = 0 of the quad
    p.changeVisualShape(table, -1, textureUniqueId=p.loadTexture(path), rgbaColor=[1, 1, 1, 1])
    os.remove(path)
    bodies = []
    for obj in spec.objects:
        body = p.loadURDF(random_urdf(obj.index), [0, 0, 1.0], globalScaling=obj.scale)
        low, high = (np.array(x) for x in p.getAABB(body))
        ext = high - low
        inertia = obj.mass_kg / 12 * np.array([ext[1] ** 2 + ext[2] ** 2, ext[0] ** 2 + ext[2] ** 2,
                                               ext[0] ** 2 + ext[1] ** 2])
        p.changeDynamics(body, -1, mass=obj.mass_kg, localInertiaDiagonal=inertia.tolist(),
                         lateralFriction=obj.friction, spinningFriction=0.002, rollingFriction=0.0005,
                         restitution=0.0)
        p.resetBasePositionAndOrientation(body, [*obj.xy, obj.drop_z + ext.max() / 2], obj.quaternion)
        p.changeVisualShape(body, -1, rgbaColor=list(obj.rgba))
        bodies.append(body)
    settle(p, bodies, settle_s)
    return BuiltScene(spec, table, bodies)


def settle(p, bodies: list[int], seconds: float, speed: float = 0.005) -> None:
    """Step until every body is slower than ``speed`` (m/s) or ``seconds`` of simulated time pass."""
    for step in range(int(round(seconds / TIME_STEP))):
        p.stepSimulation()
        if step % 24 == 23 and all(np.linalg.norm(p.getBaseVelocity(b)[0]) < speed for b in bodies):
            break


def depth_from_buffer(buffer: np.ndarray, camera: Camera) -> np.ndarray:
    """Metric optical depth (m, float32) from an OpenGL depth buffer in [0, 1]."""
    near, far = camera.near, camera.far
    return (far * near / (far - (far - near) * buffer)).astype(np.float32)


def render(p, camera: Camera, lighting: Lighting) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 (H, W, 3) and metric depth (H, W) float32 of the top-down camera."""
    view = p.computeViewMatrix([camera.x, camera.y, camera.height_m], [camera.x, camera.y, 0.0], [0, 1, 0])
    projection = p.computeProjectionMatrixFOV(camera.fov_deg, camera.width / camera.height, camera.near, camera.far)
    rgb, buffer = _render(p, camera.width, camera.height, view, projection, lighting)
    return rgb, depth_from_buffer(buffer, camera)


def render_view(p, eye, target, up, size: tuple[int, int], fov_deg: float, lighting: Lighting) -> np.ndarray:
    """RGB uint8 of any camera (width, height), e.g. the after-grasp side view."""
    view = p.computeViewMatrix(list(eye), list(target), list(up))
    projection = p.computeProjectionMatrixFOV(fov_deg, size[0] / size[1], 0.02, 3.0)
    return _render(p, size[0], size[1], view, projection, lighting)[0]


def _render(p, width: int, height: int, view, projection, lighting: Lighting) -> tuple[np.ndarray, np.ndarray]:
    _, _, rgba, depth, _ = p.getCameraImage(
        width, height, view, projection, lightDirection=list(lighting.direction), lightColor=list(lighting.colour),
        lightDistance=2.0, shadow=int(lighting.shadow), lightAmbientCoeff=lighting.ambient,
        lightDiffuseCoeff=lighting.diffuse, lightSpecularCoeff=lighting.specular, renderer=p.ER_TINY_RENDERER,
        flags=p.ER_NO_SEGMENTATION_MASK)
    rgb = np.reshape(np.asarray(rgba, np.uint8), (height, width, 4))[..., :3].copy()
    return rgb, np.reshape(np.asarray(depth, np.float32), (height, width))


def add_box(p, scene: BuiltScene, half_extents, xy, yaw: float = 0.0, mass_kg: float = 0.15, friction: float = 0.8,
            rgba=(0.8, 0.1, 0.1, 1.0)) -> int:
    """Put a box (half extents in m, long axis along its local x) on the table at ``xy`` with its
    x axis at world ``yaw``; it joins ``scene.bodies``. For known-answer checks of the gripper.
    """
    body = p.createMultiBody(mass_kg, p.createCollisionShape(p.GEOM_BOX, halfExtents=list(half_extents)),
                             p.createVisualShape(p.GEOM_BOX, halfExtents=list(half_extents), rgbaColor=list(rgba)),
                             [xy[0], xy[1], half_extents[2] + 0.0005], p.getQuaternionFromEuler([0, 0, yaw]))
    p.changeDynamics(body, -1, lateralFriction=friction)
    scene.bodies.append(body)
    settle(p, scene.bodies, 0.5)
    return body
