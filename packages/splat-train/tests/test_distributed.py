"""The stage runners under torch.distributed (gloo, 2 CPU processes spawned by the test, as torchrun would):
2 ranks × batch b take the same steps as 1 rank × batch 2b, a run resumes on another world size, only rank 0 writes
files, and a non-finite loss on one rank stops every rank."""

import functools
import json
import pathlib
import sys

import dist_harness as H
import pytest
import torch

from splat_train import distributed
from splat_train.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from splat_train.loop import LoopConfig, NonFiniteLossError
from splat_train.runs import STAGES, StageConfigs, fit_normalizer, run_stages
from splat_train.sharding import ShardedSampler
from splat_train.stages import (
    BootstrapConfig,
    DiffusionConfig,
    MultistepConfig,
    TeacherStageConfig,
    multistep,
    train_teacher,
)

ITEMS = 4  # dataset size (divisible by the world size, so both partitions draw the same samples)


def _loop(steps: int) -> LoopConfig:
    return LoopConfig(max_steps=steps, log_every=1, progress=False, ema_start=1, ema_every=1, ema_decay=0.5)


def _teacher_config(steps: int) -> TeacherStageConfig:
    return TeacherStageConfig(loop=_loop(steps), learning_rate=1e-3)


WHITE = (1.0, 1.0, 1.0)
DIFFUSION = DiffusionConfig(ddim_steps=3)


def _multistep_config(steps: int) -> MultistepConfig:
    return MultistepConfig(loop=_loop(steps), learning_rate=1e-3)


def _train_teacher(run_dir: pathlib.Path, steps: int, batch_size: int) -> tuple[torch.nn.Module, dict]:
    teacher = H.teacher()
    result = train_teacher(teacher, H.BlobSource(ITEMS, batch_size), _teacher_config(steps), run_dir, background=WHITE)
    return teacher, result.ema


def _train_multistep(run_dir: pathlib.Path, steps: int, batch_size: int) -> None:
    teacher = H.teacher()
    student = H.student(teacher)
    fit_normalizer(student, teacher, H.BlobSource(ITEMS, 2), batches=1)
    source = H.BlobSource(ITEMS, batch_size)
    multistep(student, teacher, source, _multistep_config(steps), run_dir, diffusion=DIFFUSION, background=WHITE)


def _checksum(tensors: dict[str, torch.Tensor]) -> float:
    return float(sum(v.double().sum() for v in tensors.values()))


def _teacher_on_ranks(rank: int, workdir: pathlib.Path, *, run: str, steps: int) -> None:
    teacher, ema = _train_teacher(workdir / run, steps, batch_size=1)
    # every rank trained its own copy: weights and EMA agree across ranks (the checkpoint holds rank 0's)
    assert len(set(distributed.all_gather_floats(_checksum(teacher.state_dict())))) == 1
    assert len(set(distributed.all_gather_floats(_checksum(ema)))) == 1


def _multistep_on_ranks(rank: int, workdir: pathlib.Path, *, run: str, steps: int) -> None:
    _train_multistep(workdir / run, steps, batch_size=1)


def _weights(run_dir: pathlib.Path, stage: str) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], int]:
    state = load_checkpoint(latest_checkpoint(run_dir / "checkpoints" / stage))
    return state.model, state.ema, state.step


def _comparable(key: str, value: torch.Tensor) -> torch.Tensor:
    """`value` without the attention key biases: their exact gradient is zero (softmax ignores a constant added to
    every logit), so their float gradient is rounding noise that Adam scales up to ±lr steps, whatever the
    summation order (the SongUNet's `qkv` interleaves q, k, v innermost: the key entries are [1::3])."""
    if key.endswith("qkv.bias"):
        keep = torch.ones_like(value, dtype=torch.bool)
        keep[1::3] = False
        return value[keep]
    return value


def _assert_same_weights(a: pathlib.Path, b: pathlib.Path, stage: str) -> None:
    model_a, ema_a, step_a = _weights(a, stage)
    model_b, ema_b, step_b = _weights(b, stage)
    assert step_a == step_b
    for name, first, second in (("model", model_a, model_b), ("ema", ema_a, ema_b)):
        for key in first:
            torch.testing.assert_close(
                _comparable(key, first[key]),
                _comparable(key, second[key]),
                rtol=1e-4,
                atol=2e-5,
                msg=lambda message, key=key, name=name: f"{name} {key}: {message}",
            )


def _logged(run_dir: pathlib.Path, *keys: str) -> list[tuple]:
    """The `keys` of every record of the run's metrics log."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [tuple(json.loads(line)[key] for key in keys) for line in lines]


def _trained(run_dir: pathlib.Path, stage: str) -> bool:
    """Whether the stage's first and last checkpoints differ (the comparison is not of untrained weights)."""
    paths = list_checkpoints(run_dir / "checkpoints" / stage)
    first, last = load_checkpoint(paths[0]).model, load_checkpoint(paths[-1]).model
    return any(not torch.equal(first[k], last[k]) for k in first)


def test_two_ranks_with_batch_b_train_the_teacher_like_one_rank_with_batch_2b(tmp_path: pathlib.Path) -> None:
    H.spawn(functools.partial(_teacher_on_ranks, run="two", steps=3), tmp_path)
    _train_teacher(tmp_path / "one", 3, batch_size=2)
    assert _trained(tmp_path / "one", "teacher")
    _assert_same_weights(tmp_path / "two", tmp_path / "one", "teacher")
    assert _logged(tmp_path / "two", "step", "world_size") == [(1, 2), (2, 2), (3, 2)]


def test_two_ranks_with_batch_b_train_stage_2_like_one_rank_with_batch_2b(tmp_path: pathlib.Path) -> None:
    H.spawn(functools.partial(_multistep_on_ranks, run="two", steps=2), tmp_path)
    _train_multistep(tmp_path / "one", 2, batch_size=2)
    assert _trained(tmp_path / "one", "multistep")
    _assert_same_weights(tmp_path / "two", tmp_path / "one", "multistep")


def test_a_run_stopped_on_two_ranks_resumes_on_one_and_vice_versa(tmp_path: pathlib.Path) -> None:
    _train_teacher(tmp_path / "straight", 4, batch_size=2)
    # 2 ranks × 1 for 2 steps, then 1 rank × 2 from step 2
    H.spawn(functools.partial(_teacher_on_ranks, run="two_then_one", steps=2), tmp_path)
    _train_teacher(tmp_path / "two_then_one", 4, batch_size=2)
    # 1 rank × 2 for 2 steps, then 2 ranks × 1 from step 2
    _train_teacher(tmp_path / "one_then_two", 2, batch_size=2)
    H.spawn(functools.partial(_teacher_on_ranks, run="one_then_two", steps=4), tmp_path)
    assert _logged(tmp_path / "two_then_one", "step", "world_size") == [(1, 2), (2, 2), (3, 1), (4, 1)]
    assert _logged(tmp_path / "one_then_two", "step", "world_size") == [(1, 1), (2, 1), (3, 2), (4, 2)]
    _assert_same_weights(tmp_path / "two_then_one", tmp_path / "straight", "teacher")
    _assert_same_weights(tmp_path / "one_then_two", tmp_path / "straight", "teacher")


def _record_writes(root: pathlib.Path) -> list[str]:
    """Every file-system change under `root` this process makes from now on (via Python's audit events)."""
    writes: list[str] = []
    changing = {"os.rename", "os.remove", "os.mkdir", "os.rmdir", "os.truncate", "os.symlink", "os.link"}

    def hook(event: str, args: tuple) -> None:
        if event == "open" and args and isinstance(args[0], (str, pathlib.Path)):
            mode, flags = args[1], args[2]
            writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(flags & 0o3)
            if writing and str(root) in str(args[0]):
                writes.append(f"open {args[0]} {mode or flags}")
        elif event in changing and any(str(root) in str(a) for a in args):
            writes.append(f"{event} {args}")

    sys.addaudithook(hook)  # this spawned process ends with the test
    return writes


def _all_stages_on_ranks(rank: int, workdir: pathlib.Path) -> None:
    writes = _record_writes(workdir)
    configs = StageConfigs(
        teacher=_teacher_config(2),
        bootstrap=BootstrapConfig(loop=_loop(2)),
        multistep=_multistep_config(2),
        diffusion=DIFFUSION,
        normalizer_batches=1,
    )
    _, student = run_stages(
        "all", workdir / "run", H.teacher(), H.student, H.BlobSource(ITEMS, 1), configs, report=lambda line: None
    )
    assert student is not None
    assert (rank == 0) == bool(writes), f"rank {rank} wrote: {writes[:5]}"


def test_only_rank_0_writes_files_and_every_stage_runs_on_two_ranks(tmp_path: pathlib.Path) -> None:
    H.spawn(_all_stages_on_ranks, tmp_path)
    run = tmp_path / "run"
    for stage in STAGES:
        assert load_checkpoint(latest_checkpoint(run / "checkpoints" / stage)).step == 2
    assert _logged(run, "stage", "step") == [(stage, step) for stage in STAGES for step in (1, 2)]


def _nan_on_rank_1(rank: int, workdir: pathlib.Path) -> None:
    source = H.BlobSource(ITEMS, 1, nan_from_call=1 if rank == 1 else None)  # rank 1's second batch is NaN
    with pytest.raises(NonFiniteLossError, match="on rank 1 at step 2"):
        train_teacher(H.teacher(), source, _teacher_config(5), workdir / "run", background=WHITE)


def test_a_non_finite_loss_on_one_rank_stops_every_rank(tmp_path: pathlib.Path) -> None:
    H.spawn(_nan_on_rank_1, tmp_path)  # a deadlock would time out instead
    assert load_checkpoint(latest_checkpoint(tmp_path / "run" / "checkpoints" / "teacher")).step == 1


def test_under_torchrun_cuda_means_the_local_rank_gpu_and_a_fixed_index_is_refused(monkeypatch) -> None:
    torchrun = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "h", "MASTER_PORT": "1"}
    for name, value in {**torchrun, "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)
    assert distributed.rank_device("cuda") == torch.device("cuda", 1)
    assert distributed.rank_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="pass `cuda`"):
        distributed.rank_device("cuda:0")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert distributed.rank_device("cuda:0") == torch.device("cuda", 0)
    monkeypatch.delenv("RANK")  # not launched by torchrun: nothing changes, and no process group
    assert distributed.rank_device("cuda") == torch.device("cuda")
    assert distributed.init_distributed("cpu") == torch.device("cpu") and distributed.world_size() == 1


def test_ranks_split_each_global_batch_and_every_epoch_reshuffles_all_items() -> None:
    items, per_rank, world = 12, 2, 3
    ranks = [ShardedSampler(items, per_rank, seed=5, rank=r, world_size=world) for r in range(world)]
    single = ShardedSampler(items, per_rank * world, seed=5)

    def samples(batch) -> list[tuple[int, int]]:
        return list(zip(batch.items, batch.seeds, strict=True))

    epochs = []
    for step in range(4):  # 2 epochs of 12 items at a global batch of 6
        together = sorted(sample for r in ranks for sample in samples(r.batch(step)))
        assert together == sorted(samples(single.batch(step)))  # the same items with the same per-sample seeds
        epochs.append([item for item, _ in together])
    assert sorted(epochs[0] + epochs[1]) == sorted(epochs[2] + epochs[3]) == list(range(items))  # each item once
    assert [r.batch(0).items for r in ranks] != [r.batch(2).items for r in ranks]  # reshuffled in epoch 2
