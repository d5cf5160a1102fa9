"""The training log ``log.csv``: one row per ``log_every`` steps, kept consistent across resumes."""

from __future__ import annotations

import contextlib
import csv
import io
import os
from collections.abc import Mapping
from pathlib import Path

from cdae.files import atomic_path, write_error

COLUMNS = ("step", "loss", "mse", "kl_u", "kl_z", "mech", "gamma", "grad_decoder", "grad_latent",
           "lr", "images_per_s", "elapsed_s")


class RunLog:
    """Appends rows to a CSV file, one ``write`` call each, so a crash loses at most the row being
    written; a row that fails half-way (a full disk) is cut off again, never left half-written.

    Rows for steps after ``keep_up_to`` are dropped (atomically) when the file is opened: on a
    resume those steps are trained again and would otherwise appear twice; a fresh run
    (``keep_up_to=0``) starts an empty file.

    Args:
        path: the CSV file.
        keep_up_to: the step training continues from.
    """

    def __init__(self, path: str | os.PathLike, keep_up_to: int = 0) -> None:
        self.path = Path(path)
        kept = self._rows_up_to(keep_up_to)
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(kept)
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND)

    def _rows_up_to(self, step: int) -> list[dict[str, str]]:
        if not self.path.is_file():
            return []
        with open(self.path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        return [{key: row.get(key, "") for key in COLUMNS}
                for row in rows if row.get("step", "").isdigit() and int(row["step"]) <= step]

    def write(self, row: Mapping[str, float]) -> None:
        """Append one row (missing columns are left empty)."""
        text = io.StringIO(newline="")
        csv.DictWriter(text, fieldnames=COLUMNS).writerow(
            {key: _fmt(row.get(key)) for key in COLUMNS})
        data, fd = text.getvalue().encode(), self._fd
        if fd is None:
            raise ValueError(f"{self.path} is closed")
        start = os.lseek(fd, 0, os.SEEK_END)
        try:
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)  # no half row for the next reader
            raise write_error(self.path, exc) from exc

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    return f"{value:.6g}"
