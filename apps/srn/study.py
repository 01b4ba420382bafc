"""The student-vs-teacher study on the synthetic toy cars (docs/research/student-vs-teacher.md), on validation data.

    uv run apps/srn/study.py teacher RUN_DIR --steps 5000 [--lr-decay cosine]   # teacher + its validation curve
    uv run apps/srn/study.py student RUN_DIR TEACHER_CKPT [SRN flags ...]       # stages 1 + 2 from that teacher
    uv run apps/srn/study.py sweep RUN_DIR TEACHER_CKPT 5,10,30 [--stage bootstrap]  # inference t_start values
    uv run apps/srn/study.py denoise RUN_DIR TEACHER_CKPT 5,10,30,60 [--stage bootstrap]  # one-step x̂₀ per t
    uv run apps/srn/study.py blend RUN_DIR TEACHER_CKPT 0,0.5,1 [--stage bootstrap]  # teacher/student map blends
    uv run apps/srn/study.py fit RUN_DIR TEACHER_CKPT [--split train] [--stage multistep]  # per-checkpoint fit
    uv run apps/srn/study.py grads RUN_DIR TEACHER_CKPT [--stage bootstrap] [--batches 16]  # per-term gradients
    uv run apps/srn/study.py compare RUN_A RUN_B                                 # paired student A − student B
    uv run apps/srn/study.py versus RUN TEACHER_CKPT [SRN flags of that teacher]  # paired RUN's student − a teacher

Every command uses the study's data (400 train, 32 val, 32 test toy cars × 100 spiral views, 32 px), scores on the
val split (`fit` also on the train split) and never on test, runs on one torch thread, and prints one JSON line per
result (student − teacher: paired per-object differences with a 95 % bootstrap interval, `splat_apps.statistics`).
"""

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from app_srn import APP
from app_srn.app import open_split
from app_srn.data import default_input_view
from app_srn.experiment import SRNExperiment
from app_srn.research import student_scores, study_experiment, teacher_scores, teacher_view_psnr, val_examples
from splat_apps import collate
from splat_apps.experiment import build_student, demo_loop
from splat_apps.statistics import paired_difference
from splat_diffusion import q_sample
from splat_render import render
from splat_train import run_stages, stage_weights
from splat_train.checkpoint import list_checkpoints, load_checkpoint
from splat_train.metrics import psnr
from splat_train.sharding import ShardedSampler
from splat_train.stages import bootstrap_loss, multistep_loss, rendering_loss
from splat_train.student import sample, student_gaussians, teacher_targets


def scores(experiment: SRNExperiment, data, teacher, student) -> dict:
    """The protocol's means and paired student − teacher on the val split, without the per-object scores."""
    result = student_scores(experiment, data, teacher, student)
    del result["per_item"]
    return result


def teacher_curve(run_dir: Path, steps: int, lr_decay: str, argv: list[str]) -> None:
    experiment = study_experiment(argv, run_dir)
    loop = replace(demo_loop(steps, 250, 0.99, 100), keep_checkpoints=10_000, progress=False)
    experiment = replace(experiment, teacher=replace(experiment.teacher, loop=loop, lr_decay=lr_decay))
    data = APP.data(experiment)
    batches, _ = APP.training_data(experiment, data)
    teacher = APP.teacher(experiment, data)
    started = time.time()
    run_stages("teacher", run_dir, teacher, None, batches, experiment.stages)
    print(json.dumps({"teacher_train_s": round(time.time() - started)}), flush=True)
    examples = val_examples(experiment, data)
    for path in list_checkpoints(run_dir / "checkpoints" / "teacher"):
        state = load_checkpoint(path)
        teacher.load_state_dict(state.ema)
        per_object = [item["novel"]["psnr"] for item in teacher_scores(experiment, examples, teacher).values()]
        print(json.dumps({"step": state.step, "val_psnr": sum(per_object) / len(per_object)}), flush=True)


def student_run(run_dir: Path, teacher_checkpoint: Path, argv: list[str]) -> None:
    experiment = study_experiment(argv, run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "args.json").write_text(json.dumps(argv))
    data = APP.data(experiment)
    batches, _ = APP.training_data(experiment, data)
    teacher = APP.teacher(experiment, data)
    teacher.load_state_dict(load_checkpoint(teacher_checkpoint).ema)
    started = time.time()
    teacher, student = run_stages(
        "all", run_dir, teacher, lambda t: build_student(experiment, t), batches, experiment.stages,
        train_the_teacher=False,
    )  # fmt: skip
    record = {"run": str(run_dir), "argv": argv, "train_s": round(time.time() - started)}
    print(json.dumps(record | scores(experiment, data, teacher.eval(), student.eval())), flush=True)


def load_run(run_dir: Path, teacher_checkpoint: Path, stage: str | None):
    """A study run's experiment (from its `args.json`), data root, the teacher and the student with its `stage`
    weights (None: as built, untrained)."""
    experiment = study_experiment(json.loads((run_dir / "args.json").read_text()), run_dir)
    data = APP.data(experiment)
    teacher = APP.teacher(experiment, data)
    teacher.load_state_dict(load_checkpoint(teacher_checkpoint).ema)
    student = build_student(experiment, teacher)
    if stage is not None:
        student.load_state_dict(stage_weights(run_dir, stage))
    return experiment, data, teacher, student


def sweep(run_dir: Path, teacher_checkpoint: Path, starts: list[int], stage: str) -> None:
    experiment, data, teacher, student = load_run(run_dir, teacher_checkpoint, stage)
    for t_start in starts:
        probe = replace(experiment, run_dir=run_dir / f"sweep-{stage}-{t_start}")
        probe = replace(probe, eval=replace(probe.eval, t_start=t_start))
        record = {"run": str(run_dir), "stage": stage, "t_start": t_start}
        print(json.dumps(record | scores(probe, data, teacher.eval(), student.eval())), flush=True)


def probe_setup(run_dir: Path, teacher_checkpoint: Path, stage: str, split: str = "val", objects: int | None = None):
    """A run's experiment, the teacher and the student's `stage` weights (eval mode), and one protocol batch per
    object of `split` (the first `objects` of them; default all)."""
    experiment, data, teacher, student = load_run(run_dir, teacher_checkpoint, stage)
    dataset = open_split(experiment, split, data)
    count = len(dataset) if objects is None else min(objects, len(dataset))
    views = [default_input_view(dataset.num_views(i)) for i in range(count)]
    examples = [collate([dataset.evaluation_example(i, view)]) for i, view in enumerate(views)]
    return experiment, teacher.eval(), student.eval(), examples


def fit_curve(run_dir: Path, teacher_checkpoint: Path, stage: str, split: str, objects: int) -> None:
    """Student − teacher at every kept checkpoint of `stage`, on the first `objects` objects of `split` (one sample
    per object, the run's inference t_start and DDIM steps): run on `train` and on `val`, it tells a student that
    fits its training objects without generalising from one that does not learn them either."""
    experiment, teacher, student, examples = probe_setup(run_dir, teacher_checkpoint, stage, split, objects)
    schedule = experiment.diffusion.make_schedule()
    background = torch.tensor(experiment.background)
    with torch.no_grad():
        teacher_scores = [teacher_view_psnr(teacher, batch, background) for batch in examples]
    for path in list_checkpoints(run_dir / "checkpoints" / stage):
        state = load_checkpoint(path)
        student.load_state_dict(state.ema)
        generator = torch.Generator().manual_seed(0)
        student_scores = []
        for batch in examples:
            gaussians = sample(
                student, teacher, schedule, batch.source_images, batch.source_cameras,
                t_start=experiment.eval.t_start, steps=experiment.diffusion.ddim_steps, generator=generator,
            )[0]  # fmt: skip
            rendered = render(gaussians, batch.target_cameras, background=background).rgb[0]
            student_scores.append(float(psnr(rendered, batch.target_images[0]).mean()))
        per_item = {
            name: {str(i): {"novel": {"psnr": score}} for i, score in enumerate(values)}
            for name, values in (("student", student_scores), ("teacher", teacher_scores))
        }
        difference = paired_difference(per_item, "student", "teacher", "novel", "psnr")
        record = {"run": str(run_dir), "stage": stage, "step": state.step, "split": split, "objects": len(examples)}
        record |= {"student_psnr": round(sum(student_scores) / len(examples), 4)}
        record |= {"teacher_psnr": round(sum(teacher_scores) / len(examples), 4)}
        print(json.dumps(record | {"student_minus_teacher": difference.text(3)}), flush=True)


def blend(run_dir: Path, teacher_checkpoint: Path, weights: list[float], stage: str) -> None:
    """Novel-view PSNR of the map-space blend w · teacher map + (1 − w) · the student's estimate from the image alone
    (one step from pure noise at t = T − 1), per w: is there an ensemble gain over the teacher?"""
    experiment, teacher, student, examples = probe_setup(run_dir, teacher_checkpoint, stage)
    background = torch.tensor(experiment.background)
    generator = torch.Generator().manual_seed(0)
    last = torch.full((1,), experiment.diffusion.num_train_steps - 1)
    totals = dict.fromkeys(weights, 0.0)
    with torch.no_grad():
        for batch in examples:
            clean = teacher_targets(teacher, student, batch.source_images, batch.source_cameras)
            alone = student(torch.randn(clean.shape, generator=generator), last, batch.source_images)
            for weight in weights:
                mixed = weight * clean + (1 - weight) * alone
                gaussians = student_gaussians(teacher, student, mixed, batch.source_cameras)
                rendered = render(gaussians, batch.target_cameras, background=background).rgb[0]
                totals[weight] += float(psnr(rendered, batch.target_images[0]).mean())
    for weight, total in totals.items():
        print(json.dumps({"run": str(run_dir), "teacher_weight": weight, "psnr": round(total / len(examples), 4)}))


def denoise_probe(run_dir: Path, teacher_checkpoint: Path, timesteps: list[int], stage: str) -> None:
    """One denoising step from the noised teacher map of each val object, per t: the student's normalized map error
    ||n̂₀ − n₀||² against the trivial estimates (n_t itself, and 0 = the mean map), and the novel-view PSNR of the
    Gaussians of n̂₀ against the teacher's own (does the student reproduce its input where the noise is low?)."""
    experiment, teacher, student, examples = probe_setup(run_dir, teacher_checkpoint, stage)
    schedule = experiment.diffusion.make_schedule()
    background = torch.tensor(experiment.background)
    generator = torch.Generator().manual_seed(0)
    for t in timesteps:
        totals = {
            "student_map_l2": 0.0,
            "noised_map_l2": 0.0,
            "mean_map_l2": 0.0,
            "student_psnr": 0.0,
            "teacher_psnr": 0.0,
        }
        with torch.no_grad():
            for batch in examples:
                clean = teacher_targets(teacher, student, batch.source_images, batch.source_cameras)
                noise = torch.randn(clean.shape, generator=generator)
                noised = q_sample(schedule, clean, t, noise)
                estimate = student(noised, torch.full((1,), t), batch.source_images)
                gaussians = student_gaussians(teacher, student, estimate, batch.source_cameras)
                rendered = render(gaussians, batch.target_cameras, background=background).rgb[0]
                totals["student_map_l2"] += float((estimate - clean).square().mean())
                totals["noised_map_l2"] += float((noised - clean).square().mean())
                totals["mean_map_l2"] += float(clean.square().mean())
                totals["student_psnr"] += float(psnr(rendered, batch.target_images[0]).mean())
                totals["teacher_psnr"] += teacher_view_psnr(teacher, batch, background)
        record = {
            "run": str(run_dir),
            "stage": stage,
            "t": t,
            "alpha_bar": round(float(schedule.alpha_bar(torch.tensor(t))), 4),
        }
        print(json.dumps(record | {k: round(v / len(examples), 4) for k, v in totals.items()}), flush=True)


def gradient_probe(run_dir: Path, teacher_checkpoint: Path, stage: str, count: int) -> None:
    """The gradient of each term of a stage's loss w.r.t. the trained network's weights, over `count` fixed training
    batches (the loop's first batches at seed 0): its mean norm, its coherence ||mean g|| / mean ||g|| (1: every
    batch pushes the same way; about 1/√count: noise) and its cosine with the other terms' mean gradients. `stage`
    is the loss (teacher: L2 of the renders w.r.t. the teacher; bootstrap: map / image / cycle, unweighted except
    for the t ≥ t* mask; multistep: the λ_t-weighted image loss, the final step's alone, cycle) at the run's
    weights of that stage (the teacher's checkpoint for `teacher`)."""
    experiment, data, teacher, student = load_run(run_dir, teacher_checkpoint, None if stage == "teacher" else stage)
    batches, _ = APP.training_data(experiment, data)
    teacher.eval().requires_grad_(stage == "teacher"), student.eval()
    schedule = experiment.diffusion.make_schedule()
    options = {"diffusion": experiment.diffusion, "background": experiment.background}
    if stage == "teacher":
        trained = teacher
        colour = torch.tensor(experiment.background)
        terms = {"render": lambda b: rendering_loss(teacher(b.source_images, b.source_cameras).gaussians, b, colour)}
    elif stage == "bootstrap":
        trained, config, t_star = student, experiment.bootstrap, experiment.diffusion.t_star
        only = {"map": (1, 0, 0), "image": (0, 1, 0), "cycle": (0, 0, 1)}
        terms = {
            name: lambda b, w=weights: bootstrap_loss(
                student, teacher, schedule, b, replace(config, map_weight=w[0], image_weight=w[1], cycle_weight=w[2]),
                t_star=t_star, background=experiment.background,
            ).loss
            for name, weights in only.items()
        }  # fmt: skip
    else:
        trained, config = student, experiment.multistep
        variants = {
            "image": replace(config, cycle_weight=0),
            "final_image": replace(config, cycle_weight=0, render_steps="final"),
            "total": config,
        }
        terms = {
            name: lambda b, c=variant: multistep_loss(student, teacher, schedule, b, c, **options).loss
            for name, variant in variants.items()
        }
    parameters = list(trained.parameters())
    sampler = ShardedSampler(batches.num_items, batches.batch_size, seed=0)
    gradients = {name: [] for name in terms}
    for step in range(count):
        plan = sampler.batch(step)
        batch = batches.make_batch(list(plan.items), list(plan.seeds)).with_seeds(plan.seeds)
        for name, loss_of in terms.items():
            trained.zero_grad(set_to_none=True)
            loss_of(batch).mean().backward()
            gradients[name].append(
                torch.cat([(torch.zeros_like(p) if p.grad is None else p.grad).flatten() for p in parameters])
            )
    if "total" in gradients:  # the cycle term's gradient, by linearity
        gradients["cycle"] = [t - i for t, i in zip(gradients.pop("total"), gradients["image"], strict=True)]
    means = {name: torch.stack(values).mean(0) for name, values in gradients.items()}
    for name, values in gradients.items():
        norm = sum(float(g.norm()) for g in values) / count
        record = {"run": str(run_dir), "stage": stage, "term": name, "batches": count, "grad_norm": f"{norm:.4g}"}
        record["coherence"] = round(float(means[name].norm()) / max(norm, 1e-30), 4)
        record |= {
            f"cos_{other}": round(float(torch.nn.functional.cosine_similarity(means[name], mean, dim=0)), 4)
            for other, mean in means.items()
            if other != name
        }
        print(json.dumps(record), flush=True)


def compare(first: Path, second: Path) -> None:
    """Student of run `first` − student of run `second`, paired over the validation objects both scored (the
    `eval/val/scores.json` a `student` command wrote)."""
    per_item = {}
    for name, run_dir in (("first", first), ("second", second)):
        path = run_dir / "eval" / "val" / "scores.json"
        if not path.is_file():
            raise SystemExit(f"{path}: no validation scores (run `study.py student {run_dir} ...` first)")
        per_item[name] = json.loads(path.read_text())["per_item"]["student"]
    difference = paired_difference(per_item, "first", "second", "novel", "psnr")
    if difference is None:
        raise SystemExit(f"{first} and {second} share no scored validation object")
    wins = f"{difference.wins}/{difference.items}"
    print(json.dumps({"first": str(first), "second": str(second), "difference": difference.text(3), "wins": wins}))


def versus(run_dir: Path, teacher_checkpoint: Path, argv: list[str]) -> None:
    """Student of run `run_dir` (its `eval/val/scores.json`) − the teacher of `teacher_checkpoint` (built from the
    study's experiment with `argv`, e.g. another width), paired over the validation objects: whether the student
    beats another teacher, such as its own trained for as many steps as the student had."""
    path = run_dir / "eval" / "val" / "scores.json"
    if not path.is_file():
        raise SystemExit(f"{path}: no validation scores (run `study.py student {run_dir} ...` first)")
    students = json.loads(path.read_text())["per_item"]["student"]
    experiment = study_experiment(argv, run_dir)
    data = APP.data(experiment)
    teacher = APP.teacher(experiment, data)
    teacher.load_state_dict(load_checkpoint(teacher_checkpoint).ema)
    teachers = teacher_scores(experiment, val_examples(experiment, data), teacher)
    difference = paired_difference({"student": students, "teacher": teachers}, "student", "teacher", "novel", "psnr")
    if difference is None:
        raise SystemExit(f"{run_dir}'s student and {teacher_checkpoint} share no validation object")
    mean_teacher = sum(v["novel"]["psnr"] for v in teachers.values()) / len(teachers)
    record = {"run": str(run_dir), "teacher": str(teacher_checkpoint), "teacher_psnr": mean_teacher}
    record |= {"student_minus_teacher": difference.text(3), "wins": f"{difference.wins}/{difference.items}"}
    print(json.dumps(record))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    teacher = commands.add_parser("teacher")
    teacher.add_argument("run_dir", type=Path)
    teacher.add_argument("--steps", type=int, default=5000)
    teacher.add_argument("--lr-decay", choices=["constant", "cosine"], default="constant")
    student = commands.add_parser("student")
    student.add_argument("run_dir", type=Path)
    student.add_argument("teacher_checkpoint", type=Path)
    probe = commands.add_parser("sweep")
    probe.add_argument("run_dir", type=Path)
    probe.add_argument("teacher_checkpoint", type=Path)
    probe.add_argument("starts", type=lambda text: [int(t) for t in text.split(",")])
    probe.add_argument("--stage", choices=["bootstrap", "multistep"], default="multistep")
    probe = commands.add_parser("denoise")
    probe.add_argument("run_dir", type=Path)
    probe.add_argument("teacher_checkpoint", type=Path)
    probe.add_argument("timesteps", type=lambda text: [int(t) for t in text.split(",")])
    probe.add_argument("--stage", choices=["bootstrap", "multistep"], default="multistep")
    mix = commands.add_parser("blend")
    mix.add_argument("run_dir", type=Path)
    mix.add_argument("teacher_checkpoint", type=Path)
    mix.add_argument("weights", type=lambda text: [float(w) for w in text.split(",")])
    mix.add_argument("--stage", choices=["bootstrap", "multistep"], default="multistep")
    curve = commands.add_parser("fit")
    curve.add_argument("run_dir", type=Path)
    curve.add_argument("teacher_checkpoint", type=Path)
    curve.add_argument("--stage", choices=["bootstrap", "multistep"], default="multistep")
    curve.add_argument("--split", choices=["train", "val"], default="train")
    curve.add_argument("--objects", type=int, default=32)
    grads = commands.add_parser("grads")
    grads.add_argument("run_dir", type=Path)
    grads.add_argument("teacher_checkpoint", type=Path)
    grads.add_argument("--stage", choices=["teacher", "bootstrap", "multistep"], default="multistep")
    grads.add_argument("--batches", type=int, default=16)
    pair = commands.add_parser("compare")
    pair.add_argument("first", type=Path)
    pair.add_argument("second", type=Path)
    other = commands.add_parser("versus")
    other.add_argument("run_dir", type=Path)
    other.add_argument("teacher_checkpoint", type=Path)
    arguments, rest = parser.parse_known_args()
    torch.set_num_threads(1)
    if arguments.command == "teacher":
        teacher_curve(arguments.run_dir, arguments.steps, arguments.lr_decay, rest)
    elif arguments.command == "student":
        student_run(arguments.run_dir, arguments.teacher_checkpoint, rest)
    elif arguments.command == "blend":
        blend(arguments.run_dir, arguments.teacher_checkpoint, arguments.weights, arguments.stage)
    elif arguments.command == "versus":
        versus(arguments.run_dir, arguments.teacher_checkpoint, rest)
    elif arguments.command == "compare":
        compare(arguments.first, arguments.second)
    elif arguments.command == "fit":
        fit_curve(arguments.run_dir, arguments.teacher_checkpoint, arguments.stage, arguments.split, arguments.objects)
    elif arguments.command == "grads":
        gradient_probe(arguments.run_dir, arguments.teacher_checkpoint, arguments.stage, arguments.batches)
    elif arguments.command == "denoise":
        denoise_probe(arguments.run_dir, arguments.teacher_checkpoint, arguments.timesteps, arguments.stage)
    else:
        sweep(arguments.run_dir, arguments.teacher_checkpoint, arguments.starts, arguments.stage)


if __name__ == "__main__":
    main()
