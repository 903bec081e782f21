"""Flat parameter layout: each network's parameters and their Adam state as views of four flat
buffers (parameters, exp_avg, exp_avg_sq, step counts).

Why: the fast update then runs Adam as one fused pass over each buffer instead of one small
kernel per tensor, Polyak as one pair of buffers, and the compiled graph takes a few dozen
inputs instead of hundreds. The modules, ``state_dict()`` and the optimizers' ``state_dict()``
look exactly as without it: every parameter and Adam state entry is still its own tensor (the
very ``torch.optim.Adam`` the agent holds), only its memory sits in a shared buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class FlatGroup:
    """One network's (or log_alpha's) buffers and the shapes of its parameters, in order; the
    Adam buffers are None for a Polyak target, which no optimizer trains."""

    params: torch.Tensor
    shapes: tuple[tuple[int, ...], ...]
    exp_avg: torch.Tensor | None = None
    exp_avg_sq: torch.Tensor | None = None
    steps: torch.Tensor | None = None  # one count per parameter, as torch's Adam keeps them

    def adam(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.params, self.exp_avg, self.exp_avg_sq, self.steps

    def owns(self, params: list[torch.Tensor]) -> bool:
        """Whether each parameter is still its view of the buffer (not after ``p.data = x``,
        ``module.to(...)``, ``load_state_dict(assign=True)`` ...)."""
        if len(params) != len(self.shapes):
            return False
        base, size, offset = self.params.data_ptr(), self.params.element_size(), 0
        for p, shape in zip(params, self.shapes, strict=True):
            if (p.data_ptr() != base + offset * size or tuple(p.shape) != shape
                    or not p.is_contiguous()):
                return False
            offset += p.numel()
        return True


def unflatten(flat: torch.Tensor, shapes) -> list[torch.Tensor]:
    """Views of ``flat`` with the given shapes, in order."""
    out, offset = [], 0
    for shape in shapes:
        n = 1
        for d in shape:
            n *= d
        out.append(flat[offset:offset + n].view(shape))
        offset += n
    return out


def flatten(params: list[torch.Tensor], optimizer: torch.optim.Optimizer | None,
            step_device: torch.device) -> FlatGroup:
    """Move ``params`` (their current values) and, with an optimizer, the Adam state it holds
    for them (zeros and step 0 where it holds none) into flat buffers. The parameters keep their
    identity: only their ``.data`` becomes a view of the buffer."""
    with torch.no_grad():
        flat = torch.cat([p.detach().reshape(-1) for p in params])
        shapes = tuple(tuple(p.shape) for p in params)
        for p, view in zip(params, unflatten(flat, shapes), strict=True):
            p.data = view
    group = FlatGroup(flat, shapes)
    if optimizer is not None:
        group.exp_avg, group.exp_avg_sq = torch.zeros_like(flat), torch.zeros_like(flat)
        group.steps = torch.zeros(len(params), dtype=torch.float32, device=step_device)
        adopt_state(group, params, optimizer)
    return group


def adopt_state(group: FlatGroup, params: list[torch.Tensor],
                optimizer: torch.optim.Optimizer) -> None:
    """Copy the Adam state ``optimizer`` holds now into the group's buffers (zeros and step 0
    for a parameter it holds none for, as torch's Adam starts) and make its entries views of
    them again. Why: ``optimizer.load_state_dict`` replaces the entries with tensors of its own,
    which the update, reading the buffers, would not see."""
    with torch.no_grad():
        avg = unflatten(group.exp_avg, group.shapes)
        sq = unflatten(group.exp_avg_sq, group.shapes)
        for i, p in enumerate(params):
            entry = optimizer.state.get(p) or {}
            if entry:
                avg[i].copy_(entry["exp_avg"])
                sq[i].copy_(entry["exp_avg_sq"])
                group.steps[i].fill_(float(entry["step"]))
            else:
                avg[i].zero_()
                sq[i].zero_()
                group.steps[i].fill_(0.0)
            optimizer.state[p] = {"step": group.steps[i], "exp_avg": avg[i], "exp_avg_sq": sq[i]}


def holds_views(group: FlatGroup, params: list[torch.Tensor],
                optimizer: torch.optim.Optimizer) -> bool:
    """Whether the optimizer's Adam state for ``params`` is still views of the buffers (not after
    ``optimizer.state.clear()`` or an entry replaced by hand)."""
    for i, (p, avg) in enumerate(zip(params, unflatten(group.exp_avg, group.shapes),
                                     strict=True)):
        entry = optimizer.state.get(p)
        if not (isinstance(entry, dict) and entry.get("exp_avg") is not None
                and entry["exp_avg"].data_ptr() == avg.data_ptr()
                and entry.get("step") is not None
                and entry["step"].data_ptr() == group.steps[i].data_ptr()):
            return False
    return True
