"""What a batch run scores: folders, zips, single files and Parquet files -> work items in the CLI's order,
the number of result rows they will give, and which Parquet columns hold the pictures and their names."""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Iterator

from inference.archive import IMAGE_SUFFIXES, ZipLimitError, ZipLimits, picture_entries

# Zips are listed as the CLI lists them; each entry is unpacked under the CLI's per-entry caps (size, ratio),
# an entry over them becomes an error row. No cap on entries or total size: batch jobs are large by design.
BATCH_ZIP_LIMITS = ZipLimits(max_entries=10**9, max_total_bytes=1 << 62)
NAME_COLUMNS = ("file", "path", "name", "filename")  # a Parquet column naming each picture, if present
IMAGE_COLUMNS = ("image", "bytes", "content", "data")  # preferred image columns, else the first binary one


def is_parquet(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in (".parquet", ".pq")


def list_work(paths: list[str]) -> Iterator[dict]:
    """One work item per picture (folders, zips, single files) or per Parquet row group, in the CLI's order.

    Items: {"kind": "file"|"zip"|"parquet", "file": display name, "path": str, "member": zip member or "",
    "row_group": int (Parquet) or -1}.
    """
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
                yield _item("file", str(file), str(file))
        elif path.is_file() and path.suffix.lower() == ".zip" and zipfile.is_zipfile(path):
            try:
                with zipfile.ZipFile(path) as archive:
                    entries = picture_entries(archive, BATCH_ZIP_LIMITS, str(path))
            except zipfile.BadZipFile as err:
                raise ZipLimitError(f"{path} is damaged ({err}).") from None
            for info in entries:
                yield _item("zip", f"{path}:{info.filename}", str(path), member=info.filename)
        elif is_parquet(path):
            import pyarrow.parquet as pq

            for group in range(pq.ParquetFile(path).num_row_groups):
                yield _item("parquet", str(path), str(path), row_group=group)
        else:
            yield _item("file", str(path), str(path))  # missing or unreadable: an error row, as in the CLI


def _item(kind: str, file: str, path: str, member: str = "", row_group: int = -1) -> dict:
    return {"kind": kind, "file": file, "path": path, "member": member, "row_group": row_group}


def count_pictures(paths: list[str]) -> int:
    """How many result rows `paths` will give (Parquet row counts come from the file footers)."""
    total = 0
    for item in list_work(paths):
        if item["kind"] == "parquet":
            import pyarrow.parquet as pq

            total += pq.ParquetFile(item["path"]).metadata.row_group(item["row_group"]).num_rows
        else:
            total += 1
    return total


def parquet_columns(path: str, image_column: str | None, name_column: str | None) -> tuple[str, str | None]:
    """(image column, name column or None) of a Parquet file; ValueError naming the columns if none fits."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    names = schema.names
    if image_column is None:
        binary = [f.name for f in schema if _is_image_type(f.type)]
        image_column = next((c for c in IMAGE_COLUMNS if c in binary), binary[0] if binary else None)
        if image_column is None:
            raise ValueError(f"{path} has no column of image bytes (columns: {names}); name one with --image-column.")
    elif image_column not in names:
        raise ValueError(f"{path} has no column {image_column!r}; its columns are {names}.")
    if name_column is None:
        name_column = next((c for c in NAME_COLUMNS if c in names and pa.types.is_string(schema.field(c).type)
                            or c in names and pa.types.is_large_string(schema.field(c).type)), None)
    elif name_column not in names:
        raise ValueError(f"{path} has no column {name_column!r}; its columns are {names}.")
    return image_column, name_column


def _is_image_type(arrow_type) -> bool:
    """Binary columns, or structs with a `bytes` field (the Hugging Face `Image` feature)."""
    import pyarrow as pa

    if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
        return True
    return pa.types.is_struct(arrow_type) and arrow_type.get_field_index("bytes") >= 0
