"""Specs: GPUs, nodes and clusters, model architectures, parallelism. Data, not behaviour."""

from servesim.specs.catalog import get_model, model_names
from servesim.specs.cluster import ClusterSpec, make_cluster
from servesim.specs.gpu import GpuSpec, get_gpu, gpu_names
from servesim.specs.hf_config import from_hf_config, load_hf_config
from servesim.specs.model import ModelSpec

__all__ = [
    "ClusterSpec",
    "GpuSpec",
    "ModelSpec",
    "from_hf_config",
    "get_gpu",
    "get_model",
    "gpu_names",
    "load_hf_config",
    "make_cluster",
    "model_names",
]
