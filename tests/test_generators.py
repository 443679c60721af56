"""Extra generator sources for training (issue 21): read by source, folded by repository, held out whole."""
import json

import numpy as np
import pytest
from PIL import Image

from conftest import synthetic_image

# (folder, repository): two folders share one repository, as progan-chainer and sndcgan-chainer do
TINY_SOURCES = [("gan-a", "owner/gans"), ("gan-b", "owner/gans"), ("ddpm-x", "x/ddpm"), ("flow-y", "y/flow"),
                ("pcnn-z", "z/pcnn")]


def write_tiny_generators(root, per_folder: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows = ["file,generator,model_type,trained_on,repo,path,commit,licence,grid_layout,tile_index,sha1,note"]
    for folder, repo in TINY_SOURCES:
        (root / folder).mkdir(parents=True)
        for i in range(per_folder):
            name = f"{folder}/{folder}_{i:04d}.png"
            Image.fromarray(synthetic_image(1, rng)).save(root / name)
            rows.append(f"{name},{folder},gan,CIFAR-10,{repo},x.png,abc,MIT,grid,{i},sha,")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def tiny_generators(tmp_path_factory):
    return write_tiny_generators(tmp_path_factory.mktemp("generators") / "cifar-generators-dev")


def test_generators_are_read_with_their_repository(tiny_generators):
    from training.generators import load_generators

    pictures = load_generators(tiny_generators)
    assert pictures.images.shape == (30, 32, 32, 3) and pictures.images.dtype == np.uint8
    assert set(pictures.sources) == {"owner/gans", "x/ddpm", "y/flow", "z/pcnn"}
    assert (pictures.sources[pictures.generators == "gan-b"] == "owner/gans").all()


def test_folds_keep_each_repository_whole_and_cover_every_source(tiny_generators):
    from training.generators import load_generators, source_folds

    pictures = load_generators(tiny_generators)
    folds = source_folds(pictures, 3)
    assert folds == source_folds(pictures, 3)  # deterministic
    flat = [s for fold in folds for s in fold]
    assert sorted(flat) == sorted(set(pictures.sources)) and len(flat) == len(set(flat))
    assert ("owner/gans",) in folds  # the two-folder repository (12 pictures) is one source, alone in its fold
    held = pictures.of_sources(folds[0])
    assert set(held.generators) == {"gan-a", "gan-b"} and len(pictures.without_sources(folds[0])) == 18


def test_too_many_folds_is_refused_with_the_source_count(tiny_generators):
    from training.generators import load_generators, source_folds

    with pytest.raises(ValueError, match="number of sources \\(4\\)"):
        source_folds(load_generators(tiny_generators), 5)


def test_missing_manifest_names_the_folder(tmp_path):
    from training.generators import load_generators

    with pytest.raises(FileNotFoundError, match="No manifest.csv in"):
        load_generators(tmp_path)


def test_jpeg_round_trip_changes_pixels_a_little_and_keeps_the_shape():
    from training.generators import jpeg_round_trip

    images = np.stack([synthetic_image(1, np.random.default_rng(i)) for i in range(3)])
    out = jpeg_round_trip(images, 75)
    assert out.shape == images.shape and out.dtype == np.uint8
    assert 0 < np.abs(out.astype(int) - images).mean() < 12


def test_an_epoch_shows_replayed_cifake_and_each_generator_picture_repeatedly():
    from training.train import TrainConfig, _epoch_index

    config = TrainConfig(cifake_per_epoch=50, generator_repeats=4)
    first = _epoch_index(200, 10, config, np.random.default_rng(1))
    second = _epoch_index(200, 10, config, np.random.default_rng(2))
    assert len(first) == 50 + 40 and (first[:50] < 200).all() and len(set(first[:50])) == 50
    assert not np.array_equal(first[:50], second[:50])  # CIFAKE replay drawn afresh per epoch
    assert np.bincount(first[50:] - 200).tolist() == [4] * 10
    assert len(_epoch_index(200, 0, TrainConfig(), np.random.default_rng(0))) == 200  # default: everything


def test_a_run_with_a_held_out_fold_never_trains_on_it(tiny_cifake, tiny_generators, tmp_path, monkeypatch):
    import training.data as data
    from training.train import TrainConfig, train

    monkeypatch.setattr(data, "CACHE_DIR", tmp_path / "cache")
    config = TrainConfig(epochs=1, batch_size=32, variants=1, data=str(tiny_cifake), run_dir=str(tmp_path / "run"),
                         val_fraction=0.25, generators=str(tiny_generators), holdout_fold=0, n_folds=3,
                         generator_repeats=2, select="last")
    run_dir = train(config)
    record = json.loads((run_dir / "generators.json").read_text())
    assert record["heldout_sources"] == ["owner/gans"] and record["heldout_pictures"] == 12
    assert "owner/gans" not in record["sources"] and record["pictures"] == 18
    history = json.loads((run_dir / "history.json").read_text())
    assert 0.0 <= history[-1]["heldout_detected"] <= 1.0  # monitored, never chosen on
