"""The one ONNX Runtime wrapper every node (and `tacforce eval`) runs models through.

It picks execution providers from a preference list (TensorRT -> CUDA -> CPU by default, using
what this onnxruntime build has), reads and checks the model contract, warms up, and runs one
frame with any recurrent state passed in and handed back explicitly.  On a GPU provider the
inputs and outputs go through IO binding so the state can stay on the device between frames.

GPU set-up lives here too, so every node gets it: the CUDA/cuDNN libraries that pip installs
(nvidia-* wheels) are preloaded before a GPU session is made, and TensorRT keeps its engines in
a cache folder (built once, not at every start) with FP16 on request.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .contract import METADATA_KEY, ModelError, ModelMetadata

log = logging.getLogger(__name__)

PROVIDER_NAMES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
DEFAULT_PROVIDERS = ("tensorrt", "cuda", "cpu")
GPU_PROVIDERS = (PROVIDER_NAMES["tensorrt"], PROVIDER_NAMES["cuda"])


def default_engine_cache() -> Path:
    """Per-user cache for TensorRT engines ($XDG_CACHE_HOME/tacforce/tensorrt)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tacforce" / "tensorrt"


@dataclass(frozen=True)
class RuntimeOptions:
    """How a model runs: provider preference, CPU threads and TensorRT settings.

    ``threads`` 0 lets ONNX Runtime pick (one per core). Its worker threads spin while a run
    is in progress (fast hand-offs between them) and stop when it ends; ``spin_between_runs``
    keeps them busy-waiting between runs too (ONNX Runtime's default), which costs a core per
    thread for little gain at camera rates.
    ``trt_engine_cache`` empty means `default_engine_cache()`.
    """

    providers: tuple[str, ...] = DEFAULT_PROVIDERS
    threads: int = 0
    spin_between_runs: bool = False
    trt_fp16: bool = False
    trt_engine_cache: str = ""

    def provider_list(self, available: Sequence[str]) -> list:
        """Return the providers for `InferenceSession`, TensorRT with its options; ModelError on a bad name."""
        try:
            chosen = resolve_providers(self.providers, available)
        except ValueError as exc:
            raise ModelError(f"providers: {exc}") from None
        cache = str(Path(self.trt_engine_cache).expanduser() if self.trt_engine_cache
                    else default_engine_cache())
        trt = {"trt_engine_cache_enable": "True", "trt_engine_cache_path": cache,
               "trt_timing_cache_enable": "True", "trt_timing_cache_path": cache,
               "trt_fp16_enable": str(self.trt_fp16)}
        return [(name, trt) if name == PROVIDER_NAMES["tensorrt"] else name for name in chosen]


def resolve_providers(preferred: Sequence[str], available: Sequence[str]) -> list[str]:
    """Map short names ('tensorrt', 'cuda', 'cpu') to the installed providers, in order.

    Unknown names are an error (a typo in a config should not silently mean CPU); names this
    build lacks are skipped. CPU is always last so a model always loads somewhere.
    """
    chosen = []
    for name in preferred:
        key = name.strip().lower()
        if key not in PROVIDER_NAMES:
            raise ValueError(f"unknown execution provider {name!r} (use {', '.join(PROVIDER_NAMES)})")
        full = PROVIDER_NAMES[key]
        if full in available and full not in chosen:
            chosen.append(full)
    if PROVIDER_NAMES["cpu"] not in chosen:
        chosen.append(PROVIDER_NAMES["cpu"])
    return chosen


def gpu_requested(providers: Sequence) -> bool:
    """Whether a session provider list (names or (name, options)) holds a GPU provider."""
    return any((p[0] if isinstance(p, tuple) else p) in GPU_PROVIDERS for p in providers)


def preload_gpu_libraries(ort, providers: Sequence) -> bool:
    """Load the CUDA/cuDNN libraries of pip's nvidia-* wheels before a GPU session is made.

    onnxruntime-gpu finds them only on the loader path otherwise; ``preload_dlls`` (onnxruntime
    >= 1.21) looks in the nvidia site-packages first. A failure is logged, not raised: the
    session then falls back to CPU and the provider in use says so. Returns whether it ran.
    """
    if not gpu_requested(providers) or not hasattr(ort, "preload_dlls"):
        return False
    try:
        ort.preload_dlls()
    except Exception as exc:  # a missing or mismatched library: CPU will serve
        log.warning("could not preload CUDA/cuDNN libraries: %s", exc)
    return True


class OnnxModel:
    """A loaded, checked, warmed-up model.

    ``run(image, state, reference, depth)`` takes one uint8 NHWC batch (or, for a model whose input
    names ``frames`` = T, the last T frames as uint8 [1, T, H, W, C]), the recurrent state (None for
    the model's initial state), for a model whose input names a ``reference``, the sensor's
    no-contact frame in the image's shape, and for one whose input names ``depth``, the aligned
    depth in metres (float32 H x W or [1, H, W, 1]), and returns ``(outputs, next_state)``: outputs as numpy arrays,
    the state as numpy on CPU or device-resident OrtValues on a GPU provider; either way it is
    only ever passed back to ``run``.
    """

    def __init__(self, path: str | Path, expected_task: str,
                 providers: Sequence[str] = DEFAULT_PROVIDERS, threads: int = 0,
                 warmup_runs: int = 2, options: RuntimeOptions | None = None):
        import onnxruntime as ort

        self.path = Path(path)
        source = str(self.path)
        if not self.path.is_file():
            raise ModelError(f"{source}: model file not found")
        opts = options or RuntimeOptions(tuple(providers), threads)
        if opts.threads < 0:
            raise ModelError(f"threads must be >= 0 (0: one per core), got {opts.threads}")
        session_options = ort.SessionOptions()
        session_options.intra_op_num_threads = opts.threads
        if not opts.spin_between_runs:
            session_options.add_session_config_entry("session.force_spinning_stop", "1")
        session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session_options.log_severity_level = 3
        provider_list = opts.provider_list(ort.get_available_providers())
        for provider in provider_list:
            if isinstance(provider, tuple):  # TensorRT: its engine cache must exist
                Path(provider[1]["trt_engine_cache_path"]).mkdir(parents=True, exist_ok=True)
        preload_gpu_libraries(ort, provider_list)
        try:
            self.session = ort.InferenceSession(source, sess_options=session_options, providers=provider_list)
        except Exception as exc:  # onnxruntime raises several private exception types
            raise ModelError(f"{source}: cannot load model ({str(exc).splitlines()[0]})") from None
        custom = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in custom:
            raise ModelError(f"{source}: no '{METADATA_KEY}' metadata; not a tacforce model "
                             "(export it with `tacforce export`)")
        self.metadata = ModelMetadata.from_json(custom[METADATA_KEY], source)
        self.metadata.check_task(expected_task, source)
        self._check_graph(source)
        self.provider = self.session.get_providers()[0]
        self._on_gpu = self.provider != PROVIDER_NAMES["cpu"]
        self._output_names = [o.name for o in self.session.get_outputs()]
        log.info("%s: %s model on %s", source, self.metadata.task, self.provider)
        if not self._on_gpu and gpu_requested(provider_list):
            log.warning("%s: no GPU provider could start (driver, CUDA or cuDNN missing?); running on CPU", source)
        try:
            for _ in range(warmup_runs):
                self.run(self.blank_input(), reference=self.blank_input(), depth=self.blank_depth())
        except Exception as exc:  # e.g. a graph whose fixed size differs from its metadata
            raise ModelError(f"{source}: warm-up run failed ({str(exc).splitlines()[0]})") from None

    def _check_graph(self, source: str) -> None:
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name for o in self.session.get_outputs()}
        spec = self.metadata.input
        if spec.name not in inputs or inputs[spec.name].type != "tensor(uint8)":
            raise ModelError(f"{source}: graph has no uint8 input {spec.name!r} as its metadata says")
        state = self.metadata.state
        wanted_in = set(state.inputs) if state else set()
        wanted_out = set(self.metadata.outputs) | (set(state.outputs) if state else set())
        if spec.reference is not None and (spec.reference not in inputs
                                           or inputs[spec.reference].type != "tensor(uint8)"):
            raise ModelError(f"{source}: graph has no uint8 input {spec.reference!r} as its metadata says")
        if spec.depth is not None and (spec.depth not in inputs or inputs[spec.depth].type != "tensor(float)"):
            raise ModelError(f"{source}: graph has no float input {spec.depth!r} as its metadata says")
        extra = {name for name in (spec.reference, spec.depth) if name}
        if set(inputs) != {spec.name} | wanted_in | extra:
            raise ModelError(f"{source}: graph inputs {sorted(inputs)} differ from the metadata")
        if not wanted_out <= outputs:
            raise ModelError(f"{source}: graph outputs {sorted(outputs)} lack {sorted(wanted_out - outputs)}")

    def blank_input(self) -> np.ndarray:
        return np.zeros(self.metadata.input.shape, np.uint8)

    def blank_depth(self) -> np.ndarray | None:
        """Return a depth input with no readings (zeros), or None for a model without one."""
        spec = self.metadata.input
        return None if spec.depth is None else np.zeros(spec.depth_shape, np.float32)

    def initial_state(self) -> dict[str, np.ndarray]:
        state = self.metadata.state
        if state is None:
            return {}
        return {name: np.zeros(shape, np.float32) for name, shape in zip(state.inputs, state.shapes)}

    def run(self, image: np.ndarray, state: dict | None = None,
            reference: np.ndarray | None = None,
            depth: np.ndarray | None = None) -> tuple[dict[str, np.ndarray], dict]:
        spec = self.metadata.input
        feeds = {spec.name: np.ascontiguousarray(image, dtype=np.uint8)}
        if spec.depth is not None:
            h, w = np.shape(image)[-3:-1]
            if depth is None or np.shape(depth) not in ((h, w), (1, h, w, 1)):
                raise ValueError(f"this model takes depth aligned to the {w}x{h} image as {spec.depth!r}, got "
                                 f"{None if depth is None else list(np.shape(depth))}")
            feeds[spec.depth] = np.ascontiguousarray(np.reshape(depth, (1, h, w, 1)), dtype=np.float32)
        if spec.reference is not None:
            if reference is None or np.shape(reference) != np.shape(image):
                raise ValueError(f"this model takes a no-contact reference frame of the image's shape "
                                 f"{list(np.shape(image))} as {spec.reference!r}, got "
                                 f"{None if reference is None else list(np.shape(reference))}")
            feeds[spec.reference] = np.ascontiguousarray(reference, dtype=np.uint8)
        feeds.update(self.initial_state() if state is None else state)
        if self._on_gpu:
            values = self._run_bound(feeds)
        else:
            values = self.session.run(self._output_names, feeds)
        results = dict(zip(self._output_names, values))
        spec = self.metadata.state
        next_state = {} if spec is None else {
            i: results.pop(o) for i, o in zip(spec.inputs, spec.outputs)}
        return results, next_state

    def _run_bound(self, feeds: dict) -> list:
        """GPU path: the image goes up once, results come back to the host, and the recurrent
        state stays on the device as OrtValues between frames (fed back by ``run``).
        """
        binding = self.session.io_binding()
        for name, value in feeds.items():
            if isinstance(value, np.ndarray):
                binding.bind_cpu_input(name, value)
            else:
                binding.bind_ortvalue_input(name, value)
        state_outputs = set(self.metadata.state.outputs) if self.metadata.state else set()
        for name in self._output_names:
            binding.bind_output(name, "cuda" if name in state_outputs else "cpu")
        self.session.run_with_iobinding(binding)
        return [value if name in state_outputs else value.numpy()
                for name, value in zip(self._output_names, binding.get_outputs())]

    def time_run(self, runs: int = 50) -> np.ndarray:
        """Per-run inference time in seconds on a blank frame (for benchmarks and diagnostics)."""
        image, state = self.blank_input(), self.initial_state()
        times = np.empty(runs)
        for k in range(runs):
            start = time.perf_counter()
            _, state = self.run(image, state, reference=image, depth=self.blank_depth())
            times[k] = time.perf_counter() - start
        return times
