"""The analytic ray caster of the built-in datasets: hits lie on the primitives' surfaces with outward normals and
misses never enter them; a room is hit from inside with inward normals; the nearest of several primitives wins;
point lights cast hard shadows; adaptive anti-aliasing agrees with full supersampling."""

import math

import pytest
import torch

from splat_apps.synthetic import raycast
from splat_apps.synthetic.raycast import BOX, CYLINDER, ELLIPSOID, HIT_FUNCTIONS, ROOM, Light, Primitives, Scene
from splat_render import intrinsics, look_at


@pytest.mark.parametrize("kind", [ELLIPSOID, BOX, CYLINDER])
def test_ray_hits_lie_on_the_surface_with_outward_normals_and_misses_never_enter(kind: int) -> None:
    generator = torch.Generator().manual_seed(kind)
    sizes = torch.tensor([0.3, 0.2, 0.15])
    origins = torch.nn.functional.normalize(torch.randn(4000, 3, generator=generator), dim=-1) * 1.2
    targets = (torch.rand(4000, 3, generator=generator) - 0.5) * 0.8
    directions = (targets - origins) * (0.5 + torch.rand(4000, 1, generator=generator))
    t, normals = HIT_FUNCTIONS[kind](origins, directions, sizes)
    hit = torch.isfinite(t)
    assert 0.2 < hit.float().mean() < 0.95
    q = (origins + t.nan_to_num(posinf=0)[:, None] * directions)[hit] / sizes
    level = {
        ELLIPSOID: q.norm(dim=-1),
        BOX: q.abs().amax(dim=-1),
        CYLINDER: torch.maximum(q[:, :2].norm(dim=-1), q[:, 2].abs()),
    }[kind]
    torch.testing.assert_close(level, torch.ones_like(level), atol=1e-4, rtol=0)
    assert ((normals[hit] * directions[hit]).sum(-1) < 0).all()
    steps = torch.linspace(0, 3, 600)
    samples = (origins[~hit, None] + steps[:, None] * directions[~hit, None]) / sizes
    inside = {
        ELLIPSOID: samples.norm(dim=-1) < 1 - 1e-3,
        BOX: samples.abs().amax(dim=-1) < 1 - 1e-3,
        CYLINDER: torch.maximum(samples[..., :2].norm(dim=-1), samples[..., 2].abs()) < 1 - 1e-3,
    }[kind]
    assert not inside.any()


def test_a_room_is_hit_from_inside_on_its_walls_with_inward_normals() -> None:
    generator = torch.Generator().manual_seed(0)
    sizes = torch.tensor([3.0, 2.0, 1.5])
    origins = (torch.rand(2000, 3, generator=generator) - 0.5) * sizes
    directions = torch.randn(2000, 3, generator=generator)
    t, normals = HIT_FUNCTIONS[ROOM](origins, directions, sizes)
    assert torch.isfinite(t).all() and (t > 0).all()
    points = origins + t[:, None] * directions
    torch.testing.assert_close((points.abs() / sizes).amax(dim=-1), torch.ones(2000), atol=1e-4, rtol=0)
    assert ((normals * directions).sum(-1) < 0).all()  # facing the ray, i.e. into the room
    outside, _ = HIT_FUNCTIONS[ROOM](origins + 10.0, directions, sizes)
    assert torch.isinf(outside).all()


def _two_boxes(offset: float) -> Primitives:
    return Primitives(
        kinds=torch.tensor([BOX, BOX]),
        centers=torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, offset]]),
        rotations=torch.eye(3).expand(2, 3, 3).clone(),
        sizes=torch.full((2, 3), 0.2),
    )


def test_the_nearest_primitive_wins_and_local_points_are_in_its_frame() -> None:
    origins = torch.tensor([[0.0, 0.0, 2.0], [0.0, 0.0, -2.0]])
    directions = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, 1.0]])
    hits = raycast.intersect(_two_boxes(0.6), origins, directions)
    assert hits.primitive.tolist() == [1, 0]
    torch.testing.assert_close(hits.t, torch.tensor([1.2, 1.8]))
    torch.testing.assert_close(hits.local_points, torch.tensor([[0.0, 0.0, 0.2], [0.0, 0.0, -0.2]]))


def test_a_point_light_casts_hard_shadows_only_when_asked() -> None:
    primitives = Primitives(
        kinds=torch.tensor([ROOM, BOX]),
        centers=torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 0.5]]),
        rotations=torch.eye(3).expand(2, 3, 3).clone(),
        sizes=torch.tensor([[2.0, 2.0, 1.0], [0.3, 0.3, 0.3]]),
    )
    white = lambda hits, points: torch.ones_like(points)
    origins = torch.tensor([[0.0, 0.0, 1.5], [1.5, 0.0, 1.5]])
    directions = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0]])  # the floor below the box, and beside it
    hits = raycast.intersect(primitives, origins, directions)
    points = origins + hits.t[:, None] * directions
    lit = raycast.shade(Scene(primitives, white, Light(position=(0.0, 0.0, 1.9))), hits, points, directions)
    shadowed = raycast.shade(
        Scene(primitives, white, Light(position=(0.0, 0.0, 1.9), shadows=True)), hits, points, directions
    )
    assert hits.primitive.tolist() == [1, 0]  # the box top, the floor
    torch.testing.assert_close(shadowed, lit)  # nothing between either point and the light
    floor = torch.tensor([[0.2, 0.0, 1.5]]), torch.tensor([[0.0, 0.0, -1.0]])
    under = raycast.intersect(
        Primitives(*(getattr(primitives, n)[:1] for n in ("kinds", "centers", "rotations", "sizes"))), *floor
    )
    point = floor[0] + under.t[:, None] * floor[1]
    dark = raycast.shade(
        Scene(primitives, white, Light(position=(0.0, 0.0, 1.9), shadows=True)), under, point, floor[1]
    )
    torch.testing.assert_close(dark, torch.full((1, 3), 0.35))  # ambient only: the box blocks the light


def _object_scene() -> Scene:
    primitives = Primitives(
        kinds=torch.tensor([ELLIPSOID, BOX, CYLINDER]),
        centers=torch.tensor([[0.0, 0.0, 0.0], [0.2, 0.1, 0.1], [-0.2, 0.0, -0.1]]),
        rotations=torch.eye(3).expand(3, 3, 3).clone(),
        sizes=torch.tensor([[0.3, 0.2, 0.2], [0.1, 0.1, 0.1], [0.08, 0.08, 0.2]]),
    )
    colours = torch.tensor([[0.8, 0.2, 0.1], [0.1, 0.6, 0.2], [0.2, 0.2, 0.9]])
    return Scene(
        primitives, lambda hits, points: colours[hits.primitive.clamp(min=0)], Light(direction=(0.4, 0.3, 0.9))
    )


def _orbit(views: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    angles = torch.linspace(0, 2 * math.pi, views + 1, dtype=torch.float64)[:-1]
    eye = 1.3 * torch.stack([angles.cos(), angles.sin(), torch.full_like(angles, 0.5)], dim=-1)
    poses = look_at(eye, torch.zeros_like(eye), torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand_as(eye))
    return poses, intrinsics(size * 1.0, size * 1.0, size / 2, size / 2).expand(views, 3, 3)


def test_adaptive_antialiasing_agrees_with_full_supersampling() -> None:
    poses, K = _orbit(4, 48)
    scene = _object_scene()
    full = raycast.render_scene(scene, poses, K, 48, 48, supersampling=3, adaptive=False).rgb
    adaptive = raycast.render_scene(scene, poses, K, 48, 48, supersampling=3).rgb
    aliased = raycast.render_scene(scene, poses, K, 48, 48, supersampling=1).rgb
    assert (adaptive - full).abs().mean() < 0.05 * (aliased - full).abs().mean()


def test_depth_is_the_camera_depth_of_the_surface_and_inf_on_background() -> None:
    poses, K = _orbit(2, 16)
    render = raycast.render_scene(_object_scene(), poses, K, 16, 16, supersampling=1)
    assert torch.isinf(render.depth[:, 0, 0]).all() and (render.rgb[:, :, 0, 0] == 1).all()
    seen = render.depth[torch.isfinite(render.depth)]
    assert seen.numel() > 0 and seen.min() > 1.3 - 0.31 and seen.max() < 1.3 + 0.31
