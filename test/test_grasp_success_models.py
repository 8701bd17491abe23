"""Grasp-success architectures: shapes, torchvision-compatible names, local weights, frozen layers."""
from __future__ import annotations

import pytest
import torch

from tacforce_training.models.grasp_success import (ARCHS, GraspModelConfig, WeightsError, build, load_weights,
                                                    read_state_dict)
from tacforce_training.models.inception_v3_mixed7 import InceptionV3Mixed7
from tacforce_training.models.resnet34 import ResNet34

torch.set_num_threads(1)


@pytest.mark.parametrize("arch, size", [("tiny_cnn", 48), ("small_cnn", 96), ("resnet34", 64),
                                        ("inception_v3_mixed7", 80)])
def test_uint8_frames_in_one_logit_per_frame_out(arch, size):
    model = build(GraspModelConfig(arch=arch, image_size=size)).eval()
    with torch.no_grad():
        out = model(torch.randint(0, 256, (2, 60, 90, 3), dtype=torch.uint8))
    assert out.shape == (2, 1) and torch.isfinite(out).all()


def test_default_sizes_and_bad_configs():
    assert GraspModelConfig("small_cnn").image_size == 96
    assert GraspModelConfig("inception_v3_mixed7").image_size == 150   # seed 002's smaller input
    with pytest.raises(ValueError, match="unknown architecture"):
        GraspModelConfig("vgg16")
    with pytest.raises(ValueError, match="at least 75"):
        GraspModelConfig("inception_v3_mixed7", image_size=64)


def test_resnet34_has_torchvision_names_and_sizes():
    state = ResNet34().state_dict()
    assert state["conv1.weight"].shape == (64, 3, 7, 7)
    assert state["layer1.2.conv2.weight"].shape == (64, 64, 3, 3)
    assert state["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
    assert state["layer3.5.bn2.running_var"].shape == (256,)
    assert state["layer4.2.bn2.num_batches_tracked"].shape == ()
    assert state["fc.weight"].shape == (1, 512)
    backbone = sum(v.numel() for k, v in ResNet34().named_parameters() if not k.startswith("fc."))
    assert backbone == 21_284_672      # torchvision resnet34 minus its fc layer


def test_inception_cut_at_mixed7_is_mixed_6e_with_768_channels_at_17x17():
    net = InceptionV3Mixed7().eval()
    names = dict(net.named_children())
    assert "Mixed_6e" in names and "Mixed_7a" not in names
    with torch.no_grad():
        assert net.features(torch.zeros(1, 3, 299, 299)).shape == (1, 768, 17, 17)
    state = net.state_dict()
    assert state["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3)
    assert state["Mixed_6e.branch7x7dbl_5.conv.weight"].shape == (192, 192, 1, 7)
    assert state["Mixed_5b.branch_pool.bn.running_mean"].shape == (32,)
    head = [m for m in net.head if isinstance(m, torch.nn.Linear)]
    assert [tuple(m.weight.shape) for m in head] == [(1024, 768), (1, 1024)]
    assert any(isinstance(m, torch.nn.Dropout) and m.p == 0.2 for m in net.head)


@pytest.mark.parametrize("arch, frozen", [("resnet34", ("conv1", "bn1", "layer1")),
                                          ("inception_v3_mixed7", ("Conv2d_1a_3x3", "Mixed_6d"))])
def test_local_weights_load_strictly_and_freeze_the_seeds_layers(tmp_path, arch, frozen):
    source = build(GraspModelConfig(arch=arch, image_size=80))
    path = tmp_path / "weights.pth"
    torch.save(source.net.state_dict(), path)
    # strict round trip through the loader
    fresh = build(GraspModelConfig(arch=arch, image_size=80)).net
    assert load_weights(fresh, path) == []
    result = fresh.load_state_dict(read_state_dict(path), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    model = build(GraspModelConfig(arch=arch, image_size=80), weights=path)
    for name, tensor in model.net.state_dict().items():
        assert torch.equal(tensor, source.net.state_dict()[name]), name
    children = dict(model.net.named_children())
    for name in frozen:
        assert not any(p.requires_grad for p in children[name].parameters()), name
    assert not all(p.requires_grad for p in model.net.parameters())
    trainable = [n for n, p in model.net.named_parameters() if p.requires_grad]
    assert trainable and not any(n.startswith(frozen) for n in trainable)
    model.train()
    assert not children[frozen[0]].training       # frozen batch norms keep their statistics
    assert model.net.training


def test_torchvision_style_file_with_a_1000_class_fc_loads_the_backbone(tmp_path):
    state = ResNet34().state_dict()
    state["fc.weight"], state["fc.bias"] = torch.zeros(1000, 512), torch.zeros(1000)
    torch.save(state, tmp_path / "resnet34-imagenet.pth")
    model = build(GraspModelConfig(arch="resnet34"), weights=tmp_path / "resnet34-imagenet.pth")
    assert model.net.fc.weight.shape == (1, 512)
    assert torch.equal(model.net.layer3[0].conv1.weight, state["layer3.0.conv1.weight"])
    inception = InceptionV3Mixed7().state_dict()
    inception["Mixed_7a.branch3x3_1.conv.weight"] = torch.zeros(192, 768, 1, 1)
    inception["AuxLogits.fc.weight"] = torch.zeros(1000, 768)
    torch.save({"state_dict": {"module." + k: v for k, v in inception.items()}}, tmp_path / "inc.pth")
    skipped = load_weights(InceptionV3Mixed7(), tmp_path / "inc.pth", ("head.", "Mixed_7", "AuxLogits.", "fc."))
    assert "Mixed_7a.branch3x3_1.conv.weight" in skipped


def test_mismatched_weights_files_give_clear_errors(tmp_path):
    net = ResNet34()
    with pytest.raises(WeightsError, match="not found"):
        load_weights(net, tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(WeightsError, match="not a readable weights file"):
        load_weights(net, tmp_path / "junk.pth")
    torch.save(InceptionV3Mixed7().state_dict(), tmp_path / "inception.pth")
    with pytest.raises(WeightsError, match=r"does not fit ResNet34: \d+ missing .*conv1.weight.*\d+ unexpected"):
        load_weights(net, tmp_path / "inception.pth", ("fc.",))
    state = net.state_dict()
    state["layer1.0.conv1.weight"] = torch.zeros(32, 64, 3, 3)
    torch.save(state, tmp_path / "shape.pth")
    with pytest.raises(WeightsError, match=r"1 wrong shape \(e.g. layer1.0.conv1.weight \[32, 64, 3, 3\]"):
        load_weights(net, tmp_path / "shape.pth", ("fc.",))
    torch.save({"lr": 0.1}, tmp_path / "nodict.pth")
    with pytest.raises(WeightsError, match="no state_dict"):
        load_weights(net, tmp_path / "nodict.pth")


def test_registry_names():
    from tacforce_training.tasks.grasp_success.commands import ARCHS as CLI_ARCHS
    assert CLI_ARCHS == ARCHS


def test_training_from_weights_leaves_the_frozen_layers_unchanged(tmp_path):
    """Seed 004's set-up end to end: ResNet-34 from a local weights file, one short epoch;
    conv1/bn1/layer1 (weights and batch-norm statistics) stay as loaded, the rest trains.
    """
    from tacforce_training.tasks.grasp_success.data import load_synthetic
    from tacforce_training.tasks.grasp_success.config import GraspTrainConfig
    from tacforce_training.tasks.grasp_success.train import train
    source = ResNet34()
    torch.save(source.state_dict(), tmp_path / "r34.pth")
    frames = load_synthetic(12, seed=0, split="train", frame_size=(64, 48))
    cfg = GraspTrainConfig(model=GraspModelConfig("resnet34", image_size=48), epochs=1, batch_size=6,
                           warmup_steps=1, num_threads=1, weights=str(tmp_path / "r34.pth"), augment=None)
    result = train(cfg, frames, frames.subset(range(4)), tmp_path / "run")
    trained = torch.load(result.last_path, weights_only=True)["model"]
    before = source.state_dict()
    for key, value in before.items():
        after = trained["net." + key]
        if key.startswith(("conv1.", "bn1.", "layer1.")):
            assert torch.equal(after, value), key
    assert not torch.equal(trained["net.layer4.0.conv1.weight"], before["layer4.0.conv1.weight"])
    assert not torch.equal(trained["net.layer2.0.bn1.running_mean"], before["layer2.0.bn1.running_mean"])
    assert result.summary["frozen"] == ["conv1", "bn1", "layer1"]
