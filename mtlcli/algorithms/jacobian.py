"""Per-task gradients of the shared parameters, by the cheapest exact path.

Gradient methods need, for the tasks present in a mixed batch, the T x T Gramian
``K = J Jᵀ`` of the per-task gradients of the shared (backbone) parameters, or the
Jacobian ``J`` (T x P) itself, and then write one update ``Σ_t w_t g_t``. Public
libraries pay one backward pass per task for ``J``. In a mixed batch that is not
needed: every sample belongs to exactly one task and task t's loss reads only task
t's rows, so one backward pass of ``Σ_t L_t`` leaves, at every layer output, task
t's output-gradients in task t's rows. For a ``Linear`` layer with input rows
``X`` and output-gradient rows ``Δ``:

* task t's weight gradient is ``Δ_tᵀ X_t`` (its rows only) and its bias gradient
  ``Σ_{i∈t} Δ_i``;
* the Gramian is ``Mᵀ [(X Xᵀ + 1) ⊙ (Δ Δᵀ)] M`` with ``M`` the B x T one-hot
  task matrix: a B x B product, no per-task gradient is ever formed;
* the update ``Σ_t w_t g_t`` is one ordinary weight-gradient product with Δ's rows
  scaled by their task's weight.

``Conv2d`` uses the same facts through ``torch.nn.grad.conv2d_weight`` (its
per-task gradients are formed one layer at a time, which is cheap for conv
kernels; no full T x P Jacobian is held on the Gramian path).

Paths (``TaskGradients.path``), every one exact and equal to the plain per-task
loop to float rounding (tests/test_jacobian.py):

* ``"gramian"``  fast path, Gramian only (Linear/Conv2d backbones);
* ``"jacobian"`` fast path, per-task Jacobian (methods that need coordinates);
* ``"batched"``  ``torch.autograd.grad(..., is_grads_batched=True)`` over the T
  losses: the general fallback, taken when a layer couples samples (BatchNorm in
  training mode) or holds a parameter no per-sample rule covers;
* ``"loop"``     one ``torch.autograd.grad`` per task: the reference, and the
  fallback when the batched backward fails.

Assumption behind the fast path: the backbone's own ``forward`` code does not mix
samples (every leaf module is checked against a list of row-wise layers, but
arithmetic written inside a custom ``forward`` cannot be seen). A backbone that
mixes rows outside its modules must use ``gradient_path="batched"``.

Head convention: the task-specific parameters (heads) are not aggregated. Head t
receives the gradient of its own task's loss ``∇L_t`` (times an optional per-task
``head_weights[t]`` that loss-weighting methods pass), exactly what ``Σ_t L_t``
would give it since head t reads only task t's rows.

Every path consumes the autograd graph (no ``retain_graph`` is left behind) and
creates its buffers on the device and in the dtype of the model's tensors.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Literal, Sequence

import torch
from torch import Tensor, nn

from mtlcli.errors import MtlcliError

GradientPath = Literal["auto", "fast", "batched", "loop"]
GRADIENT_PATHS: tuple[str, ...] = ("auto", "fast", "batched", "loop")

# Leaf modules that treat every sample (row) on its own, so that task t's loss
# still depends on task t's rows only. Parametrised ones other than Linear/Conv2d
# are row-wise too but have no per-sample rule here: their parameters fail the
# coverage check and send the step to the general path.
_ROW_WISE_LEAVES: tuple[type[nn.Module], ...] = (
    nn.Linear, nn.Conv1d, nn.Conv2d, nn.Identity, nn.Flatten, nn.Unflatten,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout,
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU,
    nn.SiLU, nn.Mish, nn.Tanh, nn.Sigmoid, nn.Softplus, nn.Softsign, nn.Hardtanh,
    nn.Hardswish, nn.Hardsigmoid, nn.LogSigmoid, nn.Tanhshrink,
    nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
    nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm1d, nn.InstanceNorm2d,
)
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


# ---------------------------------------------------------------------------
# the reference
# ---------------------------------------------------------------------------
def per_task_jacobian_loop(task_losses: Sequence[Tensor], params: Sequence[Tensor],
                           retain_graph: bool = False) -> Tensor:
    """The plain reference: one ``autograd.grad`` per task; returns J (T x P).

    Parameters a task does not reach contribute zeros. Every other path of this
    module must match it.
    """
    rows = []
    for k, loss in enumerate(task_losses):
        keep = retain_graph or k < len(task_losses) - 1
        grads = torch.autograd.grad(loss, list(params), retain_graph=keep, allow_unused=True)
        rows.append(torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                               for p, g in zip(params, grads)]))
    return torch.stack(rows)


# ---------------------------------------------------------------------------
# what one forward records
# ---------------------------------------------------------------------------
@dataclass
class _LayerCall:
    inputs: Tensor
    output: Tensor
    in_version: int
    out_version: int


@dataclass
class Recording:
    """Inputs/outputs of the covered layers and the backbone output of one forward."""

    task_id: Tensor
    calls: dict[nn.Module, list[_LayerCall]] = field(default_factory=dict)
    features: Tensor | None = None

    def _layer_hook(self, module: nn.Module, args: tuple, output: Tensor) -> None:
        x = args[0] if args else None
        if isinstance(x, Tensor) and isinstance(output, Tensor):
            self.calls.setdefault(module, []).append(_LayerCall(x, output, x._version, output._version))
        else:  # keyword-only input or a non-tensor output: no rule for it
            self.calls.setdefault(module, []).append(None)  # type: ignore[arg-type]

    def _backbone_hook(self, module: nn.Module, args: tuple, output: Tensor) -> None:
        self.features = output


# ---------------------------------------------------------------------------
# per-layer rules (the fast path)
# ---------------------------------------------------------------------------
class _Layer:
    """One covered layer of one step: its input X, output-gradient Δ, and its rules."""

    def __init__(self, module: nn.Module, x: Tensor, delta: Tensor):
        self.module = module
        self.x = x.detach()
        self.delta = delta
        self.weight = module.weight if module.weight.requires_grad else None
        bias = getattr(module, "bias", None)
        self.bias = bias if bias is not None and bias.requires_grad else None

    @property
    def params(self) -> list[Tensor]:
        return [p for p in (self.weight, self.bias) if p is not None]

    # Linear on (B, in) inputs takes the B x B route; everything else forms
    # the layer's per-task gradients (one layer at a time).
    @property
    def sample_gramian_route(self) -> bool:
        return isinstance(self.module, nn.Linear) and self.x.dim() == 2

    def sample_gramian(self) -> Tensor:
        """B x B matrix whose task-block sums are this layer's Gramian."""
        x, d = _wide(self.x), _wide(self.delta)
        kernel = d @ d.T
        if self.weight is not None:
            xx = x @ x.T
            if self.bias is not None:
                xx += 1.0
            return kernel.mul_(xx)
        return kernel  # bias only

    def per_task_into(self, groups: list[tuple[Tensor, Tensor]], outs: list[Tensor]) -> None:
        """Write this layer's per-task gradients into ``outs`` (one (T, numel) block per
        parameter, rows contiguous). ``groups``: per task, (its rows of X, its rows of Δ)."""
        blocks = iter(outs)
        if self.weight is not None:
            block = next(blocks)
            for k, (x, d) in enumerate(groups):
                self._weight_grad_into(x, d, block[k].view(self.weight.shape))
        if self.bias is not None:
            block = next(blocks)
            for k, (_, d) in enumerate(groups):
                block[k].copy_(self._bias_grad(d))

    def weighted_grads(self, row_weights: Tensor) -> list[Tensor]:
        """This layer's ``Σ_t w_t g_t`` for each parameter: Δ rows scaled by their task's weight."""
        shape = (-1,) + (1,) * (self.delta.dim() - 1)
        d = self.delta * row_weights.reshape(shape).to(self.delta.dtype)
        out = []
        if self.weight is not None:
            out.append(self._weight_grad(self.x, d))
        if self.bias is not None:
            out.append(self._bias_grad(d))
        return out

    def _weight_grad_into(self, x: Tensor, d: Tensor, target: Tensor) -> None:
        if isinstance(self.module, nn.Linear) and d.dtype == x.dtype == target.dtype:
            torch.matmul(d.reshape(-1, d.shape[-1]).T, x.reshape(-1, x.shape[-1]), out=target)
        else:
            target.copy_(self._weight_grad(x, d))

    def _weight_grad(self, x: Tensor, d: Tensor) -> Tensor:
        m = self.module
        if isinstance(m, nn.Linear):
            return d.reshape(-1, d.shape[-1]).T @ x.reshape(-1, x.shape[-1])
        return torch.nn.grad.conv2d_weight(x, m.weight.shape, d, m.stride, m.padding, m.dilation, m.groups)

    def _bias_grad(self, d: Tensor) -> Tensor:
        if isinstance(self.module, nn.Linear):
            return d.reshape(-1, d.shape[-1]).sum(0)
        return d.sum((0, 2, 3))


def _wide(t: Tensor) -> Tensor:
    """Gramian arithmetic in at least float32 (half-precision products lose the small entries)."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def _covered(module: nn.Module) -> bool:
    """A layer with a per-sample rule: Linear, or a zero-padded Conv2d with numeric padding."""
    if isinstance(module, nn.Linear):
        return True
    return (isinstance(module, nn.Conv2d) and module.padding_mode == "zeros"
            and not isinstance(module.padding, str))


class _Structure:
    """The backbone's modules as the fast path sees them: covered layers, batch norms,
    parameters no rule covers, and the first leaf not known to be row-wise."""

    def __init__(self, backbone: nn.Module):
        self.covered = [m for m in backbone.modules() if _covered(m)]
        self.batch_norms = [m for m in backbone.modules() if isinstance(m, _BATCH_NORMS)]
        self.unknown_leaf = next((f"layer type {type(m).__name__} is not known to be row-wise"
                                  for m in backbone.modules()
                                  if next(m.children(), None) is None
                                  and not isinstance(m, _ROW_WISE_LEAVES + _BATCH_NORMS)), None)
        owned = {id(p) for m in self.covered for p in m.parameters(recurse=False)}
        self.uncovered = [(name, p) for name, p in backbone.named_parameters() if id(p) not in owned]
        self.params = list(backbone.parameters())
        self._heads: dict[int, list[Tensor]] = {}

    def head_params(self, heads: nn.Module, task_id: int) -> list[Tensor]:
        if task_id not in self._heads:
            self._heads[task_id] = list(heads.head(task_id).parameters())
        return self._heads[task_id]


# ---------------------------------------------------------------------------
# the result of one step
# ---------------------------------------------------------------------------
class TaskGradients:
    """Per-task gradients of one step, for the tasks present (in ``task_ids`` order).

    Attributes:
        task_ids: the tasks present, in the order of the rows of ``gramian``.
        path: which path computed them (``gramian``/``jacobian``/``batched``/``loop``).
        reason: why the general path was taken (None on the fast path).
        gramian: T x T Gramian of the shared parameters (or of ``gramian_params``).
        jacobian: T x P per-task gradients of the shared parameters in
            ``shared_parameters()`` order, or None on the Gramian path. On the fast
            path it lives in a buffer the engine reuses: valid until its next ``compute``.

    Apply exactly one update (``apply_weights`` or ``apply_direction``); it writes
    (accumulates into) ``.grad`` of the shared parameters and of the heads.
    """

    def __init__(self, task_ids: list[int], path: str, reason: str | None, params: list[Tensor],
                 gramian: Callable[[], Tensor], jacobian: Tensor | None, used: list[bool],
                 head_params: list[list[Tensor]], head_grads: list[list[Tensor | None]],
                 layers: list[_Layer] | None = None, rows: Tensor | None = None, complete: bool = False):
        self.task_ids = task_ids
        self._gramian_complete = complete  # the Gramian covers every shared parameter
        self.path = path
        self.reason = reason
        self.params = params
        self._gramian_fn = gramian
        self._gramian: Tensor | None = None
        self.jacobian = jacobian
        self._used = used
        self._head_params = head_params
        self._head_grads = head_grads
        self._layers = layers
        self._rows = rows

    def __repr__(self) -> str:
        return f"TaskGradients(task_ids={self.task_ids}, path={self.path!r})"

    @property
    def gramian(self) -> Tensor:
        """T x T Gramian, computed on first use (methods that only need coordinates never pay for it)."""
        if self._gramian is None:
            self._gramian = self._gramian_fn()
            self._gramian_fn = None
        return self._gramian

    # -- checks --------------------------------------------------------------
    def nonfinite_task(self) -> int | None:
        """The first task whose gradient (shared or head) holds NaN/inf, else None.

        On the Gramian path a finite diagonal ``||g_t||²`` (which NaN and inf never
        leave finite) settles it. Otherwise it is checked on sums, the cheapest
        reduction NaN and inf survive (``isfinite`` masks and max-abs reductions cost
        ten times more on a T x P matrix): on the fast path a task's gradients are
        finite when its rows of every layer's X and Δ are (no T x P pass even when J
        is formed); on the general path the rows of J are summed. A sum of finite
        values beyond float range (entries near 1e32) also counts as non-finite: no
        usable gradient is that large. Finite factors whose products overflow make a
        non-finite update, which :class:`GradientMethod` catches afterwards.
        """
        if self._gramian_complete and self._layers is not None and self.jacobian is None:
            # Gramian path: the diagonal (||g_t||², needed by the method anyway) settles
            # the common case; only a failing step pays for the search below
            heads = [g.detach().sum() for grads in self._head_grads for g in grads if g is not None]
            diag = torch.diagonal(self.gramian)
            if bool(torch.isfinite(torch.cat([diag, torch.stack(heads).to(diag)]) if heads else diag).all()):
                return None
        device = self._head_device()
        zero = torch.zeros((), device=device)
        head_sums = torch.stack([sum((g.detach().sum() for g in grads if g is not None), zero)
                                 for grads in self._head_grads])
        bad = ~torch.isfinite(head_sums)
        if self._layers:  # the factors of the fast path (J, when formed, is built from them)
            row_sum = torch.zeros(self._rows.shape[0], device=self._rows.device)
            for layer in self._layers:
                for t in (layer.delta, layer.x):
                    row_sum = row_sum + t.detach().flatten(1).sum(1).float()
            counts = torch.zeros(len(self.task_ids), device=row_sum.device)
            counts.index_add_(0, self._rows, (~torch.isfinite(row_sum)).float())
            bad |= (counts > 0).to(device)
        elif self.jacobian is not None:
            bad |= ~torch.isfinite(self.jacobian.sum(1)).to(device)
        hits = bad.nonzero()  # the one host sync of the check
        return self.task_ids[int(hits[0])] if hits.numel() else None

    def _head_device(self) -> torch.device:
        for grads in self._head_grads:
            for g in grads:
                if g is not None:
                    return g.device
        return self.params[0].device if self.params else torch.device("cpu")

    # -- updates -------------------------------------------------------------
    def apply_weights(self, weights: Tensor, head_weights: Tensor | None = None) -> None:
        """Write ``Σ_t weights[t] g_t`` into the shared parameters' ``.grad``."""
        like = self.jacobian if self.jacobian is not None else self._layers[0].delta if self._layers else None
        if like is not None:
            weights = weights.detach().to(device=like.device, dtype=like.dtype)
        if self._layers is not None and self.jacobian is None:
            row_weights = weights[self._rows]
            for layer in self._layers:
                for p, g in zip(layer.params, layer.weighted_grads(row_weights)):
                    _accumulate(p, g)
        else:
            self._write_direction(weights @ self.jacobian)
        self._write_heads(head_weights)
        self._release()

    def apply_direction(self, direction: Tensor, head_weights: Tensor | None = None) -> None:
        """Write ``direction`` (P,) into the shared parameters' ``.grad``."""
        self._write_direction(direction.detach())
        self._write_heads(head_weights)
        self._release()

    def _write_direction(self, direction: Tensor) -> None:
        offset = 0
        for p, used in zip(self.params, self._used):
            n = p.numel()
            if used:  # a parameter no task reached keeps its .grad, as after loss.backward()
                _accumulate(p, direction[offset:offset + n].view_as(p).to(p.dtype))
            offset += n

    def _write_heads(self, head_weights: Tensor | None) -> None:
        for k, (params, grads) in enumerate(zip(self._head_params, self._head_grads)):
            scale = None if head_weights is None else head_weights[k].detach()
            for p, g in zip(params, grads):
                if g is not None:
                    _accumulate(p, g if scale is None else g * scale.to(g.dtype))

    def _release(self) -> None:
        self._gramian_fn = None
        self._layers = None
        self._head_grads = [[] for _ in self._head_grads]
        self.jacobian = None


def _accumulate(p: Tensor, g: Tensor) -> None:
    """Add ``g`` to ``p.grad`` as ``loss.backward()`` would (a fresh tensor when it is None)."""
    g = g.detach().to(p.dtype)  # under autocast the factors may be half precision; .grad is not
    if p.grad is None:
        # never hand the optimizer a view into a larger buffer (the Jacobian, a batched result)
        p.grad = g.clone() if g._base is not None or not g.is_contiguous() else g
    else:
        p.grad.add_(g)


# ---------------------------------------------------------------------------
# the engine
# ---------------------------------------------------------------------------
class TaskGradientEngine:
    """Computes per-task gradients of ``backbone``'s parameters for one mixed batch.

    Use it in two places: wrap the backbone's forward in :meth:`recording` (it
    hooks the covered layers for that call only), then call :meth:`compute` with
    the per-task losses of that forward.

    Args:
        backbone: the shared module; its parameters with ``requires_grad`` are the shared parameters.
        heads: the per-task heads (``heads.head(task_id)`` gives task t's module).
        path: ``auto`` (fast path when the checks pass, else batched, else loop),
            ``fast`` (the fast path or an error saying why it is not exact here),
            ``batched`` or ``loop`` (force the general path, e.g. for a backbone whose
            forward mixes samples outside its modules).
    """

    def __init__(self, backbone: nn.Module, heads: nn.Module, path: GradientPath = "auto"):
        if path not in GRADIENT_PATHS:
            raise ValueError(f"gradient path must be one of {GRADIENT_PATHS}, got {path!r}")
        self.backbone = backbone
        self.heads = heads
        self.path = path
        self._recording: Recording | None = None
        self._batched_works: bool | None = None  # learnt on first use; avoids retaining graphs after
        self._scratch: Tensor | None = None       # the fast Jacobian path's reused (T, P) buffer
        self._structure_cache: _Structure | None = None
        self._lookups: dict[tuple, Tensor] = {}

    # -- forward side --------------------------------------------------------
    @contextmanager
    def recording(self, task_id: Tensor) -> Iterator[Recording | None]:
        """Record what the fast path needs during the backbone's forward (only when
        autograd is on: evaluation under ``no_grad`` records nothing)."""
        self._recording = None
        if not torch.is_grad_enabled():
            yield None
            return
        rec = Recording(task_id)
        handles = [self.backbone.register_forward_hook(rec._backbone_hook)]
        if self.path in ("auto", "fast"):
            for m in self._structure().covered:
                if any(p.requires_grad for p in m.parameters(recurse=False)):
                    handles.append(m.register_forward_hook(rec._layer_hook))
        try:
            yield rec
        finally:
            for h in handles:
                h.remove()
        self._recording = rec

    def take_recording(self) -> Recording | None:
        """Hand over (and forget) the last forward's recording."""
        rec, self._recording = self._recording, None
        return rec

    # -- backward side -------------------------------------------------------
    def compute(self, task_losses: dict[int, Tensor], need: Literal["gramian", "jacobian"] = "gramian",
                gramian_params: Sequence[Tensor] | None = None, distributed=None) -> TaskGradients:
        """Per-task gradients of the tasks in ``task_losses`` (consumes the graph).

        Args:
            task_losses: task id -> that task's loss, for the tasks present.
            need: ``gramian`` (T x T only, when the fast path allows) or ``jacobian`` (T x P).
            gramian_params: restrict the Gramian to these shared parameters (e.g. the last
                shared layer for GradNorm); the update still covers every shared parameter.
            distributed: the data-parallel step (``mtlcli.engine.distributed.DistributedStep``)
                or None. ``task_losses`` then holds every task of the global batch; see
                :func:`_averaged_over_processes`.
        """
        if need not in ("gramian", "jacobian"):
            raise ValueError(f"need must be 'gramian' or 'jacobian', got {need!r}")
        if distributed is not None:
            local = set(distributed.local_task_ids)
            mine = self.compute({t: loss for t, loss in task_losses.items() if t in local}, "jacobian", gramian_params)
            return _averaged_over_processes(mine, list(task_losses), self.heads, gramian_params, distributed)
        rec = self.take_recording()
        task_ids = list(task_losses)
        losses = [task_losses[t] for t in task_ids]
        structure = self._structure()
        params = [p for p in structure.params if p.requires_grad]
        head_params = [[p for p in structure.head_params(self.heads, t) if p.requires_grad] for t in task_ids]
        subset = None if gramian_params is None else {id(p) for p in gramian_params}

        rows = self._row_positions(rec.task_id, task_ids) if rec is not None else None
        reason = (self._fast_path_blocker(rec, rows, len(task_ids)) if self.path in ("auto", "fast")
                  else f"path={self.path!r} requested")
        if reason is not None and self.path == "fast":
            raise MtlcliError(f"gradient_path='fast' is not exact for this backbone: {reason} (use 'auto')")
        if reason is None:
            return self._fast(rec, rows, task_ids, losses, params, head_params, need, subset)
        return self._general(task_ids, losses, params, head_params, subset, reason)

    def _row_positions(self, task_id: Tensor, task_ids: list[int]) -> Tensor:
        """Per batch row, the position of its task in ``task_ids`` (-1 for a task not
        listed), through a lookup table kept per set of tasks (no host sync)."""
        key = (tuple(task_ids), task_id.device)
        lookup = self._lookups.get(key)
        if lookup is None:
            if len(self._lookups) > 256:
                self._lookups.clear()
            lookup = torch.full((max(task_ids) + 2,), -1, dtype=torch.long)
            lookup[torch.tensor(task_ids)] = torch.arange(len(task_ids))
            lookup = self._lookups[key] = lookup.to(task_id.device)
        # ids beyond the table (tasks without a loss) land on its last entry, -1
        return lookup[task_id.long().clamp(0, lookup.shape[0] - 1)]

    def _structure(self) -> "_Structure":
        """What the fast path needs to know about the backbone's modules, found once
        (the architecture is fixed after construction; modes and ``requires_grad``
        are read afresh every step)."""
        if self._structure_cache is None:
            self._structure_cache = _Structure(self.backbone)
        return self._structure_cache

    def _fast_path_blocker(self, rec: Recording | None, rows: Tensor | None, T: int) -> str | None:
        """Why the fast path would not be exact for this step (None when it is)."""
        if rec is None:
            return "no recorded forward (call the backbone inside engine.recording())"
        structure = self._structure()
        if structure.unknown_leaf is not None:
            return structure.unknown_leaf
        for m in structure.batch_norms:
            if m.training or m.running_mean is None:
                return f"{type(m).__name__} uses batch statistics (couples samples)"
        for name, p in structure.uncovered:
            if p.requires_grad:
                return f"parameter {name!r} has no per-sample rule"
        batch = rec.task_id.shape[0]
        for m, calls in rec.calls.items():
            if len(calls) != 1:
                return f"{type(m).__name__} is called {len(calls)} times in one forward"
            c = calls[0]
            if c is None:
                return f"{type(m).__name__} has no tensor input"
            if c.inputs.shape[0] != batch or c.output.shape[0] != batch:
                return f"{type(m).__name__} does not keep the batch as its first dimension"
            if c.inputs._version != c.in_version or c.output._version != c.out_version:
                return f"{type(m).__name__}'s input or output was modified in place"
        # every row belongs to a task with a loss, and every such task has rows (one sync)
        positions = torch.unique(rows).tolist()
        if positions[0] < 0 or len(positions) != T:
            return "the losses do not match the recorded batch's tasks"
        return None

    # -- fast path -------------------------------------------------------------
    def _fast(self, rec: Recording, rows: Tensor, task_ids: list[int], losses: list[Tensor], params: list[Tensor],
              head_params: list[list[Tensor]], need: str, subset: set[int] | None) -> TaskGradients:
        ran = [(m, calls[0]) for m, calls in rec.calls.items() if calls[0].output.requires_grad]
        flat_heads = [p for ps in head_params for p in ps]
        grads = torch.autograd.grad(torch.stack(losses).sum(), [c.output for _, c in ran] + flat_heads,
                                    allow_unused=True)
        layers = [_Layer(m, c.inputs, torch.zeros_like(c.output) if g is None else g)
                  for (m, c), g in zip(ran, grads[:len(ran)])]
        head_grads = _unflatten(grads[len(ran):], head_params)

        ref = next((l.delta for l in layers), losses[0])
        dtype = ref.dtype if ref.dtype in (torch.float32, torch.float64) else torch.float32
        T = len(task_ids)

        # The Jacobian is allocated once; every layer writes its per-task gradients
        # straight into its columns (no per-layer stacks, no final concatenation).
        jacobian = None
        used = [True] * len(params)
        blocks: dict[int, Tensor] = {}
        if need == "jacobian":
            reached = {id(p) for layer in layers for p in layer.params}
            used = [id(p) in reached for p in params]
            jacobian = self._jacobian_scratch(T, sum(p.numel() for p in params), params[0].dtype, ref.device)
            offset = 0
            for p, u in zip(params, used):
                blocks[id(p)] = jacobian[:, offset:offset + p.numel()]
                if not u:
                    blocks[id(p)].zero_()
                offset += p.numel()

        needs_groups = need == "jacobian" or any(not l.sample_gramian_route for l in layers)
        groups_of = _task_groups(rows, T) if needs_groups else None
        if need == "jacobian":
            for layer in layers:
                layer.per_task_into(groups_of(layer), [blocks[id(p)] for p in layer.params])

        def gramian() -> Tensor:
            return _fast_gramian(layers, rows, T, subset, blocks, groups_of, dtype)

        return TaskGradients(task_ids, "jacobian" if need == "jacobian" else "gramian", None, params,
                             gramian, jacobian, used, head_params, head_grads, layers=layers, rows=rows,
                             complete=subset is None)

    def _jacobian_scratch(self, T: int, P: int, dtype: torch.dtype, device: torch.device) -> Tensor:
        """A (T, P) buffer kept between steps. A fresh T x P allocation every step costs
        more than filling it (the pages are faulted in anew each time)."""
        buf = self._scratch
        if buf is None or buf.shape[0] < T or buf.shape[1] != P or buf.dtype != dtype or buf.device != device:
            rows = max(T, len(getattr(self.heads, "task_ids", ())))
            buf = self._scratch = torch.empty(rows, P, dtype=dtype, device=device)
        return buf[:T]

    # -- general path ----------------------------------------------------------
    def _general(self, task_ids: list[int], losses: list[Tensor], params: list[Tensor],
                 head_params: list[list[Tensor]], subset: set[int] | None, reason: str) -> TaskGradients:
        T = len(task_ids)
        flat_heads = [p for ps in head_params for p in ps]
        inputs = params + flat_heads
        shared_grads = head_flat = None
        path = "loop"
        if self.path != "loop" and self._batched_works is not False:
            try:
                stacked = torch.stack(losses)
                eye = torch.eye(T, dtype=stacked.dtype, device=stacked.device)
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message=".*performance drop.*")
                    res = torch.autograd.grad(stacked, inputs, grad_outputs=eye, is_grads_batched=True,
                                              retain_graph=self._batched_works is None, allow_unused=True)
                self._batched_works = True
                path = "batched"
                shared_grads = list(res[:len(params)])
                # head k's gradient is row k of its batched result
                head_flat, i = [], len(params)
                for k, ps in enumerate(head_params):
                    for _ in ps:
                        head_flat.append(None if res[i] is None else res[i][k])
                        i += 1
            except RuntimeError:
                self._batched_works = False
        if shared_grads is None:
            per_task: list[tuple[Tensor | None, ...]] = []
            head_flat = []
            for k, loss in enumerate(losses):
                g = torch.autograd.grad(loss, params + head_params[k], retain_graph=k < T - 1, allow_unused=True)
                per_task.append(g[:len(params)])
                head_flat.extend(g[len(params):])
            shared_grads = []
            for i, p in enumerate(params):
                column = [row[i] for row in per_task]
                shared_grads.append(None if all(g is None for g in column) else
                                    torch.stack([torch.zeros_like(p) if g is None else g for g in column]))
        used = [g is not None for g in shared_grads]
        jacobian = torch.cat([(torch.zeros(T, p.numel(), dtype=p.dtype, device=p.device) if g is None
                               else g.reshape(T, -1)) for p, g in zip(params, shared_grads)], 1)

        def gramian() -> Tensor:
            return _gram(jacobian if subset is None else _columns(jacobian, params, subset))

        head_grads = _unflatten(head_flat, head_params)
        return TaskGradients(task_ids, path, reason, params, gramian, jacobian, used, head_params, head_grads)

    # -- representation --------------------------------------------------------
    def representation_gradients(self, task_losses: dict[int, Tensor]) -> "RepresentationGradients":
        """Per-task gradients w.r.t. the backbone output Z (for MGDA-UB): needs the recorded forward."""
        rec = self.take_recording()
        if rec is None or rec.features is None:
            raise RuntimeError("representation gradients need the backbone's forward inside engine.recording()")
        task_ids = list(task_losses)
        head_params = [[p for p in self.heads.head(t).parameters() if p.requires_grad] for t in task_ids]
        flat_heads = [p for ps in head_params for p in ps]
        z = rec.features
        grads = torch.autograd.grad(torch.stack([task_losses[t] for t in task_ids]).sum(), [z] + flat_heads,
                                    retain_graph=True, allow_unused=True)
        z_grad = torch.zeros_like(z) if grads[0] is None else grads[0]
        rows = self._row_positions(rec.task_id, task_ids)
        return RepresentationGradients(task_ids, z, z_grad, rows, head_params, _unflatten(grads[1:], head_params))


class RepresentationGradients:
    """Per-task gradients w.r.t. the shared representation Z (B x D) of one step.

    In a mixed batch task t's gradient w.r.t. Z is non-zero only in task t's rows,
    so the tasks' representation gradients have disjoint supports and their
    Gramian is diagonal: ``K_tt = ||∇_Z L_t||²``, ``K_st = 0``.
    """

    path = "representation"
    reason = None

    def __init__(self, task_ids, z, z_grad, rows, head_params, head_grads):
        self.task_ids = task_ids
        self._z = z
        self._z_grad = z_grad
        self._rows = rows
        self._head_params = head_params
        self._head_grads = head_grads
        sq = z_grad.detach().reshape(z_grad.shape[0], -1).pow(2).sum(1)
        norms2 = torch.zeros(len(task_ids), dtype=sq.dtype, device=sq.device)
        norms2.index_add_(0, rows.clamp_min(0), sq * (rows >= 0))
        self.gramian = torch.diag(norms2)

    def nonfinite_task(self) -> int | None:
        """The first task whose representation or head gradient holds NaN/inf, else None."""
        bad = ~torch.isfinite(torch.diagonal(self.gramian))
        for k, grads in enumerate(self._head_grads):
            if any(g is not None and not bool(torch.isfinite(g).all()) for g in grads):
                bad[k] = True
        hits = bad.nonzero()
        return self.task_ids[int(hits[0])] if hits.numel() else None

    def apply_weights(self, weights: Tensor, head_weights: Tensor | None = None) -> None:
        """Backpropagate ``Σ_t w_t ∇_Z L_t`` into the backbone (frees the graph)."""
        row_w = torch.where(self._rows >= 0, weights.detach().to(self._z_grad.dtype)[self._rows.clamp_min(0)],
                            torch.zeros((), dtype=self._z_grad.dtype, device=self._z_grad.device))
        shape = (-1,) + (1,) * (self._z_grad.dim() - 1)
        torch.autograd.backward(self._z, grad_tensors=self._z_grad * row_w.reshape(shape))
        for k, (ps, gs) in enumerate(zip(self._head_params, self._head_grads)):
            for p, g in zip(ps, gs):
                if g is not None:
                    _accumulate(p, g if head_weights is None else g * head_weights[k].detach().to(g.dtype))
        self._z = self._z_grad = None


def _fast_gramian(layers: list[_Layer], rows: Tensor, T: int, subset: set[int] | None,
                  blocks: dict[int, Tensor], groups_of, dtype: torch.dtype) -> Tensor:
    """The Gramian on the fast path: B x B kernels for Linear layers, per-task
    gradients (already in ``blocks`` or formed for that layer alone) for the rest."""
    device = rows.device
    gramian = torch.zeros(T, T, dtype=dtype, device=device)
    kernel = None
    for layer in layers:
        if subset is not None and not any(id(p) in subset for p in layer.params):
            continue
        if layer.sample_gramian_route and (subset is None or all(id(p) in subset for p in layer.params)):
            # cheaper than J Jᵀ, whose T x T output keeps a matmul from using the
            # machine well over millions of columns
            k = layer.sample_gramian()
            kernel = k if kernel is None else kernel.add_(k)
            continue
        out = [blocks[id(p)] for p in layer.params] if blocks else None
        if out is None:  # conv / token layers: this layer's per-task gradients only, then dropped
            out = [torch.empty(T, p.numel(), dtype=p.dtype, device=p.device) for p in layer.params]
            layer.per_task_into(groups_of(layer), out)
        for p, j in zip(layer.params, out):
            if subset is None or id(p) in subset:
                gramian += _gram(j).to(dtype)
    if kernel is not None:
        onehot = torch.nn.functional.one_hot(rows, T).to(kernel.dtype)
        gramian += (onehot.T @ kernel @ onehot).to(dtype)
    return gramian


def _gram(J: Tensor) -> Tensor:
    """``J Jᵀ`` accumulated over column blocks: one (T, P) x (P, T) product with
    millions of columns uses a CPU about half as well as blocks that stay in cache."""
    J = _wide(J)
    gram = torch.zeros(J.shape[0], J.shape[0], dtype=J.dtype, device=J.device)
    for cols in column_slices(J):
        block = J[:, cols]
        gram.addmm_(block, block.T)
    return gram


def column_slices(matrix: Tensor, block_bytes: int = 1 << 20) -> list[slice]:
    """Column blocks of a (T, P) matrix of about ``block_bytes`` each.

    Rules that keep T x P state (momenta, accumulators) make several elementwise
    passes over it; done block by block, the passes after the first hit the cache
    instead of memory, and no T x P temporary is allocated.
    """
    rows, cols = matrix.shape
    width = max(1, block_bytes // max(1, rows * matrix.element_size()))
    return [slice(start, min(start + width, cols)) for start in range(0, cols, width)]


def _columns(jacobian: Tensor, params: list[Tensor], subset: set[int]) -> Tensor:
    """The Jacobian's columns that belong to the parameters in ``subset``."""
    pieces, offset = [], 0
    for p in params:
        if id(p) in subset:
            pieces.append(jacobian[:, offset:offset + p.numel()])
        offset += p.numel()
    return torch.cat(pieces, 1)


# ---------------------------------------------------------------------------
# data-parallel runs
# ---------------------------------------------------------------------------
def _averaged_over_processes(mine: TaskGradients, task_ids: list[int], heads: nn.Module,
                             gramian_params: Sequence[Tensor] | None, distributed) -> TaskGradients:
    """The global batch's per-task gradients, the same on every process.

    ``mine`` holds this process's tasks (those with rows in its piece); the losses
    behind it carry ``world_size`` times this piece's share of each task's gradient
    (``DistributedStep.global_task_means``), so the average over processes of each
    task's row is that task's gradient over the global batch. Shared-parameter rows,
    head gradients and the "parameter reached" flags travel in one buffer (a task
    absent from a piece contributes zeros). The Jacobian is always formed: the Gramian
    of a sum over processes is not the sum of their Gramians.
    """
    params = mine.params
    jac = mine.jacobian
    T, P = len(task_ids), jac.shape[1]
    slot = {t: k for k, t in enumerate(task_ids)}
    head_params = [[p for p in heads.head(t).parameters() if p.requires_grad] for t in task_ids]
    head_sizes = [sum(p.numel() for p in ps) for ps in head_params]
    buffer = torch.zeros(T * P + sum(head_sizes) + len(params), dtype=jac.dtype, device=jac.device)
    jacobian = buffer[:T * P].view(T, P)
    head_flat = buffer[T * P:T * P + sum(head_sizes)].split(head_sizes)
    reached = buffer[T * P + sum(head_sizes):]
    for k, t in enumerate(mine.task_ids):
        jacobian[slot[t]] = jac[k]
        pieces = [torch.zeros_like(p).reshape(-1) if g is None else g.reshape(-1)
                  for p, g in zip(mine._head_params[k], mine._head_grads[k])]
        if pieces:
            head_flat[slot[t]].copy_(torch.cat(pieces))
    reached.copy_(torch.tensor([1.0 if u else 0.0 for u in mine._used], dtype=jac.dtype))
    distributed.average_(buffer)
    used = [u > 0 for u in reached.tolist()]
    head_grads = [list(flat.split([p.numel() for p in ps])) for flat, ps in zip(head_flat, head_params)]
    head_grads = [[g.view_as(p) for g, p in zip(gs, ps)] for gs, ps in zip(head_grads, head_params)]
    subset = None if gramian_params is None else {id(p) for p in gramian_params}

    def gramian() -> Tensor:
        return _gram(jacobian if subset is None else _columns(jacobian, params, subset))

    mine._release()
    return TaskGradients(task_ids, mine.path, mine.reason, params, gramian, jacobian, used, head_params, head_grads)


def _unflatten(flat: Sequence[Tensor | None], shapes: list[list[Tensor]]) -> list[list[Tensor | None]]:
    out, i = [], 0
    for ps in shapes:
        out.append(list(flat[i:i + len(ps)]))
        i += len(ps)
    return out


def _task_groups(rows: Tensor, T: int):
    """Per task k, its rows of a layer's (X, Δ): one sort, then contiguous slices."""
    order = torch.argsort(rows, stable=True)
    counts = torch.bincount(rows, minlength=T).tolist()

    def groups(layer: _Layer) -> list[tuple[Tensor, Tensor]]:
        xs = layer.x.index_select(0, order).split(counts)
        ds = layer.delta.index_select(0, order).split(counts)
        return list(zip(xs, ds))

    return groups
