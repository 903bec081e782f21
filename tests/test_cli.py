"""The command line: help, a tiny ``train`` and its outputs, presets, one flag per setting,
numbers like 1e5, env kwargs and custom envs, errors that are one line (fastsac's) or a
traceback (the env's), and ``check``, passing and failing on a perturbed fast path."""

import csv
import json

import pytest
import torch

import tests.envs  # noqa: F401  (registers the test envs)
from fastsac import check, cli
from fastsac.settings import FIELDS

TINY = ["--memory-size", "1000", "--batch-size", "32", "--initial-random-steps", "200",
        "--hidden", "32", "--device", "cpu", "--eager", "--test-episodes", "2", "--no-progress"]


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("train", "bench", "check"):
        assert command in out
    assert cli.main([]) == 2


def test_entry_point_exits_with_mains_code_and_freezes(monkeypatch):
    """The console script's exit: main's code, the collector's objects frozen (so interpreter
    shutdown does not walk them again)."""
    import gc

    monkeypatch.setattr(cli, "main", lambda: 3)
    gc.unfreeze()
    try:
        with pytest.raises(SystemExit) as exc:
            cli.entry_point()
        assert exc.value.code == 3
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_every_setting_has_a_flag(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    out = capsys.readouterr().out
    for name in FIELDS:
        assert f"--{name.replace('_', '-')}" in out, name
    for flag in ("--env-kwargs", "--eval-every", "--tensorboard", "--resume", "--variant"):
        assert flag in out


def test_train_writes_outputs(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--frames", "450", *TINY, "--seed", "3", "--out", str(out),
                     "--eval-every", "200", "--eval-episodes", "1"]) == 0
    for name in ("learning_curve.png", "checkpoint.pt", "metrics.csv", "eval.csv",
                 "summary.json"):
        assert (out / name).stat().st_size > 0, name
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert len(rows) == 2  # two 200-step Pendulum episodes (+ a partial one)
    assert {"frame", "score", "actor_loss", "qf_loss", "vf_loss", "alpha_loss", "alpha",
            "fps"} <= set(rows[0])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test_episodes"] == 2 and summary["settings"]["seed"] == 3
    assert summary["test_deterministic"] is True and summary["eval_frames"] == [200.0, 400.0]
    assert summary["first_compiled_update_train_s"] is None  # an eager run
    assert "mean return over 2 deterministic test episodes" in capsys.readouterr().out


def test_presets_fill_unset_options_only():
    import argparse

    parser = argparse.ArgumentParser()
    cli._add_train(parser.add_subparsers(dest="command"))
    args = cli.resolve_train_args(parser.parse_args(["train", "--preset", "mujoco",
                                                     "--batch-size", "64"]))
    settings = cli.settings_of(args)
    assert args.env == "HalfCheetah-v5" and settings.hidden_sizes == (256, 256)
    assert settings.variant == "v2" and settings.memory_size == 1_000_000
    assert args.frames == 1_000_000 and settings.batch_size == 64 and settings.lr == 3e-4
    assert args.out == "runs/halfcheetah"
    args = cli.resolve_train_args(parser.parse_args(["train", "--frames", "1e5"]))
    settings = cli.settings_of(args)
    assert (args.env, settings.variant, settings.hidden_sizes, settings.batch_size,
            settings.memory_size, args.frames) == ("Pendulum-v1", "v1", (128, 128), 128,
                                                   100_000, 100_000)
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--frames", "1.5"])


def test_v2_with_three_critics_on_halfcheetah(tmp_path):
    """--variant v2 --n-critics 3 on HalfCheetah-v5 (gymnasium's mujoco extra), in seconds."""
    pytest.importorskip("mujoco")
    out = tmp_path / "cheetah"
    assert cli.main(["train", "--preset", "mujoco", "--n-critics", "3", "--frames", "1100",
                     "--memory-size", "5000", "--batch-size", "32", "--initial-random-steps",
                     "1000", "--hidden", "64", "32", "--lr", "1e-3", "--out", str(out),
                     "--device", "cpu", "--eager", "--test-episodes", "1",
                     "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["hidden_sizes"] == [64, 32] and summary["settings"]["lr"] == 1e-3
    assert summary["settings"]["variant"] == "v2" and summary["settings"]["n_critics"] == 3
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["spaces"]["obs_dim"] == 17 and state["env_id"] == "HalfCheetah-v5"
    assert "qf_3_target" in state["modules"]


def test_train_on_vector_envs(tmp_path):
    out = tmp_path / "vec"
    assert cli.main(["train", "--frames", "1500", "--num-envs", "3", "--vectorization", "async",
                     "--updates-per-step", "0.5", *TINY[:-3], "--test-episodes", "1",
                     "--out", str(out), "--no-progress"]) == 0
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert sorted(int(r["env"]) for r in rows) == [0, 0, 1, 1, 2, 2]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_envs"] == 3 and summary["settings"]["updates_per_step"] == 0.5
    assert 0 <= summary["output_share"] < 0.5


def test_env_kwargs_and_a_custom_env_without_render_mode(tmp_path):
    """--env-kwargs reach the env's constructor; an env whose __init__ takes no render_mode
    trains; its actions arrive in its own bounds."""
    out = tmp_path / "box"
    assert cli.main(["train", "--env", "fastsac-tests/Box0to10-v0", "--env-kwargs",
                     '{"low": 2.0, "high": 3.0}', "--frames", "300", *TINY, "--out",
                     str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env_kwargs"] == {"low": 2.0, "high": 3.0}
    assert summary["test_mean_return"] <= -2 * 2 * 50  # every action >= 2 in both dims


def test_an_error_in_the_user_s_env_shows_its_traceback(tmp_path):
    """Raised in the env's step or its constructor: not fastsac's, so not one line."""
    with pytest.raises(ZeroDivisionError, match="a bug in the user's env"):
        cli.main(["train", "--env", "fastsac-tests/Broken-v0", "--frames", "300", *TINY,
                  "--out", str(tmp_path / "x")])
    with pytest.raises(TypeError, match="unexpected keyword argument 'nope'"):
        cli.main(["train", "--env-kwargs", '{"nope": 1}', "--frames", "300", *TINY,
                  "--out", str(tmp_path / "y")])


@pytest.mark.parametrize("option,value,message", [
    ("--hidden", "0", "positive"), ("--lr", "-1", "lr must be"),
    ("--batch-size", "0", "batch_size"), ("--num-envs", "0", "--num-envs"),
    ("--updates-per-step", "0", "updates_per_step"), ("--test-episodes", "0", "--test-episodes"),
    ("--seed", "-1", "seed"), ("--n-critics", "4", "n_critics")])
def test_train_rejects_bad_settings_in_one_line(tmp_path, capsys, option, value, message):
    code = cli.main(["train", option, value, "--frames", "10", "--out", str(tmp_path / "x"),
                     "--device", "cpu", "--eager", "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("env_id,message", [("CartPole-v1", "continuous Box action"),
                                             ("NoSuchEnv-v0", "cannot make env")])
def test_train_rejects_bad_env(tmp_path, capsys, env_id, message):
    assert cli.main(["train", "--env", env_id, "--frames", "10", "--out", str(tmp_path / "x"),
                     "--device", "cpu", "--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_a_warm_up_longer_than_the_run_is_warned_about(tmp_path):
    with pytest.warns(UserWarning, match="no update will run"):
        assert cli.main(["train", "--frames", "300", "--eager", "--device", "cpu",
                         "--test-episodes", "1", "--no-progress", "--out",
                         str(tmp_path / "x")]) == 0


def test_check_passes(capsys):
    assert cli.main(["check", "--no-compile", "--updates", "5", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "FAIL" not in out
    assert "v2, 3 critics update x5" in out and "v1, 2 critics update x5" in out


def test_check_fails_on_a_perturbed_update_and_a_perturbed_op(monkeypatch, capsys):
    from fastsac import engine

    real = engine.adam_
    monkeypatch.setattr(engine, "adam_",
                        lambda group, grads, s: real(group, [g * 1.02 for g in grads], s))
    rows = check.update_rows("v1", "engine, eager", "cpu", torch.float64, 4, compile=False)
    assert [r.passed for r in rows] == [False, False]
    monkeypatch.undo()
    real_op = check.ops.tanh_normal
    monkeypatch.setattr(check.ops, "tanh_normal", lambda *a: (real_op(*a)[0],
                                                              real_op(*a)[1] * 1.001))
    rows = check.op_rows("cpu", torch.float32)
    assert [r.passed for r in rows if r.check == "tanh_normal (v1 head)"] == [False]
    monkeypatch.setattr(check, "run_checks", lambda *a, **k: rows)
    assert cli.main(["check", "--no-compile", "--updates", "4", "--device", "cpu"]) == 1
    assert "FAIL" in capsys.readouterr().out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
def test_cuda_without_gpu_is_a_clear_error(capsys):
    assert cli.main(["check", "--device", "cuda"]) == 2
    assert "torch sees no CUDA device" in capsys.readouterr().err
    assert cli.main(["check", "--updates", "1", "--device", "cpu"]) == 2
