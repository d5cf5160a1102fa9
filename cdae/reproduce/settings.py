"""What the paper reproduction runs: which shipped models are compared, on how many test images,
at how many DDIM steps. :meth:`ReproductionSettings.full` is sized to finish in under 15 minutes
on a 2-core laptop CPU; :meth:`ReproductionSettings.smoke` shrinks every loop for CI.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

#: The shipped models each comparison table holds, by display name, per dataset. Every model of a
#: dataset is scored on the same test images with the same intervention values.
COMPARISONS: dict[str, dict[str, str]] = {
    "morphomnist": {"CausalDiffAE": "morphomnist_small", "Diff-AE": "morphomnist_small_diffae",
                    "label DDIM": "morphomnist_small_label_ddim"},
    "pendulum": {"CausalDiffAE": "pendulum_small", "Diff-AE": "pendulum_small_diffae",
                 "label DDIM": "pendulum_small_label_ddim"},
}

#: Causal Morpho-MNIST models trained with all, half and a tenth of the labels (same budget).
WEAK_SUPERVISION: dict[str, str] = {"100% labels": "morphomnist_small",
                                    "50% labels": "morphomnist_small_weak50",
                                    "10% labels": "morphomnist_small_weak10"}

#: The paper-style grids: per dataset, the columns' titles and their do() (natural units).
GRID_INTERVENTIONS: dict[str, dict[str, dict[str, float]]] = {
    "morphomnist": {"do(t = 1.5)": {"thickness": 1.5}, "do(t = 4)": {"thickness": 4.0},
                    "do(i = 80)": {"intensity": 80.0}, "do(i = 240)": {"intensity": 240.0},
                    "do(digit = 3)": {"digit": 3}, "do(digit = 8)": {"digit": 8}},
    "pendulum": {"do(pendulum = -30)": {"pendulum_angle": -30.0},
                 "do(pendulum = 30)": {"pendulum_angle": 30.0},
                 "do(light = 60)": {"light_angle": 60.0},
                 "do(light = 120)": {"light_angle": 120.0}},
}


@dataclass(frozen=True)
class ReproductionSettings:
    """Sizes of every part of the reproduction.

    Attributes:
        n: test images (scenes) each comparison model intervenes on, per dataset.
        steps: DDIM steps of inversion and decoding in the tables and grids.
        composition_n: images cycled through null interventions (the slowest part).
        cycles: null-intervention counts of the composition table.
        realism_n, dci_n: real reference images for FID/KID; images encoded for DCI.
        weak_n, weak_steps, weak_weights: test digits, DDIM steps and guidance weights of the
            weak-supervision sweep.
        speed_n, speed_steps: test digits and DDIM step counts of the speed/quality curve.
        grid_images: rows of each paper-style grid.
        seed: picks the images and the intervention values.
    """

    n: dict[str, int] = field(default_factory=lambda: {"morphomnist": 128, "pendulum": 32})
    steps: int = 50
    composition_n: int = 12
    cycles: tuple[int, ...] = (1, 10)
    realism_n: int = 2000
    dci_n: int = 1000
    weak_n: int = 32
    weak_steps: int = 25
    weak_weights: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 3.0, 5.0)
    speed_n: int = 16
    speed_steps: tuple[int, ...] = (10, 20, 50, 100, 250)
    grid_images: int = 4
    seed: int = 0

    @classmethod
    def full(cls) -> ReproductionSettings:
        """The reader's setting (the numbers the README quotes)."""
        return cls()

    @classmethod
    def smoke(cls) -> ReproductionSettings:
        """Every loop small: a CI check that the whole pipeline runs, not numbers to quote (10
        DDIM steps: at 5 the Pendulum decoder saturates to a white image)."""
        return replace(cls(), n={"morphomnist": 8, "pendulum": 8}, steps=10, composition_n=4,
                       cycles=(1, 2), realism_n=200, dci_n=200, weak_n=4, weak_steps=10,
                       weak_weights=(0.0, 1.0, 3.0), speed_n=2, speed_steps=(5, 10),
                       grid_images=2)
