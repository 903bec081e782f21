"""The thread tuner behind FastSAC(update_threads="auto"), and the invariance it relies on: an
update's results are the same bits on any CPU thread count."""

import pytest
import torch

from fastsac import FastSAC, make_env
from fastsac.threads import ThreadTuner, thread_candidates
from tests.conftest import fill_random


def drive(tuner, cost, updates):
    """Runs `updates` updates whose time on n threads is cost(n, i); returns the counts used."""
    used = []
    for i in range(updates):
        n = tuner.threads()
        used.append(n)
        tuner.record(n, cost(n, i))
    return used


def test_tuner_keeps_the_faster_count_and_rechecks():
    tuner = ThreadTuner((1, 2), block=2, rounds=3, recheck_every=50, skip=4)
    # 1 thread is faster at first, 2 threads once the machine frees up (update 100 on)
    used = drive(tuner, lambda n, i: (1.0 if n == 1 else 1.5) if i < 100 else
                 (1.0 if n == 2 else 1.5), 300)
    assert used[:4] == [2, 2, 2, 2]  # compile-time updates: the default
    assert used[4:16] == [1, 1, 2, 2] * 3  # probe: runs of `block`, alternated, `rounds` times
    assert tuner.choice == 2 and not tuner.probing
    assert used[16:66] == [1] * 50  # chose 1 thread, until the recheck
    assert used[-1] == 2


def test_tuner_compares_whole_runs():
    """Policy and critic-only updates alternate in cost; runs of `block` updates hold both, so
    the tuner is not fooled by the phase a candidate happens to land on."""
    tuner = ThreadTuner((1, 2), block=2, rounds=5, recheck_every=10_000, skip=0)
    drive(tuner, lambda n, i: (3.0 if i % 2 == 0 else 1.0) * (0.9 if n == 2 else 1.0), 20)
    assert tuner.choice == 2


def test_thread_candidates():
    assert thread_candidates(1) == (1,)
    assert thread_candidates(2) == (1, 2)
    assert thread_candidates(3) == (1, 2, 3)
    assert thread_candidates(16) == (1, 2, 4, 16)


def test_tuner_with_one_candidate_never_probes():
    tuner = ThreadTuner((1, 1), skip=0)
    assert drive(tuner, lambda n, i: 1.0, 10) == [1] * 10
    with pytest.raises(ValueError):
        ThreadTuner((0, 2))


def _update_params(threads, hidden_sizes=(128, 128), compile=False):
    agent = FastSAC(make_env(), 1000, 128, device="cpu", seed=3, compile=compile,
                    update_threads=threads, hidden_sizes=hidden_sizes, background_compile=False)
    fill_random(agent.memory)
    for step in range(1, 5):
        agent.total_step = step
        # compiled: policy steps only, one graph per thread count
        agent.update_model(policy_step=True if compile else None)
    return [p.detach().clone() for p in agent.actor.parameters()] + [
        p.detach().clone() for p in agent.qf_1.parameters()] + [agent.log_alpha.detach().clone()]


@pytest.mark.parametrize("hidden_sizes", [(128, 128), (256, 256)])
def test_update_bits_do_not_depend_on_threads(hidden_sizes):
    if torch.get_num_threads() < 2:
        pytest.skip("needs 2 threads")
    one = _update_params(1, hidden_sizes)
    for threads in (2, 4):
        for a, b in zip(one, _update_params(threads, hidden_sizes), strict=True):
            assert torch.equal(a, b), threads


@pytest.mark.compile
def test_compiled_wide_update_bits_do_not_depend_on_threads():
    """Past 128 wide the graph's own kernels are compiled for torch's thread count
    (fastsac.engine.SERIAL_KERNELS_MAX_WIDTH): split over threads, they still give the same bits."""
    if torch.get_num_threads() < 2:
        pytest.skip("needs 2 threads")
    one = _update_params(1, (256, 256), compile=True)
    two = _update_params(2, (256, 256), compile=True)
    for a, b in zip(one, two, strict=True):
        assert torch.equal(a, b)


def test_product_threads_leave_torch_alone():
    """The products' count is fastsac's own setting; torch's (which torch.compile guards on)
    does not move."""
    from fastsac import ops

    threads = torch.get_num_threads()
    a, b = torch.randn(64, 256), torch.randn(256, 256)
    ops.set_product_threads(0)
    want = torch.ops.fastsac.mm(a, b)  # the same bits on any count (tiles or MKL)
    for n in (1, 3, 0):
        ops.set_product_threads(n)
        assert torch.equal(torch.ops.fastsac.mm(a, b), want)
        assert torch.get_num_threads() == threads
    with pytest.raises(RuntimeError, match=">= 0"):
        torch.ops.fastsac._product_threads(-1)


def test_auto_threads_runs_on_cpu():
    agent = FastSAC(make_env(), 1000, 32, device="cpu", seed=0, compile=False)
    # the tuner sets the tiled products' count: it exists where the update has tiled layers
    assert agent.engine.update_threads == "auto"
    assert (agent.engine._tuner is not None) == agent.engine.spec.tiled
    fill_random(agent.memory)
    threads = torch.get_num_threads()
    for step in range(1, 30):
        agent.total_step = step
        agent.update_model()
    assert torch.get_num_threads() == threads  # restored after every update
