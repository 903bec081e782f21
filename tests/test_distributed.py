"""Data-parallel training on torch.distributed (gloo, 2 processes on this machine): an update of
N ranks is the update of one process on the union of their batches; ``fastsac train --nproc``
end to end; a rank that dies ends the other with an error, the checkpoint intact."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

from fastsac import FastSAC, make_env
from tests import dp_worker

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def test_two_ranks_equal_one_process_on_the_union_of_their_batches(tmp_path):
    """float64, 10 updates, batches b0 and b1, noises n0 and n1: each rank's parameters equal
    one process's fed concat(b0, b1) and concat(n0, n1) (within 1e-12), and the two ranks'
    are equal bit for bit: FastSAC eager and compiled, and the reference agent, SAC v1 and v2. And a
    single-process checkpoint loads into both ranks."""
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, "-m", "tests.dp_worker", str(rank), "2", port,
                               str(tmp_path)], cwd=ROOT, stderr=subprocess.PIPE, text=True)
             for rank in (0, 1)]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    torch.set_num_threads(1)
    for kind, (_, kwargs) in dp_worker.KINDS.items():
        variant = kwargs.get("variant", "v1")
        single = dp_worker.make(FastSAC, 2 * dp_worker.BATCH, False, compile=False,
                                variant=variant)
        expected = dp_worker.run(single, None, 2 * dp_worker.BATCH)
        rank0 = torch.load(tmp_path / f"{kind}-0.pt", weights_only=True)
        rank1 = torch.load(tmp_path / f"{kind}-1.pt", weights_only=True)
        for name, value in expected.items():
            assert torch.equal(rank0[name], rank1[name]), (kind, name)
            assert (rank0[name] - value).abs().max() < 1e-12, (kind, name)
        start = dp_worker.make(FastSAC, 2 * dp_worker.BATCH, False, compile=False,
                               variant=variant)
        assert (rank0["actor.hidden1.weight"] - start.actor.hidden1.weight).abs().max() > 1e-4
    # a single-process checkpoint loaded into both ranks (agents seeded otherwise): the file's
    # weights on both, which stay equal through a data-parallel update
    loaded = [torch.load(tmp_path / f"loaded-{rank}.pt", weights_only=True) for rank in (0, 1)]
    for name in loaded[0]["solo"]:
        for part in loaded:
            assert torch.equal(part["loaded"][name], part["solo"][name]), name
        assert torch.equal(loaded[0]["after"][name], loaded[1]["after"][name]), name


def test_train_nproc_2_end_to_end(tmp_path):
    """``fastsac train --nproc 2 --frames 3000``: both ranks' episodes in metrics.csv (a rank
    column), a checkpoint that loads into a single-process agent, a summary."""
    import csv
    import json

    out = tmp_path / "dp"
    proc = subprocess.run(
        [sys.executable, "-m", "fastsac", "train", "--nproc", "2", "--frames", "3000",
         "--memory-size", "3000", "--batch-size", "32", "--initial-random-steps", "400",
         "--hidden", "32", "--eager", "--device", "cpu", "--test-episodes", "1",
         "--no-progress", "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert sorted((float(r["frame"]), int(r["rank"])) for r in rows) == [
        (200.0 * k, rank) for k in range(1, 8) for rank in (0, 1)]  # 1500 frames per rank
    summary = json.loads((out / "summary.json").read_text())
    assert summary["nproc"] == 2 and summary["effective_batch_size"] == 64
    assert summary["frames_collected"] == 3000
    agent = FastSAC.from_checkpoint(out / "checkpoint.pt", compile=False)
    assert agent.total_step == 1500 and len(agent.history["frame"]) == 14


def test_a_dead_rank_ends_the_other_with_an_error(tmp_path):
    """Two ranks started by hand (no torchrun to stop the survivor): rank 1 is killed with
    SIGKILL once a checkpoint exists; rank 0 exits with an error naming the lost rank well
    within its collective timeout, and the checkpoint loads."""
    out = tmp_path / "dead"
    port = _free_port()
    procs = []
    for rank in (0, 1):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
                   LOCAL_WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=port,
                   OMP_NUM_THREADS="1", FASTSAC_DIST_TIMEOUT="60")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "fastsac", "train", "--frames", "200000", "--memory-size",
             "5000", "--batch-size", "32", "--initial-random-steps", "200", "--hidden", "32",
             "--eager", "--device", "cpu", "--no-progress", "--checkpoint-every", "400",
             "--out", str(out)], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True))
    deadline = time.monotonic() + 300
    while not (out / "checkpoint.pt").exists():
        assert time.monotonic() < deadline and procs[0].poll() is None, procs[0].stderr.read()
        time.sleep(0.2)
    procs[1].send_signal(signal.SIGKILL)
    procs[1].wait()
    killed = time.monotonic()
    _, err = procs[0].communicate(timeout=120)
    assert time.monotonic() - killed < 60  # the collective's error, not its timeout
    assert procs[0].returncode == 4, err[-3000:]
    assert "rank 0 lost the other ranks" in err
    agent = FastSAC.from_checkpoint(out / "checkpoint.pt", compile=False)
    assert agent.total_step >= 200


def test_data_parallel_needs_a_process_group():
    with pytest.raises(ValueError, match="needs torch.distributed initialised"):
        FastSAC(make_env("Pendulum-v1"), 1000, 32, compile=False, data_parallel=True)


def test_nproc_checks_its_input_once_before_launching(tmp_path, capsys):
    from fastsac import cli

    assert cli.main(["train", "--nproc", "2", "--frames", "0", "--out",
                     str(tmp_path / "x")]) == 2
    assert "--frames must be >= 1" in capsys.readouterr().err
    assert cli.main(["train", "--nproc", "2", "--lr", "-1", "--out", str(tmp_path / "x")]) == 2
    assert "lr must be" in capsys.readouterr().err
    assert cli.main(["train", "--nproc", "2", "--resume", str(tmp_path)]) == 2
    assert "no checkpoint.pt in it" in capsys.readouterr().err


def test_nproc_returns_the_failed_rank_s_exit_status(tmp_path):
    """Divergence on the ranks (lr 1e8) ends ``fastsac train --nproc 2`` with status 3, as in
    one process, not torchrun's generic 1."""
    proc = subprocess.run(
        [sys.executable, "-m", "fastsac", "train", "--nproc", "2", "--frames", "4000",
         "--memory-size", "2000", "--batch-size", "32", "--initial-random-steps", "200",
         "--hidden", "32", "--lr", "1e8", "--eager", "--device", "cpu", "--no-progress",
         "--checkpoint-every", "200", "--out", str(tmp_path / "boom")], cwd=ROOT,
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "training diverged at frame" in proc.stderr


def test_data_parallel_resume_is_bitwise(tmp_path):
    """2 ranks for 1600 transitions (800 each) against 2 ranks for 800 (a checkpoint at the end,
    400 each: an episode boundary; rank 1's buffer and streams in its own file), extended by
    ``fastsac train --resume DIR --frames 1600`` (no --nproc: it starts as many processes as
    the run had): the same weights, rank 0's buffer, and metrics (but fps), bit for bit."""
    import csv

    def train(out, frames, *extra):
        proc = subprocess.run(
            [sys.executable, "-m", "fastsac", "train", *extra, "--frames", str(frames),
             "--memory-size", "3000", "--batch-size", "32", "--initial-random-steps", "200",
             "--hidden", "32", "--eager", "--device", "cpu", "--test-episodes", "1",
             "--no-progress", "--checkpoint-every", "800", "--out", str(out)], cwd=ROOT,
            capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]

    whole, cut = tmp_path / "whole", tmp_path / "cut"
    train(whole, 1600, "--nproc", "2")
    train(cut, 800, "--nproc", "2")
    assert (cut / "checkpoint.rank1.frame400.pt").exists()
    proc = subprocess.run([sys.executable, "-m", "fastsac", "train", "--resume", str(cut),
                           "--frames", "1600", "--no-progress"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming at frame 400" in proc.stdout
    a = torch.load(whole / "checkpoint.pt", weights_only=True)
    b = torch.load(cut / "checkpoint.pt", weights_only=True)
    for name, tensors in a["modules"].items():
        for key, value in tensors.items():
            assert torch.equal(value, b["modules"][name][key]), (name, key)
    assert torch.equal(a["buffer"]["rows"], b["buffer"]["rows"])
    rows = [[r[:-1] for r in csv.reader(open(d / "metrics.csv"))] for d in (whole, cut)]
    assert rows[0] == rows[1] and len(rows[0]) == 1 + 8  # 4 episodes x 2 ranks
    assert sorted(p.name for p in cut.glob("checkpoint.rank*")) == [
        "checkpoint.rank1.frame800.pt"]
