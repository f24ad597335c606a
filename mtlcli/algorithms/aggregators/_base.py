"""The aggregator contract: per-task gradients in, one update direction out.

An aggregator is pure math. It never runs a backward pass: the engine hands it
either the per-task gradient matrix ``G`` (T x d, one row per task present in
the batch, in task order) or, for methods whose weights depend on ``G`` only
through the Gramian ``K = G Gᵀ``, just that T x T matrix. Keeping the two apart
is what lets the engine compute the Gramian without materialising ``G``.

Numerics: the small T x T problems (QPs, Newton systems, eigendecompositions)
are solved in float64 on the CPU, whatever the input's dtype and device, and the
weights are cast back. T is tiny, so a GPU would only add kernel launches, and
the active-set solvers branch on values anyway. The golden tolerances assume
exactly this: a Gramian formed in the input precision, solved in float64.

Non-finite policy (the same for every aggregator): a Gramian or ``G`` with a
NaN or infinite entry raises :class:`NonFiniteGradientError` naming the task;
no method tries to repair it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mtlcli.errors import MtlcliError


class NonFiniteGradientError(ArithmeticError):
    """A task's gradient (or its Gramian entries) is NaN or infinite."""

    def __init__(self, task_ids: Sequence[int]):
        self.task_ids = list(task_ids)
        super().__init__(f"non-finite gradient for task(s) {', '.join(map(str, self.task_ids))}")


class UndefinedAggregationError(MtlcliError, ArithmeticError):
    """The method's rule has no answer for this input (e.g. Nash-MTL when 0 is in
    the convex hull of the task gradients). Raised instead of silently switching
    to another rule."""


class SolverError(RuntimeError):
    """An inner solver did not reach its optimality conditions. This is a bug or a
    numerical breakdown, never an expected outcome; it is not papered over."""


class Aggregator:
    """Maps the per-task gradient matrix G (T x d, rows in task order) to one update direction.

    Subclasses with ``gramian_only = True`` implement :meth:`weights`; the
    direction is then ``weights(G Gᵀ) @ G``. Subclasses that need coordinates
    set ``gramian_only = False`` and override :meth:`__call__`.

    ``task_ids`` name the rows (ints >= 1, only the tasks present in the batch);
    stateful methods key their state by task id, so an absent task is simply
    not there. When omitted, the rows are tasks ``1..T``.
    """

    gramian_only: bool = True
    #: names of the constructor arguments shown by ``repr`` (in signature order)
    _hyperparameters: tuple[str, ...] = ()

    def weights(self, gramian: Tensor, task_ids: Sequence[int] | None = None) -> Tensor:
        """Task weights ``w`` (T,) such that the direction is ``w @ G``."""
        raise TypeError(f"{type(self).__name__} needs the gradient coordinates, not only the Gramian; call it on G")

    def __call__(self, G: Tensor, task_ids: Sequence[int] | None = None) -> Tensor:
        check_matrix(G)
        return self.weights(G @ G.T, task_ids) @ G

    def state_dict(self) -> dict[str, Any]:
        """State to checkpoint: tensors and plain containers only; ``{}`` when stateless."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} is stateless but got state keys {sorted(state)}")

    def __repr__(self) -> str:
        args = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._hyperparameters)
        return f"{type(self).__name__}({args})"


# -- helpers shared by the methods ------------------------------------------------

def check_matrix(G: Tensor) -> None:
    if G.dim() != 2 or G.shape[0] == 0:
        raise ValueError(f"expected a (T, d) gradient matrix with T >= 1, got shape {tuple(G.shape)}")


def resolve_task_ids(task_ids: Sequence[int] | None, num_tasks: int) -> list[int]:
    """The task id of each row; ``1..T`` when not given."""
    if task_ids is None:
        return list(range(1, num_tasks + 1))
    ids = [int(t) for t in task_ids]
    if len(ids) != num_tasks:
        raise ValueError(f"got {len(ids)} task ids for {num_tasks} gradient rows")
    if len(set(ids)) != len(ids) or min(ids) < 1:
        raise ValueError(f"task ids must be distinct ints >= 1, got {ids}")
    return ids


def gramian_to_numpy(gramian: Tensor, task_ids: Sequence[int] | None = None) -> np.ndarray:
    """The Gramian as a float64 numpy array, after shape and finiteness checks."""
    if gramian.dim() != 2 or gramian.shape[0] != gramian.shape[1] or gramian.shape[0] == 0:
        raise ValueError(f"expected a square (T, T) Gramian with T >= 1, got shape {tuple(gramian.shape)}")
    ids = resolve_task_ids(task_ids, gramian.shape[0])
    K = gramian.detach().to(device="cpu", dtype=torch.float64).numpy()
    if not np.isfinite(K).all():
        # A non-finite gradient shows on its diagonal entry (and spoils its whole row
        # and column); name the rows whose own entry is bad when there are any.
        bad = [ids[i] for i in range(len(K)) if not np.isfinite(K[i, i])]
        raise NonFiniteGradientError(bad or [ids[i] for i in range(len(K)) if not np.isfinite(K[i]).all()])
    # Symmetrise: engines may accumulate the two triangles in different orders.
    return 0.5 * (K + K.T)


def check_finite_rows(G: Tensor, task_ids: Sequence[int] | None = None) -> None:
    """Raise :class:`NonFiniteGradientError` naming the rows of ``G`` with a NaN or inf.

    A row sum is finite only when every entry is (NaN and inf propagate, and
    inf + -inf is NaN), and it costs a tenth of an ``isfinite`` mask on a T x P
    matrix; the exact mask runs only when a sum is not finite, to name the rows
    and to let finite rows whose sum merely overflows through."""
    if bool(torch.isfinite(G.sum(dim=1)).all()):
        return
    raise_non_finite_rows(G, task_ids)


def raise_non_finite_rows(G: Tensor, task_ids: Sequence[int] | None = None) -> None:
    """The exact check behind :func:`check_finite_rows`, for callers that found a
    non-finite value on a cheaper reduction of their own."""
    finite = torch.isfinite(G).all(dim=1)
    if not bool(finite.all()):
        ids = resolve_task_ids(task_ids, G.shape[0])
        raise NonFiniteGradientError([ids[i] for i in range(G.shape[0]) if not bool(finite[i])])


def column_blocks(G: Tensor, target_bytes: int = 1 << 19) -> list[tuple[int, int]]:
    """``(start, stop)`` column ranges of about ``target_bytes`` of ``G`` each.

    Methods that make several elementwise passes over a T x P matrix run them
    block by block, so that every pass after the first reads the block from
    cache and no full-size temporary is ever allocated (its pages would be
    faulted in anew on every step)."""
    T, P = G.shape
    width = max(1, target_bytes // max(1, T * G.element_size()))
    return [(start, min(start + width, P)) for start in range(0, P, width)]


def weights_like(weights: np.ndarray, like: Tensor) -> Tensor:
    """float64 numpy weights -> tensor in the dtype and device of ``like``."""
    return torch.as_tensor(weights, dtype=torch.float64).to(device=like.device, dtype=like.dtype)


def input_eps(like: Tensor) -> float:
    """Machine epsilon of the input's precision: the noise floor of a Gramian formed in it."""
    return float(torch.finfo(like.dtype).eps) if like.dtype.is_floating_point else float(np.finfo(np.float64).eps)
