"""Run directories: an experiment round-trips through config.json, one directory never mixes two experiments, a
config.json of the older layout (a diffusion config per student stage, a background per stage) is read in today's
layout or refused in one line, and the old flags still parse."""

import json
import pathlib
from dataclasses import dataclass, replace

import pytest

from splat_apps import Experiment
from splat_apps.cli import LEGACY_ALIASES, expand_aliases, parse_experiment
from splat_apps.experiment import EvalOptions
from splat_apps.run_dir import load_run_config, save_run_config, upgrade_config
from splat_teachers.config_io import to_jsonable
from splat_train import DiffusionConfig, LoopConfig, MultistepConfig


@dataclass(frozen=True)
class Data:
    root: pathlib.Path | None = None
    sizes: tuple[int, ...] = (1, 2)


@dataclass(frozen=True)
class Eval(EvalOptions):
    split: str = "test"


@dataclass(frozen=True)
class ToyExperiment(Experiment):
    data: Data = Data()
    eval: Eval = Eval()


def test_an_experiment_round_trips_through_the_run_directory(tmp_path: pathlib.Path) -> None:
    experiment = ToyExperiment(
        data=Data(pathlib.Path("/data/x"), (3, 4, 5)),
        multistep=MultistepConfig(render_steps="final"),
        background=(0.0, 0.5, 1.0),
    )
    save_run_config(tmp_path, experiment)
    assert load_run_config(tmp_path, ToyExperiment) == experiment


def test_a_run_directory_accepts_longer_training_and_another_evaluation_but_not_another_experiment(
    tmp_path: pathlib.Path,
) -> None:
    experiment = ToyExperiment()
    save_run_config(tmp_path, experiment)
    longer = replace(experiment, bootstrap=replace(experiment.bootstrap, loop=LoopConfig(max_steps=10**6)))
    save_run_config(tmp_path, replace(longer, eval=Eval(num_samples=1), device="cuda"))
    assert load_run_config(tmp_path, ToyExperiment).bootstrap.loop.max_steps == 10**6
    for other, name, leaf in (
        (replace(experiment, teacher=replace(experiment.teacher, adam_eps=1e-8)), "teacher", "--teacher.adam-eps"),
        (replace(experiment, diffusion=DiffusionConfig(t_star=30)), "diffusion", "--diffusion.t-star 20 → 30"),
        (replace(experiment, background=(0.0, 0.0, 0.0)), "background", r"--background \[1.0, 1.0, 1.0\] → "),
    ):
        with pytest.raises(ValueError, match=rf"different configuration \({name} differ: {leaf}.*another --run-dir"):
            save_run_config(tmp_path, other)


def test_a_run_that_diverged_may_resume_with_another_learning_rate(tmp_path: pathlib.Path) -> None:
    experiment = ToyExperiment()
    save_run_config(tmp_path, experiment)
    lower = replace(experiment, multistep=replace(experiment.multistep, learning_rate=1e-6))
    save_run_config(tmp_path, lower)
    assert load_run_config(tmp_path, ToyExperiment).multistep.learning_rate == 1e-6


def test_a_run_written_before_an_option_existed_resumes_with_its_default(tmp_path: pathlib.Path) -> None:
    experiment = ToyExperiment()
    document = to_jsonable(experiment)
    del document["multistep"]["map_weight"]  # what a run directory written before the option existed holds
    (tmp_path / "config.json").write_text(json.dumps(document))
    save_run_config(tmp_path, experiment)
    with pytest.raises(ValueError, match=r"--multistep\.map-weight 0\.0 → 1\.0"):
        save_run_config(tmp_path, replace(experiment, multistep=replace(experiment.multistep, map_weight=1.0)))


def _old_layout(experiment: ToyExperiment) -> dict:
    """What the previous version wrote: diffusion inside each student stage, background inside every stage."""
    document = to_jsonable(experiment)
    diffusion, background = document.pop("diffusion"), document.pop("background")
    for stage in ("bootstrap", "multistep"):
        document[stage]["diffusion"] = dict(diffusion)
    for stage in ("teacher", "bootstrap", "multistep"):
        document[stage]["background"] = background
    return document


def test_a_config_of_the_older_layout_is_read_in_todays(tmp_path: pathlib.Path) -> None:
    experiment = ToyExperiment(diffusion=DiffusionConfig(ddim_steps=5), background=(0.5, 0.5, 0.5))
    (tmp_path / "config.json").write_text(json.dumps(_old_layout(experiment)))
    assert load_run_config(tmp_path, ToyExperiment) == experiment
    save_run_config(tmp_path, experiment)  # resuming it is the same experiment
    assert "background" not in json.loads((tmp_path / "config.json").read_text())["teacher"]


def test_an_older_config_whose_stages_disagree_is_refused_in_one_line(tmp_path: pathlib.Path) -> None:
    document = _old_layout(ToyExperiment())
    document["multistep"]["diffusion"]["t_star"] = 30
    with pytest.raises(ValueError, match=r"different diffusion settings \(bootstrap, multistep\).*new --run-dir"):
        upgrade_config(document, "config.json")


@pytest.mark.parametrize("text", ["[1, 2]", "{not json", ""])
def test_a_config_that_is_not_an_object_names_the_file(tmp_path: pathlib.Path, text: str) -> None:
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(ValueError, match=r"config.json: not a") as error:
        load_run_config(tmp_path, ToyExperiment)
    assert "\n" not in str(error.value)


def test_a_config_with_an_unknown_field_names_it(tmp_path: pathlib.Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"preset": "x", "colour": 3}))
    with pytest.raises(ValueError, match=r"unknown fields \['colour'\]"):
        load_run_config(tmp_path, ToyExperiment)


def test_a_missing_config_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="no config.json"):
        load_run_config(tmp_path, ToyExperiment)


def test_the_flags_of_the_older_layout_set_the_shared_fields() -> None:
    argv = ["--bootstrap.diffusion.t-star", "30", "--multistep.background", "0", "0", "0", "--data", "/x"]
    assert expand_aliases(argv, {**LEGACY_ALIASES, "--data": "--data.root"}) == [
        "--diffusion.t-star",
        "30",
        "--background",
        "0",
        "0",
        "0",
        "--data.root",
        "/x",
    ]
    experiment = parse_experiment(
        ToyExperiment,
        {"a": ToyExperiment, "b": lambda: ToyExperiment(preset="b", normalizer_batches=3)},
        ["--preset", "b", *argv],
        default_preset="a",
        description="toy",
        aliases={"--data": "--data.root"},
        run_dir_pattern="runs/toy-{preset}",
    )
    assert experiment.diffusion.t_star == 30 and experiment.background == (0.0, 0.0, 0.0)
    assert experiment.data.root == pathlib.Path("/x") and experiment.normalizer_batches == 3
    assert experiment.run_dir == pathlib.Path("runs/toy-b")


def test_help_lists_the_presets(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        parse_experiment(
            ToyExperiment, {"a": ToyExperiment, "b": ToyExperiment}, ["--help"], default_preset="a", description="toy"
        )
    assert "a (default), b" in capsys.readouterr().out
