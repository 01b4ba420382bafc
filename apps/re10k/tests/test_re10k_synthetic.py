"""The synthetic generator: its scenes described to the shared ray caster (room, objects, textures, light),
deterministic scenes, camera paths inside the room with overlapping views, and the files in both layouts. The caster
is tested in packages/splat-apps/tests/test_raycast.py, the cache's publishing in apps/srn/tests."""

import json
import math
import re
from dataclasses import replace

import numpy as np
import pytest
import torch
from re10k_testdata import SMALL, reproject

from app_re10k.data import pixel_intrinsics
from app_re10k.protocol import read_split
from app_re10k.synthetic import (
    TEXTURES,
    Box,
    Scene,
    Sphere,
    SyntheticOptions,
    Texture,
    _footprint_distance,
    _yaw,
    generate_scene,
    main,
    render_depth,
    surface_coordinates,
)
from splat_apps.synthetic import raycast
from splat_apps.synthetic.cache import MARKER
from splat_render import look_at

FLAT = Texture("checker", np.array([[0.8, 0.8, 0.8], [0.2, 0.2, 0.2]]), 0.5, 0.0, np.zeros((8, 8)))


def room(*objects: Box | Sphere, faces: tuple[Texture, ...] = (FLAT,) * 6) -> Scene:
    return Scene(
        half_extent=np.array([3.0, 2.0]),
        height=2.5,
        faces=faces,
        boxes=tuple(o for o in objects if isinstance(o, Box)),
        spheres=tuple(o for o in objects if isinstance(o, Sphere)),
        light=np.array([0.0, 0.0, 2.2]),
    )


def cast(scene: Scene, origins, directions) -> tuple[raycast.Hits, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hits, texture slots, edge labels and shaded colours of rays [n, 3] through `scene.described()`."""
    described = scene.described()
    origins, directions = torch.tensor(origins, dtype=torch.float32), torch.tensor(directions, dtype=torch.float32)
    hits = raycast.intersect(described.primitives, origins, directions)
    points = origins + hits.t[:, None] * directions
    slot = surface_coordinates(described.primitives, hits, points)[0]
    colour = raycast.shade(described, hits, points, directions)
    return hits, slot, described.label(hits, points), colour


def test_the_room_and_its_objects_are_where_the_scene_says_with_a_texture_and_label_per_face_and_shadows() -> None:
    scene = room(
        Sphere(np.array([1.0, 1.0, 1.0]), 0.5, FLAT), Box(np.array([-1.5, 0, 0.4]), np.ones(3) * 0.4, 0.3, FLAT)
    )
    origins = [[0, 0, 1.5], [0, 0, 1.5], [0.4, -1, 1], [1, -1, 1], [1, 1, 2], [-1.5, 0, 1.5], [-1.5, -1.2, 0.4]]
    directions = [[0, 0, -1.0], [2.0, 0, 0], [0, 1.0, 0], [0, 0.5, 0], [0, 0, 1.0], [0, 0, -1.0], [0, 1.0, 0]]
    hits, slot, label, colour = cast(scene, origins, directions)
    # floor 1.5 below; wall x = 3 at 3 m with a direction of length 2; wall y = 2 just past the sphere's edge;
    # sphere surface 1.5 m ahead = 3 units of a half-length direction; ceiling above the sphere; box top at z = 0.8;
    # the box's side yawed by 0.3 rad, 0.4 / cos(0.3) from its centre along y
    expected = torch.tensor([1.5, 1.5, 3.0, 3.0, 0.5, 0.7, 1.2 - 0.4 / math.cos(0.3)])
    torch.testing.assert_close(hits.t, expected, rtol=1e-5, atol=0)
    assert slot.tolist() == [4, 1, 3, 7, 5, 6, 6]  # floor, wall x+, wall y+, sphere, ceiling, box (objects: 6 + i)
    assert len(set(label.tolist())) == 7  # every face seen is its own label, so its edges get supersampled
    assert (colour >= 0).all() and (colour <= 1).all()
    lit = cast(room(), [[0.0, 0.0, 1.0]], [[0.0, 0.0, -1.0]])[3]  # the floor under the light, then behind a sphere
    shadowed = cast(room(Sphere(np.array([0.0, 0.0, 1.8]), 0.2, FLAT)), [[0.3, 0.0, 1.0]], [[-0.3, 0.0, -1.0]])[3]
    assert shadowed.sum() < 0.6 * lit.sum()


@pytest.mark.parametrize("kind", TEXTURES)
def test_textures_stick_to_the_objects_and_vary_on_them(kind: str) -> None:
    """A point given in an object's frame has the same albedo wherever the object stands and however a box is yawed
    (the texture moves with the object); different points of a face differ."""
    rng = np.random.default_rng(3)
    texture = Texture(kind, np.array([[0.9, 0.7, 0.2], [0.1, 0.2, 0.6]]), 0.4, 0.7, rng.uniform(size=(8, 8)))
    half = np.array([0.3, 0.4, 0.5])
    local = np.stack([np.full(50, 0.3), rng.uniform(-0.4, 0.4, 50), rng.uniform(-0.5, 0.5, 50)], axis=1)  # face x+
    seen = []
    for centre, yaw in [((0.5, 0.5, 0.5), 0.0), ((-1.0, 0.3, 0.6), 2.0)]:
        rotation = _yaw(yaw)
        world = torch.tensor(local @ rotation.T + centre, dtype=torch.float32)
        outward = torch.tensor(rotation[:, 0], dtype=torch.float32).expand_as(world)
        described = room(Box(np.array(centre), half, yaw, texture)).described()
        hits = raycast.intersect(described.primitives, world + 0.2 * outward, -outward)
        assert (hits.primitive == 1).all()
        seen.append(described.albedo(hits, world))
    torch.testing.assert_close(seen[0], seen[1], atol=1e-4, rtol=0)
    assert seen[0].std(dim=0).max() > 0.05
    sphere_seen = []
    for centre in [(1.0, 1.0, 1.0), (-2.0, 0.5, 0.5)]:
        described = room(Sphere(np.array(centre), 0.3, texture)).described()
        directions = torch.tensor(np.c_[np.cos(np.arange(8)), np.sin(np.arange(8)), np.linspace(-0.5, 0.5, 8)])
        directions = torch.nn.functional.normalize(directions.float(), dim=-1)
        surface = torch.tensor(centre, dtype=torch.float32) + 0.3 * directions
        hits = raycast.intersect(described.primitives, surface + 0.1 * directions, -directions)
        sphere_seen.append(described.albedo(hits, hits.local_points + torch.tensor(centre, dtype=torch.float32)))
    torch.testing.assert_close(sphere_seen[0], sphere_seen[1], atol=1e-4, rtol=0)


def test_frames_are_opencv_views_of_the_room_and_adaptive_supersampling_matches_the_full_one() -> None:
    """From the room centre looking along +x (z up): the x+ wall is 3 m deep at the image centre and a sphere on the
    camera's right (world -y) shows in the right half. The adaptive anti-aliasing catches the texture and face edges:
    it is within a few thousandths of supersampling every pixel."""
    colours, kinds = np.array([[0.8, 0.6, 0.3], [0.2, 0.3, 0.5]]), [*TEXTURES, "checker"]
    faces = tuple(
        Texture(k, colours, 0.4, 0.5, np.random.default_rng(i).uniform(size=(8, 8))) for i, k in enumerate(kinds)
    )
    scene = room(Sphere(np.array([2.0, -1.0, 1.0]), 0.3, faces[0]), faces=faces)
    eye, forward, up = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)[:, None]
    c2w = look_at(eye, eye + forward, up)
    K = pixel_intrinsics(torch.tensor([[[0.5, 0, 0.5], [0, 0.75, 0.5], [0, 0, 1.0]]]), 24, 36)
    depth = render_depth(scene, c2w, K, 24, 36)[0]
    torch.testing.assert_close(depth[11:13, 17:19], torch.full((2, 2), 3.0), rtol=1e-5, atol=0)
    nearer = depth < render_depth(room(faces=faces), c2w, K, 24, 36)[0] - 0.1  # the sphere
    assert nearer.any() and (nearer.nonzero()[:, 1] >= 18).all()
    adaptive = raycast.render_scene(scene, c2w, K, 24, 36, 3).rgb
    full = raycast.render_scene(scene.described(), c2w, K, 24, 36, 3, adaptive=False).rgb
    assert (adaptive - full).abs().mean() < 0.003


def test_scenes_are_deterministic_per_seed_and_independent_of_the_scene_count() -> None:
    options = replace(SMALL, frames=6)
    first = generate_scene(options, "train", 1)
    again = generate_scene(replace(options, train_scenes=7), "train", 1)
    other = generate_scene(replace(options, seed=1), "train", 1)
    assert first.key == again.key and torch.equal(first.images, again.images)
    assert first.key != other.key and not torch.equal(first.images, other.images)


def visible_fraction(generated, source: int, target: int, height: int, width: int) -> float:
    """Fraction of the source frame's pixels whose surface point is seen (unoccluded) in the target frame."""
    c2w, K = generated.path.cam_to_world, pixel_intrinsics(generated.path.intrinsics, height, width).double()
    depth = render_depth(generated.scene, c2w[[source, target]], K[[source, target]], height, width).numpy()
    source_to_target = torch.linalg.inv(c2w[target]) @ c2w[source]
    u, v, z = reproject(depth[0], K[source].numpy(), K[target].numpy(), source_to_target.numpy())
    inside = (z > 0.05) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
    seen = depth[1][np.clip(v, 0, height - 1).astype(int), np.clip(u, 0, width - 1).astype(int)]
    return float((inside & (np.abs(seen - z) < 0.05 * z)).mean())


def test_the_camera_walks_inside_the_room_away_from_objects_and_frames_30_apart_share_the_view() -> None:
    fractions = []
    for split, index in [("train", 0), ("train", 1), ("train", 2), ("test", 0), ("test", 1)]:
        generated = generate_scene(replace(SMALL, height=4, width=6), split, index)
        centres = generated.path.cam_to_world[:, :3, 3].numpy()
        hx, hy = generated.scene.half_extent
        assert (np.abs(centres[:, 0]) < hx - 1.0).all() and (np.abs(centres[:, 1]) < hy - 1.0).all()
        assert ((centres[:, 2] > 1.3) & (centres[:, 2] < generated.scene.height - 0.8)).all()
        assert len(generated.scene.objects) >= 3
        for obj in generated.scene.objects:
            assert _footprint_distance(centres[:, :2], obj).min() >= 0.5
            reach = np.linalg.norm(obj.half_size[:2]) if isinstance(obj, Box) else obj.radius
            assert (np.abs(obj.centre[:2]) + reach < generated.scene.half_extent).all()
        steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
        assert steps.max() < 0.06 and steps.min() > 0.005  # a smooth walk: steps of a few centimetres, never a jump
        for source in range(0, 10, 3):
            fractions += [visible_fraction(generated, source, source + 30, 24, 36)]
            fractions += [visible_fraction(generated, source + 30, source, 24, 36)]
    assert min(fractions) > 0.15 and np.mean(fractions) > 0.25


def test_frames_show_varied_texture(sequence) -> None:
    for index in (0, 20, 39):
        image = sequence.image(index, None)
        assert image.std() > 0.08  # not a flat colour
        assert image.reshape(3, -1).std(dim=1).min() > 0.03  # every channel varies


def test_generated_dataset_has_every_layout_and_a_valid_split(small_dataset) -> None:
    root = small_dataset.root
    assert re.fullmatch("re10k-[0-9a-f]{12}", root.name) and root.name == SMALL.key() != replace(SMALL, seed=1).key()
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["options"]["frames"] == SMALL.frames and (root / MARKER).is_file()
    for split in ("train", "test"):
        index = json.loads((small_dataset.chunks / split / "index.json").read_text())
        assert list(index) == manifest["scenes"][split] and len(index) == SMALL.scenes(split)
        assert len(set(index.values())) == math.ceil(SMALL.scenes(split) / SMALL.scenes_per_chunk)
    counts = small_dataset.open("test").frame_counts()
    assert small_dataset.open("test", "txt").frame_counts() == counts  # the txt layout (compared in test_re10k_readers)
    rows = read_split(small_dataset.split_file, counts)
    assert len(rows) == manifest["split_rows"] == len(counts) * 3  # sources 0, 10, 20 of 40 frames (src + 10 < 40)


def test_the_command_line_generates_into_the_given_cache_and_options_are_validated(tmp_path, capsys) -> None:
    argv = ["--height", "8", "--width", "12", "--train-scenes", "1", "--test-scenes", "1", "--frames", "12"]
    assert main([*argv, "--no-write-txt", "--cache-dir", str(tmp_path)]) == 0
    options = SyntheticOptions(height=8, width=12, train_scenes=1, test_scenes=1, frames=12, write_txt=False)
    assert str(tmp_path / options.key()) in capsys.readouterr().out
    assert (tmp_path / options.key() / MARKER).is_file() and not (tmp_path / options.key() / "txt").exists()
    with pytest.raises(ValueError, match="frames"):
        SyntheticOptions(frames=0)
    with pytest.raises(ValueError, match="jpeg_quality"):
        SyntheticOptions(jpeg_quality=101)
