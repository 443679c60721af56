"""Loading CIFAKE from zips and folders, the layout error, duplicates and leakage, the split."""
import zipfile

import numpy as np
import pytest

from evaluation.labelled import DatasetLayoutError, load_labelled
from training.data import load_cifake, read_split, stratified_split


@pytest.mark.parametrize("source", ["folder", "zip"])
def test_load_cifake_from_folder_and_zip_gives_the_same_arrays(source, tiny_cifake, tiny_cifake_zip):
    data = load_cifake(tiny_cifake if source == "folder" else tiny_cifake_zip, val_fraction=0.25, seed=0)
    assert data.train.images.dtype == np.uint8 and data.train.images.shape[1:] == (32, 32, 3)
    assert set(np.unique(data.train.labels)) == {0, 1}
    assert len(data.test) == 40
    reference = load_cifake(tiny_cifake, val_fraction=0.25, seed=0)
    np.testing.assert_array_equal(data.test.images, reference.test.images)


def test_duplicates_and_test_leakage_are_removed_from_train(tiny_cifake):
    data = load_cifake(tiny_cifake, val_fraction=0.25, seed=0)
    report = data.dedup_report
    assert report["train_duplicates_dropped"] == 1  # dup.jpg
    assert report["train_dropped_as_in_test"] == 1  # leak.jpg (a copy of test/FAKE/0000.jpg)
    assert report["test_leaked_from_train"] == 1 and data.leaked_test_mask.sum() == 1
    all_train = np.concatenate([data.train.digests, data.val.digests])
    assert len(set(all_train)) == len(all_train)
    assert not set(all_train) & set(data.test.digests)


def test_validation_split_is_stratified_and_fixed_by_seed():
    labels = np.array([0] * 80 + [1] * 20)
    train_a, val_a = stratified_split(labels, 0.25, seed=3)
    train_b, val_b = stratified_split(labels, 0.25, seed=3)
    np.testing.assert_array_equal(val_a, val_b)
    assert labels[val_a].sum() == 5 and len(val_a) == 25
    assert not set(train_a) & set(val_a)


def test_wrong_layout_names_what_was_expected_and_found(tmp_path):
    archive = tmp_path / "wrong.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("images/cats/1.jpg", b"x")
        z.writestr("images/dogs/2.jpg", b"x")
    with pytest.raises(DatasetLayoutError, match=r"train/REAL.*train/FAKE.*found 0 matching images.*images/cats"):
        read_split(archive, "train")


def test_layout_with_one_class_missing_is_refused(tmp_path, tiny_cifake):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_cifake, copy)
    shutil.rmtree(copy / "test" / "FAKE")
    with pytest.raises(DatasetLayoutError, match="REAL"):
        read_split(copy, "test")


def test_second_load_uses_the_cache(tiny_cifake, tmp_path):
    first, _ = read_split(tiny_cifake, "train")
    cached = list((tmp_path / "cache").glob("train-*.npz"))
    assert len(cached) == 1
    second, _ = read_split(tiny_cifake, "train")
    np.testing.assert_array_equal(first.images, second.images)


def test_load_labelled_accepts_a_flat_real_fake_zip(tmp_path, tiny_cifake):
    archive = tmp_path / "labelled.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for cls in ("REAL", "FAKE"):
            for path in sorted((tiny_cifake / "test" / cls).glob("*.jpg"))[:3]:
                z.write(path, f"{cls}/{path.name}")
    split = load_labelled(archive)
    assert len(split) == 6 and split.labels.sum() == 3
