"""The benchmarks' baselines compute what they claim to, so the ratios they report compare like with like."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from monai.inferers import SliceInferer, SlidingWindowInferer
from monai.networks.nets import BasicUNet, SegResNet
from monai.transforms import Compose, Transform

from dhvae_monai.data import TumourSliceDataset, make_phantom_dataset
from dhvae_monai.transforms import brats_volume_transforms

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    if str(BENCHMARKS) not in sys.path:  # the scripts import their sibling harness.py, as when run from the shell
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("leapfrog_steps", [1, 3])
def test_recomputing_leapfrog_follows_the_same_trajectory_with_twice_the_evaluations(leapfrog_steps):
    generator_step = _load("generator_step")
    torch.manual_seed(3)
    pair = torch.cat([torch.rand(2, 1, 32, 32), (torch.rand(2, 1, 32, 32) > 0.8).float()], dim=1)
    outputs, calls = [], []
    for recompute in (False, True):
        network = generator_step._network(32, leapfrog_steps, recompute, "phantom")
        count = [0]
        potential_energy = network.potential_energy

        def counted(*args, _count=count, _potential=potential_energy, **kwargs):
            _count[0] += 1
            return _potential(*args, **kwargs)

        network.potential_energy = counted
        torch.manual_seed(5)
        outputs.append(network(pair, return_flow=True))
        calls.append(count[0])
    assert calls == [leapfrog_steps + 1, 2 * leapfrog_steps]
    torch.testing.assert_close(outputs[0].z_k, outputs[1].z_k)
    torch.testing.assert_close(outputs[0].reconstruction, outputs[1].reconstruction)


def test_benchmarked_networks_are_the_bundles():
    harness = _load("harness")
    paper = dict(harness.NETWORKS["paper"])
    # the paper's network is DHVAE's defaults (configs/common.yaml), attention at the deepest level only
    assert paper == {
        "channels": (128, 256, 512, 512), "num_res_blocks": 2, "attention_levels": (False, False, False, True),
        "norm_num_groups": 32,
    }
    assert harness.NETWORKS["phantom"]["channels"] == (16, 32, 64, 64)


def test_interleaved_timing_alternates_candidates_after_warmup():
    harness = _load("harness")
    order = []
    times = harness.time_interleaved(
        {"a": lambda: order.append("a"), "b": lambda: order.append("b")}, repeats=2, warmup=1,
        device=torch.device("cpu"),
    )
    assert order == ["a", "b"] * 3
    assert [len(seconds) for seconds in times.values()] == [2, 2]
    with pytest.raises(ValueError, match="CUDA is not available"):
        if not torch.cuda.is_available():
            harness.resolve_device("cuda")
        else:  # pragma: no cover - a CUDA machine has nothing to refuse here
            raise ValueError("CUDA is not available")


def test_latent_diffusion_sampler_runs_50_ddim_steps_and_one_decode():
    sampling = _load("sampling")
    generator = sampling.dhvae("phantom", 32)
    denoiser = {"channels": (16, 32), "num_res_blocks": 1, "attention_levels": (False, True), "num_head_channels": 8,
                "norm_num_groups": 8}
    ldm = sampling.LatentDiffusionSampler(generator, denoiser=denoiser)
    calls = {"denoiser": 0, "decoder": 0}

    def count(name):
        def hook(*_):
            calls[name] += 1

        return hook

    ldm.denoiser.register_forward_hook(count("denoiser"))
    ldm.autoencoder.decoder.register_forward_hook(count("decoder"))
    pairs = ldm.sample(3)
    assert calls == {"denoiser": 50, "decoder": 1}
    assert pairs.shape == (3, 2, 32, 32)
    # the LDM decodes with the generator's own backbone, so both samplers end with the same decoder
    assert ldm.autoencoder is generator.autoencoder
    assert sampling.DDIM_STEPS == 50


def test_segresnet_baseline_is_configured_as_the_model_zoo_bundle(tmp_path):
    inference = _load("inference")
    # models/brats_mri_segmentation/configs/inference.json of the MONAI Model Zoo
    assert inference.ZOO_NETWORK == {
        "blocks_down": (1, 2, 2, 4), "blocks_up": (1, 1, 1), "init_filters": 16, "in_channels": 4, "out_channels": 3,
        "dropout_prob": 0.2,
    }
    assert inference.ZOO_INFERER == {"roi_size": (240, 240, 160), "sw_batch_size": 1, "overlap": 0.5}
    (case,) = make_phantom_dataset(tmp_path / "phantom", "brats2021", num_cases=1, shape=(24, 24, 16))
    files = [tmp_path / "phantom" / case / f"{case}_{name}.nii.gz" for name in inference.ZOO_SEQUENCES]
    zoo = inference.zoo_segresnet(files, tmp_path / "zoo", torch.device("cpu"))
    assert isinstance(zoo.network, SegResNet) and isinstance(zoo.inferer.inferer, SlidingWindowInferer)
    assert zoo.inferer.inferer.roi_size == (240, 240, 160) and zoo.inferer.inferer.overlap == 0.5
    assert zoo.input_shape == [4, 24, 24, 16]  # the four sequences stacked as channels, native grid

    ours = inference.slice_by_slice(files[-1], tmp_path / "ours", torch.device("cpu"))
    assert isinstance(ours.network, BasicUNet) and isinstance(ours.inferer.inferer, SliceInferer)
    assert ours.input_shape == [1, 128, 128, 64]  # the bundle's preprocessing: FLAIR resized to 128 x 128 x 64


def test_timed_inferer_records_each_call():
    inference = _load("inference")
    timed = inference.TimedInferer(lambda inputs, network: network(inputs), torch.device("cpu"))
    assert timed(torch.ones(2), lambda x: 2 * x).tolist() == [2.0, 2.0]
    timed(torch.ones(2), lambda x: x)
    assert len(timed.seconds) == 2


class CountingTransform(Transform):
    """Counts the volumes that reach the end of the preprocessing (deterministic, so datasets cache it)."""

    def __init__(self):
        self.calls = 0

    def __call__(self, item):
        self.calls += 1
        return item


def _counted_preprocessing() -> tuple[Compose, CountingTransform]:
    # one flat Compose, as brats_volume_transforms returns it, so the disk caches' transform hash is the same
    # for every instance
    counter = CountingTransform()
    return Compose([*brats_volume_transforms(spatial_size=(32, 32, 12)).transforms, counter]), counter


def test_only_the_uncached_loader_reruns_the_volume_preprocessing(tmp_path):
    data_loading = _load("data_loading")
    items, sources = data_loading.volume_items(tmp_path, num_phantoms=2, shape=(48, 48, 24), real=False)
    assert len(items) == 2 and sources == ["2 phantoms (48, 48, 24)"]
    reads = {}
    for name in ("no_cache", "memory_cache", "disk_cache", "memory_and_disk_cache"):
        transform, counter = _counted_preprocessing()
        volumes = data_loading.volume_datasets(items, transform, tmp_path / "cache")[name]()
        slices = TumourSliceDataset(volumes, min_tumour_area=4, area_bin_width=4)
        after_setup = counter.calls
        slices[0], slices[len(slices) - 1]
        reads[name] = (after_setup, counter.calls - after_setup)
    assert reads["no_cache"] == (2, 2)  # every slice read preprocesses its volume again
    assert reads["memory_cache"] == reads["disk_cache"] == reads["memory_and_disk_cache"] == (2, 0)
    # a second dataset over the same disk cache reads it without preprocessing anything
    for name in ("disk_cache", "memory_and_disk_cache"):
        transform, counter = _counted_preprocessing()
        rerun = data_loading.volume_datasets(items, transform, tmp_path / "cache")[name]()
        TumourSliceDataset(rerun, min_tumour_area=4, area_bin_width=4)[0]
        assert counter.calls == 0, name
