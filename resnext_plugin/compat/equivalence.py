"""Whether two built backbones are the same model.

:func:`compare_backbones` checks, in order: parameter counts; state-dict keys and shapes; the type
of every module that owns parameters or buffers; loading each state dict into the other with
``strict=True``; after ``.train()``, ``requires_grad`` of every parameter and ``training`` of every
layer whose mode matters (BatchNorm under ``norm_eval``/``frozen_stages``, dropout);
the outputs in eval mode; the outputs of a train-mode forward, the gradients of one backward and
the buffers afterwards (BatchNorm running statistics). Every difference is reported by name.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from mmengine.model import revert_sync_batchnorm
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd
from torch.nn.modules.instancenorm import _InstanceNorm

#: Tensors must agree to ``torch.testing.assert_close``'s float32 defaults; whether every one was
#: bitwise equal is reported separately (:attr:`Comparison.exact`).
RTOL, ATOL = 1.3e-6, 1e-5
#: How many names a difference lists before it says "... and N more".
MAX_LISTED = 4


class StockModelUnavailable(RuntimeError):
    """The stock model itself cannot run here (e.g. an op without a CPU implementation)."""


@dataclass
class Comparison:
    """What differs between a stock backbone and ours; empty ``differences`` means the same."""

    differences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    exact: bool = True
    max_abs_diff: float = 0.0
    num_params: int = 0

    @property
    def passed(self) -> bool:
        return not self.differences


def _listed(names: Sequence[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    more = len(names) - MAX_LISTED
    return shown + (f" ... and {more} more" if more > 0 else "")


def _owners(model: nn.Module) -> dict[str, nn.Module]:
    """Modules that own parameters or buffers directly: their names are state-dict prefixes,
    so they can be matched between two models whose other modules are laid out differently."""
    return {name: m for name, m in model.named_modules()
            if any(True for _ in m.parameters(recurse=False))
            or any(True for _ in m.buffers(recurse=False))}


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def randomise(model: nn.Module, seed: int = 0) -> None:
    """Make every tensor informative: BatchNorm statistics random, and every parameter that was
    initialised to a constant (norm affines, zero-initialised DCN offset convs and GCNet
    context-block convs) perturbed, so that no layer is an identity and offsets are non-zero."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, _BatchNorm) and module.running_mean is not None:
                shape = module.running_mean.shape
                module.running_mean.copy_(torch.randn(shape, generator=gen) * 0.1)
                module.running_var.copy_(torch.rand(shape, generator=gen) + 0.5)
        for param in model.parameters():
            flat = param.reshape(-1)
            if flat.numel() and bool((flat == flat[0]).all()):
                param.add_(torch.randn(param.shape, generator=gen) * 0.1)


class _Checker:
    def __init__(self) -> None:
        self.result = Comparison()

    def differ(self, message: str) -> None:
        self.result.differences.append(message)

    def tensors(self, what: str, stock: torch.Tensor, ours: torch.Tensor) -> bool:
        if stock.shape != ours.shape:
            self.differ(f"{what}: shape {tuple(stock.shape)} (stock) vs {tuple(ours.shape)} (ours)")
            return False
        if stock.dtype != ours.dtype:
            self.differ(f"{what}: dtype {stock.dtype} (stock) vs {ours.dtype} (ours)")
            return False
        stock, ours = stock.detach(), ours.detach()
        if torch.equal(stock, ours):
            return True
        self.result.exact = False
        diff = (stock.double() - ours.double()).abs()
        worst = float(diff.max()) if diff.numel() else 0.0
        self.result.max_abs_diff = max(self.result.max_abs_diff, worst)
        if torch.allclose(ours.double(), stock.double(), rtol=RTOL, atol=ATOL):
            return True
        self.differ(f"{what}: max |stock - ours| = {worst:.3g} (tolerance rtol={RTOL}, "
                    f"atol={ATOL})")
        return False

    def outputs(self, what: str, stock, ours) -> bool:
        stock, ours = _as_tuple(stock), _as_tuple(ours)
        if len(stock) != len(ours):
            self.differ(f"{what}: stock returns {len(stock)} outputs "
                        f"{[tuple(t.shape) for t in stock]}, ours {len(ours)} "
                        f"{[tuple(t.shape) for t in ours]}")
            return False
        # Report only the first differing output: later ones follow from it.
        return all(self.tensors(f"{what} output {i}", a, b)
                   for i, (a, b) in enumerate(zip(stock, ours)))


def _as_tuple(out) -> tuple[torch.Tensor, ...]:
    if isinstance(out, torch.Tensor):
        return (out,)
    return tuple(out)


def _structure(check: _Checker, stock: nn.Module, ours: nn.Module) -> bool:
    """Counts, keys, shapes and module types; True when weights can be exchanged."""
    n_stock, n_ours = _count(stock), _count(ours)
    check.result.num_params = n_stock
    if n_stock != n_ours:
        check.differ(f"parameter count: {n_stock:,} (stock) vs {n_ours:,} (ours)")
    sd_stock, sd_ours = stock.state_dict(), ours.state_dict()
    missing = sorted(set(sd_stock) - set(sd_ours))
    unexpected = sorted(set(sd_ours) - set(sd_stock))
    if missing:
        check.differ(f"{len(missing)} stock keys missing from ours: {_listed(missing)}")
    if unexpected:
        check.differ(f"{len(unexpected)} keys of ours not in stock: {_listed(unexpected)}")
    reshaped = [f"{k} {tuple(sd_stock[k].shape)} vs {tuple(sd_ours[k].shape)}"
                for k in sd_stock if k in sd_ours and sd_stock[k].shape != sd_ours[k].shape]
    if reshaped:
        check.differ(f"{len(reshaped)} keys with other shapes (stock vs ours): {_listed(reshaped)}")
    owners_stock, owners_ours = _owners(stock), _owners(ours)
    retyped = [f"{name} {type(m).__name__} vs {type(owners_ours[name]).__name__}"
               for name, m in owners_stock.items()
               if name in owners_ours and type(m) is not type(owners_ours[name])]
    if retyped:
        check.differ(f"{len(retyped)} layers of another type (stock vs ours): {_listed(retyped)}")
    return not (missing or unexpected or reshaped)


def _load_both_ways(check: _Checker, stock: nn.Module, ours: nn.Module) -> bool:
    for src, dst, direction in ((stock, ours, "stock -> ours"), (ours, stock, "ours -> stock")):
        try:
            dst.load_state_dict(src.state_dict(), strict=True)
        except RuntimeError as err:
            check.differ(f"load_state_dict(strict=True) {direction}: {str(err).splitlines()[0]}")
            return False
    return True


def _mode_matters(module: nn.Module) -> bool:
    """Layers whose ``training`` flag changes what they compute."""
    return isinstance(module, (_BatchNorm, _InstanceNorm, _DropoutNd)) or \
        "DropPath" in type(module).__name__


def _modes(check: _Checker, stock: nn.Module, ours: nn.Module) -> None:
    """``requires_grad`` and ``training`` after ``.train()``, where frozen stages and norm_eval act.

    A different ``training`` flag on a layer it does not affect (a convolution) is only noted."""
    stock.train()
    ours.train()
    grads_ours = dict(ours.named_parameters())
    frozen = [f"{n} {p.requires_grad} vs {grads_ours[n].requires_grad}"
              for n, p in stock.named_parameters()
              if n in grads_ours and p.requires_grad != grads_ours[n].requires_grad]
    if frozen:
        check.differ(f"requires_grad differs on {len(frozen)} parameters (stock vs ours): "
                     f"{_listed(frozen)}")
    modules_ours = dict(ours.named_modules())
    other = [(n, m) for n, m in stock.named_modules()
             if n in modules_ours and m.training != modules_ours[n].training]
    modes = [f"{n} ({type(m).__name__}) training={m.training} vs {modules_ours[n].training}"
             for n, m in other if _mode_matters(m) or _mode_matters(modules_ours[n])]
    if modes:
        check.differ(f"after .train(), {len(modes)} layers in another mode (stock vs ours): "
                     f"{_listed(modes)}")
    inert = [f"{n} ({type(m).__name__})" for n, m in other
             if not (_mode_matters(m) or _mode_matters(modules_ours[n]))]
    if inert:
        check.result.notes.append(
            f"after .train(), `training` differs on {len(inert)} layers it does not affect "
            f"(stock vs ours): {_listed(inert)}")


def _run_stock(model: nn.Module, x: torch.Tensor):
    try:
        return model(x)
    except Exception as err:  # the stock model is the reference: if it cannot run, skip
        raise StockModelUnavailable(f"stock forward fails: {type(err).__name__}: {err}") from err


def _forwards(check: _Checker, stock: nn.Module, ours: nn.Module, x: torch.Tensor,
              seed: int) -> None:
    stock.eval()
    ours.eval()
    with torch.no_grad():
        out_stock = _run_stock(stock, x)
        try:
            out_ours = ours(x)
        except Exception as err:
            check.differ(f"eval forward of ours raises {type(err).__name__}: {err}")
            return
    check.outputs("eval", out_stock, out_ours)

    stock.train()
    ours.train()
    out_stock = _as_tuple(_run_stock(stock, x))
    try:
        out_ours = _as_tuple(ours(x))
    except Exception as err:
        check.differ(f"train forward of ours raises {type(err).__name__}: {err}")
        return
    if not check.outputs("train", out_stock, out_ours):
        return
    gen = torch.Generator().manual_seed(seed + 1)
    weights = [torch.randn(o.shape, generator=gen) for o in out_stock]
    for outs in (out_stock, out_ours):
        loss = sum((o * w).sum() for o, w in zip(outs, weights))
        if loss.requires_grad:
            loss.backward()
    params_ours = dict(ours.named_parameters())
    for name, p in stock.named_parameters():
        q = params_ours[name]
        if (p.grad is None) != (q.grad is None):
            check.differ(f"gradient of {name}: {'none' if p.grad is None else 'present'} (stock) "
                         f"vs {'none' if q.grad is None else 'present'} (ours)")
            break
        if p.grad is not None and not check.tensors(f"gradient of {name}", p.grad, q.grad):
            break
    buffers_ours = dict(ours.named_buffers())
    for name, buf in stock.named_buffers():
        if not check.tensors(f"after the train-mode forward, buffer {name}", buf,
                             buffers_ours[name]):
            break


def compare_backbones(stock: nn.Module, ours: nn.Module,
                      input_shape: Sequence[int] = (2, 3, 64, 64), seed: int = 0) -> Comparison:
    """Compare a built stock backbone with ours; both are modified (weights, modes, grads).

    ``stock``'s weights are randomised (:func:`randomise`) and copied into ``ours``. SyncBN layers
    (which need a process group to train) are reverted to BatchNorm in both after their types
    have been compared.

    Raises:
        StockModelUnavailable: the stock model cannot run its forward here.
    """
    check = _Checker()
    exchangeable = _structure(check, stock, ours)
    _modes(check, stock, ours)
    if not exchangeable:
        return check.result
    randomise(stock, seed)
    if not _load_both_ways(check, stock, ours):
        return check.result
    if any(type(m).__name__.endswith("SyncBatchNorm") for m in stock.modules()):
        check.result.notes.append("SyncBN reverted to BatchNorm for the CPU forward")
        stock = revert_sync_batchnorm(stock)
        ours = revert_sync_batchnorm(ours)
    x = torch.randn(tuple(input_shape), generator=torch.Generator().manual_seed(seed))
    _forwards(check, stock, ours, x, seed)
    return check.result
