"""Guidance sweeps: the same evaluation at several weights, gathered into one frame."""

import numpy as np
import pytest

from cdae.data.morphomnist import tutorial_root
from cdae.evaluate import EvaluationConfig, guidance_sweep, sweep_frame
from cdae.pretrained import load_pretrained


@pytest.mark.slow
def test_a_sweep_evaluates_every_weight_on_the_same_images():
    cf = load_pretrained("morphomnist_small")
    config = EvaluationConfig(n=4, steps=3, batch_size=4, cycles=(1,), composition_n=2,
                              tables=["true_error", "composition"], progress=False)
    reports = guidance_sweep(cf, "morphomnist", [0.0, 3.0], tutorial_root(smoke=True), config,
                             progress=False)
    assert [report.meta["guidance"] for report in reports.values()] == [0.0, 3.0]
    frame = sweep_frame(reports)
    assert set(frame["table"]) == {"true_error", "composition"}
    assert np.isfinite(frame["value"]).all()
    l1 = frame.query("table == 'true_error' and metric == 'l1'").pivot_table(
        "value", "intervened", "guidance")
    # the unconditional decoder ignores the code that w = 3 amplifies: the images differ
    assert not np.allclose(l1[0.0], l1[3.0])


def test_an_empty_sweep_is_refused():
    with pytest.raises(ValueError, match="at least one guidance weight"):
        guidance_sweep(None, "morphomnist", [])
