"""Procedural object categories for the built-in SRN-format data: toy cars and chairs.

A category is what makes single-view reconstruction learnable: every object is one of a family (shared parts and
proportions, mirror symmetry), so the hidden side is mostly predictable from the visible one — the property of
ShapeNet cars that the paper's student exploits. A little ambiguity is left on purpose: decals (a car's side stripe,
a chair's back panel) appear on either side, both or neither, independently, so a view of one side says nothing
about the other side's decal and samples have something to differ on.

Objects are in canonical pose (world z up; a car's length and a chair's seat depth along x, its width along y),
centred on the origin and scaled so that their bounding sphere has a radius in [0.40, 0.48], which keeps every
surface within SRN cars' depth range [0.8, 1.8] from cameras at distance 1.3.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from splat_apps.synthetic import raycast
from splat_apps.synthetic.palette import PAINTS
from splat_apps.synthetic.raycast import BOX, CYLINDER, ELLIPSOID

CATEGORIES = ("cars", "chairs")
RADIUS_RANGE = (0.40, 0.48)
LIGHT_DIRECTION = (0.4, 0.3, 0.866)  # towards the light, world frame
AMBIENT = 0.35
DECALS = np.array([[0.95, 0.95, 0.95], [0.08, 0.08, 0.08], [0.95, 0.80, 0.10], [0.10, 0.65, 0.85]])
WOODS = np.array([[0.45, 0.29, 0.16], [0.62, 0.45, 0.27], [0.28, 0.18, 0.11], [0.80, 0.70, 0.55]])


@dataclass(frozen=True)
class Decal:
    """A painted panel on primitive `part`: where its local coordinate `axis` is beyond 0.95 of the half extent on
    the side(s) `sides` (+1, -1), and its local coordinate `band_axis` lies in `band` (in units of the half
    extent)."""

    part: int
    axis: int
    sides: tuple[int, ...]
    band_axis: int
    band: tuple[float, float]
    colour: tuple[float, float, float]


@dataclass(frozen=True)
class CategoryObject:
    """Primitives with one colour each, and decals painted on some of them."""

    primitives: raycast.Primitives
    colours: Float[Tensor, "primitives 3"]
    decals: tuple[Decal, ...]

    def decal_mask(self, hits: raycast.Hits) -> Int[Tensor, " rays"]:
        """1 + the index of the decal each hit lies on, 0 elsewhere."""
        mask = torch.zeros_like(hits.primitive)
        sizes = self.primitives.sizes[hits.primitive.clamp(min=0)]
        local = hits.local_points / sizes  # in units of the half extents
        for index, decal in enumerate(self.decals):
            on_part = hits.primitive == decal.part
            side = torch.zeros_like(on_part)
            for sign in decal.sides:
                side |= sign * local[:, decal.axis] > 0.95
            band = (local[:, decal.band_axis] >= decal.band[0]) & (local[:, decal.band_axis] <= decal.band[1])
            mask = torch.where(on_part & side & band, index + 1, mask)
        return mask

    def described(self) -> raycast.Scene:
        """The scene for the ray caster: per-part colours with decals, the fixed light, white background; edges also
        along decal borders."""
        decal_colours = torch.tensor([d.colour for d in self.decals] or [[0.0, 0.0, 0.0]], dtype=torch.float32)

        def albedo(hits: raycast.Hits, points: Tensor) -> Tensor:
            base = self.colours[hits.primitive.clamp(min=0)]
            mask = self.decal_mask(hits)
            return torch.where((mask > 0)[:, None], decal_colours[(mask - 1).clamp(min=0)], base)

        def label(hits: raycast.Hits, points: Tensor) -> Tensor:
            return hits.primitive * (len(self.decals) + 1) + self.decal_mask(hits)

        light = raycast.Light(direction=LIGHT_DIRECTION, ambient=AMBIENT)
        return raycast.Scene(self.primitives, albedo, light, 1.0, label)


def _jitter(rng: np.random.Generator, colour: np.ndarray, amount: float = 0.05) -> np.ndarray:
    return np.clip(colour + rng.uniform(-amount, amount, size=3), 0.02, 0.98)


def _axis_y() -> np.ndarray:
    """Rotation whose local z axis is world y (a wheel's axle)."""
    return np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


def _sides(rng: np.random.Generator) -> tuple[int, ...]:
    """Left, right, both or neither, independently per side."""
    return tuple(sign for sign in (1, -1) if rng.uniform() < 0.5)


def toy_car(rng: np.random.Generator) -> tuple[list, list[Decal]]:
    """Body, cabin (a box or a dome), four wheels with hubcaps; mirror-symmetric about the xz plane."""
    length, width = rng.uniform(0.62, 0.86), rng.uniform(0.30, 0.40)
    body_height, wheel = rng.uniform(0.10, 0.16), rng.uniform(0.065, 0.095)
    cabin_length, cabin_height = length * rng.uniform(0.40, 0.62), rng.uniform(0.09, 0.15)
    cabin_x = length * rng.uniform(-0.14, 0.06)
    body_z = wheel * rng.uniform(0.8, 1.1) + body_height / 2
    paint = _jitter(rng, PAINTS[rng.integers(len(PAINTS))])
    glass = np.array([0.16, 0.19, 0.24]) if rng.uniform() < 0.7 else _jitter(rng, paint * 0.8)
    tyre, hub = np.array([0.12, 0.12, 0.13]), _jitter(rng, np.array([0.72, 0.72, 0.74]))
    parts = [(BOX, [0.0, 0.0, body_z], np.eye(3), [length / 2, width / 2, body_height / 2], paint)]
    if rng.uniform() < 0.5:
        cabin = (BOX, [cabin_x, 0.0, body_z + (body_height + cabin_height) / 2], np.eye(3))
        parts.append((*cabin, [cabin_length / 2, width * 0.43, cabin_height / 2], glass))
    else:  # a dome half sunk into the body
        cabin = (ELLIPSOID, [cabin_x, 0.0, body_z + body_height / 2], np.eye(3))
        parts.append((*cabin, [cabin_length / 2, width * 0.42, cabin_height * 1.3], glass))
    axle_x = length / 2 - wheel * rng.uniform(1.2, 1.6)
    for x in (axle_x, -axle_x):
        for y in (width / 2, -width / 2):
            parts.append((CYLINDER, [x, y, wheel], _axis_y(), [wheel, wheel, 0.035], tyre))
            parts.append((CYLINDER, [x, y + math.copysign(0.03, y), wheel], _axis_y(), [wheel * 0.5] * 2 + [0.01], hub))
    low = rng.uniform(-0.4, 0.1)
    stripe = Decal(0, 1, _sides(rng), 2, (low, low + rng.uniform(0.3, 0.6)), tuple(DECALS[rng.integers(len(DECALS))]))
    return parts, [stripe]


def toy_chair(rng: np.random.Generator) -> tuple[list, list[Decal]]:
    """Seat, backrest, four legs, armrests on some; mirror-symmetric about the xz plane."""
    width, depth = rng.uniform(0.34, 0.46), rng.uniform(0.32, 0.44)
    seat_z, seat_t = rng.uniform(0.22, 0.32), rng.uniform(0.035, 0.06)
    back_height, back_t = rng.uniform(0.22, 0.38), rng.uniform(0.025, 0.05)
    leg = rng.uniform(0.018, 0.03)
    wood = _jitter(rng, WOODS[rng.integers(len(WOODS))])
    fabric = _jitter(rng, PAINTS[rng.integers(len(PAINTS))])
    parts = [(BOX, [0.0, 0.0, seat_z], np.eye(3), [depth / 2, width / 2, seat_t / 2], fabric)]
    back_x = -depth / 2 + back_t / 2
    parts.append(
        (
            BOX,
            [back_x, 0.0, seat_z + seat_t / 2 + back_height / 2],
            np.eye(3),
            [back_t / 2, width / 2, back_height / 2],
            fabric if rng.uniform() < 0.5 else wood,
        )
    )
    round_legs = rng.uniform() < 0.5
    for x in (depth / 2 - leg * 1.5, -depth / 2 + leg * 1.5):
        for y in (width / 2 - leg * 1.5, -width / 2 + leg * 1.5):
            size = [leg, leg, (seat_z - seat_t / 2) / 2]
            parts.append((CYLINDER if round_legs else BOX, [x, y, size[2]], np.eye(3), size, wood))
    if rng.uniform() < 0.4:
        arm_z = seat_z + rng.uniform(0.10, 0.16)
        for y in (width / 2, -width / 2):
            parts.append((BOX, [0.0, y, arm_z], np.eye(3), [depth / 2, 0.02, 0.015], wood))
    panel = Decal(1, 0, _sides(rng), 2, (-0.7, 0.7), tuple(DECALS[rng.integers(len(DECALS))]))
    return parts, [panel]


MAKERS = {"cars": toy_car, "chairs": toy_chair}


def sample_object(category: str, rng: np.random.Generator) -> CategoryObject:
    """A random object of `category`, centred on the origin (bounding box centre) and scaled to a bounding-sphere
    radius in RADIUS_RANGE."""
    if category not in MAKERS:
        raise ValueError(f"category must be one of {CATEGORIES}, got {category!r}")
    parts, decals = MAKERS[category](rng)
    kinds = torch.tensor([p[0] for p in parts], dtype=torch.long)
    centers = torch.tensor(np.array([p[1] for p in parts]), dtype=torch.float32)
    rotations = torch.tensor(np.stack([p[2] for p in parts]), dtype=torch.float32)
    sizes = torch.tensor(np.array([p[3] for p in parts]), dtype=torch.float32)
    colours = torch.tensor(np.stack([p[4] for p in parts]), dtype=torch.float32)
    extent = raycast.primitive_radii(kinds, sizes)[:, None]
    middle = ((centers - extent).amin(dim=0) + (centers + extent).amax(dim=0)) / 2
    primitives = raycast.Primitives(kinds, centers - middle, rotations, sizes)
    scale = float(rng.uniform(*RADIUS_RANGE)) / raycast.bounding_radius(primitives)
    primitives = raycast.Primitives(kinds, primitives.centers * scale, rotations, sizes * scale)
    return CategoryObject(primitives, colours, tuple(decals))
