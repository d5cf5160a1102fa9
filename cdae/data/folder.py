"""A folder of your own images as causal data: image files, a labels CSV and a graph spec.

Layouts: ``root/<split>/labels.csv`` (one folder per split), or ``root/labels.csv`` with a
``split`` column, or ``root/labels.csv`` without one (read whole with ``split="all"``). The CSV
names each image in a ``file`` column; the graph comes from a :class:`CausalGraph`, a dict or a
JSON/YAML file. ``build_dataset("folder", split, root=...)`` turns it into a dataset.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from cdae.graph import CausalGraph

GRAPH_FILES: tuple[str, ...] = ("graph.json", "graph.yaml", "graph.yml")


def read_image_folder(
    root: str | os.PathLike,
    split: str,
    graph: CausalGraph | Mapping[str, Any] | str | os.PathLike | None = None,
    labels_file: str = "labels.csv",
    limit: int | None = None,
) -> tuple[np.ndarray, pd.DataFrame, CausalGraph]:
    """Images uint8 (N, H, W[, C]), labels and graph of a folder of your own.

    Layouts: ``root/<split>/labels.csv`` (one folder per split), or ``root/labels.csv`` with a
    ``split`` column, or ``root/labels.csv`` without one, read whole with ``split="all"``. The
    CSV has a ``file`` column (image paths relative to the CSV's folder; PNG, JPEG, ...) and a
    column per variable. ``graph``: a :class:`CausalGraph`, a dict (``CausalGraph.from_dict``), a
    path to a JSON/YAML file, or ``None`` to read ``graph.json``/``graph.yaml`` from the split
    folder or ``root``. All images must have one size and mode (grey, RGB or RGBA).
    """
    folder, table = _folder_split(Path(root), split, labels_file)
    if "file" not in table.columns:
        raise ValueError(f"{folder / labels_file} needs a 'file' column naming each image; "
                         f"found columns {list(table.columns)}")
    if limit is not None:
        table = table.iloc[:limit]
    causal_graph = load_graph_spec(graph, [folder, Path(root)])
    images = _read_images(folder, table["file"].astype(str).tolist())
    labels = table.drop(columns=[c for c in ("file", "split") if c in table.columns])
    _warn_unmodelled(labels, causal_graph, folder / labels_file)
    return images, labels.reset_index(drop=True), causal_graph


def _warn_unmodelled(labels: pd.DataFrame, graph: CausalGraph, csv: Path) -> None:
    """Warn about label columns the graph leaves out: a forgotten variable trains silently
    as part of the image's style, and every counterfactual then keeps it fixed."""
    extra = [name for name in labels.columns if name not in graph.nodes]
    if extra:
        warnings.warn(
            f"{csv} has columns {extra} that are not nodes of the graph {graph.nodes}: the model "
            "will not know them (a counterfactual keeps them as part of the image's style). If "
            "they are causal variables, add them to the graph's nodes and edges; if not, drop "
            "them from the CSV to silence this warning", stacklevel=3)


def _folder_split(root: Path, split: str, labels_file: str) -> tuple[Path, pd.DataFrame]:
    if (root / split / labels_file).exists():
        return root / split, pd.read_csv(root / split / labels_file)
    if not (root / labels_file).exists():
        raise FileNotFoundError(f"no {labels_file} in {root / split} or {root}: put one CSV per "
                                "split folder, or one CSV (with a 'split' column) in the root")
    table = pd.read_csv(root / labels_file)
    if "split" in table.columns:
        chosen = table[table["split"].astype(str) == split]
        if chosen.empty:
            raise ValueError(f"{root / labels_file} has no rows with split == {split!r}; its "
                             f"splits are {sorted(table['split'].astype(str).unique())}")
        return root, chosen
    if split != "all":
        raise ValueError(f"{root / labels_file} has no 'split' column and there is no folder "
                         f"{root / split}; read the whole folder with split='all'")
    return root, table


def load_graph_spec(
    spec: CausalGraph | Mapping[str, Any] | str | os.PathLike | None, search: Sequence[Path]
) -> CausalGraph:
    """A :class:`CausalGraph` from a graph, a dict, a JSON/YAML file, or the first
    :data:`GRAPH_FILES` found in the ``search`` folders."""
    if isinstance(spec, CausalGraph):
        return spec
    if isinstance(spec, Mapping):
        return CausalGraph.from_dict(spec)
    if spec is None:
        found = [folder / name for folder in search for name in GRAPH_FILES
                 if (folder / name).exists()]
        if not found:
            raise FileNotFoundError(
                f"no graph given and none of {list(GRAPH_FILES)} in {[str(s) for s in search]}: "
                "pass graph=CausalGraph(...) or a dict, or write graph.json like "
                '{"nodes": ["a", "b"], "edges": [["a", "b"]], "categorical": {}}'
            )
        spec = found[0]
    path = Path(spec)
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml

        return CausalGraph.from_dict(yaml.safe_load(text))
    return CausalGraph.from_dict(json.loads(text))


def _read_images(folder: Path, files: list[str]) -> np.ndarray:
    """uint8 (N, H, W) or (N, H, W, C) from image files that must share size and mode."""
    missing = [name for name in files if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} image files named in the labels are missing from {folder}: "
            f"{missing[:5]}{' ...' if len(missing) > 5 else ''}"
        )
    arrays: list[np.ndarray] = []
    for name in files:
        try:
            with Image.open(folder / name) as image:
                array = np.asarray(_standard_mode(image))
        except OSError as exc:
            raise ValueError(f"{folder / name} is not a readable image ({exc})") from exc
        if arrays and array.shape != arrays[0].shape:
            raise ValueError(
                f"{name} is {array.shape} (height, width[, channels]) but {files[0]} is "
                f"{arrays[0].shape}; all images must share one size and mode: resize/convert "
                "them first"
            )
        arrays.append(array)
    if not arrays:
        raise ValueError(f"no images listed for {folder}")
    return np.stack(arrays)


def _standard_mode(image: Image.Image) -> Image.Image:
    """Grey ('L'), 'RGB' or 'RGBA': palette and grey-alpha images keep transparency as RGBA."""
    if image.mode in ("L", "RGB", "RGBA"):
        return image
    if image.mode == "1":
        return image.convert("L")
    has_alpha = image.mode in ("LA", "PA") or "transparency" in image.info
    return image.convert("RGBA" if has_alpha else "RGB")
