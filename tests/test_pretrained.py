"""The shipped checkpoint: its checksum is enforced, and the trained model really works.

These run the real model on real (generated) test digits, so they also guard the counterfactual
path end to end: inversion then decoding reproduces the input, and do(thickness) moves the
thickness that the morphometry measures on the generated pixels.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cdae.checkpoint import CheckpointError
from cdae.data import morphometry
from cdae.data.datasets import build_dataset
from cdae.data.images import to_pixels
from cdae.data.morphomnist import tutorial_root
from cdae.pretrained import load_pretrained, pretrained_path, read_manifest


@pytest.fixture(scope="module")
def cf():
    return load_pretrained("morphomnist_small")


@pytest.fixture(scope="module")
def digits(cf):
    test = build_dataset("morphomnist", "test", root=tutorial_root(smoke=True),
                         normalizer=cf.normalizer, limit=8)
    return test.tensors()[0]


def test_manifest_describes_how_the_checkpoint_was_made():
    entry = read_manifest()["morphomnist_small.pt"]
    assert entry["command"].startswith("python -m cdae train configs/morphomnist_small.yaml")
    assert entry["seed"] == 0 and entry["step"] > 0 and entry["bytes"] < 5_000_000


def test_a_corrupted_copy_is_refused(tmp_path):
    folder = tmp_path / "pretrained"
    shutil.copytree(pretrained_path("morphomnist_small").parent, folder)
    with open(folder / "morphomnist_small.pt", "r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00\x01\x02\x03")
    with pytest.raises(CheckpointError, match="sha256"):
        pretrained_path("morphomnist_small", folder)
    with pytest.raises(FileNotFoundError, match="available"):
        pretrained_path("pendulum_huge", folder)


@pytest.mark.slow
def test_inversion_then_decoding_reproduces_real_digits(cf, digits):
    reconstruction = cf.reconstruct(digits, steps=50)
    l1 = np.abs(to_pixels(reconstruction) - to_pixels(digits)).mean()
    assert l1 < 6.0, f"mean reconstruction error {l1:.2f} grey levels"


@pytest.mark.slow
@pytest.mark.parametrize(("guidance", "inversion_iters"), [(0.0, 0), (2.0, 0), (3.0, 2)])
def test_the_null_intervention_converges_to_the_image_under_guidance(cf, digits, guidance,
                                                                     inversion_iters):
    # abduction inverts with the guided eps that decoding uses, so finer grids reproduce the
    # input ever more closely (inverting with the plain eps left a floor). At w = 3 the plain
    # guided inversion can diverge on some digits (measured on four: L1 3.7 at 10 steps, 9.0 at
    # 50); two fixed-point refinements per step make it converge (1.9 at 50, 1.4 at 100)
    x = digits[:4]
    l1 = {steps: np.abs(to_pixels(cf.counterfactual(
        x, {}, steps=steps, guidance=guidance, inversion_iters=inversion_iters).images)
        - to_pixels(x)).mean() for steps in (10, 50)}
    print(f"w={guidance}, {inversion_iters} refinements: null-intervention L1 {l1}")
    assert l1[50] < l1[10] and l1[50] < 4.0, l1


@pytest.mark.slow
def test_do_thickness_moves_the_measured_thickness(cf, digits):
    measured = {}
    for target in (1.5, 4.0):
        out = cf.counterfactual(digits, do={"thickness": target}, steps=20)
        measured[target] = morphometry.measure(to_pixels(out.images)[:, 0])["thickness"].to_numpy()
        assert np.allclose(out.counterfactual["thickness"], target, atol=1e-4)
    assert (measured[4.0] > measured[1.5]).mean() >= 0.75
    assert np.median(measured[4.0] - measured[1.5]) > 1.0


@pytest.mark.slow
@pytest.mark.parametrize("name", ("morphomnist_small", "morphomnist_small_diffae",
                                  "morphomnist_small_label_ddim"))
def test_do_intensity_moves_the_measured_intensity_and_keeps_the_stroke(name):
    cf = load_pretrained(name)
    test = build_dataset("morphomnist", "test", root=tutorial_root(smoke=True),
                         normalizer=cf.normalizer, limit=8)
    digits, labels = test.tensors()
    labels = None if cf.has_encoder else labels  # the label-conditional DDIM abducts from them
    measured = {}
    for target in (90.0, 240.0):
        out = cf.counterfactual(digits, do={"intensity": target}, steps=50, labels=labels)
        measured[target] = morphometry.measure(to_pixels(out.images)[:, 0])
    factual = morphometry.measure(to_pixels(digits)[:, 0])
    gap = np.median(measured[240.0]["intensity"] - measured[90.0]["intensity"])
    assert gap >= 80.0, f"do(intensity=240) vs 90 differ by {gap:.1f} grey levels"
    # the stroke should not move; these small CPU-trained models still thin it (CausalDiffAE,
    # on 64 test digits: by 0.38 px under do(intensity=240) and 0.81 px under 90, mean)
    for target, tolerance in ((240.0, 0.6), (90.0, 1.0)):
        moved = np.median(np.abs(measured[target]["thickness"] - factual["thickness"]))
        assert moved < tolerance, f"do(intensity={target}) moved the thickness by {moved:.2f} px"


def test_block_diagnostic_of_the_shipped_model_shows_informative_blocks(cf):
    from cdae.latents import block_signal_to_noise

    test = build_dataset("morphomnist", "test", root=tutorial_root(smoke=True),
                         normalizer=cf.normalizer, limit=64)
    table = block_signal_to_noise(cf, test, n=64).set_index("variable")
    assert (table["posterior_sd"] < 0.5).all()  # sharp posteriors, not the prior's sd of 1
    assert table.loc["intensity", "snr"] > 1.0  # the decoder can tell images apart by it
    # fed mu + sqrt(0.1)·sigma·eps, the decoder sees sqrt(10) times that signal-to-noise
    assert table.loc["intensity", "decoder_snr"] == pytest.approx(
        table.loc["intensity", "snr"] * 10**0.5, rel=1e-6)


def test_same_inputs_same_counterfactual(cf, digits):
    a = cf.counterfactual(digits[:2], do={"intensity": 200.0}, steps=5).images
    b = cf.counterfactual(digits[:2], do={"intensity": 200.0}, steps=5).images
    assert torch.equal(a, b)


def test_import_cdae_is_light_and_inference_imports_no_training():
    script = (
        "import sys\n"
        "import cdae\n"
        "heavy = ('torch', 'numpy', 'matplotlib')\n"
        "assert not [m for m in heavy if m in sys.modules], sorted(sys.modules)\n"
        "cf = cdae.load_pretrained('morphomnist_small')\n"
        "assert isinstance(cf, cdae.CounterfactualModel)\n"
        "loaded = [m for m in ('cdae.train', 'cdae.evaluate', 'matplotlib') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr


#: Off-joint do(intensity) on the shipped CausalDiffAE (6 + 6 digits, 50 DDIM steps): the median
#: miss in grey levels per group, and the median thickness moved in px. Measured on the model
#: shipped at 20,000 steps: thick digits made dim miss by 4.7 (the 3,000-step model: 47.9), thin
#: dim digits made bright (k about 8) still by 38.7, its known weakness; thickness moved 0.13-0.15.
OFF_JOINT_INTENSITY_TOLERANCE = {"thin made bright": 45.0, "thick made dim": 8.0}
OFF_JOINT_THICKNESS_TOLERANCE = 0.25


@pytest.mark.slow
def test_off_joint_do_intensity_brightens_thin_digits_and_darkens_thick_ones(cf):
    """Requests the training set almost never shows (k > 5 noise sds from the mechanism): thin,
    dim digits made bright, thick, bright digits made dim."""
    from cdae.evaluate.oracles import MorphoOracle

    test = build_dataset("morphomnist", "test", root=tutorial_root(smoke=True),
                         normalizer=cf.normalizer)
    labels = test.labels_natural
    thin = np.flatnonzero((labels["thickness"] < 1.9) & (labels["intensity"] < 130))[:6]
    thick = np.flatnonzero((labels["thickness"] > 3.2) & (labels["intensity"] > 200))[:6]
    chosen = np.concatenate([thin, thick])
    targets = np.concatenate([np.full(len(thin), 240.0), np.full(len(thick), 80.0)])
    asked = labels.iloc[chosen][["thickness"]].assign(intensity=targets)
    assert (MorphoOracle.off_joint(None, asked) > 5).all()  # truly off the training joint
    digits = test.tensors()[0][torch.as_tensor(chosen)]
    out = cf.counterfactual(digits, do={"intensity": targets}, steps=50)
    measured = morphometry.measure(to_pixels(out.images)[:, 0])
    factual = morphometry.measure(to_pixels(digits)[:, 0])
    miss = np.abs(measured["intensity"].to_numpy() - targets)
    moved = np.abs(measured["thickness"] - factual["thickness"]).to_numpy()
    for name, rows in (("thin made bright", slice(0, len(thin))),
                       ("thick made dim", slice(len(thin), None))):
        assert np.median(miss[rows]) < OFF_JOINT_INTENSITY_TOLERANCE[name], (name, miss[rows])
        assert np.median(moved[rows]) < OFF_JOINT_THICKNESS_TOLERANCE, (name, moved[rows])
