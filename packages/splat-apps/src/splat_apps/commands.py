"""The three commands every app has — `train.py`, `eval.py` and `sample.py` — written once against the app contract
(`splat_apps.contract.App`). An app's entry scripts are a few lines: `sys.exit(train_main(APP, __doc__))`.

* `train`: parse the experiment (`--preset`, every field a flag), write `config.json` (refusing another experiment
  in the same run directory), train teacher → stage 1 → stage 2 (resuming what is done), evaluate, print the table.
  Runs unchanged under torchrun (rank 0 alone prints, writes and evaluates).
* `eval`: re-evaluate a run directory, with the app's eval options as flags (defaults: the run's).
* `sample`: N student samples (and the teacher's prediction) of one input → `.ply` files, animations, an overview.
"""

import sys
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch
import tyro
from rich.console import Console

from splat_render import Cameras, Gaussians, render
from splat_render.ply import save_ply
from splat_train import NonFiniteLossError, TrainingStopped, distributed, run_stages
from splat_train.perceptual import LPIPSWeightsMissing, load_lpips

from .cli import parse_experiment
from .contract import App
from .evaluation import EvalResult, evaluate, predict, print_tables
from .experiment import build_student, check_experiment, load_trained_models, prepare_device
from .progress import ProgressDisplay
from .run_dir import load_run_config, save_run_config
from .run_lock import run_directory_lock
from .tensorboard import TensorBoardLog
from .visualize import check_animation_format, save_animation, save_image_grid

T = TypeVar("T")


def teacher_lpips_model(experiment: Any, *, train_the_teacher: bool) -> torch.nn.Module | None:
    """LPIPS-VGG for the teacher stage's LPIPS phase, when this run trains the teacher and the phase is on (else
    None); missing VGG16 weights become a ValueError that says how to skip the phase."""
    stage, config = experiment.stage, experiment.teacher
    if not train_the_teacher or stage not in ("all", "teacher") or config.lpips_start_step is None:
        return None
    try:
        return load_lpips().to(experiment.device)
    except LPIPSWeightsMissing as error:
        raise ValueError(f"{error} (or pass --teacher.lpips-start-step None)") from None


def run_evaluation(app: App, experiment: Any, data: Any, teacher, student, console: Console) -> tuple[EvalResult, Path]:
    """Evaluate on the app's protocol; tables and pictures go to `<run_dir>/eval/<split>/`."""
    protocol = app.protocol(experiment, data)
    out_dir = Path(experiment.run_dir) / "eval" / experiment.eval.split
    schedule = experiment.diffusion.make_schedule().to(experiment.device)
    result = evaluate(
        protocol,
        teacher,
        student,
        schedule,
        experiment.eval,
        ddim_steps=experiment.diffusion.ddim_steps,
        background=experiment.background,
        device=experiment.device,
        out_dir=out_dir,
        console=console,
        transform=protocol.transform,
    )
    return result, out_dir


def one_line_errors(run: Callable[[], None], console: Console) -> int:
    """Run a command, turning a ValueError or a non-finite loss into one red line and exit status 1 (0 on success);
    a stage stopped by a signal (`TrainingStopped`, its checkpoint written) into its line and 128 + the signal's
    number; Ctrl-C outside a training loop (loading data, evaluating) into one line and 130."""
    try:
        run()
    except (ValueError, NonFiniteLossError) as error:
        console.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
        return 1
    except TrainingStopped as stopped:
        console.print(f"[yellow]{stopped}[/yellow]", highlight=False, soft_wrap=True)
        return stopped.exit_code
    except KeyboardInterrupt:
        console.print(
            "[yellow]interrupted; checkpoints already written are kept: run the same command to resume", highlight=False
        )
        return 130
    return 0


# ----------------------------------------------------------------------------------------------------------------------
# train


def train(app: App, experiment: Any, console: Console) -> None:
    """Check every option, hold the run directory (rank 0), write config.json, then data, stages and evaluation."""
    check_experiment(experiment)
    prepare_device(experiment.device, experiment.threads)
    with run_directory_lock(experiment.run_dir) if distributed.is_main() else nullcontext():
        _train(app, experiment, console)


def _train(app: App, experiment: Any, console: Console) -> None:
    if experiment.preset != app.default_preset and getattr(experiment.data, "root", None) is None:
        console.print(f"[yellow]preset {experiment.preset} without --data: using the synthetic data[/yellow]")
    run_dir = Path(experiment.run_dir)
    save_run_config(run_dir, experiment)
    console.rule(f"{app.title} · preset {experiment.preset} · {run_dir}")

    started = time.perf_counter()
    data = distributed.on_main(lambda: app.data(experiment))
    batches, description = app.training_data(experiment, data)
    console.print(f"data: {description} ({time.perf_counter() - started:.0f} s)")
    teacher = app.teacher(experiment, data)
    given = experiment.given_teacher
    if given is not None:
        console.print(f"teacher: given weights {given}")
    phases = {}
    board = TensorBoardLog(run_dir / "tensorboard") if distributed.is_main() else None
    try:
        with ProgressDisplay(console) as display:
            teacher, student = run_stages(
                experiment.stage,
                run_dir,
                teacher,
                lambda t: build_student(experiment, t),
                batches,
                experiment.stages,
                train_the_teacher=given is None,
                lpips_model=teacher_lpips_model(experiment, train_the_teacher=given is None),
                report=console.print,
                progress=_timed(display if board is None else _both(display, board), phases),
            )
        if experiment.stage not in ("all", "eval") or board is None:
            return
        evaluation_started = time.perf_counter()
        result, out_dir = run_evaluation(app, experiment, data, teacher, student, console)
        phases["evaluation"] = time.perf_counter() - evaluation_started
        board.add_evaluation(experiment.eval.split, result.summary, sorted(out_dir.glob("grid_*.png")))
    finally:
        if board is not None:
            board.close()  # what was logged is kept when a stage stops on a signal or an error
    console.rule(f"done in {(time.perf_counter() - started) / 60:.1f} min")
    print_tables(result, console)
    if phases:
        console.print("time: " + " · ".join(f"{name} {seconds / 60:.1f} min" for name, seconds in phases.items()))
    console.print(
        f"table: {out_dir / 'table.md'} · grids: {out_dir}/grid_*.png · log: {run_dir / 'metrics.jsonl'} · "
        f"tensorboard --logdir {run_dir.parent}"
    )


def _both(first: Callable, second: Callable) -> Callable:
    def report(update) -> None:
        first(update)
        second(update)

    return report


def _timed(progress: Callable, phases: dict[str, float]) -> Callable:
    """The progress callback, also recording each stage's wall time (first to last report) in `phases`."""
    starts: dict[str, float] = {}

    def report(update) -> None:
        now = time.perf_counter()
        starts.setdefault(update.stage, now)
        phases[update.stage] = now - starts[update.stage]
        progress(update)

    return report


TRAIN_NOTES = """

    uv run apps/{name}/train.py --stage bootstrap     # one stage (the earlier ones must be done)

Under torchrun (`torchrun --nproc-per-node N apps/{name}/train.py ...`, DDP) every process trains on its share of
each step's items (`--data.batch-size` per process; global batch = batch size × processes) and rank 0 alone logs,
writes checkpoints and evaluates.

A run directory (`--run-dir`, default `runs/{name}-<preset>`) holds config.json, checkpoints/<stage>/, metrics.jsonl
and eval/; running the same command again resumes where it stopped."""


def train_main(app: App, description: str, argv: Sequence[str] | None = None) -> int:
    """`train.py`: start the process group under torchrun (a no-op otherwise), let rank 0 alone print, train and
    evaluate; one red line and exit status 1 for a ValueError or a non-finite loss. The process group is shut down
    in every case."""
    experiment = parse_experiment(
        app.experiment_type,
        app.presets,
        sys.argv[1:] if argv is None else argv,
        default_preset=app.default_preset,
        description=description.rstrip() + TRAIN_NOTES.format(name=app.name),
        aliases=app.aliases,
        run_dir_pattern=f"runs/{app.name}-{{preset}}",
    )
    console = Console()

    def run() -> None:
        check_experiment(experiment)  # before the process group, which needs a valid --device
        distributed.init_distributed(experiment.device)
        console.quiet = not distributed.is_main()
        train(app, experiment, console)

    try:
        return one_line_errors(run, console)
    finally:
        distributed.shutdown()


# ----------------------------------------------------------------------------------------------------------------------
# eval


@dataclass(frozen=True)
class EvalCommand(Generic[T]):
    run_dir: tyro.conf.Positional[Path]  # a run directory written by this app's train.py
    eval: tyro.conf.OmitArgPrefixes[T]  # the run's evaluation options (defaults: the run's)
    device: str | None = None  # default: the run's
    threads: int | None = None  # torch CPU threads (default: torch's)


def _run_dir_argument(argv: Sequence[str]) -> Path | None:
    """The positional run directory of `argv`, read before parsing (the run's options are the flags' defaults)."""
    for argument in argv:
        if not argument.startswith("-"):
            return Path(argument)
        if argument in ("-h", "--help"):
            return None
    return None


def _saved_experiment(app: App, argv: Sequence[str]) -> Any:
    run_dir = _run_dir_argument(argv)
    if run_dir is not None and (run_dir / "config.json").is_file():
        return load_run_config(run_dir, app.experiment_type)
    return app.presets[app.default_preset]()  # for --help, or to let the command name the missing run


def eval_main(app: App, description: str, argv: Sequence[str] | None = None) -> int:
    """`eval.py RUN_DIR [eval options]`: re-evaluate a run directory on the app's protocol."""
    argv = list(sys.argv[1:] if argv is None else argv)
    console = Console()
    try:
        saved = _saved_experiment(app, argv)
    except ValueError as error:
        console.print(f"[red]error:[/red] {error}", highlight=False)
        return 1
    command_type = EvalCommand[type(saved.eval)]
    command = tyro.cli(command_type, args=argv, default=EvalCommand(Path("."), saved.eval), description=description)

    def run() -> None:
        experiment = load_run_config(command.run_dir, app.experiment_type)
        experiment = replace(experiment, run_dir=command.run_dir, device=command.device or experiment.device)
        experiment = replace(experiment, eval=command.eval)
        check_experiment(experiment)
        prepare_device(experiment.device, command.threads)
        data = app.data(experiment)
        teacher, student = load_trained_models(experiment, app.teacher(experiment, data))
        result, out_dir = run_evaluation(app, experiment, data, teacher, student, console)
        print_tables(result, console)
        console.print(f"table, scores and grids in {out_dir}")

    return one_line_errors(run, console)


# ----------------------------------------------------------------------------------------------------------------------
# sample


@dataclass(frozen=True)
class SampleCommand(Generic[T]):
    run_dir: tyro.conf.Positional[Path]  # a run directory written by this app's train.py
    input: tyro.conf.OmitArgPrefixes[T]  # what to sample from (default: the protocol's input of a test item)
    num_samples: int = 4
    t_start: int | None = None  # default: the run's eval t_start
    seed: int = 0  # samples differ only by their starting noise: seed, seed + 1, ...
    out: Path | None = None  # default: <run_dir>/samples/<input name>
    frames: int = 36  # animation frames
    format: str = "gif"  # gif or mp4 (mp4 needs imageio's ffmpeg plugin)
    device: str | None = None  # default: the run's


def sample_main(app: App, description: str, argv: Sequence[str] | None = None) -> int:
    """`sample.py RUN_DIR [input options]`: the teacher's prediction and N student samples of one input, each as a
    `.ply` file and an animation, and `overview.png` showing them all."""
    command_type = SampleCommand[app.sample_options]
    default = SampleCommand(Path("."), app.sample_options())
    command = tyro.cli(
        command_type, args=sys.argv[1:] if argv is None else argv, default=default, description=description
    )
    console = Console()
    return one_line_errors(lambda: draw_samples(app, command, console), console)


def draw_samples(app: App, command: SampleCommand, console: Console) -> None:
    check_animation_format(command.format)
    experiment = load_run_config(command.run_dir, app.experiment_type)
    experiment = replace(experiment, run_dir=command.run_dir, device=command.device or experiment.device)
    if command.t_start is not None:
        experiment = replace(experiment, eval=replace(experiment.eval, t_start=command.t_start))
    check_experiment(experiment)
    if command.num_samples < 1 or command.frames < 1:
        raise ValueError(f"--num-samples {command.num_samples} --frames {command.frames}: both must be >= 1")
    prepare_device(experiment.device, None)
    data = app.data(experiment)
    teacher, student = load_trained_models(experiment, app.teacher(experiment, data))
    item = app.sample_input(command.input, experiment, data, teacher)
    batch = item.batch.to(experiment.device)
    out = command.out or command.run_dir / "samples" / item.name
    schedule = experiment.diffusion.make_schedule().to(experiment.device)
    background = torch.tensor(experiment.background, device=experiment.device)
    t_start = experiment.eval.t_start
    predicted = predict(
        teacher,
        student,
        schedule,
        batch,
        num_samples=command.num_samples,
        t_start=t_start,
        steps=experiment.diffusion.ddim_steps,
        generator=torch.Generator().manual_seed(command.seed),
    )
    predictions = {"teacher": predicted.teacher} | {f"sample_{i + 1}": g for i, g in enumerate(predicted.samples)}
    with torch.no_grad():
        strips = []
        for label, gaussians in predictions.items():
            save_ply(gaussians, out / f"{label}.ply")
            path = item.path(gaussians, command.frames).to(gaussians.device)
            frames = render_path(gaussians, path, background)
            save_animation(frames, out / f"{label}.{command.format}")
            strips.append([batch.source_images[0], *frames[:: max(1, command.frames // 6)]])
    scale = max(1, item.grid_scale_to // batch.source_images.shape[-1])
    save_image_grid(strips, out / "overview.png", row_labels=list(predictions), scale=scale)
    console.print(f"wrote {len(predictions)} .ply files and {app.animation} to {out} (overview.png shows them all)")


def render_path(gaussians: Gaussians, cameras: Cameras, background: torch.Tensor) -> torch.Tensor:
    """Frames [views 3 height width] of one scene along a camera path (batch 1)."""
    return render(gaussians, cameras, background=background).rgb[0]
