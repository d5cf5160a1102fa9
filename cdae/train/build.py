"""From a config to what training needs: the dataset and the graph, checked against the model."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cdae.config import ConfigError, ExperimentConfig
from cdae.graph import CausalGraph

if TYPE_CHECKING:
    from cdae.data.datasets import CausalImageDataset
    from cdae.data.labels import LabelNormalizer


def config_graph(config: ExperimentConfig) -> CausalGraph | None:
    """The config's ``graph:`` section as a :class:`CausalGraph`, or None to use the dataset's."""
    if config.graph is None:
        return None
    try:
        return CausalGraph.from_dict(config.graph)
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"graph: {exc}") from exc


def build_training_dataset(config: ExperimentConfig, normalizer: LabelNormalizer | None = None,
                           ) -> CausalImageDataset:
    """``build_dataset(data.name, data.split, root, **data.options)`` with the config's graph,
    weak-supervision split and (when resuming) the checkpoint's label normaliser."""
    from cdae.data.datasets import build_dataset

    data = config.data
    kwargs = dict(data.options)
    graph = config_graph(config)
    if graph is not None:
        kwargs["graph"] = graph
    if normalizer is not None:
        kwargs["normalizer"] = normalizer
    if data.labelled_fraction < 1.0 and data.weak_supervision == "split":
        kwargs.update(labelled_fraction=data.labelled_fraction, seed=config.train.seed)
    try:
        return build_dataset(data.name, data.split, root=data.root, **kwargs)
    except TypeError as exc:  # an option the dataset's builder does not take
        raise ConfigError(f"data.options {sorted(data.options)} do not fit dataset "
                          f"{data.name!r}: {exc}") from exc
    except ValueError as exc:
        if graph is None:
            raise
        raise ConfigError(f"the config's graph (nodes {graph.nodes}) does not fit dataset "
                          f"{data.name!r}: {exc}") from exc


def check_dataset(config: ExperimentConfig, dataset: CausalImageDataset) -> CausalGraph:
    """The graph to train with; raise :class:`ConfigError` if the dataset does not fit the config
    (other variables than the config's graph, or images of another shape than the model's)."""
    graph = config_graph(config) or dataset.graph
    if graph.nodes != dataset.graph.nodes or graph.categorical != dataset.graph.categorical:
        raise ConfigError(
            f"the config's graph has variables {graph.nodes} (categorical {graph.categorical}) "
            f"but the dataset's labels are {dataset.graph.nodes} (categorical "
            f"{dataset.graph.categorical}); make graph.nodes list the dataset's variables in "
            "that order, or drop the graph section to use the dataset's own graph"
        )
    model_config = config.model
    if tuple(model_config.image_shape) != tuple(dataset.image_shape):
        raise ConfigError(
            f"the model takes images {tuple(model_config.image_shape)} (model.in_channels, "
            f"model.image_size) but dataset {config.data.name!r} gives "
            f"{tuple(dataset.image_shape)}; set them to match, or resize/convert the data with "
            "data.options {size: ..., channels: ...}"
        )
    return graph
