"""Class-split and permuted task datasets, their validation splits, and the MTL view."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from mtlcli.data import (
    MixedTensors,
    MTLDataset,
    MTLDatasetFromCL,
    PermutedDataset,
    PermutedDigits,
    SplitDataset,
    SplitDigits,
)
from mtlcli.data.sources import Digits, ImageSource, SourceData
from mtlcli.errors import ConfigError, MtlcliError

FIVE_PAIRS = {1: [0, 1], 2: [2, 3], 3: [4, 5], 4: [6, 7], 5: [8, 9]}


class TinySource(ImageSource):
    """An in-memory source whose pixel values encode (split, row) so rows can be traced."""

    name = "Tiny"
    num_classes = 6
    input_shape = (1, 3, 4)

    def __init__(self, n_train_per_class: int = 20, n_test_per_class: int = 5):
        self.n_train = n_train_per_class
        self.n_test = n_test_per_class
        self.reads = 0

    def _read(self) -> SourceData:
        self.reads += 1

        def part(n_per_class: int, offset: float):
            y = torch.arange(self.num_classes).repeat_interleave(n_per_class)
            x = torch.rand(len(y), *self.input_shape, generator=torch.Generator().manual_seed(int(offset)))
            x[:, 0, 0, 0] = offset + torch.arange(len(y), dtype=torch.float32)  # row tag
            return x, y

        train_x, train_y = part(self.n_train, 0.0)
        test_x, test_y = part(self.n_test, 10_000.0)
        return SourceData(train_x, train_y, test_x, test_y)


# -- digits source ------------------------------------------------------------------


def test_digits_source_scales_to_unit_interval_and_has_a_stratified_fixed_test_split():
    data = Digits(test_percentage=0.2).load()
    assert data.train_x.shape[1:] == (1, 8, 8) and data.train_x.dtype == torch.float32
    assert len(data.train_y) + len(data.test_y) == 1797
    assert float(data.train_x.min()) == 0.0 and float(data.train_x.max()) == 1.0
    # Stratified: each class contributes round(n_c * 0.2) test images.
    counts = np.bincount(load_digits().target, minlength=10)
    assert data.test_y.bincount(minlength=10).tolist() == [int(round(c * 0.2)) for c in counts]
    # Every image is in exactly one split, with its value * 16 an original pixel row.
    original = torch.as_tensor(load_digits().images, dtype=torch.float32).flatten(1)
    both = torch.cat([data.train_x, data.test_x]).flatten(1) * 16
    assert torch.equal(both.sort(0).values, original.sort(0).values)
    # Fixed: independent of the global RNG.
    torch.manual_seed(999)
    again = Digits(test_percentage=0.2).load()
    assert torch.equal(again.test_x, data.test_x) and torch.equal(again.test_y, data.test_y)


# -- class split ----------------------------------------------------------------------


def test_class_split_remaps_classes_in_listed_order_and_allows_different_counts():
    source = TinySource()
    ds = SplitDataset(source, {1: [4, 1], 2: [0, 2, 5]}, validation_percentage=0.0)
    assert ds.task_ids == [1, 2] and ds.num_classes == {1: 2, 2: 3}
    data = source.load()
    for task_id, classes in {1: [4, 1], 2: [0, 2, 5]}.items():
        for split, xs, ys in (("train", data.train_x, data.train_y), ("test", data.test_x, data.test_y)):
            x, y = ds.tensors(task_id, split)
            assert y.dtype == torch.long and x.dtype == torch.float32
            # Trace each row back to the source by its tag and check its label mapping.
            offset = 0.0 if split == "train" else 10_000.0
            rows = (x[:, 0, 0, 0] - offset).long()
            assert torch.equal(x, xs[rows])
            expected = torch.tensor([classes.index(c) for c in ys[rows].tolist()])
            assert torch.equal(y, expected)
            assert sorted(set(ys[rows].tolist())) == sorted(classes)
            assert len(y) == len(classes) * (source.n_train if split == "train" else source.n_test)


@pytest.mark.parametrize(
    "class_split, message",
    [
        ({1: [0, 1], 2: [1, 2]}, "class 1 appears in tasks 1 and 2"),
        ({1: [0, 0]}, "class 0 appears twice"),
        ({1: [0, 6]}, "class 6, which Tiny does not have (classes 0..5)"),
        ({1: [0, -1]}, "class -1, which Tiny does not have"),
        ({1: []}, "task 1 has no classes"),
        ({0: [1]}, "task ids must be integers >= 1, got 0"),
        ({"1": [1]}, "task ids must be integers >= 1, got '1'"),
        ({}, "non-empty mapping"),
        ({1: 3}, "task 1 must list its classes"),
    ],
)
def test_bad_class_split_is_a_one_line_config_error(class_split, message):
    with pytest.raises(ConfigError) as info:
        SplitDataset(TinySource(), class_split)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_construction_reads_nothing_and_setup_is_idempotent():
    source = TinySource()
    ds = SplitDataset(source, {1: [0, 1]})
    assert source.reads == 0
    assert ds.input_shape == (1, 3, 4)
    ds.setup()
    ds.setup()
    first = ds.tensors(1, "train")
    assert torch.equal(first[0], ds.tensors(1, "train")[0])
    assert source.reads == 1


def test_unknown_task_names_the_available_ones():
    ds = SplitDataset(TinySource(), {1: [0], 3: [1]})
    with pytest.raises(MtlcliError, match=r"unknown task 2: this dataset has tasks \[1, 3\]"):
        ds.tensors(2, "train")


def test_a_task_whose_classes_have_no_training_data_fails_at_setup():
    class Sparse(TinySource):
        def _read(self):
            data = super()._read()
            keep = data.train_y != 3
            return SourceData(data.train_x[keep], data.train_y[keep], data.test_x, data.test_y)

    ds = SplitDataset(Sparse(), {1: [0], 2: [3]})
    with pytest.raises(MtlcliError, match="task 2 has no training samples"):
        ds.setup()


# -- validation split ---------------------------------------------------------------


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.25, 0.29])
def test_validation_split_sizes_disjointness_and_determinism(fraction):
    source = TinySource(n_train_per_class=50)
    ds = SplitDataset(source, {1: [0, 1], 2: [2]}, validation_percentage=fraction)
    for task_id, n in ((1, 100), (2, 50)):
        x_train, _ = ds.tensors(task_id, "train")
        x_val, _ = ds.tensors(task_id, "val")
        assert len(x_val) == round(n * fraction)
        assert len(x_train) + len(x_val) == n
        tags_train, tags_val = set(x_train[:, 0, 0, 0].tolist()), set(x_val[:, 0, 0, 0].tolist())
        assert not tags_train & tags_val
    # Same split in a fresh dataset, whatever the global RNG does in between.
    torch.manual_seed(5)
    again = SplitDataset(TinySource(n_train_per_class=50), {1: [0, 1], 2: [2]}, validation_percentage=fraction)
    assert torch.equal(again.tensors(1, "val")[0], ds.tensors(1, "val")[0])


def test_validation_percentage_out_of_range_is_rejected():
    with pytest.raises(ConfigError, match=r"validation_percentage must be in \[0, 1\), got 1.0"):
        SplitDigits(FIVE_PAIRS, validation_percentage=1.0)


# -- permutation ----------------------------------------------------------------------


def test_each_task_applies_its_own_fixed_seeded_permutation():
    source = TinySource()
    ds = PermutedDataset(source, num_tasks=3, validation_percentage=0.0, permutation_seed=4)
    assert ds.task_ids == [1, 2, 3] and ds.num_classes == {1: 6, 2: 6, 3: 6}
    data = source.load()
    perms = []
    for t in ds.task_ids:
        x, y = ds.tensors(t, "test")
        assert torch.equal(y, data.test_y)
        perm = ds.permutation(t)
        assert sorted(perm.tolist()) == list(range(12))
        # The task's images are the source's with pixel i taken from position perm[i].
        assert torch.equal(x.flatten(2), data.test_x.flatten(2)[:, :, perm])
        perms.append(perm)
    assert not torch.equal(perms[0], perms[1]) and not torch.equal(perms[1], perms[2])
    # Fixed by the seed; a different seed gives different permutations.
    again = PermutedDataset(TinySource(), num_tasks=3, permutation_seed=4)
    assert all(torch.equal(again.permutation(t), perms[t - 1]) for t in (1, 2, 3))
    other = PermutedDataset(TinySource(), num_tasks=3, permutation_seed=5)
    assert not torch.equal(other.permutation(2), perms[1])


def test_identity_first_task_leaves_task_one_unpermuted():
    source = TinySource()
    ds = PermutedDataset(source, num_tasks=2, identity_first_task=True)
    assert ds.permutation(1) is None
    assert torch.equal(ds.tensors(1, "test")[0], source.load().test_x)
    assert not torch.equal(ds.tensors(2, "test")[0], source.load().test_x)


def test_permuted_digits_shapes():
    ds = PermutedDigits(num_tasks=2, validation_percentage=0.1)
    x, y = ds.tensors(2, "train")
    assert x.shape[1:] == (1, 8, 8) and set(y.tolist()) == set(range(10))
    with pytest.raises(ConfigError, match="num_tasks must be an integer >= 1"):
        PermutedDigits(num_tasks=0)


# -- the MTL view -------------------------------------------------------------------


def test_mtl_dataset_from_cl_on_the_embedded_digits():
    ds = MTLDatasetFromCL(SplitDigits(FIVE_PAIRS, validation_percentage=0.1), batch_size=32)
    assert isinstance(ds, MTLDataset)
    assert ds.batch_size == 32 and ds.sampling_strategy == "mixed"
    assert ds.task_ids == [1, 2, 3, 4, 5]
    assert ds.num_classes == {t: 2 for t in range(1, 6)}
    assert ds.input_shape == (1, 8, 8)
    ds.setup()
    mixed = ds.mixed([3, 1], "val")
    assert isinstance(mixed, MixedTensors)
    x3, y3 = ds.tensors(3, "val")
    x1, y1 = ds.tensors(1, "val")
    assert torch.equal(mixed.x, torch.cat([x3, x1]))
    assert torch.equal(mixed.y, torch.cat([y3, y1]))
    assert mixed.task_id.tolist() == [3] * len(y3) + [1] * len(y1)
    assert mixed.task_id.dtype == torch.long


def test_mtl_dataset_rejects_other_sampling_strategies_and_bad_batch_sizes():
    with pytest.raises(ConfigError, match="unsupported sampling_strategy 'balanced'"):
        MTLDatasetFromCL(SplitDigits(FIVE_PAIRS), sampling_strategy="balanced")
    with pytest.raises(ConfigError, match="batch_size must be a positive integer"):
        MTLDatasetFromCL(SplitDigits(FIVE_PAIRS), batch_size=0)
    with pytest.raises(ConfigError, match="cl_dataset must be a task dataset"):
        MTLDatasetFromCL({"class_split": FIVE_PAIRS})


def test_mixed_rejects_repeated_or_unknown_tasks():
    ds = MTLDatasetFromCL(SplitDigits({1: [0], 2: [1]}))
    with pytest.raises(MtlcliError, match="more than once"):
        ds.mixed([1, 1], "train")
    with pytest.raises(MtlcliError, match=r"unknown task 7: this dataset has tasks \[1, 2\]"):
        ds.mixed([1, 7], "train")
