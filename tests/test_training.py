"""The training loop's outputs: metrics, TensorBoard, periodic evaluation, the callback, the
plot, the progress bar, and what it warns about."""

import csv
import math

import numpy as np
import pytest

from fastsac import FastSAC, SACAgent, make_env, plotting
from fastsac.plotting import figure_data, training_figure


def make(cls=FastSAC, **kwargs):
    extra = {"compile": False} if cls is FastSAC else {}
    kwargs.setdefault("initial_random_steps", 100)
    return cls(make_env(), 2000, 32, hidden_sizes=(32, 32), device="cpu", seed=0, **kwargs,
               **extra)


def test_losses_are_logged_only_on_the_updates_that_compute_them():
    """policy_update_freq 2: the actor's loss of every other update, no zeros in its place."""
    agent = make(policy_update_freq=2, initial_random_steps=200)
    agent.train(600)
    updates = len(agent.loss_curves)
    assert updates == 400  # frames 201..600
    assert len(agent.loss_curves["actor"]) == updates // 2
    assert len(agent.loss_curves["qf"]) == updates
    assert not np.any(agent.loss_curves["actor"] == 0.0)
    column = agent.loss_curves._rows[:updates, 0]
    assert np.isnan(column[::2]).all() != np.isnan(column[1::2]).all()  # alternating
    updates_with_actor, _ = agent.loss_curves.points("actor")  # the plot's x: update numbers
    assert np.array_equal(np.diff(updates_with_actor), np.full(updates // 2 - 1, 2.0))
    x, y = plotting.thinned(np.arange(5000.0), np.arange(5000.0))  # slice means keep x with y
    assert np.allclose(x, y) and x.size == plotting.MAX_POINTS
    first = agent.history["actor_loss"][0]  # the first episode: warm-up, no update
    assert math.isnan(first) and not math.isnan(agent.history["actor_loss"][1])


def test_tensorboard_holds_the_metrics_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    agent = make(SACAgent, initial_random_steps=200)
    agent.train(600, tensorboard_dir=tmp_path / "tb", eval_every=300, eval_episodes=1,
                metrics_path=tmp_path / "metrics.csv")
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"score", "actor_loss", "qf_loss", "vf_loss", "alpha_loss", "alpha", "fps",
            "eval_return"} <= tags
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    scores = [e.value for e in events.Scalars("score")]
    np.testing.assert_allclose(scores, [float(r["score"]) for r in rows], rtol=1e-5)
    assert [e.step for e in events.Scalars("score")] == [int(float(r["frame"])) for r in rows]
    assert len(events.Scalars("actor_loss")) == len(rows) - 1  # none in the warm-up episode
    assert [e.step for e in events.Scalars("eval_return")] == [300, 600]


def test_periodic_evaluation_is_deterministic_and_changes_nothing_learned(tmp_path):
    """eval_every: deterministic episodes on a separate env, into eval_history and eval.csv;
    the run learns what a run without evaluations learns, bit for bit."""
    plain, evaluated = make(), make()
    plain.train(600)
    evaluated.train(600, eval_every=200, eval_episodes=2, metrics_path=tmp_path / "m.csv")
    assert evaluated.eval_history["frame"] == [200.0, 400.0, 600.0]
    assert all(std >= 0 for std in evaluated.eval_history["eval_std"])
    rows = list(csv.DictReader(open(tmp_path / "eval.csv")))
    assert [float(r["frame"]) for r in rows] == [200.0, 400.0, 600.0]
    for p, q in zip(plain.actor.parameters(), evaluated.actor.parameters(), strict=True):
        assert (p == q).all()


def test_a_callback_sees_every_episode_and_can_stop_the_run():
    seen = []

    def callback(metrics):
        seen.append(metrics)
        return len(seen) < 2

    agent = make()
    agent.train(2000, callback=callback)
    assert len(seen) == 2 and agent.total_step == 400
    assert {"frame", "score", "qf_loss", "alpha", "total_step"} <= set(seen[-1])


def test_no_progress_bar_in_a_log_and_a_warning_on_a_warm_up_only_run(capsys):
    agent = make()
    with pytest.warns(UserWarning, match="within the 100 random warm-up steps"):
        agent.train(50)
    assert capsys.readouterr().err == ""  # not a terminal: no bar


def test_the_plot_has_a_panel_per_loss_and_the_evaluations(tmp_path):
    for variant, panels in (("v1", 5), ("v2", 4)):
        agent = make(variant=variant)
        agent.train(400, eval_every=200, eval_episodes=1, plot_path=tmp_path / f"{variant}.png")
        assert (tmp_path / f"{variant}.png").stat().st_size > 0
        figure = training_figure(figure_data(agent))
        assert len(figure.axes) == panels
        assert [ax.get_title() for ax in figure.axes[1:]] == [
            f"{k}_loss" for k in agent.loss_names]
        assert len(figure.axes[0].lines) == 2  # training episodes, evaluations


def test_csv_rows_keep_frames_past_a_million_whole(tmp_path):
    """A frame past 1e6 is written in full (not as 1.23457e+06), a loss to 6 digits, NaN as nan."""
    from fastsac.run_log import write_csv

    history = {"frame": [1_234_567.0], "score": [-0.123456789], "actor_loss": [math.nan]}
    write_csv(tmp_path / "m.csv", ("frame", "score", "actor_loss"), history)
    row = next(csv.DictReader((tmp_path / "m.csv").open()))
    assert row == {"episode": "1", "frame": "1234567", "score": "-0.123457", "actor_loss": "nan"}
