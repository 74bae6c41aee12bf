"""Set formats: what DVC holds for a set, decoded once to the arrays every stage reads.

Every format gives the same arrays as a safetensors set file: `inputs`, `targets` and, where the data
carries record ids, `ids`. The path picks the format:

- `*.parquet`, `*.csv`: a table, one example a row (pyarrow). The request's `forget.table` names the
  label column, the feature columns (default: every other numeric column, in table order) and the id
  column; Great Expectations checks the columns before anything is converted.
- a directory: an image folder (Pillow; PNG or JPEG, 8 bits a channel). With `degraded/` and `clean/`
  subfolders, restoration pairs matched by file name; otherwise one subfolder per class, named by its
  class index (`0/`, `8/`; see `decode_image_folder`).
- anything else: a safetensors set file, as ever.

Refusals name the file (and the column), never a value: the data is someone's personal data.
"""

from __future__ import annotations

import io
from pathlib import PurePosixPath

import numpy as np
from pydantic import Field

from pipelines.adapters import validation
from pipelines.adapters.datastore import FetchedDirectory, FetchedFile
from pipelines.kinds.base import Strict
from unlearning.data.pairs import CorruptDataError, decode_arrays

TABLE_SUFFIXES = (".parquet", ".csv")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
RESTORATION_FOLDERS = ("degraded", "clean")


class DataFormatError(CorruptDataError):
    """A table or image folder that cannot become a set: an image with no partner, an undecodable image,
    images of several sizes, a column that is not numeric. The message names the file and the problem."""


class TableColumns(Strict):
    """How to read the tables a request names (`forget.table`); applies to every table it reads."""

    label: str = Field(description="column of class labels (integers)")
    features: list[str] | None = Field(None, min_length=1, description="feature columns, in the model's input "
                                       "order; default: every numeric column but the label and id, in table order")
    id: str | None = Field(None, description="column of record ids (unique integers), for `forget.records`")


def is_table(fetched: FetchedFile) -> bool:
    return not isinstance(fetched, FetchedDirectory) and fetched.path.lower().endswith(TABLE_SUFFIXES)


def decode_set(fetched: FetchedFile, table: TableColumns | None = None) -> dict[str, np.ndarray]:
    """The arrays of one fetched set, in the format its path says (module docstring)."""
    if isinstance(fetched, FetchedDirectory):
        return decode_image_folder(fetched.path, fetched.files)
    if is_table(fetched):
        if table is None:
            raise DataFormatError(f"{fetched.path}: a table; name its columns in forget.table (label, and "
                                  "features and id if needed)")
        return decode_table(fetched.path, fetched.content, table)
    return decode_arrays(fetched.content, fetched.path)[0]


def read_table(path: str, raw: bytes):
    """The table as a pandas DataFrame (read by pyarrow); missing cells and `NaN` become NaN/None."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    try:
        if path.lower().endswith(".parquet"):
            table = pq.read_table(pa.BufferReader(raw))
        else:
            table = pa_csv.read_csv(pa.BufferReader(raw))
    except (pa.ArrowException, OSError) as error:
        kind = "Parquet" if path.lower().endswith(".parquet") else "CSV"
        raise DataFormatError(f"{path}: not a readable {kind} table ({type(error).__name__})") from None
    return table.to_pandas()


def decode_table(path: str, raw: bytes, columns: TableColumns) -> dict[str, np.ndarray]:
    """Features (float32), labels (int64) and ids (int64) of a table, after the GX table suite passed."""
    import pandas as pd

    frame = read_table(path, raw)
    named = [columns.label] + ([columns.id] if columns.id else [])
    features = columns.features
    if features is None:
        features = [c for c in frame.columns if c not in named and pd.api.types.is_numeric_dtype(frame[c])]
        if not features:
            raise DataFormatError(f"{path}: no numeric feature columns besides {named}")
    validation.validate_table(frame, [*features, *named], columns.id, path)
    arrays = {"inputs": _numeric(frame, features, path).astype(np.float32),
              "targets": _integers(frame, columns.label, path, "forget.table.label")}
    if columns.id:
        arrays["ids"] = _integers(frame, columns.id, path, "forget.table.id")
    return arrays


def _numeric(frame, columns: list[str], path: str) -> np.ndarray:
    import pandas as pd

    wrong = [c for c in columns if not pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c])]
    if wrong:
        raise DataFormatError(f"{path}: column(s) {wrong} are not numeric")
    values = frame[columns].to_numpy(dtype=np.float64)
    nonfinite = [(c, int(n)) for c, n in zip(columns, (~np.isfinite(values)).sum(axis=0)) if n]
    if nonfinite:  # NaN is GX's (null); infinity is not null
        raise DataFormatError(f"{path}: non-finite values in " + ", ".join(f"column {c!r} ({n})" for c, n in nonfinite))
    return values


def _integers(frame, column: str, path: str, field: str) -> np.ndarray:
    values = _numeric(frame, [column], path)[:, 0]
    fractional = int((values != np.round(values)).sum())
    if fractional:
        raise DataFormatError(f"{path}: {field} column {column!r} holds {fractional} non-integer value(s)")
    return values.astype(np.int64)


def decode_image_folder(path: str, files: dict[str, bytes]) -> dict[str, np.ndarray]:
    """Restoration pairs (`degraded/NAME` → `clean/NAME`) or classes (`K/...` is class K) as uint8 N×C×H×W.

    Classes are the folders' integer names, not torchvision's index in the sorted names: a forget set often
    holds one class (`8/` alone), which sorted-name indexing would call class 0. Images are uint8, as the
    restoration set files are: a forget example is then the same bytes whichever format holds it (the
    validation's overlap check compares bytes), and PairSet scales them to [0, 1].
    """
    top = {PurePosixPath(name).parts[0] for name in files}
    if set(RESTORATION_FOLDERS) <= top:
        return _restoration_pairs(path, files, top)
    loose = sorted(name for name in files if len(PurePosixPath(name).parts) == 1)
    if loose:
        raise DataFormatError(f"{path}: {loose[0]} is not in a class folder (an image folder holds `degraded/` and "
                              "`clean/`, or one folder per class named by its index)")
    not_classes = sorted(folder for folder in top if not folder.isdigit())
    if not_classes:
        raise DataFormatError(f"{path}: folder {not_classes[0]!r} is not a class index (class folders are named "
                              "0, 1, ...; restoration pairs need `degraded/` and `clean/`)")
    names = sorted(files)
    images = _decode_images(path, [(name, files[name]) for name in names])
    labels = np.array([int(PurePosixPath(name).parts[0]) for name in names], dtype=np.int64)
    return {"inputs": images, "targets": labels}


def _restoration_pairs(path: str, files: dict[str, bytes], top: set[str]) -> dict[str, np.ndarray]:
    others = sorted(top - set(RESTORATION_FOLDERS))
    if others:
        raise DataFormatError(f"{path}: {others[0]!r} is neither `degraded/` nor `clean/` in a folder of restoration pairs")
    by_folder = {folder: {name.split("/", 1)[1]: content for name, content in files.items()
                          if name.startswith(folder + "/")} for folder in RESTORATION_FOLDERS}
    degraded, clean = by_folder["degraded"], by_folder["clean"]
    for here, there in (("degraded", "clean"), ("clean", "degraded")):
        alone = sorted(set(by_folder[here]) - set(by_folder[there]))
        if alone:
            raise DataFormatError(f"{path}: {here}/{alone[0]} has no partner {there}/{alone[0]}"
                                  + (f" ({len(alone)} unpartnered in {here}/)" if len(alone) > 1 else ""))
    names = sorted(degraded)
    images = _decode_images(path, [(f"degraded/{n}", degraded[n]) for n in names] + [(f"clean/{n}", clean[n]) for n in names])
    return {"inputs": images[: len(names)], "targets": images[len(names):]}


def _decode_images(path: str, named: list[tuple[str, bytes]]) -> np.ndarray:
    """Each image as uint8 C×H×W (1 channel for grayscale, else 3), stacked; one size for all."""
    from PIL import Image

    arrays, first_of_shape = [], {}
    for name, raw in named:
        if not name.lower().endswith(IMAGE_SUFFIXES):
            raise DataFormatError(f"{path}/{name}: not a PNG or JPEG file (image folders hold .png, .jpg, .jpeg)")
        try:
            with Image.open(io.BytesIO(raw)) as image:
                image.load()
                mode = image.mode
                if mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "YCbCr"):
                    raise DataFormatError(f"{path}/{name}: {mode} image; 8 bits a channel expected")
                grey = mode in ("1", "L", "LA")
                pixels = np.asarray(image.convert("L" if grey else "RGB"), dtype=np.uint8)
        except DataFormatError:
            raise
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            raise DataFormatError(f"{path}/{name}: not a decodable image ({type(error).__name__})") from None
        array = pixels[None] if grey else pixels.transpose(2, 0, 1)
        first_of_shape.setdefault(array.shape, name)
        arrays.append(array)
    if len(first_of_shape) > 1:
        sizes = "; ".join(f"{name}: {'x'.join(map(str, shape))}" for shape, name in first_of_shape.items())
        raise DataFormatError(f"{path}: images of {len(first_of_shape)} sizes (channels x height x width), the model "
                              f"needs one: {sizes}")
    return np.stack(arrays)
