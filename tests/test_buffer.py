"""The Numba replay buffer: without replacement, consistent rows, wrap-around, uniformity,
seeding, store_batch, bad input."""

import numpy as np
import pytest

from fastsac import ReplayBuffer


def filled(n, size=None, obs_dim=3, act_dim=2, batch=16, seed=0):
    """A buffer whose transition i is recognisable: obs = [i, i+.1, ...], act = -i, rew = i."""
    buf = ReplayBuffer(obs_dim, size or n, batch, act_dim=act_dim, seed=seed)
    for i in range(n):
        buf.store(i + np.arange(obs_dim) / 10, np.full(act_dim, -i), float(i),
                  i + 0.5 + np.arange(obs_dim) / 10, i % 7 == 0)
    return buf


def test_no_duplicates_and_rows_belong_together():
    buf = filled(500, batch=128)
    for _ in range(50):
        b = buf.sample_batch()
        ids = b["rews"].astype(int)
        assert len(set(ids.tolist())) == 128
        np.testing.assert_allclose(b["obs"][:, 0], ids)
        np.testing.assert_allclose(b["next_obs"][:, 0], ids + 0.5)
        np.testing.assert_allclose(b["acts"], -np.repeat(ids[:, None], 2, axis=1))
        np.testing.assert_array_equal(b["done"], (ids % 7 == 0).astype(np.float32))
        np.testing.assert_array_equal(np.sort(buf.last_indices), np.sort(ids))


def test_batch_equal_to_size_is_a_permutation():
    buf = filled(64, batch=64)
    ids = np.sort(buf.sample_batch()["rews"].astype(int))
    np.testing.assert_array_equal(ids, np.arange(64))


def test_wraparound_keeps_newest():
    buf = filled(250, size=100, batch=100)
    assert len(buf) == 100
    ids = np.sort(buf.sample_batch()["rews"].astype(int))
    np.testing.assert_array_equal(ids, np.arange(150, 250))


def test_uniform_chi_square():
    n, batch, draws = 50, 10, 4000
    buf = filled(n, batch=batch, seed=3)
    counts = np.zeros(n)
    for _ in range(draws):
        np.add.at(counts, buf.sample_batch()["rews"].astype(int), 1)
    expected = draws * batch / n
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    # 49 degrees of freedom: the 99.9% quantile is 85.4
    assert chi2 < 85.4, chi2


def test_seeding():
    a, b, c = filled(300, seed=11), filled(300, seed=11), filled(300, seed=12)
    for _ in range(5):
        ba, bb = a.sample_batch()["rews"].copy(), b.sample_batch()["rews"].copy()
        np.testing.assert_array_equal(ba, bb)
    assert not np.array_equal(a.sample_batch()["rews"], c.sample_batch()["rews"])


def test_store_batch_equals_single_stores():
    rng = np.random.default_rng(0)
    n = 37
    obs, nxt = rng.normal(size=(n, 3)), rng.normal(size=(n, 3))
    act, rew, done = rng.normal(size=(n, 2)), rng.normal(size=n), rng.uniform(size=n) < 0.3
    one, many = ReplayBuffer(3, 16, 4, act_dim=2, seed=5), ReplayBuffer(3, 16, 4, act_dim=2, seed=5)
    for i in range(n):
        one.store(obs[i], act[i], rew[i], nxt[i], done[i])
    many.store_batch(obs[:10], act[:10], rew[:10], nxt[:10], done[:10])
    many.store_batch(obs[10:], act[10:], rew[10:], nxt[10:], done[10:])
    for name in ("obs_buf", "next_obs_buf", "acts_buf", "rews_buf", "done_buf"):
        np.testing.assert_array_equal(getattr(one, name), getattr(many, name))
    assert (one.ptr, one.size) == (many.ptr, many.size)
    np.testing.assert_array_equal(one.sample_batch()["obs"], many.sample_batch()["obs"])


def test_notebook_shapes():
    buf = filled(40, act_dim=1, batch=8)
    b = buf.sample_batch()
    assert b["obs"].shape == (8, 3) and b["acts"].shape == (8,) and b["rews"].shape == (8,)
    assert all(v.dtype == np.float32 for v in b.values())
    assert buf.bytes_per_transition == 64  # 9 floats, padded to one 64-byte cache line
    assert ReplayBuffer(17, 4, 2, act_dim=6).bytes_per_transition == 4 * 48  # 42 -> 48 floats
    assert buf._data.ctypes.data % 64 == 0


@pytest.mark.parametrize("args", [
    ((np.zeros(4), np.zeros(2), 0.0, np.zeros(3), False), "obs must have 3"),
    ((np.zeros(3), np.zeros(3), 0.0, np.zeros(3), False), "act must have 2"),
    ((np.zeros(3), np.zeros(2), 0.0, np.zeros(2), False), "next_obs must have 3"),
    ((np.array([0, np.nan, 0]), np.zeros(2), 0.0, np.zeros(3), False), "non-finite"),
    ((np.zeros(3), np.array([np.inf, 0]), 0.0, np.zeros(3), False), "non-finite"),
    ((np.zeros(3), np.zeros(2), float("nan"), np.zeros(3), False), "non-finite"),
])
def test_bad_store_changes_nothing(args):
    values, message = args
    buf = filled(5, size=10, batch=2)
    before = buf.obs_buf.copy(), buf.ptr, buf.size
    with pytest.raises(ValueError, match=message):
        buf.store(*values)
    np.testing.assert_array_equal(buf.obs_buf, before[0])
    assert (buf.ptr, buf.size) == before[1:]


def test_bad_store_batch_changes_nothing():
    buf = filled(5, size=10, batch=2)
    before = buf.obs_buf.copy()
    obs = np.zeros((4, 3))
    obs[2, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        buf.store_batch(obs, np.zeros((4, 2)), np.zeros(4), np.zeros((4, 3)), np.zeros(4))
    with pytest.raises(ValueError, match="shape"):
        buf.store_batch(np.zeros((4, 3)), np.zeros((3, 2)), np.zeros(4), np.zeros((4, 3)),
                        np.zeros(4))
    np.testing.assert_array_equal(buf.obs_buf, before)
    assert len(buf) == 5


def test_sample_needs_enough_transitions():
    buf = filled(5, size=10, batch=8)
    with pytest.raises(ValueError, match="cannot sample 8 distinct transitions from 5"):
        buf.sample_batch()


@pytest.mark.parametrize("kwargs,error", [
    ({"size": 0}, ValueError), ({"obs_dim": 0}, ValueError), ({"batch_size": 0}, ValueError),
    ({"act_dim": 0}, ValueError), ({"size": 2.5}, TypeError),
])
def test_bad_construction(kwargs, error):
    args = {"obs_dim": 3, "size": 10, "batch_size": 2, "act_dim": 1} | kwargs
    with pytest.raises(error):
        ReplayBuffer(**args)


def test_state_dict_round_trip():
    a = filled(30, size=20, batch=4, seed=1)
    b = ReplayBuffer(3, 20, 4, act_dim=2, seed=99)
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a.sample_batch()["obs"], b.sample_batch()["obs"])
    with pytest.raises(ValueError):
        ReplayBuffer(3, 21, 4, act_dim=2).load_state_dict(a.state_dict())
