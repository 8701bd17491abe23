"""The model contract and the ONNX Runtime wrapper, on small hand-built ONNX graphs."""
from __future__ import annotations

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from tacforce_ros.inference.contract import METADATA_KEY, InputSpec, ModelError, ModelMetadata, StateSpec  # noqa: E402
from tacforce_ros.inference.runtime import (  # noqa: E402
    OnnxModel, RuntimeOptions, default_engine_cache, preload_gpu_libraries, resolve_providers)
from tacforce_ros.perception.force import (  # noqa: E402
    ForceRange, InputRange, NonFiniteOutput, TactileForceEstimator, load_reference_image)


def metadata(task="tactile_force", **changes) -> ModelMetadata:
    meta = ModelMetadata(
        task=task, input=InputSpec("image", 4, 6, 1, "mono8"),
        outputs={"force": {"shape": [1, 3], "units": "N", "axes": ["x", "y", "z"]}},
        state=StateSpec(("h_in",), ("h_out",), ((1, 2),)))
    return ModelMetadata(**{**meta.__dict__, **changes})


def build(path, meta: ModelMetadata | None, scale: float = 1.0, reference: bool = False):
    """Build a graph with force = [mean(image), h_in sum, scale] and h_out = h_in + 1 (so state threading shows);
    with ``reference``, a uint8 input "reference" too and force[0] = mean(image) - mean(reference).
    """
    nodes = [
        helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["f"], ["m_image"], keepdims=0),
        helper.make_node("ReduceSum", ["h_in"], ["hs"], keepdims=0),
        helper.make_node("Constant", [], ["one"], value=helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])),
        helper.make_node("Constant", [], ["s"], value=helper.make_tensor("s", TensorProto.FLOAT, [], [scale])),
        helper.make_node("Add", ["h_in", "one"], ["h_out"]),
        helper.make_node("Concat", ["m1", "hs1", "s1"], ["flat"], axis=0),
        helper.make_node("Reshape", ["flat", "shape"], ["force"]),
    ]
    if reference:
        nodes[2:2] = [helper.make_node("Cast", ["reference"], ["r"], to=TensorProto.FLOAT),
                      helper.make_node("ReduceMean", ["r"], ["m_reference"], keepdims=0),
                      helper.make_node("Sub", ["m_image", "m_reference"], ["m"])]
    else:
        nodes.insert(2, helper.make_node("Identity", ["m_image"], ["m"]))
    for name in ("m", "hs", "s"):
        nodes.insert(-2, helper.make_node("Unsqueeze", [name, "zero"], [name + "1"]))
    inits = [helper.make_tensor("zero", TensorProto.INT64, [1], [0]),
             helper.make_tensor("shape", TensorProto.INT64, [2], [1, 3])]
    graph = helper.make_graph(
        nodes, "test",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, [1, 4, 6, 1]),
         *([helper.make_tensor_value_info("reference", TensorProto.UINT8, [1, 4, 6, 1])] if reference else []),
         helper.make_tensor_value_info("h_in", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("force", TensorProto.FLOAT, [1, 3]),
         helper.make_tensor_value_info("h_out", TensorProto.FLOAT, [1, 2])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    if meta is not None:
        helper.set_model_props(model, {METADATA_KEY: meta.to_json()})
    onnx.save(model, path)
    return path


def test_runs_with_explicit_state(tmp_path):
    model = OnnxModel(build(tmp_path / "m.onnx", metadata()), "tactile_force", providers=["cpu"], warmup_runs=0)
    assert model.provider == "CPUExecutionProvider"
    image = np.full((1, 4, 6, 1), 10, np.uint8)
    out, state = model.run(image)
    np.testing.assert_allclose(out["force"], [[10.0, 0.0, 1.0]])
    out, state = model.run(image, state)
    np.testing.assert_allclose(out["force"], [[10.0, 2.0, 1.0]])
    np.testing.assert_allclose(state["h_in"], [[2.0, 2.0]])


def test_estimator_tare_reset_and_non_finite(tmp_path):
    model = OnnxModel(build(tmp_path / "m.onnx", metadata()), "tactile_force", providers=["cpu"], warmup_runs=0)
    est = TactileForceEstimator(model)
    frame = np.full((4, 6, 1), 4, np.uint8)
    with pytest.raises(RuntimeError):
        est.tare()
    est.step(frame)
    np.testing.assert_allclose(est.step(frame), [4.0, 2.0, 1.0])
    est.tare()
    np.testing.assert_allclose(est.step(frame), [0.0, 2.0, 0.0])
    est.reset()
    np.testing.assert_allclose(est.step(frame), [0.0, -2.0, 0.0])
    with pytest.raises(ValueError, match="channel"):
        est.step(np.zeros((4, 6, 3), np.uint8))
    with pytest.raises(ValueError, match="6x4"):
        est.step(np.zeros((5, 6, 1), np.uint8))
    nan_model = OnnxModel(build(tmp_path / "nan.onnx", metadata(), scale=float("nan")), "tactile_force",
                          providers=["cpu"], warmup_runs=0)
    with pytest.raises(NonFiniteOutput):
        TactileForceEstimator(nan_model).step(frame)


def reference_model(tmp_path, training=None):
    meta = metadata(input=InputSpec("image", 4, 6, 1, "mono8", reference="reference"), training=training or {})
    return OnnxModel(build(tmp_path / "ref.onnx", meta, reference=True), "tactile_force", providers=["cpu"])


def test_reference_input_is_fed_and_required(tmp_path):
    model = reference_model(tmp_path)
    frame, ref = np.full((1, 4, 6, 1), 30, np.uint8), np.full((1, 4, 6, 1), 10, np.uint8)
    out, _ = model.run(frame, reference=ref)
    np.testing.assert_allclose(out["force"], [[20.0, 0.0, 1.0]])
    with pytest.raises(ValueError, match="no-contact reference"):
        model.run(frame)
    with pytest.raises(ValueError, match="no-contact reference"):
        model.run(frame, reference=ref[:, :2])
    # metadata and graph must agree on the reference input, both ways
    plain = build(tmp_path / "plain.onnx", metadata(input=InputSpec("image", 4, 6, 1, "mono8", reference="reference")))
    with pytest.raises(ModelError, match="no uint8 input 'reference'"):
        OnnxModel(plain, "tactile_force", providers=["cpu"])
    extra = build(tmp_path / "extra.onnx", metadata(), reference=True)
    with pytest.raises(ModelError, match="differ from the metadata"):
        OnnxModel(extra, "tactile_force", providers=["cpu"])


def test_estimator_captures_the_reference_from_the_first_frames(tmp_path):
    est = TactileForceEstimator(reference_model(tmp_path), reference_frames=3)
    frames = [np.full((4, 6, 1), v, np.uint8) for v in (10, 20, 30, 50, 50)]
    forces = [est.step(f)[0] for f in frames]
    # the mean so far is the reference while capturing: 10, 15, 20; then it stays 20
    np.testing.assert_allclose(forces, [0.0, 5.0, 10.0, 30.0, 30.0])
    assert est.reference_source == "mean of 3 captured frame(s)"
    est.step(frames[0])
    est.capture_reference(frames=1)      # anew: the state is reset too
    assert est.reference_source.startswith("capturing")
    np.testing.assert_allclose(est.step(np.full((4, 6, 1), 40, np.uint8)), [0.0, 0.0, 1.0])
    np.testing.assert_allclose(est.step(np.full((4, 6, 1), 45, np.uint8))[0], 5.0)

    given = TactileForceEstimator(reference_model(tmp_path), reference=np.full((4, 6, 1), 5, np.uint8))
    assert given.step(frames[0])[0] == 5.0 and given.reference_source == "given image"
    with pytest.raises(ValueError, match="6x4"):
        given.set_reference(np.zeros((5, 6, 1), np.uint8), "test")
    plain = TactileForceEstimator(OnnxModel(build(tmp_path / "m.onnx", metadata()), "tactile_force",
                                            providers=["cpu"]))
    with pytest.raises(ValueError, match="takes no reference"):
        plain.capture_reference()


def test_input_range_flags_frames_unlike_the_training_frames(tmp_path):
    training = {"input_channel_means": {"min": [20.0], "max": [60.0]}}
    est = TactileForceEstimator(reference_model(tmp_path, training), reference_frames=1)
    est.step(np.full((4, 6, 1), 30, np.uint8))
    assert est.input_note == ""
    est.step(np.full((4, 6, 1), 70, np.uint8))       # within the margin of 12 grey levels
    assert est.input_note == ""
    est.step(np.full((4, 6, 1), 200, np.uint8))
    assert est.input_note == "input channel means [200] are far from the training frames' [20] .. [60]"
    assert InputRange.from_training({}) is None


def test_reference_image_files(tmp_path):
    import cv2
    colour = np.zeros((4, 6, 3), np.uint8)
    colour[..., 0] = 200          # red in RGB
    cv2.imwrite(str(tmp_path / "ref.png"), colour[..., ::-1])
    np.testing.assert_array_equal(load_reference_image(tmp_path / "ref.png", "rgb8"), colour)
    assert load_reference_image(tmp_path / "ref.png", "mono8").shape == (4, 6, 1)
    np.save(tmp_path / "ref.npy", colour)
    np.testing.assert_array_equal(load_reference_image(tmp_path / "ref.npy", "rgb8"), colour)
    np.save(tmp_path / "float.npy", colour.astype(np.float32))
    for bad, message in (("float.npy", "uint8"), ("missing.png", "no such file"), ("ref.npy.txt", "no such")):
        with pytest.raises(ValueError, match=message):
            load_reference_image(tmp_path / bad, "rgb8")
    (tmp_path / "junk.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="OpenCV"):
        load_reference_image(tmp_path / "junk.png", "rgb8")


def test_force_range_says_when_an_estimate_is_extrapolated_or_saturated():
    training = {"train_force_min": [-1.0, -1.0, -2.0], "train_force_max": [1.0, 1.0, 0.0],
                "model_force_range": {"min": [-1.2, -1.2, -2.2], "max": [1.2, 1.2, 0.2]}}
    limits = ForceRange.from_training(training)
    assert limits.check(np.array([0.5, -0.5, -1.0])) == ""
    assert limits.check(np.array([1.03, 0.0, 0.03])) == ""      # within 2 % of the span: noise, not news
    assert limits.check(np.array([1.1, 0.0, -1.0])) == "Fx 1.1 N is beyond the trained range [-1, 1] N (extrapolated)"
    assert limits.check(np.array([0.0, 0.0, -2.199])) == ("Fz -2.2 N is at the model's output bound [-2.2, 0.2] N: "
                                                          "the true force may be larger")
    assert limits.describe() == "Fx [-1, 1], Fy [-1, 1], Fz [-2, 0] N"
    assert ForceRange.from_training({}) is None                  # a model that does not say: nothing to check


def test_estimator_checks_the_raw_estimate_against_the_trained_range(tmp_path):
    training = {"train_force_min": [0.0, -10.0, 0.0], "train_force_max": [10.0, 10.0, 2.0]}
    est = TactileForceEstimator(OnnxModel(build(tmp_path / "m.onnx", metadata(training=training)), "tactile_force",
                                          providers=["cpu"], warmup_runs=0))
    est.step(np.full((4, 6, 1), 5, np.uint8))
    assert est.range_note == ""
    est.tare()      # the offset does not move the trained range: the check sees the model's own output
    assert est.step(np.full((4, 6, 1), 40, np.uint8))[0] == 35.0
    assert est.range_note.startswith("Fx 40 N is beyond the trained range [0, 10] N")
    plain = TactileForceEstimator(OnnxModel(build(tmp_path / "p.onnx", metadata()), "tactile_force",
                                            providers=["cpu"], warmup_runs=0))
    plain.step(np.full((4, 6, 1), 40, np.uint8))
    assert plain.range is None and plain.range_note == ""


def test_refuses_a_model_of_another_task(tmp_path):
    path = build(tmp_path / "grasp.onnx", metadata(task="grasp_map"))
    with pytest.raises(ModelError,
                       match=r"grasp\.onnx: this is a 'grasp_map' model; this node needs a 'tactile_force'"):
        OnnxModel(path, "tactile_force", providers=["cpu"])


def test_refuses_a_model_without_metadata_or_with_bad_metadata(tmp_path):
    with pytest.raises(ModelError, match="not a tacforce model"):
        OnnxModel(build(tmp_path / "plain.onnx", None), "tactile_force", providers=["cpu"])
    bad = metadata(input=InputSpec("image", 4, 6, 3, "mono8"))
    with pytest.raises(ModelError, match="does not match"):
        OnnxModel(build(tmp_path / "bad.onnx", bad), "tactile_force", providers=["cpu"])
    wrong_input = metadata(input=InputSpec("pixels", 4, 6, 1, "mono8"))
    with pytest.raises(ModelError, match="no uint8 input 'pixels'"):
        OnnxModel(build(tmp_path / "wrong.onnx", wrong_input), "tactile_force", providers=["cpu"])


@pytest.mark.parametrize("text, message", [
    ("{", "not valid JSON"),
    ("[]", "must be a JSON object"),
    (json.dumps({"schema": "other"}), "schema"),
    (json.dumps({"schema": "tacforce.model/1", "task": "tactile_force"}), "missing or has a bad field"),
])
def test_metadata_errors_are_clear(text, message):
    with pytest.raises(ModelError, match=message):
        ModelMetadata.from_json(text, "x.onnx")


def test_metadata_round_trip():
    meta = metadata(training={"frames": 10}, metrics={"fz_rmse": 0.1})
    assert ModelMetadata.from_json(meta.to_json()) == meta


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        OnnxModel(tmp_path / "none.onnx", "tactile_force")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x00\x01 not an onnx file")
    with pytest.raises(ModelError, match="corrupt.onnx: cannot load model"):
        OnnxModel(corrupt, "tactile_force")


def test_provider_preference():
    available = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert resolve_providers(["tensorrt", "cuda", "cpu"], available) == available
    assert resolve_providers(["cuda"], ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    with pytest.raises(ValueError, match="unknown execution provider 'cdua'"):
        resolve_providers(["cdua"], available)


def test_tensorrt_gets_an_engine_cache_and_fp16_option(tmp_path):
    available = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    opts = RuntimeOptions(trt_fp16=True, trt_engine_cache=str(tmp_path / "engines"))
    trt, cuda, cpu = opts.provider_list(available)
    assert trt[0] == "TensorrtExecutionProvider" and (cuda, cpu) == tuple(available[1:])
    assert trt[1]["trt_engine_cache_enable"] == "True"
    assert trt[1]["trt_engine_cache_path"] == str(tmp_path / "engines")
    assert trt[1]["trt_fp16_enable"] == "True"
    assert RuntimeOptions().provider_list(available)[0][1]["trt_fp16_enable"] == "False"


def test_engine_cache_defaults_to_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_engine_cache() == tmp_path / "tacforce" / "tensorrt"
    trt = RuntimeOptions().provider_list(["TensorrtExecutionProvider", "CPUExecutionProvider"])[0]
    assert trt[1]["trt_engine_cache_path"] == str(tmp_path / "tacforce" / "tensorrt")


class FakeOrt:
    def __init__(self, fail=False):
        self.calls, self.fail = 0, fail

    def preload_dlls(self):
        self.calls += 1
        if self.fail:
            raise OSError("libcudnn.so.9: cannot open shared object file")


def test_gpu_libraries_are_preloaded_only_for_a_gpu_provider(caplog):
    ort = FakeOrt()
    assert not preload_gpu_libraries(ort, ["CPUExecutionProvider"])
    assert preload_gpu_libraries(ort, ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert preload_gpu_libraries(ort, [("TensorrtExecutionProvider", {}), "CPUExecutionProvider"])
    assert ort.calls == 2
    assert preload_gpu_libraries(FakeOrt(fail=True), ["CUDAExecutionProvider"])  # logged, not raised
    assert "cannot open shared object" in caplog.text
    assert not preload_gpu_libraries(object(), ["CUDAExecutionProvider"])  # onnxruntime < 1.21


def test_bad_runtime_options_are_model_errors(tmp_path):
    path = build(tmp_path / "m.onnx", metadata())
    with pytest.raises(ModelError, match="providers: unknown execution provider 'foo'"):
        OnnxModel(path, "tactile_force", options=RuntimeOptions(providers=("foo",)))
    with pytest.raises(ModelError, match="threads must be >= 0"):
        OnnxModel(path, "tactile_force", options=RuntimeOptions(threads=-1))


def test_a_graph_smaller_than_its_metadata_fails_at_warm_up(tmp_path):
    path = build(tmp_path / "m.onnx", metadata(input=InputSpec("image", 5, 6, 1, "mono8")))
    with pytest.raises(ModelError, match=r"m\.onnx: warm-up run failed"):
        OnnxModel(path, "tactile_force", providers=["cpu"])


def test_session_threads_and_spinning(tmp_path):
    path = build(tmp_path / "m.onnx", metadata())
    model = OnnxModel(path, "tactile_force", options=RuntimeOptions(providers=("cpu",), threads=1))
    options = model.session.get_session_options()
    assert options.intra_op_num_threads == 1
    assert options.get_session_config_entry("session.force_spinning_stop") == "1"


def test_a_gpu_provider_that_cannot_start_falls_back_to_cpu_and_says_so(tmp_path, monkeypatch, caplog):
    """As onnxruntime-gpu on a machine without a driver: CUDA is listed but cannot start."""
    import onnxruntime as ort
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    model = OnnxModel(build(tmp_path / "m.onnx", metadata()), "tactile_force", providers=["cuda", "cpu"],
                      warmup_runs=0)
    assert model.provider == "CPUExecutionProvider"
    assert "no GPU provider could start" in caplog.text
