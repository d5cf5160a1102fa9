"""The generic folder-of-images dataset (cdae.data.folder) and its registry entry "folder"."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from cdae.data.datasets import build_dataset
from cdae.data.folder import load_graph_spec, read_image_folder
from cdae.graph import CausalGraph


def write_folder(folder: Path, n: int, mode: str = "RGB", split: str | None = None) -> pd.DataFrame:
    """n random PNG images + labels.csv (+ split column) in ``folder``."""
    rng = np.random.default_rng(n)
    folder.mkdir(parents=True, exist_ok=True)
    channels = {"L": (), "RGB": (3,), "RGBA": (4,)}[mode]
    rows = []
    for i in range(n):
        pixels = rng.integers(0, 256, size=(20, 24, *channels), dtype=np.uint8)
        Image.fromarray(pixels, mode=mode).save(folder / f"img_{i}.png")
        rows.append({"file": f"img_{i}.png", "size": rng.normal(), "colour": rng.normal(),
                     "kind": i % 3})
    table = pd.DataFrame(rows)
    if split is not None:
        table["split"] = ["train" if i % 2 == 0 else "test" for i in range(n)]
    table.to_csv(folder / "labels.csv", index=False)
    return table


GRAPH_SPEC = {"nodes": ["kind", "size", "colour"], "edges": [["size", "colour"]],
              "categorical": {"kind": 3}}


def test_folder_with_split_folders_and_graph_json(tmp_path):
    table = write_folder(tmp_path / "train", 6)
    write_folder(tmp_path / "test", 3)
    (tmp_path / "graph.json").write_text(json.dumps(GRAPH_SPEC))
    train = build_dataset("folder", "train", root=tmp_path)
    test = build_dataset("folder", "test", root=tmp_path, normalizer=train.normalizer)
    assert (len(train), len(test)) == (6, 3)
    assert train.image_shape == (3, 20, 24) and train.variables == ["kind", "size", "colour"]
    pixels = np.asarray(Image.open(tmp_path / "train" / "img_4.png"))
    np.testing.assert_array_equal(train.images_uint8[4].permute(1, 2, 0).numpy(), pixels)
    assert train[4][1][0].item() == table.loc[4, "kind"]
    assert "file" not in train.labels_natural.columns


def test_folder_with_split_column_yaml_graph_and_whole_folder(tmp_path):
    write_folder(tmp_path, 8, mode="L", split="yes")
    (tmp_path / "graph.yaml").write_text(yaml.safe_dump(GRAPH_SPEC))
    test = build_dataset("folder", "test", root=tmp_path, limit=None)
    assert len(test) == 4 and test.image_shape == (1, 20, 24)
    with pytest.raises(ValueError, match=r"no rows with split == 'val'; its splits are"):
        build_dataset("folder", "val", root=tmp_path)
    (tmp_path / "graph.yaml").unlink()
    graph = CausalGraph.from_dict(GRAPH_SPEC)
    images, labels, same = read_image_folder(tmp_path / ".", "train", graph=graph, limit=2)
    assert images.shape == (2, 20, 24) and same is graph and list(labels.index) == [0, 1]
    write_folder(tmp_path / "whole", 3, mode="RGBA")
    whole = build_dataset("folder", "all", root=tmp_path / "whole", graph=GRAPH_SPEC, channels=3)
    assert whole.image_shape == (3, 20, 24)
    with pytest.raises(ValueError, match="split='all'"):
        build_dataset("folder", "train", root=tmp_path / "whole", graph=GRAPH_SPEC)


def test_folder_faults_are_named(tmp_path):
    table = write_folder(tmp_path, 8)
    spec = tmp_path / "my_graph.json"
    spec.write_text(json.dumps(GRAPH_SPEC))
    with pytest.raises(FileNotFoundError, match="graph.json"):
        build_dataset("folder", "all", root=tmp_path)
    with pytest.raises(ValueError, match="needs root"):
        build_dataset("folder", "all", graph=spec)
    for i in range(7):
        (tmp_path / f"img_{i}.png").unlink()
    listed = r"7 image files .* \['img_0.png'.*'img_4.png'\] \.\.\."
    with pytest.raises(FileNotFoundError, match=listed):
        build_dataset("folder", "all", root=tmp_path, graph=spec)
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "img_0.png")
    table.iloc[[0, 7]].to_csv(tmp_path / "labels.csv", index=False)
    with pytest.raises(ValueError, match=r"img_7.png is \(20, 24, 3\).*img_0.png is \(20, 20, 3\)"):
        build_dataset("folder", "all", root=tmp_path, graph=spec)
    table.drop(columns=["file"]).to_csv(tmp_path / "labels.csv", index=False)
    with pytest.raises(ValueError, match="needs a 'file' column"):
        build_dataset("folder", "all", root=tmp_path, graph=spec)
    with pytest.raises(FileNotFoundError, match="no labels.csv"):
        build_dataset("folder", "all", root=tmp_path / "nowhere", graph=spec)


def test_graph_spec_from_graph_dict_file_or_search(tmp_path):
    graph = CausalGraph.from_dict(GRAPH_SPEC)
    assert load_graph_spec(graph, []) is graph
    assert load_graph_spec(GRAPH_SPEC, []).to_dict() == graph.to_dict()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "graph.yml").write_text(yaml.safe_dump(GRAPH_SPEC))
    found = load_graph_spec(None, [tmp_path / "a", tmp_path / "b"])
    assert found.to_dict() == graph.to_dict()
    with pytest.raises(FileNotFoundError, match="no graph given"):
        load_graph_spec(None, [tmp_path / "a"])


def test_a_folder_with_a_manifest_is_verified_before_it_is_used(tmp_path):
    from cdae.data.verify import DatasetIntegrityError
    from cdae.files import file_digest

    write_folder(tmp_path, 6, mode="L", split="yes")
    (tmp_path / "graph.json").write_text(json.dumps(GRAPH_SPEC))
    listed = ["labels.csv", "graph.json", *(f"img_{i}.png" for i in range(6))]
    (tmp_path / "MANIFEST.sha256").write_text(
        "".join(f"{file_digest(tmp_path / name)}  {name}\n" for name in listed))
    assert len(build_dataset("folder", "train", root=tmp_path)) == 3  # intact: used
    table = pd.read_csv(tmp_path / "labels.csv")
    table.loc[0, "size"] = 5.0  # one edited label
    table.to_csv(tmp_path / "labels.csv", index=False)
    with pytest.raises(DatasetIntegrityError, match=r"sha256 mismatch for labels.csv.*delete"):
        build_dataset("folder", "train", root=tmp_path)
    (tmp_path / "MANIFEST.sha256").unlink()  # the edit made on purpose: used as it is
    assert len(build_dataset("folder", "train", root=tmp_path)) == 3


def test_a_label_column_the_graph_leaves_out_is_a_warning_naming_it(tmp_path):
    write_folder(tmp_path, 4)
    forgot_colour = {"nodes": ["kind", "size"], "categorical": {"kind": 3}}
    with pytest.warns(UserWarning, match=r"columns \['colour'\] that are not nodes of the graph"):
        data = build_dataset("folder", "all", root=tmp_path, graph=forgot_colour)
    assert data.variables == ["kind", "size"] and "colour" in data.labels_natural.columns
