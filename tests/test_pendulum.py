"""Pendulum (CausalVAE): geometry, renderer, file layout, reader, cache and counterfactuals."""

import math
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cdae.data import pendulum as pend
from cdae.data.pendulum import files as pend_files
from cdae.graph import CausalGraph


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    """A seeded 40-image subset written once for the reader tests."""
    return pend.write_dataset(tmp_path_factory.mktemp("pend") / "ds", limit=40, progress=False)


def _copy(dataset, tmp_path):
    return shutil.copytree(dataset, tmp_path / "copy")


# ------------------------------------------------------------------ grid, split and labels
def test_grid_has_the_causalvae_points():
    table = pend.grid()
    assert len(table) == 84 * 87 == pend.N_IMAGES
    assert sorted(table.i.unique()) == list(range(-40, 44))
    assert 100 not in set(table.j) and table.j.min() == 60 and table.j.max() == 147
    assert not table.duplicated(["i", "j"]).any()
    assert np.allclose(table.pendulum_angle, 0.9 * table.i)
    assert np.allclose(table.light_angle, 0.9 * table.j)


def test_split_sizes_are_5482_1826_without_overlap_and_seeded():
    table = pend.dataset_table(seed=0)
    counts = table.split.value_counts()
    assert (counts["train"], counts["test"]) == (5482, 1826)
    assert table.file.is_unique and not table.duplicated(["i", "j"]).any()
    assert (table.file.str.split("/").str[0] == table.split).all()
    again, other = pend.dataset_table(seed=0), pend.dataset_table(seed=1)
    assert again.equals(table)
    assert (other.split != table.split).any()


def test_shadow_length_floor_at_three_is_active():
    table = pend.grid()
    at_floor = int((table.shadow_length == pend.MIN_SHADOW).sum())
    assert table.shadow_length.min() == 3.0
    assert 0.2 * len(table) < at_floor < 0.6 * len(table)  # 2,894 of 7,308
    lo, hi = pend.label_ranges()["shadow_length"]
    assert lo == 3.0 and 12 < hi < 13
    lo, hi = pend.label_ranges()["shadow_position"]
    assert 1.5 < lo < 2.5 and 19 < hi < 20


def test_hanging_pendulum_shadow_is_opposite_the_sun():
    # θ = 0: pivot shadow at 10 - 11 cot φ, tip (10, 1) shadow at 10 - 1.5 cot φ.
    for light in (54.0, 63.0, 90.0, 117.0, 132.3):
        cot = 1 / math.tan(math.radians(light))
        got = pend.pendulum_labels(0.0, light)
        assert got["shadow_position"] == pytest.approx(10 - 6.25 * cot)
        assert got["shadow_length"] == pytest.approx(max(3.0, 9.5 * abs(cot)))
        sun_offset = pend.sun_position(light) - 10
        assert sun_offset == pytest.approx(10 * cot)
        assert got["shadow_position"] - 10 == pytest.approx(-0.625 * sun_offset)
    overhead = pend.pendulum_labels(0.0, 90.0)
    assert overhead["shadow_position"] == pytest.approx(10.0)  # right under the pivot
    assert overhead["shadow_length"] == 3.0  # the floor


def test_labels_agree_with_an_independent_slope_intercept_derivation():
    # The ray through (x, y) with slope tan φ is y' = tan φ x' + b; it meets y' = -0.5 at
    # x' = (-0.5 - b) / tan φ. The file names must truncate the same values.
    table = pend.grid()
    theta, phi = np.radians(table.pendulum_angle), np.radians(table.light_angle)
    slope = np.tan(phi)

    def meet(x, y):
        return (-0.5 - (y - slope * x)) / slope

    pivot, tip = meet(10.0, 10.5), meet(10 + 9.5 * np.sin(theta), 10.5 - 9.5 * np.cos(theta))
    length, position = np.maximum(3, np.abs(pivot - tip)), (pivot + tip) / 2
    assert np.allclose(table.shadow_length, length, atol=1e-9)
    assert np.allclose(table.shadow_position, position, atol=1e-9)
    assert (table.shadow_length.astype(int) == length.astype(int)).all()
    assert (table.shadow_position.astype(int) == position.astype(int)).all()


def test_labels_are_vectorised_and_scalars_give_floats():
    one = pend.pendulum_labels(10.0, 70.0)
    assert all(isinstance(v, float) for v in one.values())
    many = pend.pendulum_labels(np.array([10.0, -20.0]), 70.0)
    assert many["shadow_length"].shape == (2,)
    assert many["shadow_position"][0] == pytest.approx(one["shadow_position"])
    assert pend.labels is pend.pendulum_labels


def test_out_of_range_angles_raise_unless_extrapolating():
    with pytest.raises(ValueError, match="pendulum_angle=40.*check_range=False"):
        pend.pendulum_labels(40.0, 70.0)
    with pytest.raises(ValueError, match="light_angle=40"):
        pend.render(0.0, 40.0)
    assert pend.pendulum_labels(40.0, 40.0, check_range=False)["shadow_length"] > 3
    with pytest.raises(ValueError, match="0 < light_angle < 180"):
        pend.pendulum_labels(0.0, 180.0, check_range=False)
    with pytest.raises(ValueError, match="finite"):
        pend.pendulum_labels(float("nan"), 70.0)


# ------------------------------------------------------------------ renderer
def test_render_is_a_deterministic_opaque_rgba_scene():
    image = pend.render(20.0, 80.0)
    assert image.shape == (96, 96, 4) and image.dtype == np.uint8
    assert (image[..., 3] == 255).all()
    assert np.array_equal(image, pend.render(20.0, 80.0))
    assert not np.array_equal(image, pend.render(-20.0, 80.0))
    rgb = image[..., :3].astype(int)
    orange = (rgb[..., 0] > 240) & (abs(rgb[..., 1] - 165) < 10) & (rgb[..., 2] < 10)
    red = (abs(rgb[..., 0] - 178) < 10) & (rgb[..., 1] < 45) & (rgb[..., 2] < 45)
    assert orange.sum() > 100 and red.sum() > 50
    assert (rgb[:8] == 255).all() and (rgb[:, :10] == 255).all()  # margins of the figure
    assert pend.render_batch([0.0, 10.0], [70.0, 80.0], size=48).shape == (2, 48, 48, 4)


def _dark_bar_centroid(images):
    """x centroid (pixels) of dark pixels in the rows around the ground line."""
    dark = 255 - images[:, 78:90, :, :3].max(-1).astype(float)
    columns = dark.sum(1)
    return (columns * (np.arange(96) + 0.5)).sum(1) / columns.sum(1)


def test_shadow_pixels_move_with_shadow_position():
    rng = np.random.default_rng(0)
    theta, phi = pend.sample_angles(40, rng)
    positions = rng.uniform(4, 16, 40)
    images = pend.render_batch(theta, phi, shadow_length=rng.uniform(3, 6, 40),
                               shadow_position=positions)
    assert np.corrcoef(_dark_bar_centroid(images), positions)[0, 1] > 0.95
    table = pend.grid().sample(40, random_state=1)
    physical = pend.render_batch(table.pendulum_angle, table.light_angle)
    assert np.corrcoef(_dark_bar_centroid(physical), table.shadow_position)[0, 1] > 0.95


def test_measure_reads_the_labels_back():
    table = pend.grid().sample(60, random_state=2)
    measured = pend.measure(pend.render_batch(table.pendulum_angle, table.light_angle))
    error = (measured[list(pend.VARIABLES)] - table[list(pend.VARIABLES)].to_numpy()).abs()
    assert error.pendulum_angle.max() < 0.4 and error.light_angle.max() < 0.4
    kept = ~measured.shadow_clipped
    assert kept.mean() > 0.8
    assert error.shadow_position[kept].max() < 0.1 and error.shadow_length[kept].max() < 0.15
    left = (table.shadow_position - table.shadow_length / 2).to_numpy()
    right = (table.shadow_position + table.shadow_length / 2).to_numpy()
    assert (measured.shadow_clipped == ((left < 0) | (right > 20))).mean() > 0.95
    floor = pend.measure(pend.render(0.0, 90.0))
    assert floor.shadow_length[0] == pytest.approx(3.0, abs=0.2)
    with pytest.raises(ValueError, match="square RGB"):
        pend.measure(np.zeros((96, 96)))


@pytest.mark.parametrize("how", ["resized from 96", "rendered at 64"])
def test_measure_reads_64_pixel_images(how):
    """The pendulum configs train at 64 px: resized as the datasets resize (bilinear,
    anti-aliased) or rendered at that size, the labels still come back (measured on these 60:
    light angle within 0.22°, pendulum angle 0.36°, shadows 0.09 scene units; resized images
    read 14° off on average before the sun was read below its clipped top)."""
    import torch

    from cdae.data.images import resize_images

    table = pend.grid().sample(60, random_state=3)
    theta, phi = table.pendulum_angle.to_numpy(), table.light_angle.to_numpy()
    if how == "rendered at 64":
        images = pend.render_batch(theta, phi, size=64)
    else:
        nchw = torch.from_numpy(pend.render_batch(theta, phi)).permute(0, 3, 1, 2)
        images = resize_images(nchw.contiguous(), 64).permute(0, 2, 3, 1).numpy()
    assert images.shape == (60, 64, 64, 4)
    measured = pend.measure(images)
    error = (measured[list(pend.VARIABLES)] - table[list(pend.VARIABLES)].to_numpy()).abs()
    assert error.pendulum_angle.max() < 0.5 and error.light_angle.max() < 0.4
    kept = ~measured.shadow_clipped
    assert kept.mean() > 0.8
    assert error.shadow_position[kept].max() < 0.1 and error.shadow_length[kept].max() < 0.15
    inside = np.abs(pend.sun_position(phi) - 10) < 6  # the whole sun is in the picture
    assert inside.sum() > 30 and not measured.sun_clipped[inside].any()


def test_shadow_overrides_are_validated():
    with pytest.raises(ValueError, match="positive"):
        pend.render(0.0, 70.0, shadow_length=0.0)
    with pytest.raises(ValueError, match="one pair"):
        pend.render(np.array([0.0, 1.0]), 70.0)


# ------------------------------------------------------------------ file names
def test_file_name_round_trip_uses_int_truncation():
    name = pend.file_name(-40, 60, 3.0, 2.99)
    assert name == "a_-40_60_3_2.png"
    assert pend.parse_file_name(name) == (-40, 60, 3, 2)
    assert pend.parse_file_name("train/a_5_147_12_17.png") == (5, 147, 12, 17)
    for bad in ("a_1_2_3.png", "b_1_2_3_4.png", "a_1_2_3_4.jpg", "a_x_2_3_4.png"):
        with pytest.raises(pend.PendulumDataError, match="CausalVAE Pendulum file name"):
            pend.parse_file_name(bad)


# ------------------------------------------------------------------ writing and reading
def test_written_subset_reads_back_exactly(small_dataset):
    table = pd.read_csv(small_dataset / "labels.csv")
    assert len(table) == 40 and (table.split == "test").sum() == 10
    assert pend.verify_dataset(small_dataset) == []
    train, test = (pend.read_pendulum(small_dataset, s) for s in ("train", "test"))
    assert (len(train), len(test)) == (30, 10)
    assert train.images.shape == (30, 96, 96, 4) and train.images.dtype == np.uint8
    assert not set(train.labels.file) & set(test.labels.file)
    row = test.labels.iloc[3]
    assert np.array_equal(test.images[3], pend.render(row.pendulum_angle, row.light_angle))
    exact = pend.pendulum_labels(test.labels.pendulum_angle, test.labels.light_angle)
    for name in pend.VARIABLES:
        assert np.array_equal(test.labels[name].to_numpy(), exact[name])
    names = test.labels.file.str.split("/").str[1]
    assert (names.map(pend.parse_file_name).str[0] == test.labels.i).all()


def test_writing_is_deterministic(tmp_path, small_dataset):
    again = pend.write_dataset(tmp_path / "again", limit=40, progress=False)
    assert (again / "MANIFEST.sha256").read_text() == (
        small_dataset / "MANIFEST.sha256").read_text()


def test_write_refuses_to_clobber(tmp_path, small_dataset):
    copy = _copy(small_dataset, tmp_path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        pend.write_dataset(copy, limit=4, progress=False)
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a Pendulum dataset"):
        pend.write_dataset(stranger, limit=4, overwrite=True, progress=False)
    pend.write_dataset(copy, limit=4, overwrite=True, progress=False)
    assert len(pd.read_csv(copy / "labels.csv")) == 4


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    def failing_render(*args, **kwargs):
        calls.append(1)
        if len(calls) > 3:
            raise KeyboardInterrupt
        return np.zeros((96, 96, 4), np.uint8)

    monkeypatch.setattr(pend_files, "render", failing_render)  # what write_dataset calls
    with pytest.raises(KeyboardInterrupt):
        pend.write_dataset(tmp_path / "ds", limit=10, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_reader_errors_name_the_problem(tmp_path, small_dataset):
    with pytest.raises(FileNotFoundError, match="python -m cdae data pendulum"):
        pend.read_pendulum(tmp_path / "absent")
    with pytest.raises(ValueError, match="'train' or 'test'"):
        pend.read_pendulum(small_dataset, "valid")
    copy = _copy(small_dataset, tmp_path)
    victim = next((copy / "train").glob("*.png"))
    victim.unlink()
    with pytest.raises(FileNotFoundError, match="1 image"):
        pend.read_pendulum(copy, "train")
    Image.new("RGBA", (64, 64)).save(victim)
    with pytest.raises(pend.PendulumDataError, match="64×64"):
        pend.read_pendulum(copy, "train")
    victim.write_bytes(b"not a png")
    with pytest.raises(pend.PendulumDataError, match="cannot read"):
        pend.read_pendulum(copy, "train")
    shutil.copy(next((copy / "test").glob("*.png")), copy / "test" / "a_0_0_0_0.png")
    with pytest.raises(pend.PendulumDataError, match="not in labels.csv"):
        pend.read_pendulum(copy, "test")
    pd.read_csv(copy / "labels.csv").drop(columns="shadow_length").to_csv(copy / "labels.csv")
    with pytest.raises(pend.PendulumDataError, match="shadow_length"):
        pend.read_pendulum(copy, "test")


def test_reads_a_causalvae_folder_without_csv(tmp_path, small_dataset):
    folder = tmp_path / "causalvae"
    shutil.copytree(small_dataset / "test", folder / "test")
    split = pend.read_pendulum(folder, "test")
    ours = pend.read_pendulum(small_dataset, "test").labels.sort_values(["i", "j"])
    assert "file names" in split.source and len(split) == 10
    for name in pend.VARIABLES:
        assert np.allclose(split.labels[name], ours[name])
    with pytest.raises(FileNotFoundError, match="no PNGs"):
        pend.read_pendulum(folder, "train")
    first = next((folder / "test").glob("*.png"))
    i, j, _, position = pend.parse_file_name(first.name)
    first.rename(first.with_name(pend.file_name(i, j, 99, position)))
    with pytest.warns(UserWarning, match="names' integers"):
        changed = pend.read_pendulum(folder, "test")
    assert changed.labels.shadow_length.max() == 99
    (folder / "test" / "picture.png").write_bytes(b"")
    with pytest.raises(pend.PendulumDataError, match="picture.png"):
        pend.read_pendulum(folder, "test")


# ------------------------------------------------------------------ manifest and cache
def test_manifest_detects_corruption(tmp_path, small_dataset):
    copy = _copy(small_dataset, tmp_path)
    victim = sorted((copy / "test").glob("*.png"))[0]
    data = bytearray(victim.read_bytes())
    data[-20] ^= 0xFF
    victim.write_bytes(bytes(data))
    shutil.copy(victim, copy / "train" / "a_1_1_1_1.png")
    (copy / "labels.csv").unlink()
    problems = pend.verify_dataset(copy)
    assert f"sha256 mismatch for test/{victim.name}" in problems
    assert "missing labels.csv" in problems and "unlisted file train/a_1_1_1_1.png" in problems
    (copy / "MANIFEST.sha256").write_text("garbage\n")
    assert "not '<sha256>  <path>'" in pend.verify_dataset(copy)[0]
    (copy / "MANIFEST.sha256").unlink()
    assert "missing" in pend.verify_dataset(copy)[0]


def test_load_or_generate_caches_and_repairs(tmp_path, monkeypatch):
    monkeypatch.setenv("CDAE_DATA_DIR", str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        root = pend.load_or_generate(limit=12, progress=False)
        assert root == tmp_path / "pendulum"
        stamp = (root / "labels.csv").stat().st_mtime_ns
        assert pend.load_or_generate(limit=12, progress=False) == root
        assert (root / "labels.csv").stat().st_mtime_ns == stamp  # reused, not rewritten
    next((root / "train").glob("*.png")).write_bytes(b"corrupt")
    with pytest.warns(UserWarning, match="sha256 mismatch.*regenerating"):
        pend.load_or_generate(limit=12, progress=False)
    assert pend.verify_dataset(root) == []
    with pytest.warns(UserWarning, match="generated with seed=0, 3 was asked for"):
        pend.load_or_generate(seed=3, limit=12, progress=False)
    assert '"seed": 3' in (root / "dataset.json").read_text()
    leftovers = [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")]
    assert leftovers == ["pendulum"]  # no temporary folders left behind


# ------------------------------------------------------------------ sampling and counterfactuals
def test_sample_angles_are_continuous_and_in_range():
    theta, phi = pend.sample_angles(500, np.random.default_rng(0))
    assert theta.min() >= -36.0 and theta.max() <= 38.7
    assert phi.min() >= 54.0 and phi.max() <= 132.3
    assert len(np.unique(np.round(theta / 0.9, 6))) > 400  # not on the grid
    drawn = pend.sample(3, rng=1)
    assert drawn.images.shape == (3, 96, 96, 4) and list(drawn.labels) == list(pend.VARIABLES)


def test_counterfactual_on_a_root_recomputes_its_children():
    graph = CausalGraph.preset("pendulum")
    assert set(graph.descendants("light_angle")) == {"shadow_length", "shadow_position"}
    result = pend.counterfactual([10.0, -20.0], [70.0, 110.0], do={"light_angle": 100.0})
    expected = pend.pendulum_labels(np.array([10.0, -20.0]), 100.0)
    assert list(result.labels) == list(pend.VARIABLES)
    for name in pend.VARIABLES:
        assert np.allclose(result.labels[name], expected[name])
    assert np.array_equal(result.images[1], pend.render(-20.0, 100.0))


def test_counterfactual_on_an_effect_redraws_only_that_shadow():
    factual = pend.pendulum_labels(10.0, 70.0)
    result = pend.counterfactual(10.0, 70.0, do={"shadow_length": 8.0})
    row = result.labels.iloc[0]
    assert row.shadow_length == 8.0
    assert row.shadow_position == pytest.approx(factual["shadow_position"])
    assert row.pendulum_angle == 10.0 and row.light_angle == 70.0
    measured = pend.measure(result.images)
    assert measured.shadow_length[0] == pytest.approx(8.0, abs=0.3)
    assert measured.pendulum_angle[0] == pytest.approx(10.0, abs=1.0)
    both = pend.counterfactual(10.0, 70.0, do={"shadow_length": [4.0, 6.0],
                                                "shadow_position": 12.0})
    assert len(both.labels) == 2 and (both.labels.shadow_position == 12.0).all()


def test_counterfactual_rejects_bad_interventions():
    with pytest.raises(ValueError, match="cannot intervene on \\['colour'\\]"):
        pend.counterfactual(0.0, 70.0, do={"colour": 1.0})
    with pytest.raises(ValueError, match="shadow_length=2.*check_range=False"):
        pend.counterfactual(0.0, 70.0, do={"shadow_length": 2.0})
    with pytest.raises(ValueError, match="light_angle=150"):
        pend.counterfactual(0.0, 70.0, do={"light_angle": 150.0})
    below_floor = pend.counterfactual(0.0, 70.0, do={"shadow_length": 2.0}, check_range=False)
    assert below_floor.labels.shadow_length[0] == 2.0


def test_an_edited_root_is_refused_and_one_without_manifest_is_used_with_a_note(
        tmp_path, small_dataset):
    from cdae.data.datasets import build_dataset
    from cdae.data.verify import DatasetIntegrityError

    copy = _copy(small_dataset, tmp_path)
    labels = pd.read_csv(copy / "labels.csv")
    labels.loc[0, "shadow_length"] = 9.9
    labels.to_csv(copy / "labels.csv", index=False)
    with pytest.raises(DatasetIntegrityError, match="sha256 mismatch for labels.csv"):
        build_dataset("pendulum", "train", root=copy)
    (copy / "MANIFEST.sha256").unlink()
    with pytest.warns(UserWarning, match="could not be verified"):
        build_dataset("pendulum", "train", root=copy)


# ------------------------------------------------------------------ shadows with their own noise
def test_noisy_shadows_carry_recorded_noise_that_the_pixels_show(tmp_path):
    from cdae.evaluate.oracles import PendulumOracle, oracle_for

    plain = pend.dataset_table(seed=0, limit=40)
    noisy = pend.dataset_table(seed=0, limit=40, shadow_noise_sd=1.0)
    assert "shadow_length_noise" not in plain  # the default stays CausalVAE's scene
    pd.testing.assert_frame_equal(noisy[["i", "j", "split"]], plain[["i", "j", "split"]])
    for name, column in pend.NOISE_COLUMNS.items():
        np.testing.assert_allclose(noisy[name] - plain[name], noisy[column], atol=1e-12)
    assert 0.5 < noisy["shadow_position_noise"].std() < 1.5  # N(0, 1) on 40 scenes
    root = pend.write_dataset(tmp_path / "noisy", limit=40, progress=False, shadow_noise_sd=1.0)
    data = pend.read_pendulum(root, "train")
    measured = pend.measure(data.images)
    kept = ~measured.shadow_clipped
    error = (measured.shadow_position - data.labels.shadow_position)[kept].abs()
    assert kept.sum() > 10 and error.max() < 0.15  # the drawn shadow is the noisy one
    oracle = oracle_for("pendulum", root)
    assert oracle.shadow_noise_sd == 1.0
    # do(a root): the shadows follow the new angle and keep each scene's own noise
    truth = oracle.counterfactuals([0, 1, 2], {"pendulum_angle": 10.0})
    rows = oracle.labels.iloc[:3]
    geometry = pend.pendulum_labels(np.full(3, 10.0), rows.light_angle.to_numpy())
    np.testing.assert_allclose(truth.labels.shadow_position,
                               geometry["shadow_position"] + rows.shadow_position_noise)
    assert np.isfinite(oracle.off_joint(truth.labels)).all()  # do(shadow) has support now
    np.testing.assert_allclose(oracle.off_joint(truth.labels), np.maximum(
        rows.shadow_length_noise.abs(), rows.shadow_position_noise.abs()).to_numpy())
    noiseless = PendulumOracle(labels=pend.read_pendulum(
        pend.write_dataset(tmp_path / "plain", limit=12, progress=False), "test").labels)
    moved = noiseless.labels.iloc[:1].assign(shadow_length=lambda t: t.shadow_length + 1.0)
    assert np.isinf(noiseless.off_joint(moved)).all()
    # the noisy dataset holds shadows beyond the grid's range, so its oracle renders them
    low = pend.label_ranges()["shadow_position"][0] - 2.0
    assert oracle.counterfactuals([0], {"shadow_position": low}).labels.shadow_position[0] == low
    with pytest.raises(ValueError, match=r"do\(shadow_position=.*outside the dataset's range"):
        noiseless.counterfactuals([0], {"shadow_position": low})


def test_noisy_and_plain_caches_live_apart(tmp_path, monkeypatch):
    monkeypatch.setenv("CDAE_DATA_DIR", str(tmp_path))
    plain = pend.load_or_generate(limit=12, progress=False)
    noisy = pend.load_or_generate(limit=12, progress=False, shadow_noise_sd=0.5)
    assert plain == tmp_path / "pendulum" and noisy == tmp_path / "pendulum-shadow_noise0.5"
    assert '"shadow_noise_sd": 0.5' in (noisy / "dataset.json").read_text()
    assert "shadow_noise" not in (plain / "dataset.json").read_text()
    with pytest.raises(ValueError, match="shadow_noise_sd must be a finite number >= 0"):
        pend.dataset_table(shadow_noise_sd=-1.0)
