"""Every committed config loads: known keys, valid values, a model that can be built."""

from pathlib import Path

import pytest

from cdae.config import load_config

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
CONFIGS = sorted(CONFIG_DIR.rglob("*.yaml"))


def test_there_are_configs():
    assert len(CONFIGS) >= 10


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_loads_and_names_its_run(path):
    config = load_config(path)  # unknown keys and bad values raise (ModelConfig checks itself)
    assert config.name == path.stem  # runs/<name>/ is where its train command writes


def test_ablations_differ_from_each_other_only_in_the_objective():
    knobs = {"label_prior_variance", "mechanism_weight", "decoder_variance_scale", "kl_reduction"}
    ablations = [load_config(p) for p in CONFIGS if p.parent.name == "ablations"]
    assert len(ablations) == 3
    first = ablations[0]
    for arm in ablations[1:]:
        changed = {k for k, v in vars(arm.model).items() if vars(first.model)[k] != v}
        assert changed and changed <= knobs, (arm.name, changed)
        assert arm.train == first.train and arm.data == first.data


def test_the_baselines_share_the_shipped_recipe():
    shipped = load_config(CONFIG_DIR / "morphomnist_small.yaml")
    for name in ("morphomnist_small_diffae", "morphomnist_small_label_ddim"):
        baseline = load_config(CONFIG_DIR / f"{name}.yaml")
        assert baseline.train == shipped.train and baseline.data == shipped.data, name
        assert baseline.model == shipped.model, name  # only the model kind differs


def test_a_config_that_is_not_utf8_text_is_a_message(tmp_path, capsys):
    from cdae.cli import main

    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err
    assert "is not UTF-8 text" in err and "Traceback" not in err


def test_an_unreadable_pretrained_manifest_is_a_message_naming_it(tmp_path):
    from cdae.pretrained import read_manifest

    (tmp_path / "MANIFEST.json").write_text('{"morphomnist_small.pt": {"sha256": ')
    with pytest.raises(ValueError, match=r"MANIFEST.json is not a readable manifest.*checkout"):
        read_manifest(tmp_path)
    (tmp_path / "MANIFEST.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="holds a JSON list"):
        read_manifest(tmp_path)


@pytest.mark.parametrize("percent", [10, 50])
def test_the_weak_supervision_configs_are_the_shipped_recipe_with_fewer_labels(percent):
    shipped = load_config(CONFIG_DIR / "morphomnist_small.yaml")
    weak = load_config(CONFIG_DIR / f"morphomnist_small_weak{percent}.yaml")
    assert weak.model == shipped.model and weak.train == shipped.train
    assert weak.data.labelled_fraction == percent / 100
    assert weak.data.weak_supervision == "split"
    assert weak.data.options == shipped.data.options and weak.data.name == shipped.data.name
