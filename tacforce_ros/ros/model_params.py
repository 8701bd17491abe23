"""The runtime and input parameters every model node declares, and model loading that fails in one line."""
from __future__ import annotations

from typing import Callable, TypeVar

from rclpy.node import Node

from ..inference.contract import ModelError
from ..inference.runtime import DEFAULT_PROVIDERS, OnnxModel, RuntimeOptions
from .params import declare

T = TypeVar("T")
MAX_PIXELS_LIMIT = 1 << 28  # 16384 x 16384: the most max_image_pixels may allow


def declare_runtime(node: Node) -> RuntimeOptions:
    """Declare providers, intra_op_threads, trt_fp16, trt_engine_cache (see README, "GPU")."""
    providers = declare(node, "providers", list(DEFAULT_PROVIDERS),
                        "ONNX Runtime execution providers in order of preference (tensorrt, cuda, cpu)")
    threads = declare(node, "intra_op_threads", 1,
                      "ONNX Runtime CPU threads for one inference (0: one per core)", limits=(0, 64))
    fp16 = declare(node, "trt_fp16", False, "TensorRT: build FP16 engines (faster, slightly less exact)")
    cache = declare(node, "trt_engine_cache", "",
                    "TensorRT engine cache folder (empty: $XDG_CACHE_HOME/tacforce/tensorrt)")
    return RuntimeOptions(providers=tuple(providers), threads=threads, trt_fp16=fp16, trt_engine_cache=cache)


def declare_common(node: Node) -> tuple[int, float]:
    """max_image_pixels and diagnostics_period, the same in every image node."""
    max_pixels = declare(node, "max_image_pixels", 4096 * 4096,
                         "Frames with more pixels are rejected before decoding", limits=(1, MAX_PIXELS_LIMIT))
    period = declare(node, "diagnostics_period", 1.0, "Seconds between /diagnostics reports",
                     limits=(0.05, 3600.0))
    return max_pixels, period


def load_model(node: Node, path: str, task: str, options: RuntimeOptions,
               wrap: Callable[[OnnxModel], T] = lambda model: model) -> T:
    """Load, check and wrap a model; any refusal stops the node with one line naming the file."""
    try:
        return wrap(OnnxModel(path, task, options=options))
    except (ModelError, ValueError) as exc:
        raise SystemExit(f"{node.get_name()}: {exc}") from None
