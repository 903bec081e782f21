"""What FastSAC's update works on, and the checks that the agent still shows exactly that.

FastSAC's update reads and writes flat buffers (``fastsac.flat``) whose views are the modules'
parameters and the optimizers' Adam state, with the Adam settings compiled in
(``UpdateConfig.adam_settings``). A user can break that link in ways torch allows: replace a
parameter, a layer or an optimizer, load an optimizer state, change a learning rate. Each is
either carried into the buffers (an optimizer ``load_state_dict``, through the hooks
``FastSAC`` registers) or refused with an error naming it; never silently ignored
(docs/design.md, section 9).

:class:`Bindings` is a snapshot compared by identity: cheap enough to run before every
``update_model`` called on its own. Where it differs, :func:`check_bound` says why, or finds
the agent still fit and a new snapshot is taken.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from fastsac import checkpoint
from fastsac.flat import adopt_optimizer_state, holds_views
from fastsac.state import MODULES, OPTIMIZER_OF, SLOT_NAMES, optimizer_of, slot_parameters


def adam_settings_problem(groups: list[dict], want: dict[str, Any]) -> str | None:
    """What in ``groups`` (an optimizer's param_groups, live or saved) differs from the Adam
    settings the update is built with (``want``), or None."""
    for group in groups:
        for key, value in want.items():
            got = group.get(key, value)
            if key == "betas":
                same = len(got) == 2 and all(math.isclose(float(b), v, rel_tol=1e-6)
                                             for b, v in zip(got, value, strict=True))
            elif isinstance(value, bool):
                same = bool(got) == value
            else:  # a tensor lr (torch allows one) is compared at its own precision
                same = math.isclose(float(got), value, rel_tol=1e-6, abs_tol=1e-12)
            if not same:
                shown = tuple(float(b) for b in got) if key == "betas" else (
                    float(got) if isinstance(got, torch.Tensor) else got)
                hint = ("create the agent with lr=... to train at another rate" if key == "lr"
                        else f"FastSAC's Adam always runs with {key}={value!r}")
                return (f"Adam {key}={shown!r}, but FastSAC's update is built for {key}="
                        f"{value!r}: it does not read the optimizers' settings (learning-rate "
                        f"schedules included); {hint}")
    return None


def normalise_settings(optimizer: torch.optim.Optimizer, want: dict[str, Any]) -> None:
    """Write the update's own values into groups found equal to them (a list of betas, a tensor
    lr), so the identity-fast :class:`Bindings` comparison holds again."""
    for group in optimizer.param_groups:
        group.update(want)


def step_count_problem(saved: dict) -> str | None:
    """FastSAC keeps one Adam step count a network: a state whose parameters' counts differ
    (a parameter without state counts 0) cannot be its."""
    ids = [i for g in saved["param_groups"] for i in g["params"]]
    steps = {float(saved["state"][i]["step"]) if i in saved["state"] else 0.0 for i in ids}
    if len(steps) > 1:
        return (f"its parameters have different Adam step counts {sorted(steps)}; FastSAC "
                "keeps one count a network")
    return None


def refuse_unfit_state(where: str, optimizer: torch.optim.Optimizer, saved: Any,
                       adam_settings: dict[str, Any]) -> None:
    """Raise ``ValueError`` unless ``saved`` is Adam state FastSAC's update can run for
    ``optimizer``'s parameters: its structure (``checkpoint.check_optimizer_state``), its
    settings and one step count a network."""
    checkpoint.check_optimizer_state(where, optimizer, saved)
    problem = (adam_settings_problem(saved["param_groups"], adam_settings)
               or step_count_problem(saved))
    if problem:
        raise ValueError(f"{where}: {problem}")


class Bindings:
    """A snapshot of the objects the update is bound to: the agent's networks, log_alpha and
    optimizers, every submodule's children and parameters (with their addresses), and the
    optimizers' Adam settings. ``unchanged`` compares it by identity (walking
    ``module.parameters()`` instead would cost more than an update's worth of Python)."""

    def __init__(self, agent: Any, adam_settings: dict[str, Any]):
        self.objects = [(name, getattr(agent, name)) for name in SLOT_NAMES]
        self.optimizers = [getattr(agent, OPTIMIZER_OF[name]) for name in SLOT_NAMES
                           if OPTIMIZER_OF[name] is not None]
        self.objects += [(OPTIMIZER_OF[name], getattr(agent, OPTIMIZER_OF[name]))
                         for name in SLOT_NAMES if OPTIMIZER_OF[name] is not None]
        subs = [sub for name in MODULES for sub in getattr(agent, name).modules()]
        dicts = [sub._modules for sub in subs] + [sub._parameters for sub in subs]
        # each optimizer's groups (their parameter lists and settings) and Adam state (sizes
        # below: anything rarer is left to the full check, which train() always runs and
        # which runs after any change seen here; every per-call cost here counts in
        # update_model's time)
        lists, picked = [], []
        for opt in self.optimizers:
            lists += [opt.param_groups, *(g["params"] for g in opt.param_groups)]
            picked += [(opt.__dict__, "state"), (opt.__dict__, "param_groups")]
            # settings by identity: a new value, even an equal one, takes the full check
            picked += [(g, key) for g in opt.param_groups for key in ("params", *adam_settings)]
        # the state's size and each entry's (``state.clear()``, an entry emptied, added or
        # removed: the Adam resets people write); an entry replaced, or a tensor in one, is
        # left to the full check
        states = [c for opt in self.optimizers for c in (opt.state, *opt.state.values())]
        # flat lists, compared in plain loops: the cheapest form of this check in CPython
        self.sizes = [(c, len(c)) for c in dicts + lists + states]
        self.entries = [(d, key, value) for d in dicts for key, value in d.items()]
        self.entries += [(d, key, d.get(key)) for d, key in picked]
        self.entries.append((agent.__dict__, "log_alpha", agent.log_alpha))
        self.items = [(lst, i, value) for lst in lists for i, value in enumerate(lst)]
        # each parameter's address, and whether it must stay trainable: the update trains
        # all of every trained slot's parameters (none may be frozen)
        trained = {id(p) for name in SLOT_NAMES if OPTIMIZER_OF[name] is not None
                   for p in slot_parameters(agent, name)}
        self.addresses = [(p, p.data_ptr(), id(p) in trained)
                          for d in dicts[len(subs):2 * len(subs)] for p in d.values()
                          if p is not None]
        self.addresses.append((agent.log_alpha, agent.log_alpha.data_ptr(), True))

    def unchanged(self, agent: Any) -> bool:
        for attr, obj in self.objects:
            if getattr(agent, attr) is not obj:
                return False
        for c, size in self.sizes:
            if len(c) != size:
                return False
        for d, key, value in self.entries:
            if d.get(key) is not value:
                return False
        for lst, i, value in self.items:
            if lst[i] is not value:
                return False
        for p, address, must_train in self.addresses:
            if p.data_ptr() != address or (must_train and not p.requires_grad):
                return False
        return True


def check_bound(agent: Any, flat: dict, optimizers: dict[str, torch.optim.Optimizer],
                adam_settings: dict[str, Any]) -> None:
    """Raise ``RuntimeError`` unless the update still works on what ``agent`` shows: each
    slot's parameters are views of its flat buffer and the very tensors its optimizer holds,
    each optimizer is the one the update keeps the state of, with the update's Adam
    settings."""
    replaced = ("FastSAC.{}'s parameters were replaced (module.to(), a new layer, "
                "load_state_dict(assign=True), ...); FastSAC updates its own parameter buffers. "
                "Load weights with load_state_dict() (in place) or agent.load().")
    for name in SLOT_NAMES:
        params = slot_parameters(agent, name)
        if not flat[name].owns(params):
            raise RuntimeError(replaced.format(name))
        optimizer = optimizers.get(name)
        if optimizer is None:
            continue
        if not all(p.requires_grad for p in params):
            raise RuntimeError(
                f"FastSAC.{name} has parameters with requires_grad=False: FastSAC's update "
                "trains every parameter of its networks, so freezing layers is not supported "
                "(the V target, which no optimizer trains, may be frozen)")
        if optimizer_of(agent, name) is not optimizer:
            raise RuntimeError(
                f"FastSAC.{OPTIMIZER_OF[name]} was replaced; FastSAC's update keeps the Adam "
                "state of the optimizer it was built with. Load a state into that one "
                "(load_state_dict() or agent.load()).")
        held = [p for g in optimizer.param_groups for p in g["params"]]
        if len(held) != len(params) or any(p is not q for p, q in zip(held, params,
                                                                       strict=False)):
            raise RuntimeError(replaced.format(name))
        problem = adam_settings_problem(optimizer.param_groups, adam_settings)
        if problem:
            raise RuntimeError(f"{OPTIMIZER_OF[name]}: {problem}")
        if not holds_views(flat[name], held, optimizer):
            # its state was changed by hand (optimizer.state.clear(), an entry replaced):
            # the update takes it on, as torch's Adam would, if it is Adam state it can run
            saved = optimizer.state_dict()
            # an emptied entry is a fresh start to torch's Adam (and to adopt_optimizer_state)
            saved["state"] = {i: e for i, e in saved["state"].items() if e}
            try:
                refuse_unfit_state(OPTIMIZER_OF[name], optimizer, saved, adam_settings)
            except ValueError as exc:
                raise RuntimeError(str(exc)) from None
            adopt_optimizer_state(flat[name], held, optimizer)
