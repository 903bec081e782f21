"""Flat parameter layout: a network's parameters and their Adam state as views of four flat
buffers (parameters, exp_avg, exp_avg_sq, step counts).

Why: the compiled update then runs Adam as one fused pass over each buffer instead of ~30
small per-tensor kernels (BENCHMARKS.md has the timings), Polyak as one pair, and the
graph takes ~20 inputs instead of ~100. The modules, ``state_dict()`` and the optimizers'
``state_dict()`` look exactly as before: every parameter and state entry is still its own
tensor, only its memory sits in a shared buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class FlatGroup:
    """Buffers of one network (or of log_alpha) and the shapes of its parameters, in order."""

    params: torch.Tensor
    exp_avg: torch.Tensor
    exp_avg_sq: torch.Tensor
    steps: torch.Tensor  # one count per parameter (torch.optim.Adam keeps one each); all equal
    shapes: tuple[tuple[int, ...], ...]

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.params, self.exp_avg, self.exp_avg_sq, self.steps

    def owns(self, params: list[torch.Tensor]) -> bool:
        """True while each parameter is still its own view of this group's buffer: in its
        place, of its shape, contiguous (a user may have replaced or re-pointed one, e.g. with
        ``module.to(...)``, ``load_state_dict(assign=True)`` or ``p.data = other``)."""
        if len(params) != len(self.shapes):
            return False
        base, size = self.params.data_ptr(), self.params.element_size()
        offset = 0
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


def flatten_params(params: list[torch.Tensor], optimizer: torch.optim.Optimizer | None,
                   step_device: torch.device) -> FlatGroup:
    """Move ``params`` (and, with an optimizer, fresh Adam state for them) into flat buffers.

    The parameters keep their identity (the same ``Parameter`` objects, the optimizer still
    holds them); only their ``.data`` becomes a view of the buffer.
    """
    with torch.no_grad():
        flat = torch.cat([p.detach().reshape(-1) for p in params])
        shapes = tuple(tuple(p.shape) for p in params)
        for p, view in zip(params, unflatten(flat, shapes), strict=True):
            p.data = view
        exp_avg, exp_avg_sq = torch.zeros_like(flat), torch.zeros_like(flat)
        steps = torch.zeros(len(params), dtype=torch.float32, device=step_device)
    group = FlatGroup(flat, exp_avg, exp_avg_sq, steps, shapes)
    if optimizer is not None:
        _point_state_at_views(group, params, optimizer)
    return group


def _point_state_at_views(group: FlatGroup, params: list[torch.Tensor],
                          optimizer: torch.optim.Optimizer) -> None:
    avg_views = unflatten(group.exp_avg, group.shapes)
    sq_views = unflatten(group.exp_avg_sq, group.shapes)
    for i, p in enumerate(params):
        optimizer.state[p] = {"step": group.steps[i], "exp_avg": avg_views[i],
                              "exp_avg_sq": sq_views[i]}


def holds_views(group: FlatGroup, params: list[torch.Tensor],
                optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer``'s Adam state for ``params`` is still views of the group's buffers
    (not after ``optimizer.state.clear()`` or an entry replaced by hand)."""
    moments = {"exp_avg": group.exp_avg, "exp_avg_sq": group.exp_avg_sq}
    size = group.exp_avg.element_size()
    offset = 0
    for i, p in enumerate(params):
        entry = optimizer.state.get(p)
        if not isinstance(entry, dict) or set(entry) != {"step", *moments}:
            return False
        step = entry["step"]
        if not isinstance(step, torch.Tensor) or step.data_ptr() != (
                group.steps.data_ptr() + i * group.steps.element_size()):
            return False
        for key, flat in moments.items():
            t = entry[key]
            if (not isinstance(t, torch.Tensor) or t.data_ptr() != flat.data_ptr() + offset * size
                    or t.shape != p.shape or not t.is_contiguous()):
                return False
        offset += p.numel()
    return True


def adopt_optimizer_state(group: FlatGroup, params: list[torch.Tensor],
                          optimizer: torch.optim.Optimizer) -> None:
    """Copy the Adam state ``optimizer`` holds now into the group's buffers (zeros and step 0
    for a parameter it holds none for) and make its entries views of them again.

    Why: ``optimizer.load_state_dict`` replaces the state entries with tensors of its own,
    which the update (reading the buffers) would no longer see."""
    with torch.no_grad():
        avg_views = unflatten(group.exp_avg, group.shapes)
        sq_views = unflatten(group.exp_avg_sq, group.shapes)
        for i, p in enumerate(params):
            entry = optimizer.state.get(p)
            if entry:
                avg_views[i].copy_(entry["exp_avg"])
                sq_views[i].copy_(entry["exp_avg_sq"])
                group.steps[i].fill_(float(entry["step"]))
            else:
                avg_views[i].zero_()
                sq_views[i].zero_()
                group.steps[i].fill_(0.0)
    _point_state_at_views(group, params, optimizer)
