"""Step time and peak memory of every built-in algorithm, and the cost of the per-task gradients.

Two workloads on the UCI digits that scikit-learn ships (8x8 images, 64 features):

* small: the 5 digit-pair tasks (0/1, 2/3, ...), MLP 64-256-256, batch 64;
* large: 10 tasks (the 5 pairs, and the same pairs under one fixed pixel
  permutation), MLP 64-1024-1024-1024, batch 256.

Part 1, every algorithm in ``mtlcli.algorithms.BUILTIN_ALGORITHMS`` with its
default hyperparameters: time of one training step (zero_grad, training_step,
SGD step) relative to a JointLearning step, the time spent in the method's own
rule (``aggregate``: solvers and state updates), and the peak memory the step
allocates. Part 2, the per-task gradient paths of the engine (Gramian, Jacobian,
batched fallback, per-task loop) relative to one plain backward pass of the
summed loss (backward side only; the forward is the same for all).

On CPU the clock is the thread's CPU time with one intra-op thread (``--threads 1``,
the default): the work a step costs, which other processes on a shared machine do
not inflate the way they inflate wall time. On GPU it is synchronised wall time.
Methods are interleaved in several rounds and each keeps its fastest round's
median, so that drifting load biases no method in particular. Targets (JointLearning step = 1): Gramian methods
<= 1.5x on large and <= 2x on small; Jacobian methods <= 3x on large.

    python bench/algorithms.py            # both workloads, writes bench/RESULTS.md
    python bench/algorithms.py --quick    # smoke run: small workload, few steps, no file
    python bench/algorithms.py --device cuda
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import mtlcli.algorithms as algorithms  # noqa: E402
from mtlcli.algorithms import GradientMethod  # noqa: E402
from mtlcli.algorithms.base import MTLAlgorithm  # noqa: E402
from mtlcli.algorithms.jacobian import TaskGradientEngine  # noqa: E402
from mtlcli.backbones.mlp import MLP  # noqa: E402
from mtlcli.heads import MTLHeads  # noqa: E402

WORKLOADS = {
    "small": dict(num_tasks=5, hidden_dims=[256], output_dim=256, batch_size=64),
    "large": dict(num_tasks=10, hidden_dims=[1024, 1024], output_dim=1024, batch_size=256),
}
TARGETS = {("gramian", "small"): 2.0, ("gramian", "large"): 1.5,
           ("representation", "small"): 2.0, ("representation", "large"): 1.5,
           ("jacobian", "large"): 3.0}
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


# -- data -----------------------------------------------------------------------------

def digit_tasks(num_tasks: int, device: torch.device):
    """Rows of all tasks: (x, y, task_id). Tasks 1-5 are the digit pairs; 6-10 the same
    pairs with one fixed pixel permutation."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x_all = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y_all = torch.tensor(digits.target)
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(0))
    xs, ys, ts = [], [], []
    for t in range(1, num_tasks + 1):
        pair = (t - 1) % 5
        rows = (y_all == 2 * pair) | (y_all == 2 * pair + 1)
        x = x_all[rows] if t <= 5 else x_all[rows][:, perm]
        xs.append(x)
        ys.append(y_all[rows] - 2 * pair)
        ts.append(torch.full((int(rows.sum()),), t))
    return torch.cat(xs).to(device), torch.cat(ys).to(device), torch.cat(ts).to(device)


class Batches:
    """Mixed batches drawn with a fixed seed (the same sequence for every method)."""

    def __init__(self, data, batch_size: int, count: int = 64):
        x, y, t = data
        g = torch.Generator().manual_seed(1)
        self.items = []
        for _ in range(count):
            idx = torch.randint(0, x.shape[0], (batch_size,), generator=g).to(x.device)
            self.items.append((x[idx], y[idx], t[idx]))
        self.i = 0

    def next(self):
        item = self.items[self.i % len(self.items)]
        self.i += 1
        return item


def make_model(cls, spec, device):
    torch.manual_seed(0)
    backbone = MLP(64, spec["hidden_dims"], spec["output_dim"])
    heads = MTLHeads(spec["output_dim"], {t: 2 for t in range(1, spec["num_tasks"] + 1)})
    model = cls(backbone, heads) if cls is not None else MTLAlgorithm(backbone, heads)
    return model.to(device)


# -- measuring -------------------------------------------------------------------------

CLOCK = time.perf_counter  # set in main(): thread CPU time on CPU with one thread


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class LiveBytes(TorchDispatchMode):
    """Peak bytes of tensor storage alive during a block (CPU: allocator stats do not exist).

    Every op's outputs are counted once per storage and uncounted when the storage dies."""

    def __init__(self):
        super().__init__()
        self.live = self.peak = 0
        self._sizes: dict[int, int] = {}

    def _free(self, key: int, size: int) -> None:
        if self._sizes.pop(key, None) is not None:
            self.live -= size

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        # views and in-place results share an input's storage: nothing was allocated
        inputs = {t.untyped_storage().data_ptr() for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)}
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                key, size = storage.data_ptr(), storage.nbytes()
                if size and key not in self._sizes and key not in inputs:
                    self._sizes[key] = size
                    self.live += size
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(storage, self._free, key, size)
        return out


def peak_mib(fn, device: torch.device) -> float:
    """Peak memory allocated while ``fn`` runs, above what was allocated before (MiB)."""
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        sync(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    tracker = LiveBytes()
    with tracker:
        fn()
    return tracker.peak / 2**20


@dataclass
class Runner:
    """One method under test: its step function and the times of its rounds."""

    name: str
    step: callable
    rounds: list[float] = field(default_factory=list)
    extra: list[float] = field(default_factory=list)

    def run_round(self, steps: int, device) -> None:
        times = []
        for _ in range(steps):
            sync(device)
            start = CLOCK()
            self.step()
            sync(device)
            times.append(CLOCK() - start)
        self.rounds.append(statistics.median(times))

    @property
    def seconds(self) -> float:
        return min(self.rounds)


def interleave(runners: list[Runner], rounds: int, steps: int, warmup: int, device) -> None:
    for r in runners:
        for _ in range(warmup):
            r.step()
    for _ in range(rounds):
        for r in runners:
            r.run_round(steps, device)


# -- part 1: algorithms -----------------------------------------------------------------

@dataclass
class AlgorithmRow:
    name: str
    kind: str
    seconds: float
    aggregate_seconds: float | None
    peak: float | None
    held: float | None = None
    error: str | None = None


def held_mib(model) -> float:
    """Memory a method keeps between steps beyond the network: its own buffers and
    parameters, its aggregator's state, the engine's reused Jacobian buffer."""
    tensors = [t for name, t in [*model.named_buffers(), *model.named_parameters()]
               if not name.startswith(("backbone.", "heads."))]
    if isinstance(model, GradientMethod):
        if model.aggregator is not None:
            tensors += [t for t in tree_flatten(model.aggregator.state_dict())[0] if isinstance(t, torch.Tensor)]
        if model.engine._scratch is not None:
            tensors.append(model.engine._scratch)
    return sum(t.numel() * t.element_size() for t in tensors) / 2**20


def algorithm_runner(name: str, spec, batches: Batches, device):
    cls = getattr(algorithms, name)
    model = make_model(cls, spec, device)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    agg_times: list[float] = []  # one entry per call of the method's rule
    if isinstance(model, GradientMethod):
        inner = model.aggregate

        def timed_aggregate(grads, *args, **kwargs):
            if not model.needs_jacobian:
                grads.gramian  # the Gramian is computed lazily: keep it out of the rule's time
            sync(device)
            start = CLOCK()
            out = inner(grads, *args, **kwargs)
            sync(device)
            agg_times.append(CLOCK() - start)
            return out

        model.aggregate = timed_aggregate

    def step():
        x, y, t = batches.next()
        optimizer.zero_grad(set_to_none=True)
        model.training_step(x, y, t)
        optimizer.step()

    return model, Runner(name, step), agg_times


def bench_algorithms(workload: str, names, rounds, steps, warmup, device, memory: bool):
    spec = WORKLOADS[workload]
    batches = Batches(digit_tasks(spec["num_tasks"], device), spec["batch_size"])
    entries, rows = [], []
    for name in names:
        try:
            entries.append((name, *algorithm_runner(name, spec, batches, device)))
        except Exception as err:  # a method that cannot be built with defaults is reported, not fatal
            rows.append(AlgorithmRow(name, "-", float("nan"), None, None, error=f"{type(err).__name__}: {err}"))
    ok = []
    for name, model, runner, agg in entries:
        try:
            runner.step()
            ok.append((name, model, runner, agg))
        except Exception as err:
            rows.append(AlgorithmRow(name, "-", float("nan"), None, None, error=f"{type(err).__name__}: {err}"))
    interleave([r for _, _, r, _ in ok], rounds, steps, warmup, device)
    for name, model, runner, agg in ok:
        kind = model.last_gradient_path if isinstance(model, GradientMethod) else "loss"
        kind = {"batched": "jacobian", "loop": "jacobian"}.get(kind, kind)
        # the median over the timed steps (the last rounds x steps calls), like the step time
        agg_s = statistics.median(agg[-rounds * steps:]) if agg else None
        peak = peak_mib(runner.step, device) if memory else None
        rows.append(AlgorithmRow(name, kind, runner.seconds, agg_s, peak, held_mib(model)))
        del model
    order = {n: i for i, n in enumerate(names)}
    rows.sort(key=lambda r: order[r.name])
    return rows


# -- part 2: per-task gradient paths ----------------------------------------------------

def path_runners(spec, batches: Batches, device):
    """Backward side only: each runner's step does one forward (untimed) and times the rest."""
    runners = []
    for label, path, need in [("plain backward", None, None), ("gramian", "fast", "gramian"),
                              ("jacobian", "fast", "jacobian"), ("batched (fallback)", "batched", "jacobian"),
                              ("per-task loop", "loop", "jacobian")]:
        model = make_model(None, spec, device)
        engine = TaskGradientEngine(model.backbone, model.heads, path or "auto")
        timing = {"t": 0.0}

        def forward(model=model, engine=engine):
            x, y, t = batches.next()
            with engine.recording(t):
                features = model.backbone(x)
            return MTLAlgorithm.task_losses(model.heads(features, t), y)

        def step(model=model, engine=engine, need=need, forward=forward, timing=timing):
            losses = forward()
            model.zero_grad(set_to_none=True)
            sync(device)
            start = CLOCK()
            if need is None:
                torch.stack(list(losses.values())).sum().backward()
            else:
                grads = engine.compute(losses, need)
                grads.apply_weights(torch.ones(len(losses), device=device))
            sync(device)
            timing["t"] = CLOCK() - start

        runners.append((label, step, timing))
    return runners


def bench_paths(workload: str, rounds, steps, warmup, device, memory: bool):
    spec = WORKLOADS[workload]
    batches = Batches(digit_tasks(spec["num_tasks"], device), spec["batch_size"])
    results = []
    for label, step, timing in path_runners(spec, batches, device):
        results.append((label, step, timing, []))
    for _ in range(warmup):
        for _, step, _, _ in results:
            step()
    for _ in range(rounds):
        for label, step, timing, medians in results:
            times = []
            for _ in range(steps):
                step()
                times.append(timing["t"])
            medians.append(statistics.median(times))
    out = []
    for label, step, _, medians in results:
        out.append((label, min(medians), peak_mib(step, device) if memory else None))
    return out


# -- report -----------------------------------------------------------------------------

def machine(device: torch.device) -> str:
    clock = "thread CPU time" if CLOCK is time.thread_time else "wall time"
    text = (f"{platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPUs "
            f"(torch threads {torch.get_num_threads()}, clock: {clock}), torch {torch.__version__}, device {device}")
    if device.type == "cuda":
        text += f" ({torch.cuda.get_device_name(device)})"
    return text


def render(results, device, args) -> str:
    lines = ["# Benchmark: algorithm step time and per-task gradient cost", "",
             f"Machine: {machine(device)}  ", f"Date: {datetime.date.today().isoformat()}  ",
             f"Command: `{' '.join(['python bench/algorithms.py', *sys.argv[1:]])}`  ",
             f"Rounds x steps: {args.rounds} x {args.steps} (fastest round's median per method, "
             f"methods interleaved)", ""]
    lines += ["Workloads: small = 5 digit-pair tasks, MLP 64-256-256, batch 64; large = 10 tasks "
              "(5 pairs + the same pairs under a fixed pixel permutation), MLP 64-1024-1024-1024, batch 256.",
              "Kind: `loss` = loss weighting (one ordinary backward), `gramian` = weights from the "
              "T x T Gramian, `jacobian` = needs the T x P per-task gradients, `representation` = "
              "MGDA-UB on the backbone output. Targets (JointLearning step = 1): gramian <= 1.5x "
              "large / 2x small; jacobian <= 3x large. `rule ms` is the method's own aggregation "
              "(solver, state) per step; peak MiB is the most memory a step allocates on top of what "
              "exists before it; held MiB is what the method keeps between steps beyond the network "
              "(its state, its aggregator's state, the engine's reused Jacobian buffer).", ""]
    for workload, (rows, paths) in results.items():
        joint = next((r.seconds for r in rows if r.name == "JointLearning"), float("nan"))
        lines += [f"## {workload}", "",
                  "| algorithm | kind | step ms | x JointLearning | rule ms | peak MiB | held MiB | target |",
                  "|---|---|---:|---:|---:|---:|---:|---|"]
        for r in rows:
            if r.error:
                lines.append(f"| {r.name} | - | failed: {r.error} | | | | | |")
                continue
            ratio = r.seconds / joint
            target = TARGETS.get((r.kind, workload))
            verdict = "" if target is None else (f"<= {target}: " + ("ok" if ratio <= target else "MISSED"))
            agg = "" if r.aggregate_seconds is None else f"{1e3 * r.aggregate_seconds:.2f}"
            peak = "" if r.peak is None else f"{r.peak:.1f}"
            held = "" if r.held is None else f"{r.held:.1f}"
            lines.append(f"| {r.name} | {r.kind} | {1e3 * r.seconds:.2f} | {ratio:.2f} | {agg} | {peak} | {held} | {verdict} |")
        missed = []
        for r in rows:
            target = TARGETS.get((r.kind, workload))
            if r.error or target is None or r.seconds / joint <= target:
                continue
            note = f"{r.name} {r.seconds / joint:.2f}x"
            if r.aggregate_seconds is not None:
                note += (f" (its rule takes {1e3 * r.aggregate_seconds:.2f} ms; the step without it: "
                         f"{(r.seconds - r.aggregate_seconds) / joint:.2f}x)")
            missed.append(note)
        if missed:
            lines += ["", "Targets missed: " + "; ".join(missed) + "."]
        plain = paths[0][1]
        lines += ["", "Per-task gradients (backward side: compute + apply the update), relative to one "
                  "plain backward of the summed loss:", "",
                  "| path | ms | x plain backward | peak MiB |", "|---|---:|---:|---:|"]
        for label, seconds, peak in paths:
            lines.append(f"| {label} | {1e3 * seconds:.2f} | {seconds / plain:.2f} | "
                         f"{'' if peak is None else f'{peak:.1f}'} |")
        lines.append("")
    return "\n".join(lines)


def write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small workload, 1 round of 2 steps, no file")
    parser.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=None)
    parser.add_argument("--algorithms", nargs="+", default=None, help="names from BUILTIN_ALGORITHMS (default: all)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads on CPU (1: time is the thread's CPU time, robust to load)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory step (it is slow on CPU)")
    parser.add_argument("--output", type=Path, default=None, help=f"report file (default: {RESULTS}; none with --quick)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.steps, args.warmup = 1, 2, 1
        args.workloads = args.workloads or ["small"]
    workloads = args.workloads or list(WORKLOADS)
    names = args.algorithms or list(algorithms.BUILTIN_ALGORITHMS)
    if "JointLearning" not in names:
        names = ["JointLearning", *names]
    device = torch.device(args.device)
    memory = not args.no_memory
    global CLOCK
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
        CLOCK = time.thread_time if args.threads == 1 else time.perf_counter

    results = {}
    for workload in workloads:
        start = time.perf_counter()
        rows = bench_algorithms(workload, names, args.rounds, args.steps, args.warmup, device, memory)
        paths = bench_paths(workload, args.rounds, args.steps, args.warmup, device, memory)
        results[workload] = (rows, paths)
        print(f"[{workload}: {time.perf_counter() - start:.0f} s]", file=sys.stderr)
    text = render(results, device, args)
    print(text)
    output = args.output or (None if args.quick else RESULTS)
    if output is not None:
        write_atomically(output, text + "\n")
        print(f"wrote {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
