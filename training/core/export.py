"""The export path every task shares: a checked save (parity through the node's runtime) and tolerances.

Before a file is published it is loaded through the same OnnxModel wrapper the node uses and
run beside PyTorch; a difference over the `Tolerance` (absolute part plus a part relative to
the output's scale) is an ExportError and no file is left behind. Exporter:
torch.onnx.export(dynamo=True), opset 18 (plain ops every onnxruntime and TensorRT we target run).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from tacforce_ros.inference.contract import METADATA_KEY, ModelError, ModelMetadata
from tacforce_ros.inference.runtime import OnnxModel

OPSET = 18


class ExportError(ModelError):
    """The exported graph does not reproduce the PyTorch model."""


@dataclass(frozen=True)
class Tolerance:
    """How far ONNX Runtime may differ from PyTorch: ``atol + rtol * scale``, where scale is the
    largest |PyTorch output| over the samples. Float kernels round differently from one CPU (or
    runtime) to another, and the rounding grows with the values, so a fixed absolute bound
    fails a sound model whose outputs span tens of newtons.
    """

    atol: float
    rtol: float
    unit: str = ""

    def limit(self, scale: float) -> float:
        return self.atol + self.rtol * scale

    def describe(self, scale: float) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return (f"{self.atol:g}{unit} + {self.rtol:g} x output scale {scale:.3g}{unit} "
                f"= {self.limit(scale):.2e}{unit}")


FORCE_TOLERANCE = Tolerance(atol=1e-3, rtol=1e-3, unit="N")
PROBABILITY_TOLERANCE = Tolerance(atol=1e-4, rtol=1e-3)


def save_checked(proto, metadata: ModelMetadata, onnx_path: Path, producer: str,
                 difference, tolerance: Tolerance, what: str) -> float:
    """Write ``proto`` with ``metadata`` to ``onnx_path`` only if ``difference(tmp_file)`` (the
    largest ONNX vs PyTorch output difference and the output scale, measured on the written
    file through the node's runtime) is within ``tolerance``; else ExportError and no file.
    Returns the difference.
    """
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, metadata.to_json()
    proto.producer_name = f"tacforce {producer}"
    onnx.checker.check_model(proto)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = onnx_path.with_name(onnx_path.name + ".tmp")
    onnx.save(proto, tmp)
    try:
        diff, scale = difference(tmp)
        if not diff <= tolerance.limit(scale):
            raise ExportError(f"ONNX and PyTorch {what} differ by up to {diff:.2e}"
                              f"{' ' + tolerance.unit if tolerance.unit else ''} (tolerance "
                              f"{tolerance.describe(scale)}); {onnx_path} not written")
        os.replace(tmp, onnx_path)
    finally:
        tmp.unlink(missing_ok=True)
    return diff


def worst_difference(pairs) -> tuple[float, float]:
    """(max |onnx - torch|, max |torch|) over (onnx, torch) output pairs."""
    worst = scale = 0.0
    for got, expected in pairs:
        worst = max(worst, float(np.abs(got - expected).max()))
        scale = max(scale, float(np.abs(expected).max()))
    return worst, scale


@torch.no_grad()
def output_difference(module: nn.Module, onnx_file, task: str, output: str, frames,
                      warmup_runs: int = 2, depths=None) -> tuple[float, float]:
    """`worst_difference` of ``output`` between OnnxModel and ``module`` over single inputs
    (stateless models); ``depths`` [N, H, W, 1] go with the frames of a model with a depth input.
    """
    runtime = OnnxModel(onnx_file, task, providers=["cpu"], warmup_runs=warmup_runs)
    if depths is None:
        return worst_difference((runtime.run(frame[None])[0][output],
                                 module(torch.from_numpy(frame[None].copy())).numpy()) for frame in frames)
    return worst_difference((runtime.run(frame[None], depth=depth[None])[0][output],
                             module(torch.from_numpy(frame[None].copy()), torch.from_numpy(depth[None].copy())).numpy())
                            for frame, depth in zip(frames, depths))


@dataclass
class ModelCard:
    """The one model-card layout every task writes: the same sections in the same order, so a user
    finds input, outputs, training data, validation, export parity and the command in one place
    whatever the model. A task fills in only what is its own; `tacforce eval ... --card` later
    appends its held-out section.
    """

    about: str                        # one paragraph: the network, what goes in and what comes out
    outputs: list[str]                # bullets: names, shapes, units, frames, conventions
    training: list[str]               # bullets: data, schedule, epochs
    validation_title: str             # what the validation numbers were measured on
    validation: str                   # preformatted metrics ("" when none were recorded)
    inputs: list[str] = field(default_factory=list)   # bullets beyond the image (e.g. recurrent state)
    limits: list[str] = field(default_factory=list)   # where the model is not to be trusted
    image: str = ""                   # the image input's bullet, when it is not one uint8 NHWC frame

    def write(self, path: Path, meta: ModelMetadata, parity: str, command: str) -> None:
        """Write the card for ``meta`` to ``path``; ``parity`` is the export check's one-line result."""
        inp = meta.input
        image = self.image or (f"`{inp.name}`: uint8 [1, {inp.height}, {inp.width}, {inp.channels}] "
                               f"({inp.encoding}, NHWC), the frame as the ROS message holds it")
        lines = [f"# {path.stem}.onnx — {meta.task}", "", self.about, "",
                 "## Inputs", f"- {image}",
                 *(f"- {line}" for line in self.inputs),
                 f"- preprocessing inside the graph: {meta.preprocessing}", "",
                 "## Outputs", *(f"- {line}" for line in self.outputs), "",
                 "## Training data", *(f"- {line}" for line in self.training), "",
                 f"## Validation metrics ({self.validation_title})", "",
                 *(["```", self.validation, "```"] if self.validation else ["none recorded"]), "",
                 *(["## Limits", *(f"- {line}" for line in self.limits), ""] if self.limits else []),
                 parity, "", "## Made by", "", "```", command or "(command not recorded)", "```", ""]
        path.write_text("\n".join(lines), encoding="utf-8")
