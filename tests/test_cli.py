"""The command line: help, a tiny `train`, `check` (and that it fails on a perturbed fast path),
and `bench` plumbing on tiny sizes. No timing assertions."""

import csv
import json

import pytest
import torch

from fastsac import bench, bench_cli, check_cli, cli
from fastsac.agent import FastSAC


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("train", "bench", "check"):
        assert command in out


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 2
    assert "train" in capsys.readouterr().out


def test_train_writes_outputs(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main(["train", "--frames", "450", "--memory-size", "1000", "--batch-size", "32",
                     "--initial-random-steps", "200", "--seed", "3", "--out", str(out),
                     "--device", "cpu", "--eager", "--test-episodes", "2", "--no-progress"])
    assert code == 0
    for name in ("learning_curve.png", "checkpoint.pt", "metrics.csv", "summary.json"):
        assert (out / name).stat().st_size > 0, name
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert len(rows) == 2  # 450 frames = two 200-step Pendulum episodes (+ a partial one)
    assert {"frame", "score", "actor_loss", "qf_loss", "vf_loss", "alpha_loss", "alpha",
            "fps"} <= set(rows[0])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test_episodes"] == 2 and summary["seed"] == 3
    # an eager run has neither a compiled update nor the C++ one that bridges its compile
    assert summary["first_compiled_update_train_s"] is None
    assert summary["first_native_update_train_s"] is None
    printed = capsys.readouterr().out
    assert "mean return over 2 test episodes" in printed


def test_presets_fill_unset_options_only():
    parser_args = ["train", "--preset", "mujoco", "--batch-size", "64"]
    import argparse

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    cli._add_train(sub)
    args = cli.resolve_train_args(parser.parse_args(parser_args))
    assert args.env == "HalfCheetah-v5" and args.hidden == (256, 256) and args.lr == 3e-4
    assert args.memory_size == 1_000_000 and args.frames == 1_000_000
    assert args.batch_size == 64  # given on the command line
    assert args.out == "runs/halfcheetah"
    args = cli.resolve_train_args(parser.parse_args(["train"]))
    assert (args.env, args.hidden, args.batch_size, args.memory_size, args.out) == (
        "Pendulum-v1", (128, 128), 128, 100_000, "runs/pendulum")


def test_train_mujoco_preset_on_halfcheetah(tmp_path):
    """The MuJoCo preset on HalfCheetah-v5 (gymnasium's mujoco extra), shrunk to seconds."""
    pytest.importorskip("mujoco")
    out = tmp_path / "cheetah"
    code = cli.main(["train", "--preset", "mujoco", "--env", "HalfCheetah-v5", "--frames",
                     "1100", "--memory-size", "5000", "--batch-size", "32",
                     "--initial-random-steps", "1000", "--hidden", "64", "32", "--lr", "1e-3",
                     "--out", str(out), "--device", "cpu", "--eager", "--test-episodes", "1",
                     "--no-progress"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["hidden_sizes"] == [64, 32] and summary["lr"] == 1e-3
    assert summary["batch_size"] == 32 and summary["preset"] == "mujoco"
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["hidden_sizes"] == [64, 32] and state["obs_dim"] == 17
    assert state["action_dim"] == 6


def test_train_on_vector_envs(tmp_path):
    """--num-envs 3 (async) at 0.5 updates per transition: per-env episode rows, and the
    share of the run spent writing outputs in summary.json."""
    out = tmp_path / "vec"
    code = cli.main(["train", "--frames", "1500", "--num-envs", "3", "--vectorization", "async",
                     "--updates-per-step", "0.5", "--memory-size", "2000", "--batch-size", "32",
                     "--initial-random-steps", "300", "--hidden", "32", "--out", str(out),
                     "--device", "cpu", "--eager", "--test-episodes", "1", "--no-progress"])
    assert code == 0
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert len(rows) == 6  # 3 envs x two 200-step episodes in 1500 transitions
    assert sorted(int(r["env"]) for r in rows) == [0, 0, 1, 1, 2, 2]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_envs"] == 3 and summary["updates_per_step"] == 0.5
    assert 0 < summary["output_share"] < 1


@pytest.mark.parametrize("option,value,message", [("--hidden", "0", "positive"),
                                                   ("--lr", "-1", "lr must be"),
                                                   ("--batch-size", "0", "batch_size"),
                                                   ("--num-envs", "0", "--num-envs"),
                                                   ("--updates-per-step", "0",
                                                    "updates_per_step"),
                                                   ("--test-episodes", "0", "--test-episodes"),
                                                   ("--seed", "-1", "seed")])
def test_train_rejects_bad_settings(tmp_path, capsys, option, value, message):
    code = cli.main(["train", option, value, "--frames", "10", "--out", str(tmp_path / "x"),
                     "--device", "cpu", "--eager", "--no-progress"])
    assert code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("env_id,message", [("CartPole-v1", "continuous Box action"),
                                             ("NoSuchEnv-v0", "cannot make env")])
def test_train_rejects_bad_env(tmp_path, capsys, env_id, message):
    code = cli.main(["train", "--env", env_id, "--frames", "10", "--out", str(tmp_path / "x"),
                     "--device", "cpu", "--no-progress"])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_check_passes(capsys):
    args = ["check", "--no-compile", "--updates", "5", "--device", "cpu"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "FAIL" not in out
    assert "update x5" in out


class _PerturbedTau(FastSAC):
    """A fast path with a bug: its Polyak factor is 2% off."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from dataclasses import replace

        from fastsac.update import make_update

        self._cfg = replace(self._cfg, tau=self._cfg.tau * 1.02)
        self._update_fn = make_update(self._cfg, self.compile, self.device, self.dtype,
                                      self.batch_size)


def test_check_fails_on_perturbed_update(monkeypatch, capsys):
    monkeypatch.setattr(check_cli, "FastSAC", _PerturbedTau)
    rows = check_cli.run_checks(["cpu"], torch.float64, updates=4, compiled=False)
    failed = {r.check for r in rows if not r.passed}
    assert "update x4" in failed
    monkeypatch.setattr(check_cli, "run_checks", lambda *a, **k: rows)
    assert cli.main(["check", "--no-compile", "--updates", "4", "--device", "cpu"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_check_fails_on_perturbed_op(monkeypatch):
    real = check_cli.ops.tanh_normal

    def off_by_a_bit(m, s, e, *args):
        action, log_prob = real(m, s, e, *args)
        return action, log_prob * 1.001

    monkeypatch.setattr(check_cli.ops, "tanh_normal", off_by_a_bit)
    rows = check_cli.op_rows("cpu", torch.float32)
    assert [r.passed for r in rows if r.check == "tanh_normal forward"] == [False]


def test_bench_plumbing(tmp_path, monkeypatch):
    """bench writes JSON, Markdown and a PNG; sizes shrunk so no real timing happens."""
    monkeypatch.setattr(bench, "tanh_normal_cases",
                        lambda device, batches=(): _real_tanh(device, (4,), (1,)))
    monkeypatch.setattr(bench, "buffer_cases", lambda sizes=(): _real_buffer((300,)))
    monkeypatch.setattr(bench, "time_group",
                        lambda cases, rounds=1, budget_s=0.0: _real_time(cases, 1, 1e-4))
    code = cli.main(["bench", "--quick", "--device", "cpu", "--out", str(tmp_path),
                     "--only", "ops,buffer"])
    assert code == 0
    files = sorted(p.suffix for p in tmp_path.iterdir())
    assert files == [".json", ".md", ".png"]
    report = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert report["machine"]["torch"] == torch.__version__
    groups = {row["group"] for row in report["micro"]}
    assert any("tanh_normal" in g for g in groups) and any("sample_batch" in g for g in groups)
    assert all(row["median_s"] > 0 for row in report["micro"])
    md = next(tmp_path.glob("*.md")).read_text()
    assert "vs baseline" in md


_real_tanh = bench.tanh_normal_cases
_real_buffer = bench.buffer_cases
_real_time = bench.time_group


def test_markdown_and_slug():
    info = {"cpu": "AMD EPYC 7B13 64-Core Processor", "cores": 2}
    assert bench_cli.machine_slug(info) == "amd-epyc-7b13-64-core-processor-2c"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
@pytest.mark.parametrize("command", ["check", "bench"])
def test_cuda_without_gpu_is_a_clear_error(command, capsys, tmp_path):
    args = [command, "--device", "cuda"] + (["--out", str(tmp_path)] if command == "bench" else [])
    assert cli.main(args) == 2
    assert "torch sees no CUDA device" in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [(["check", "--updates", "1"], "--updates must be >= 2"),
                                          (["bench", "--only", "ops,opps"],
                                           "unknown part(s) opps")])
def test_check_and_bench_reject_bad_options(argv, message, capsys, tmp_path):
    assert cli.main([*argv, "--device", "cpu"]) == 2
    assert message in capsys.readouterr().err


def test_check_labels_the_fallback_instead_of_crashing(monkeypatch):
    """Without the extension, ``fastsac check`` names the pure-torch fallback in its product
    row instead of failing on the missing SIMD query (the row's kernels are whatever
    torch.ops.fastsac holds: here the extension's, with the flag patched)."""
    from fastsac import check_cli, ops

    monkeypatch.setattr(ops, "EXTENSION_LOADED", False)
    assert ops.kernel_build() == "pure-torch FALLBACK"
    rows = check_cli._cpu_op_rows(torch.Generator().manual_seed(0), torch.float64, 1e-7)
    assert rows[0].check == "mm (pure-torch FALLBACK build)"
