"""Batch scoring on Ray Data (`python -m inference.batch`): the same rows as the single-process CLI, from
folders, zips and Parquet files, on a real local Ray with two actors. Ray is optional: the CLI runs
without it and the batch command says how to install it."""
import contextlib
import io
import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from conftest import EXAMPLES, PROJECT_ROOT, jpeg_bytes, synthetic_image

pytest.importorskip("ray.data", reason="Ray is an optional extra (requirements-dev.txt installs it)")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from inference import __main__ as cli  # noqa: E402
from inference import batch  # noqa: E402

CONFIG = batch.BatchConfig(actors=2, batch_size=64, num_cpus=2)


@pytest.fixture(scope="module")
def local_ray():
    ray = batch.start_ray(CONFIG)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def mixed_inputs(tmp_path_factory) -> list[str]:
    """600 CIFAKE files (examples/replay), plus a folder and a zip of made pictures with broken ones."""
    root = tmp_path_factory.mktemp("batch")
    rng = np.random.default_rng(3)
    made = root / "made"
    made.mkdir()
    for i in range(40):
        (made / f"{i:03d}.jpg").write_bytes(jpeg_bytes(synthetic_image(i % 2, rng)))
    (made / "empty.png").write_bytes(b"")
    (made / "not_a_picture.jpg").write_text("hello")
    (made / "truncated.jpg").write_bytes(jpeg_bytes(synthetic_image(1, rng))[:200])
    archive = root / "made.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for i in range(30):
            zipped.writestr(f"inner/{i:03d}.jpg", jpeg_bytes(synthetic_image(i % 2, rng), quality=70))
        zipped.writestr("inner/broken.png", b"\x89PNG not really")
        zipped.writestr("notes.txt", "ignored: not a picture suffix")
    return [str(EXAMPLES / "replay"), str(made), str(archive), str(root / "missing.jpg")]


def cli_csv(paths: list[str], target) -> str:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        cli.main([*paths, "--json", "--csv", str(target)])
    return target.read_text()


def test_batch_rows_equal_the_cli_on_hundreds_of_pictures(local_ray, mixed_inputs, tmp_path):
    pictures, errors = batch.run(mixed_inputs, tmp_path / "ray.csv", CONFIG, progress=False)
    expected = cli_csv(mixed_inputs, tmp_path / "cli.csv")
    assert pictures == 600 + 43 + 31 + 1 and errors == 3 + 1 + 1
    assert (tmp_path / "ray.csv").read_text() == expected  # same files, order, verdicts, numbers, messages


def test_a_zip_bomb_entry_is_an_error_row_and_the_rest_is_scored(local_ray, tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("a.jpg", (EXAMPLES / "fake_169_6.jpg").read_bytes())
        zipped.writestr("b.png", b"\0" * (60 << 20))  # 60 MB of zeros, packed to ~60 kB
    batch.run([str(archive)], tmp_path / "out.parquet", CONFIG, progress=False)
    rows = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert [r["file"] for r in rows] == [f"{archive}:a.jpg", f"{archive}:b.png"]
    assert rows[0]["label"] and rows[0]["error"] is None
    assert rows[1]["label"] is None and "zip bomb" in rows[1]["error"]


def test_parquet_output_has_the_cli_columns_and_values(local_ray, mixed_inputs, tmp_path):
    batch.run(mixed_inputs[1:3], tmp_path / "out.parquet", CONFIG, progress=False)
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.schema.names == list(batch.RESULT_COLUMNS)
    expected = [json.loads(line) for line in _cli_json(mixed_inputs[1:3])]
    assert table.to_pylist() == expected


def _cli_json(paths: list[str]) -> list[str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        cli.main([*paths, "--json"])
    return out.getvalue().splitlines()


def test_parquet_of_image_bytes_scores_like_the_files(local_ray, tmp_path):
    files = sorted((EXAMPLES / "replay" / "val").rglob("*.jpg"))[:150]
    images = [f.read_bytes() for f in files] + [b"", b"junk"]
    names = [str(f) for f in files] + ["empty", "junk"]
    named = tmp_path / "named.parquet"
    pq.write_table(pa.table({"path": names, "image": images}), named, row_group_size=40)  # 4 row groups
    hf_style = tmp_path / "hf.parquet"  # the Hugging Face Image feature: a struct with bytes, no names
    pq.write_table(pa.table({"img": [{"bytes": b, "path": None} for b in images[:5]], "label": [0] * 5}),
                   hf_style)
    batch.run([str(named), str(hf_style)], tmp_path / "out.csv", CONFIG, progress=False)
    rows = (tmp_path / "out.csv").read_text().splitlines()
    expected = cli_csv([str(f) for f in files], tmp_path / "cli.csv").splitlines()
    assert rows[: len(expected)] == expected  # header + the 150 files, named by the column
    assert rows[len(expected)].startswith("empty,,,,,,") and "is empty (0 bytes)" in rows[len(expected)]
    assert rows[len(expected) + 1].startswith("junk,,,,,,") and "not a picture" in rows[len(expected) + 1]
    unnamed = rows[len(expected) + 2:]
    assert [r.split(",")[0] for r in unnamed] == [f"{hf_style}#{i}" for i in range(5)]
    assert [r.split(",")[1:] for r in unnamed] == [r.split(",")[1:] for r in expected[1:6]]


def test_parquet_without_image_column_is_refused_with_the_columns_named(tmp_path, capsys):
    table_path = tmp_path / "labels.parquet"
    pq.write_table(pa.table({"file": ["a.jpg"], "label": [1]}), table_path)
    code = batch.main([str(table_path), "--output", str(tmp_path / "out.csv"), "--num-cpus", "2"])
    err = capsys.readouterr().err
    assert code == 2
    assert "no column of image bytes" in err and "['file', 'label']" in err
    assert not (tmp_path / "out.csv").exists()


BLOCK_RAY = (
    "import sys\n"
    "class _Block:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] == 'ray':\n"
    "            raise ImportError('Ray is blocked in this test')\n"
    "sys.meta_path.insert(0, _Block())\n"
)


def test_cli_runs_without_ray_and_batch_names_the_install_command(tmp_path):
    code = BLOCK_RAY + ("import sys\nfrom inference.__main__ import main\n"
                        "assert main([sys.argv[1], '--json']) == 0\nassert 'ray' not in sys.modules\n"
                        "from inference.batch import main as batch_main\n"
                        "sys.exit(batch_main([sys.argv[1], '--output', sys.argv[2]]))\n")
    result = subprocess.run([sys.executable, "-c", code, str(EXAMPLES / "fake_169_6.jpg"), str(tmp_path / "o.csv")],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert '"FAKE"' in result.stdout and 'pip install "ray[data]' in result.stderr


def test_a_batch_run_prints_only_its_own_summary(tmp_path):
    """No Ray chatter: neither the core worker's line about actor arguments in the object store, nor the
    token-authentication warning, nor deprecation warnings; only the summary line."""
    env = {k: v for k, v in __import__("os").environ.items() if k != "RAY_AUTH_MODE"}
    result = subprocess.run([sys.executable, "-m", "inference.batch", str(EXAMPLES / "replay" / "val"), "--quiet",
                             "--num-cpus", "2", "--output", str(tmp_path / "out.parquet")], cwd=PROJECT_ROOT,
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [f"300 pictures scored, 0 errors -> {tmp_path / 'out.parquet'}"]
