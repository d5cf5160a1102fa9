"""The interactive widgets, headless: their callbacks are driven the way a user drives them in
the browser (tick a box, release a slider, type a value) on a tiny model, and the rendered
images and displayed values are checked against the model's own counterfactual API."""

import numpy as np
import pandas as pd
import pytest
import torch
from tiny_models import make_tiny_cf, tiny_normalizer

from cdae import CausalGraph
from cdae.data.datasets import CausalImageDataset
from cdae.widgets import (
    CounterfactualExplorer,
    ExplorerSession,
    LatentTraversal,
    Reader,
    explorer_figure,
    intervention_grid,
    oracle_reader,
)

STEPS = 3


def tiny_dataset(graph_name: str, n: int = 12, seed: int = 0) -> CausalImageDataset:
    """Random 28x28 images with labels on the tiny normaliser's scales."""
    graph = CausalGraph.preset(graph_name)
    rng = np.random.default_rng(seed)
    labels = pd.DataFrame({
        name: rng.integers(0, graph.categorical[name], n) if graph.is_categorical(name)
        else rng.uniform(70, 250, n) if name == "intensity" else rng.uniform(1.5, 3.8, n)
        for name in graph.nodes})
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    return CausalImageDataset(images, labels, graph, normalizer=tiny_normalizer(graph))


def brightness(images: torch.Tensor) -> pd.DataFrame:
    """A toy reader: the mean grey level (0-255) of each image, as "intensity"."""
    return pd.DataFrame({"intensity": ((images + 1) * 127.5).mean(dim=(1, 2, 3)).numpy()})


@pytest.fixture(scope="module")
def cf():
    return make_tiny_cf()


@pytest.fixture(scope="module")
def data():
    return tiny_dataset("morphomnist")


@pytest.fixture
def explorer(cf, data):
    return CounterfactualExplorer(cf, data, reader=Reader("brightness", brightness), steps=STEPS,
                                  inversion_steps=STEPS)


def shown(explorer):
    return {name: row.shown for name, row in explorer.rows.items()}


def expected(cf, explorer, do):
    """What the model's latents give every variable of the current image under ``do``."""
    u, z = cf.encode(explorer.session.image(explorer.index))
    return cf.to_frame(cf.read_labels(cf.intervene(u, z, do))).iloc[0]


def test_a_slider_release_redraws_the_counterfactual_and_propagates_to_the_child(cf, explorer):
    factual, before = shown(explorer), explorer.counterfactual_image.value
    assert explorer.last.do == {}
    explorer.rows["thickness"].set(3.6)  # tick "do" and release the slider at 3.6
    now = shown(explorer)
    assert explorer.counterfactual_image.value != before
    want = expected(cf, explorer, {"thickness": 3.6})
    assert now["thickness"] == pytest.approx(3.6, abs=1e-4)
    assert now["intensity"] == pytest.approx(want["intensity"], rel=1e-5)
    assert now["intensity"] != pytest.approx(factual["intensity"], rel=1e-3)  # a child: moves
    assert now["digit"] == factual["digit"]  # not a descendant: kept
    assert "propagated" in explorer.rows["intensity"].readout.value
    assert "propagated" in explorer.table.value
    # the image is the one the counterfactual API makes
    direct = cf.counterfactual(explorer.session.image(explorer.index), {"thickness": 3.6},
                               steps=STEPS).images
    assert torch.equal(explorer.last.image, direct)
    # moving the slider again re-decodes from the cached abduction
    explorer.rows["thickness"].control.value = 2.0
    assert explorer.last.abduction_cached
    assert shown(explorer)["thickness"] == pytest.approx(2.0, abs=1e-4)
    assert "abduction cached" in explorer.status.value and " s" in explorer.status.value


def test_intervening_on_the_child_leaves_its_parent_unchanged(explorer):
    factual = shown(explorer)
    explorer.rows["intensity"].set(200.0)
    now = shown(explorer)
    assert now["intensity"] == pytest.approx(200.0, rel=1e-5)
    assert now["thickness"] == factual["thickness"]
    assert explorer.rows["thickness"].control.disabled  # not intervened: follows the model
    assert "do: intensity" not in explorer.table.value  # table rows are plain names
    assert "(do)" in explorer.table.value and "(kept)" in explorer.table.value


def test_unticking_restores_the_factual_values_and_image(explorer):
    factual, image = shown(explorer), explorer.counterfactual_image.value
    explorer.rows["thickness"].set(3.5)
    assert shown(explorer) != factual
    explorer.rows["thickness"].intervene.value = False
    assert shown(explorer) == factual
    assert explorer.counterfactual_image.value == image


@pytest.mark.parametrize("name, text, message", [
    ("thickness", "abc", "'abc' is not a number"),
    ("thickness", "1e9", "outside the training range"),
    ("thickness", "nan", "not a finite number"),
    ("intensity", "-5", "outside the training range"),
    ("digit", "3.5", "not a class index in 0..9"),
    ("digit", "12", "not a class index in 0..9"),
])
def test_a_bad_typed_value_is_refused_with_a_message(explorer, name, text, message):
    last = explorer.last
    explorer.rows[name].text.value = text  # must not raise
    assert message in explorer.rows[name].message.value.replace("&#x27;", "'")
    assert explorer.last is last  # nothing was recomputed
    assert not explorer.rows[name].intervened
    if text != "abc":  # the same value set from code raises instead
        with pytest.raises(ValueError, match=message):
            explorer.rows[name].set(float(text))


def test_a_good_typed_value_intervenes(explorer):
    explorer.rows["digit"].text.value = "4"
    assert explorer.do == {"digit": 4.0}
    assert explorer.rows["digit"].text.value == ""  # the dropdown shows it now
    assert explorer.last.counterfactual["digit"] == 4
    assert explorer.rows["digit"].message.value == ""


def test_the_graph_is_drawn_mutilated_for_each_set_of_interventions(explorer):
    plain = explorer.graph_image.value
    explorer.rows["thickness"].set(3.0)
    root = explorer.graph_image.value  # highlighted, no incoming edge to cut
    explorer.rows["intensity"].set(200.0)
    cut = explorer.graph_image.value
    assert len({bytes(plain), bytes(root), bytes(cut)}) == 3
    explorer.rows["intensity"].intervene.value = False
    assert explorer.graph_image.value == root


def test_image_choice_filters_and_random(explorer, data):
    digits = data.labels_natural["digit"]
    wanted = int(digits.iloc[5])
    explorer.filter_variable.value = "digit"
    explorer.filter_class.value = wanted
    assert digits.iloc[explorer.index] == wanted
    assert explorer.image_index.max == int((digits == wanted).sum()) - 1
    explorer.filter_variable.value = "thickness"
    explorer.filter_range.value = (2.0, 3.0)
    seen = set()
    for _ in range(6):
        explorer.random_button.click()
        seen.add(explorer.index)
        assert 2.0 <= data.labels_natural["thickness"].iloc[explorer.index] <= 3.0
    assert len(seen) > 1
    before = explorer.index
    values = np.sort(data.labels_natural["thickness"].to_numpy())
    k = int(np.argmax(np.diff(values)))  # the widest gap between two images' thicknesses
    middle, third = (values[k] + values[k + 1]) / 2, (values[k + 1] - values[k]) / 3
    explorer.filter_range.value = (middle - third / 2, middle + third / 2)
    # no image there: a message, not an exception
    assert "no image of the dataset" in explorer.status.value
    assert explorer.index == before


def test_steps_abduction_and_guidance_change_the_counterfactual(explorer):
    explorer.rows["thickness"].set(3.0)
    images = {"start": explorer.last.image}
    explorer.steps.value = 5
    assert explorer.last.abduction_cached  # decoding steps: the same inversion
    images["steps"] = explorer.last.image
    explorer.inversion_steps.value = 5
    assert not explorer.last.abduction_cached  # a new inversion for a new step count
    images["inversion"] = explorer.last.image
    explorer.abduction.value = "noise"
    images["noise"] = explorer.last.image
    explorer.guidance.value = 2.0
    images["guidance"] = explorer.last.image
    values = list(images.values())
    assert all(not torch.equal(a, b) for i, a in enumerate(values) for b in values[i + 1:])
    assert "5 DDIM steps" in explorer.status.value


def test_pendulum_gets_four_continuous_sliders_from_the_graph_alone():
    cf = make_tiny_cf(graph_name="pendulum")
    explorer = CounterfactualExplorer(cf, tiny_dataset("pendulum"), steps=STEPS,
                                      inversion_steps=STEPS)
    assert all(type(row.control).__name__ == "FloatSlider" for row in explorer.rows.values())
    factual = shown(explorer)
    explorer.rows["pendulum_angle"].set(3.5)
    now = shown(explorer)
    assert now["light_angle"] == factual["light_angle"]
    for child in ("shadow_length", "shadow_position"):
        assert now[child] != pytest.approx(factual[child], rel=1e-4)
        assert "propagated" in explorer.rows[child].readout.value
    explorer.rows["shadow_length"].set(2.0)  # a child: its parents stay put
    assert shown(explorer)["light_angle"] == factual["light_angle"]
    assert shown(explorer)["pendulum_angle"] == pytest.approx(3.5, abs=1e-4)


def test_the_label_conditional_baseline_explores_without_an_encoder(data):
    cf = make_tiny_cf("label_ddim")
    explorer = CounterfactualExplorer(cf, data, steps=STEPS, inversion_steps=STEPS)
    before = explorer.counterfactual_image.value
    explorer.rows["thickness"].set(3.5)
    assert explorer.counterfactual_image.value != before


def test_session_caches_abductions_and_checks_its_inputs(cf, data):
    session = ExplorerSession(cf, data, cache_size=2)
    assert not session.update(0, {}, STEPS, inversion_steps=STEPS).abduction_cached
    assert session.update(0, {"intensity": 100.0}, 2, inversion_steps=STEPS).abduction_cached
    session.update(1, {}, STEPS, inversion_steps=STEPS)
    session.update(2, {}, STEPS, inversion_steps=STEPS)  # evicts image 0
    assert not session.update(0, {}, STEPS, inversion_steps=STEPS).abduction_cached
    low, high = session.ranges["thickness"]
    labels = data.labels_natural["thickness"]
    assert low == pytest.approx(labels.min()) and high == pytest.approx(labels.max())
    with pytest.raises(ValueError, match="outside the dataset's 0..11"):
        session.update(12, {}, STEPS, inversion_steps=STEPS)
    with pytest.raises(ValueError, match="unknown variable 'thick'"):
        session.update(0, {"thick": 2.0}, STEPS, inversion_steps=STEPS)
    with pytest.raises(ValueError, match="differ from the model's"):
        ExplorerSession(make_tiny_cf(graph_name="pendulum"), data)
    with pytest.raises(ValueError, match="outside the dataset's 0..11"):
        CounterfactualExplorer(cf, data, index=40)
    assert CounterfactualExplorer(cf, data, index=7, steps=STEPS,
                                  inversion_steps=STEPS).index == 7
    # zero steps is an error, not a silent fall-back to another count
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="inversion_steps must be a whole number"):
            session.update(0, {}, STEPS, inversion_steps=bad)
        with pytest.raises(ValueError, match="inversion_steps must be a whole number"):
            CounterfactualExplorer(cf, data, steps=STEPS, inversion_steps=bad)
    with pytest.raises(ValueError, match="steps must be a whole number"):
        session.update(0, {}, 0)


def test_oracle_reader_hands_the_oracle_storage_images():
    class Oracle:
        def measure(self, images):
            assert images.dtype == np.uint8 and images.shape == (2, 28, 28)
            return pd.DataFrame({"intensity": images.mean(axis=(1, 2))})

    out = oracle_reader(Oracle())(torch.ones(2, 1, 28, 28))
    assert out["intensity"].tolist() == [255.0, 255.0]


def test_latent_traversal_walks_one_block(cf, data):
    walk = LatentTraversal(cf, data, steps=STEPS, inversion_steps=STEPS)
    assert walk.last.images.shape == (1, 7, 1, 28, 28)
    np.testing.assert_allclose(walk.last.labels["thickness"], walk.values(), atol=1e-4)
    strip = walk.strip.value
    walk.propagate.value = False  # a bare edit: the child keeps its factual latent
    assert walk.last.labels["intensity"].nunique() == 1
    assert walk.strip.value != strip
    walk.variable.value = "digit"
    assert walk.last.labels["digit"].tolist() == list(range(10))
    assert "inversion cached" in walk.status.value


def test_static_figures(cf, data, explorer):
    explorer.rows["thickness"].set(3.0)
    fig = explorer.figure()
    assert len(fig.axes) == 4 and "do(thickness=3)" in fig._suptitle.get_text()
    x = explorer.session.image(0).repeat(2, 1, 1, 1)
    grid = intervention_grid(cf, x, {"thin": {"thickness": 1.6}, "bright": {"intensity": 240.0}},
                             steps=STEPS, reader=Reader("brightness", brightness))
    assert len(grid.axes) == 2 * 3
    captions = [ax.get_xlabel() for ax in grid.axes]
    assert "thickness 1.6, intensity" in captions[1] and "measured intensity" in captions[2]
    with pytest.raises(ValueError, match="has not made a counterfactual"):
        explorer_figure(cf.graph, None)
