"""Each reusable package stands alone: built as a wheel and installed into an empty virtual environment with
only its declared dependencies (versions pinned to uv.lock) and the workspace packages below it, it imports and does
its job. splat-train in particular trains without the app toolkit, a CLI framework, a console or image I/O."""

import pathlib
import shutil
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

SMOKE = {
    "splat-render": """
        import torch
        from splat_render import Cameras, Gaussians, intrinsics, render
        g = Gaussians(means=torch.tensor([[[0.0, 0.0, 2.0]]]), quats=torch.tensor([[[1.0, 0, 0, 0]]]),
                      scales=torch.full((1, 1, 3), 0.1), opacities=torch.tensor([[0.9]]), sh=torch.zeros(1, 1, 1, 3))
        cams = Cameras(torch.eye(4)[None, None], intrinsics(16.0, 16.0, 7.5, 7.5)[None, None], 16, 16)
        out = render(g, cams, background=0.0)
        assert out.rgb.shape == (1, 1, 3, 16, 16) and abs(out.alpha.max() - 0.9) < 1e-5, out.alpha.max()
        print("rendered", float(out.alpha.max()))
    """,
    "splat-diffusion": """
        import torch
        from splat_diffusion import Schedule, ddim_timesteps, q_sample, sdedit_start, timestep_weights, unrolled_ddim
        schedule = Schedule.linear(100)
        g = torch.Generator().manual_seed(0)
        x0, noise = torch.randn(2, 24, 8, 8, generator=g), torch.randn(2, 24, 8, 8, generator=g)
        timesteps = ddim_timesteps(schedule, num_steps=10, t_start=60)
        oracle = lambda x_t, t: x0  # a perfect denoiser: DDIM with eta = 0 must return x0 exactly
        traj = unrolled_ddim(oracle, sdedit_start(schedule, x0, 60, noise), timesteps, schedule)
        assert traj.xs.shape == (11, 2, 24, 8, 8), traj.xs.shape
        assert torch.allclose(traj.sample, x0, atol=1e-5), (traj.sample - x0).abs().max()
        assert torch.allclose(traj.xs[5], q_sample(schedule, x0, timesteps[5], noise), atol=1e-5)
        print("ddim", timesteps.tolist(), float((traj.sample - x0).abs().max()), timestep_weights(schedule, timesteps))
    """,
    "splat-train": """
        import importlib.util, tempfile
        import torch
        from splat_render import Cameras, intrinsics, look_at
        from splat_teachers import SplatterImage, UNetConfig, splatter_image_preset
        from splat_train import BootstrapConfig, DiffusionConfig, GaussianDenoiser, LoopConfig, StudentConfig
        from splat_train import ViewBatch, bootstrap
        for absent in ("splat_apps", "tyro", "rich", "PIL", "imageio", "torchvision", "lpips"):
            assert importlib.util.find_spec(absent) is None, absent
        teacher = SplatterImage(splatter_image_preset("tiny"), generator=torch.Generator().manual_seed(0))
        unet = UNetConfig(resolution=32, in_channels=27, out_channels=24, model_channels=8, channel_mult=(1, 2),
                          num_blocks=1, attn_resolutions=(), noise_embedding=True, dropout=0.0)
        student = GaussianDenoiser(StudentConfig(unet=unet), teacher.map_spec)
        c2w = look_at(torch.tensor([0.3, 0.0, -0.2]), torch.tensor([0.0, 0.0, 1.3]), torch.tensor([0.0, -1.0, 0.0]))
        K = intrinsics(32.0, 32.0, 16.0, 16.0)
        source = Cameras(torch.eye(4)[None, None], K[None, None], 32, 32)
        targets = Cameras.from_cam_to_world(c2w[None, None], K[None, None], 32, 32)
        batch = ViewBatch(torch.rand(1, 3, 32, 32), source, torch.rand(1, 1, 3, 32, 32), targets)

        class Source:
            num_items, batch_size = 1, 1
            def make_batch(self, items, seeds):
                return batch

        loop = LoopConfig(max_steps=1, progress=False, ema_start=0)
        with tempfile.TemporaryDirectory() as run_dir:
            result = bootstrap(student, teacher, Source(), BootstrapConfig(loop=loop), run_dir,
                               diffusion=DiffusionConfig(), background=(1.0, 1.0, 1.0))
        assert result.steps == 1 and torch.isfinite(torch.tensor(result.final_loss)), result
        print("bootstrap step", result.final_loss)
    """,
}
# the workspace packages each one is installed with (built as wheels too)
WORKSPACE = {
    "splat-render": [],
    "splat-diffusion": [],
    "splat-train": ["splat-render", "splat-diffusion", "splat-teachers"],
}


def _run(*args: str, cwd: pathlib.Path | None = None) -> str:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("package", sorted(SMOKE))
def test_package_installs_and_runs_alone(package: str, tmp_path: pathlib.Path) -> None:
    uv = shutil.which("uv")
    assert uv is not None, "this test needs `uv` on PATH (it builds the wheel and the empty environment)"
    for name in [package, *WORKSPACE[package]]:
        _run(uv, "build", "--package", name, "--wheel", "--out-dir", str(tmp_path / "dist"), cwd=ROOT)
    wheels = sorted(str(wheel) for wheel in (tmp_path / "dist").glob("*.whl"))
    assert len(wheels) == 1 + len(WORKSPACE[package]), wheels
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(
        _run(
            uv,
            "export",
            "--package",
            package,
            "--no-hashes",
            "--no-emit-workspace",
            "--frozen",
            "--no-header",
            "--no-annotate",
            cwd=ROOT,
        )
    )
    venv = tmp_path / "venv"
    _run(uv, "venv", "--python", sys.executable, str(venv))
    python = venv / "bin" / "python"
    _run(uv, "pip", "install", "--python", str(python), "--constraints", str(constraints), *wheels)
    installed = _run(uv, "pip", "freeze", "--python", str(python))
    ours = {"splat-render", "splat-diffusion", "splat-teachers", "splat-train", "splat-apps", "lesson-splats"}
    others = ours - {package, *WORKSPACE[package]}
    assert not any(line.split("==")[0].split(" @ ")[0] in others for line in installed.splitlines()), installed
    out = _run(str(python), "-c", textwrap.dedent(SMOKE[package]), cwd=tmp_path)
    assert out.strip()
