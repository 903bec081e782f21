"""FastSAC's CUDA paths beyond the update's agreement (tests/test_agreement.py): select_action's
single synchronisation, the pinned host batch never overwritten under a pending copy, the
CUDA graph's noise stream, several compiled agents on a many-core machine. Skipped without a
GPU."""

import numpy as np
import pytest
import torch

from fastsac import FastSAC, make_env
from fastsac.agreement import run_twins, twin_agents
from tests.conftest import fill_random, requires_cuda

pytestmark = requires_cuda


def _agent(**kwargs):
    kwargs.setdefault("compile", False)
    agent = FastSAC(make_env(), 2000, 64, initial_random_steps=0, device="cuda", seed=0,
                    **kwargs)
    fill_random(agent.memory)
    return agent


def test_select_action_synchronises_once():
    """Pinned staging and an event: no synchronising copy (sync debug mode raises on one)."""
    agent = _agent()
    state = np.ones(3, dtype=np.float32)
    agent.select_action(state)  # allocates the pinned staging buffers
    torch.cuda.set_sync_debug_mode("error")
    try:
        actions = [agent.select_action(state + i) for i in range(5)]
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert all(a.shape == (1,) and a.dtype == np.float32 for a in actions)
    assert len({float(a[0]) for a in actions}) == 5  # fresh noise and state each call


@pytest.mark.parametrize("kwargs", [{"compile": False}, {"compile": True, "cuda_graph": False}])
def test_host_batch_is_free_before_it_is_overwritten(kwargs):
    """Without the CUDA graph, each sample waits for the copies out of the previous batch."""
    agent = _agent(**kwargs)
    real = agent.memory.sample_batch
    seen = []

    def sample_batch():
        done = agent.engine._copy_done
        seen.append(done is None or done.query())
        return real()

    agent.memory.sample_batch = sample_batch
    for step in range(1, 8):
        agent.total_step = step
        agent.update_model()
    assert seen and all(seen)


def test_cuda_graph_draws_the_eager_noise_stream():
    """Capturing (and its warm-up runs) leaves the agent's generator where it was: a seeded
    graph run draws the same noise as an eager run of the same seed."""
    graph = _agent(compile=True, cuda_graph=True)
    eager = _agent()
    for step in range(1, 5):
        graph.total_step = eager.total_step = step
        graph.update_model()
        expected = eager._noise((1, 64, 1))
        torch.testing.assert_close(graph.engine._static[1], expected, rtol=0, atol=0)


def test_two_compiled_agents_on_many_cores(monkeypatch):
    """The GPU machine's 16 cores give four thread candidates; a second compiled agent of
    another shape must not hit dynamo's recompile limit (CPU agents share the process)."""
    import fastsac.fast

    monkeypatch.setattr(fastsac.fast, "thread_candidates", lambda available: (1, 2, 4, 16))
    for batch, sizes in ((32, (128, 128)), (48, (64, 64))):
        ref, fast = twin_agents(dtype=torch.float64, fast_kwargs={"compile": True},
                                batch_size=batch, hidden_sizes=sizes, device="cpu")
        _, many = run_twins(ref, fast, 50)
        assert many <= 1e-10
        ref, fast = twin_agents(dtype=torch.float64, fast_kwargs={
            "compile": True, "cuda_graph": False}, batch_size=batch, hidden_sizes=sizes,
            device="cuda")
        _, many = run_twins(ref, fast, 10)
        assert many <= 1e-10


@pytest.mark.parametrize("sizes", [(256, 256), (400, 300, 200)])
def test_cuda_select_action_at_any_depth(sizes):
    agent = _agent(hidden_sizes=sizes, dtype=torch.float64)
    state = np.linspace(-1, 1, 3).astype(np.float32)
    generator_state = agent.generator.get_state()
    action = agent.select_action(state)
    agent.generator.set_state(generator_state)
    eps = agent._noise((1,))
    with torch.no_grad():
        want, _ = agent.actor(torch.as_tensor(state, dtype=torch.float64, device="cuda")[None],
                              eps[None])
    np.testing.assert_allclose(action, want.float().cpu().numpy()[0], rtol=0, atol=1e-6)
    deterministic, _ = agent.predict(state)
    again, _ = agent.predict(state)
    assert np.array_equal(deterministic, again)


@pytest.mark.parametrize("variant", ["v1", "v2"])
def test_a_cuda_agent_trains_and_its_checkpoint_loads_on_cpu(variant, tmp_path):
    agent = FastSAC(make_env(), 2000, 64, initial_random_steps=100, device="cuda", seed=0,
                    variant=variant, hidden_sizes=(64, 64))
    agent.train(400)
    agent.save(tmp_path / "cuda.pt", include_buffer=True)
    cpu = FastSAC.from_checkpoint(tmp_path / "cuda.pt", device="cpu", compile=False)
    np.testing.assert_allclose(cpu.predict(np.zeros(3))[0], agent.predict(np.zeros(3))[0],
                               atol=1e-5)
    cpu.train(100)
