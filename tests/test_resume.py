"""Training that survives: checkpoints that resume a run exactly, writes a kill cannot tear,
divergence caught before it reaches a checkpoint, and bad resume input refused untouched
(docs/design.md, "Resume")."""

import csv
import json
import os
import signal
import time

import numpy as np
import pytest
import torch

import tests.envs  # noqa: F401  (registers the test envs)
from fastsac import FastSAC, SACAgent, cli, make_env
from fastsac.agent import Agent
from fastsac.errors import TrainingDiverged
from fastsac.state import modules

AGENTS = [SACAgent, FastSAC]
# a short Pendulum run (200-step episodes): checkpoints at 300 (mid-episode) and 600 (boundary)
RUN = ["train", "--frames", "1000", "--memory-size", "2000", "--batch-size", "32",
       "--initial-random-steps", "300", "--hidden", "32", "--eager", "--device", "cpu",
       "--test-episodes", "1", "--no-progress", "--checkpoint-every", "300"]


def make(agent_cls, env_id="Pendulum-v1", **kwargs):
    kwargs.setdefault("device", "cpu")
    kwargs.setdefault("seed", 5)
    if agent_cls is FastSAC:
        kwargs.setdefault("compile", False)
    return agent_cls(make_env(env_id), 2000, 32, initial_random_steps=200, hidden_sizes=(32,),
                     **kwargs)


def _params(agent):
    return {f"{n}.{k}": v.clone() for n in modules(agent)
            for k, v in getattr(agent, n).state_dict().items()} | {
        "log_alpha": agent.log_alpha.detach().clone()}


def _metrics(path):
    """metrics.csv without its fps column (wall-clock time)."""
    return [row[:-1] for row in csv.reader(open(path))]


def _interrupt_at(monkeypatch, frame):
    """The next run stops (as Ctrl-C would) when it is about to act for ``frame``."""
    original = Agent.select_action

    def select_action(self, state, deterministic=False):
        if self.total_step == frame:
            raise KeyboardInterrupt
        return original(self, state, deterministic)

    monkeypatch.setattr(Agent, "select_action", select_action)


@pytest.mark.parametrize("agent_cls", AGENTS)
def test_api_resume_at_episode_boundary_is_bitwise(agent_cls, tmp_path):
    """train(1000) == train(600, checkpointing) + load into a new agent + train(400):
    parameters, Adam states, buffer, history (but fps) and loss curves, bit for bit. The
    checkpoint is the one written at the end of the first run (600 is off the 250-frame
    schedule). And train(600) + train(400) in one agent equals train(1000) too."""
    torch.set_num_threads(1)
    whole = make(agent_cls)
    whole.train(1000, plot_path=None, progress=False)
    path = tmp_path / "ckpt.pt"
    first = make(agent_cls)
    first.train(600, plot_path=None, progress=False, checkpoint_path=path,
                checkpoint_every=250)
    first.train(400, plot_path=None, progress=False)
    for key, value in _params(whole).items():
        assert torch.equal(value, _params(first)[key]), key
    resumed = make(agent_cls, seed=99)  # another seed: everything must come from the file
    resumed.load(path)
    resumed.train(400, plot_path=None, progress=False)
    for key, value in _params(whole).items():
        assert torch.equal(value, _params(resumed)[key]), key
    for name in ("actor_optimizer", "qf_1_optimizer", "vf_optimizer", "alpha_optimizer"):
        a = getattr(whole, name).state_dict()["state"]
        b = getattr(resumed, name).state_dict()["state"]
        assert all(torch.equal(a[i][k], b[i][k]) for i in a for k in a[i]), name
    n = len(whole.memory)
    assert n == len(resumed.memory) == 1000
    for field in ("obs_buf", "acts_buf", "rews_buf", "next_obs_buf", "done_buf"):
        assert np.array_equal(getattr(whole.memory, field)[:n],
                              getattr(resumed.memory, field)[:n]), field
    for key in whole.history:
        if key != "fps":
            assert np.array_equal(whole.history[key], resumed.history[key], equal_nan=True), key
    assert np.array_equal(whole.loss_curves["qf"], resumed.loss_curves["qf"])
    assert (whole.total_step, whole.update_step) == (resumed.total_step, resumed.update_step)


def test_cli_resume_matches_the_uninterrupted_run(tmp_path, monkeypatch, capsys):
    """Killed at frame 801 (checkpoint at 600, an episode boundary; metrics.csv already holds
    the episode that ended at 800), then --resume: the final checkpoint (weights, buffer) and
    metrics.csv equal the uninterrupted run's, with no gap and no duplicate row."""
    torch.set_num_threads(1)
    assert cli.main(RUN + ["--out", str(tmp_path / "whole")]) == 0
    run = tmp_path / "cut"
    _interrupt_at(monkeypatch, 801)
    with pytest.raises(KeyboardInterrupt):
        cli.main(RUN + ["--out", str(run)])
    monkeypatch.undo()
    assert len(_metrics(run / "metrics.csv")) == 1 + 4  # episodes up to frame 800
    assert torch.load(run / "checkpoint.pt", weights_only=True)["counters"][0] == 600
    assert cli.main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert "resuming at frame 600" in capsys.readouterr().out

    whole = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)
    cut = torch.load(run / "checkpoint.pt", weights_only=True)
    for name, tensors in whole["modules"].items():
        for key, value in tensors.items():
            assert torch.equal(value, cut["modules"][name][key]), (name, key)
    assert torch.equal(whole["buffer"]["rows"], cut["buffer"]["rows"])
    assert _metrics(tmp_path / "whole" / "metrics.csv") == _metrics(run / "metrics.csv")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["resumed_from_frame"] == 600 and summary["frames_collected"] == 400


def test_mid_episode_resume_restarts_the_episode(tmp_path):
    """A checkpoint 100 frames into an episode: the resumed run restarts that episode, so its
    next episode row ends 200 frames after the checkpoint, and the run reaches its frames."""
    agent = make(FastSAC)
    path = tmp_path / "ckpt.pt"
    agent.train(500, plot_path=None, progress=False, checkpoint_path=path)
    resumed = make(FastSAC)
    resumed.load(path)
    assert resumed.total_step == 500 and resumed.history["frame"] == [200.0, 400.0]
    resumed.train(500, plot_path=None, progress=False)
    assert resumed.total_step == 1000
    assert resumed.history["frame"] == [200.0, 400.0, 700.0, 900.0]


def test_sigkill_during_checkpoint_writes_leaves_a_loadable_checkpoint(tmp_path):
    """20 times: a forked process resumes the run from the directory's checkpoint and writes
    a checkpoint every 4 frames (a 100k-transition buffer, so writing is most of its time);
    it is killed with SIGKILL at a random instant. The directory always holds a checkpoint that
    loads, never older than the one before; at least some kills tore a write (the partial
    file is left); then a resume completes the run."""
    path = tmp_path / "run" / "checkpoint.pt"
    seed_agent = FastSAC(make_env("Pendulum-v1"), 100_000, 32, initial_random_steps=100,
                         hidden_sizes=(32,), seed=1, compile=False)
    rows = np.random.default_rng(0).normal(size=(99_000, 3)).astype(np.float32)
    seed_agent.memory.store_batch(rows, rows[:, :1], rows[:, 0], rows, np.zeros(99_000))
    seed_agent.save(path, include_buffer=True)
    randomness = np.random.default_rng(1)
    frames, torn = [], 0
    for _ in range(20):
        pid = os.fork()
        if pid == 0:  # the child: resume and checkpoint as fast as it can, until killed
            try:
                torch.set_num_threads(1)
                child = FastSAC(make_env("Pendulum-v1"), 100_000, 32, initial_random_steps=100,
                                hidden_sizes=(32,), seed=1, compile=False)
                child.load(path)
                child.train(10_000, plot_path=None, progress=False, checkpoint_path=path,
                            checkpoint_every=4)
            finally:
                os._exit(0)
        time.sleep(randomness.uniform(0.3, 1.2))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        torn += any(p.name.startswith(".checkpoint.pt.part-") for p in path.parent.iterdir())
        check = FastSAC(make_env("Pendulum-v1"), 100_000, 32, initial_random_steps=100,
                        hidden_sizes=(32,), seed=1, compile=False)
        check.load(path)  # raises if the file is torn
        frames.append(check.total_step)
    assert frames == sorted(frames) and frames[-1] > 0, frames
    assert torn >= 3, f"only {torn} of 20 kills landed inside a checkpoint write"
    final = FastSAC(make_env("Pendulum-v1"), 100_000, 32, initial_random_steps=100,
                    hidden_sizes=(32,), seed=1, compile=False)
    final.load(path)
    final.train(frames[-1] + 50 - final.total_step, plot_path=None, progress=False,
                checkpoint_path=path)
    assert final.total_step == frames[-1] + 50
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint.pt"]  # partials cleaned


def test_exploding_learning_rate_stops_with_the_loss_named(tmp_path, capsys):
    """lr 1e8: the run stops (exit 3) naming the frame and the loss; the checkpoint written
    before it (end of the warm-up) is kept and loads."""
    out = tmp_path / "boom"
    code = cli.main(["train", "--frames", "2000", "--memory-size", "2000", "--batch-size", "32",
                     "--initial-random-steps", "200", "--hidden", "32", "--lr", "1e8",
                     "--eager", "--device", "cpu", "--no-progress", "--checkpoint-every", "100",
                     "--out", str(out)])
    assert code == 3
    err = capsys.readouterr().err
    assert "training diverged at frame" in err and "_loss is" in err
    assert f"the last checkpoint, {out / 'checkpoint.pt'} (frame 200), is kept" in err
    agent = FastSAC.from_checkpoint(out / "checkpoint.pt", compile=False)
    assert agent.total_step == 200
    assert all(torch.isfinite(p).all() for p in agent.actor.parameters())


def test_divergence_without_a_checkpoint_path(tmp_path):
    agent = make(SACAgent, "fastsac-tests/NanReward-v0")
    with pytest.raises(TrainingDiverged, match=r"at frame 150: reward is nan; the env returned it"
                       r"; nothing was stored$"):
        agent.train(400, plot_path=None, progress=False)


@pytest.mark.parametrize("agent_cls", AGENTS)
def test_non_finite_reward_stops_training(agent_cls, tmp_path):
    agent = make(agent_cls, "fastsac-tests/NanReward-v0")
    path = tmp_path / "ckpt.pt"
    with pytest.raises(TrainingDiverged, match="at frame 150: reward is nan") as caught:
        agent.train(400, plot_path=None, progress=False, checkpoint_path=path,
                    checkpoint_every=100)
    assert caught.value.frame == 150 and "frame 100), is kept" in str(caught.value)
    assert len(agent.memory) == 149  # the bad transition was not stored
    other = make(agent_cls, "fastsac-tests/NanReward-v0")
    other.load(path)
    assert other.total_step == 100


def test_divergence_is_checked_before_a_checkpoint(tmp_path):
    """A parameter made non-finite by hand during the warm-up (no update, no loss to see it):
    the next checkpoint is refused, the old one kept."""
    agent = make(FastSAC)
    path = tmp_path / "ckpt.pt"
    agent.train(100, plot_path=None, progress=False, checkpoint_path=path)
    before = path.read_bytes()
    with torch.no_grad():
        agent.vf.hidden1.weight[0, 0] = float("inf")
    with pytest.raises(TrainingDiverged, match="at frame 150: a parameter of vf is not finite"
                       ".*the checkpoint at .* is kept"):
        agent.train(50, plot_path=None, progress=False, checkpoint_path=path,
                    checkpoint_every=50)
    assert path.read_bytes() == before


# ---- bad input --------------------------------------------------------------------------------
def _snapshot_dir(path):
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A complete 450-frame run directory."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert cli.main(["train", "--frames", "450", "--memory-size", "1000", "--batch-size", "32",
                     "--initial-random-steps", "300", "--hidden", "32", "--eager", "--device",
                     "cpu", "--test-episodes", "1", "--no-progress", "--out", str(out)]) == 0
    return out


def _damaged(run, tmp_path, how):
    """A copy of ``run`` whose checkpoint is damaged ``how``."""
    import shutil

    target = tmp_path / how
    shutil.copytree(run, target)
    ckpt = target / "checkpoint.pt"
    if how == "missing":
        ckpt.unlink()
    elif how == "truncated":
        ckpt.write_bytes(ckpt.read_bytes()[:ckpt.stat().st_size // 2])
    elif how == "foreign":
        torch.save({"weights": torch.zeros(3)}, ckpt)
    elif how in ("version", "no_buffer", "bad_shape", "bad_optimizer"):
        state = torch.load(ckpt, weights_only=True)
        if how == "version":
            state["version"] = 99
        elif how == "no_buffer":
            state["buffer"] = None
        elif how == "bad_optimizer":
            state["optimizers"]["qf_1_optimizer"]["state"][0] = [1, 2]
        else:
            state["modules"]["actor"]["hidden1.weight"] = torch.zeros(7, 3)
        torch.save(state, ckpt)
    return target


@pytest.mark.parametrize("how,message", [
    ("missing", "no checkpoint.pt in it"),
    ("truncated", "is not a readable fastsac file"),
    ("foreign", "is not a fastsac-checkpoint file"),
    ("version", "format version 99; this fastsac reads version 4 only"),
    ("no_buffer", "cannot be resumed"),
    ("bad_shape", "actor.hidden1.weight: shape"),
    ("bad_optimizer", "the state of parameter 0 is not Adam's"),
])
def test_bad_resume_input_is_refused_and_nothing_is_overwritten(finished_run, tmp_path, capsys,
                                                                how, message):
    run = _damaged(finished_run, tmp_path, how)
    before = _snapshot_dir(run)
    assert cli.main(["train", "--resume", str(run), "--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert _snapshot_dir(run) == before


def test_resume_refuses_contradicting_options(finished_run, capsys):
    before = _snapshot_dir(finished_run)
    code = cli.main(["train", "--resume", str(finished_run), "--frames", "900", "--lr", "1e-3",
                     "--gamma", "0.9", "--hidden", "32", "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--lr 0.001 (the run has 0.0003)" in err and "--gamma 0.9 (the run has 0.99)" in err
    assert "--hidden" not in err and "--frames" not in err  # the same value; an extension
    assert cli.main(["train", "--resume", str(finished_run), "--frames", "300"]) == 2
    assert "--frames 300 is fewer than the run's 450" in capsys.readouterr().err
    assert cli.main(["train", "--resume", str(finished_run), "--nproc", "2"]) == 2
    assert "--nproc 2 contradicts the run's 1 processes" in capsys.readouterr().err
    assert _snapshot_dir(finished_run) == before


def test_resume_input_without_a_run(tmp_path, capsys):
    assert cli.main(["train", "--resume", str(tmp_path / "nowhere"), "--no-progress"]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_a_run_directory_is_not_overwritten_by_a_new_run(finished_run, capsys):
    before = _snapshot_dir(finished_run)
    assert cli.main(["train", "--frames", "10", "--out", str(finished_run), "--eager",
                     "--no-progress"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert _snapshot_dir(finished_run) == before


def test_overwrite_removes_the_old_run_first(finished_run, tmp_path, monkeypatch, capsys):
    """--overwrite: a new run killed before its first checkpoint leaves nothing to resume by
    mistake; --overwrite with --resume is refused."""
    import shutil

    run = tmp_path / "again"
    shutil.copytree(finished_run, run)
    assert cli.main(["train", "--resume", str(run), "--overwrite", "--no-progress"]) == 2
    assert "give one" in capsys.readouterr().err
    _interrupt_at(monkeypatch, 5)
    with pytest.raises(KeyboardInterrupt):
        cli.main(["train", "--frames", "450", "--out", str(run), "--overwrite", "--eager",
                  "--device", "cpu", "--hidden", "32", "--no-progress"])
    assert not (run / "checkpoint.pt").exists() and not (run / "summary.json").exists()


def test_resuming_a_finished_run_writes_its_outputs_only(finished_run, capsys):
    """A run killed after its last checkpoint but before its summary: --resume trains no more
    and writes the outputs."""
    (finished_run / "summary.json").unlink()
    assert cli.main(["train", "--resume", str(finished_run), "--no-progress"]) == 0
    summary = json.loads((finished_run / "summary.json").read_text())
    assert summary["resumed_from_frame"] == 450 and summary["frames_collected"] == 0
    # --test-episodes acts after training: a resume may change it (and must keep it valid)
    assert cli.main(["train", "--resume", str(finished_run), "--test-episodes", "0",
                     "--no-progress"]) == 2
    assert "--test-episodes must be >= 1" in capsys.readouterr().err
    assert cli.main(["train", "--resume", str(finished_run), "--test-episodes", "2",
                     "--no-progress"]) == 0
    assert json.loads((finished_run / "summary.json").read_text())["test_episodes"] == 2


def test_buffer_and_streams_move_between_agents(tmp_path):
    """A FastSAC checkpoint (packed buffer rows) loads into the reference agent and back."""
    fast = make(FastSAC)
    fast.train(300, plot_path=None, progress=False)
    fast.save(tmp_path / "fast.pt", include_buffer=True)
    ref = make(SACAgent)
    ref.load(tmp_path / "fast.pt")
    assert np.array_equal(ref.memory.obs_buf[:300], fast.memory.obs_buf[:300])
    assert np.array_equal(ref.memory.acts_buf[:300], fast.memory.acts_buf[:300])
    ref.save(tmp_path / "ref.pt", include_buffer=True)
    back = make(FastSAC)
    back.load(tmp_path / "ref.pt")
    assert np.array_equal(back.memory.next_obs_buf[:300], fast.memory.next_obs_buf[:300])
    assert back.memory._rng_state[0] == make(FastSAC).memory._rng_state[0]  # its own stream


def test_resume_with_more_frames_extends_the_run_exactly(tmp_path):
    """--resume DIR --frames N on a finished 400-frame run equals an 800-frame run: weights,
    buffer and metrics (but fps), bit for bit."""
    torch.set_num_threads(1)
    options = RUN[3:-2]  # RUN without --frames and --checkpoint-every
    assert cli.main(["train", "--frames", "800", *options, "--out", str(tmp_path / "whole")]) == 0
    assert cli.main(["train", "--frames", "400", *options, "--out", str(tmp_path / "ext")]) == 0
    assert cli.main(["train", "--resume", str(tmp_path / "ext"), "--frames", "800",
                     "--no-progress"]) == 0
    whole = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)
    ext = torch.load(tmp_path / "ext" / "checkpoint.pt", weights_only=True)
    assert whole["counters"] == ext["counters"] and whole["counters"][0] == 800
    for name, tensors in whole["modules"].items():
        for key, value in tensors.items():
            assert torch.equal(value, ext["modules"][name][key]), (name, key)
    assert torch.equal(whole["buffer"]["rows"], ext["buffer"]["rows"])
    assert _metrics(tmp_path / "whole" / "metrics.csv") == _metrics(tmp_path / "ext" /
                                                                     "metrics.csv")
