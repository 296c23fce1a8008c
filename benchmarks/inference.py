"""
3D inference benchmark: time per 240 x 240 x 155 BraTS volume of the dhvae_brats bundle's slice-by-slice inference,
beside a 3D SegResNet sliding-window inference configured as the MONAI Model Zoo's ``brats_mri_segmentation``
bundle does, measured in the same run with the calls interleaved.

- *Slice by slice* (ours): ``bundles/dhvae_brats/configs/inference.yaml`` as it is (its preprocessing to
  128 x 128 x 64, ``SliceInferer`` over the 64 axial slices, sigmoid, threshold, ``Invertd`` back to the input's
  grid, ``SaveImaged``) with the paper-size 2D ``BasicUNet`` (features 64-128-256-512-1024-64, FLAIR in, WT out).
- *SegResNet 3D* (the Zoo's ``configs/inference.json``): ``SegResNet(blocks_down=(1, 2, 2, 4), blocks_up=(1, 1, 1),
  init_filters=16, in_channels=4, out_channels=3, dropout_prob=0.2)``; ``LoadImaged`` of the four sequences
  (T1c, T1, T2, FLAIR) and channel-wise ``NormalizeIntensityd`` on non-zero voxels; ``SlidingWindowInferer`` with
  ``roi_size=(240, 240, 160)``, ``sw_batch_size=1``, ``overlap=0.5``; sigmoid, ``Invertd``, threshold, the
  TC / WT / ET to BraTS label conversion, ``SaveImaged``. The Zoo runs it with AMP on CUDA; so does this script on a
  CUDA device, and in float32 on a CPU.

Both networks have random weights: this measures time only. *End to end* is a ``SupervisedEvaluator`` run over
the volume, as both bundles run it: loading, preprocessing, inference, postprocessing and writing the mask;
*network* is the inferer's call inside that run (the network on the preprocessed volume, with the inferer's
slicing or windowing and stitching). The two pipelines run in turn, ``--repeats`` times each.

    python benchmarks/inference.py --output docs/benchmarks/inference.json
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from harness import load_average, machine, resolve_device, summary, synchronize, time_interleaved, write_results
from monai.bundle import ConfigParser
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedEvaluator
from monai.inferers import SlidingWindowInferer
from monai.networks.nets import SegResNet
from monai.transforms import (
    Activationsd,
    AsDiscreted,
    Compose,
    Invertd,
    Lambdad,
    LoadImaged,
    NormalizeIntensityd,
    SaveImaged,
)

from dhvae_monai.data import make_phantom_dataset

REPO = Path(__file__).resolve().parents[1]
BUNDLE_INFERENCE = REPO / "bundles" / "dhvae_brats" / "configs" / "inference.yaml"
REAL_CASE = REPO.parent / "shared" / "data" / "real" / "brats" / "brainy_Brats18_2013_2_1"
BRATS_SHAPE = (240, 240, 155)
# the Zoo's channel order and network (models/brats_mri_segmentation/configs/inference.json)
ZOO_SEQUENCES = ("t1ce", "t1", "t2", "flair")
ZOO_NETWORK = {
    "blocks_down": (1, 2, 2, 4), "blocks_up": (1, 1, 1), "init_filters": 16, "in_channels": 4, "out_channels": 3,
    "dropout_prob": 0.2,
}
ZOO_INFERER = {"roi_size": (240, 240, 160), "sw_batch_size": 1, "overlap": 0.5}


class TimedInferer:
    """An inferer that records how long each of its calls took (device work included)."""

    def __init__(self, inferer, device: torch.device) -> None:
        self.inferer, self.device, self.seconds = inferer, device, []

    def __call__(self, inputs, network, *args, **kwargs):
        synchronize(self.device)
        started = time.perf_counter()
        output = self.inferer(inputs, network, *args, **kwargs)
        synchronize(self.device)
        self.seconds.append(time.perf_counter() - started)
        return output


class Pipeline:
    """One inference pipeline run end to end by a ``SupervisedEvaluator``, timing its inferer's calls."""

    def __init__(self, network, preprocessing, inferer, postprocessing, item: dict, device: torch.device, amp: bool):
        self.network = network.eval()
        self.inferer = TimedInferer(inferer, device)
        self.evaluator = SupervisedEvaluator(
            device=device, val_data_loader=DataLoader(Dataset([item], transform=preprocessing), batch_size=1),
            network=self.network, inferer=self.inferer, postprocessing=postprocessing, amp=amp,
        )
        self.input_shape = list(preprocessing(dict(item))["image"].shape)

    def run(self) -> None:
        self.evaluator.run()


def slice_by_slice(flair: Path, output_dir: Path, device: torch.device) -> Pipeline:
    """The dhvae_brats bundle's ``inference.yaml``, with a randomly initialised segmenter instead of ``model.pt``."""
    parser = ConfigParser()
    parser.read_config(BUNDLE_INFERENCE)
    parser["input"] = str(flair)
    parser["output_dir"] = str(output_dir)
    parser["device"] = f"$torch.device('{device}')"
    parser["network"] = "$@network_def.to(@device)"
    torch.manual_seed(0)
    item = parser.get_parsed_content("dataset").data[0]
    return Pipeline(
        parser.get_parsed_content("network"), parser.get_parsed_content("preprocessing"),
        parser.get_parsed_content("inferer"), parser.get_parsed_content("postprocessing"), item, device, amp=False,
    )


def zoo_segresnet(sequences: list[Path], output_dir: Path, device: torch.device) -> Pipeline:
    """The Model Zoo's ``brats_mri_segmentation`` inference, random weights."""
    preprocessing = Compose([
        LoadImaged(keys="image", image_only=False),
        NormalizeIntensityd(keys="image", nonzero=True, channel_wise=True),
    ])
    postprocessing = Compose([
        Activationsd(keys="pred", sigmoid=True),
        Invertd(keys="pred", transform=preprocessing, orig_keys="image", meta_keys="pred_meta_dict",
                nearest_interp=False, to_tensor=True),
        AsDiscreted(keys="pred", threshold=0.5),
        # channels TC, WT, ET to BraTS labels 1, 2, 4
        Lambdad(keys="pred", func=lambda x: torch.where(
            x[[2]] > 0, 4, torch.where(x[[0]] > 0, 1, torch.where(x[[1]] > 0, 2, 0)))),
        SaveImaged(keys="pred", meta_keys="pred_meta_dict", output_dir=str(output_dir), output_postfix="seg",
                   output_dtype="uint8", resample=False, squeeze_end_dims=True, print_log=False),
    ])
    torch.manual_seed(0)
    network = SegResNet(**ZOO_NETWORK).to(device)
    return Pipeline(
        network, preprocessing, SlidingWindowInferer(**ZOO_INFERER), postprocessing,
        {"image": [str(path) for path in sequences]}, device, amp=device.type == "cuda",
    )


def brats_case(workdir: Path) -> tuple[Path, str]:
    """The real BraTS 2018 case's folder if present, else a phantom of the same 240 x 240 x 155 grid."""
    if REAL_CASE.is_dir():
        return REAL_CASE, "Brats18_2013_2_1 (real BraTS 2018 case)"
    (case_id,) = make_phantom_dataset(workdir / "phantom", "brats2021", num_cases=1, shape=BRATS_SHAPE)
    return workdir / "phantom" / case_id, f"{case_id} (phantom, {BRATS_SHAPE})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # one SegResNet volume takes minutes on 2 CPU cores: the defaults keep the run under 20 minutes there
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (named in the results)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as workdir:
        workdir = Path(workdir)
        case_dir, case = brats_case(workdir)
        files = {path.name.rsplit("_", 1)[-1].split(".")[0]: path for path in case_dir.glob("*.nii.gz")}
        ours = slice_by_slice(files["flair"], workdir / "ours", device)
        zoo = zoo_segresnet([files[name] for name in ZOO_SEQUENCES], workdir / "zoo", device)
        load_before = load_average()
        times = time_interleaved({"slices": ours.run, "segresnet": zoo.run}, args.repeats, args.warmup, device)
        load_after = load_average()
    rows = {}
    for name, pipeline in (("slices", ours), ("segresnet", zoo)):
        rows[f"{name}_end_to_end"] = summary(times[name])
        rows[f"{name}_network"] = summary(pipeline.inferer.seconds[args.warmup:])
    for stage in ("network", "end_to_end"):
        ratio = rows[f"slices_{stage}"]["median"] / rows[f"segresnet_{stage}"]["median"]
        rows[f"slices_{stage}"]["ratio_to_segresnet"] = ratio
        print(
            f"{stage:<11} slice by slice {rows[f'slices_{stage}']['median']:7.2f} s/volume   SegResNet 3D "
            f"{rows[f'segresnet_{stage}']['median']:7.2f} s/volume   ratio {ratio:.2f}",
            flush=True,
        )
    if args.output is not None:
        write_results(args.output, {
            "machine": machine(device, args.threads),
            "load_average_before": load_before, "load_average_after": load_after,
            "case": case, "input_shape": ours.input_shape, "zoo_input_shape": zoo.input_shape,
            "parameters": {
                "basic_unet": sum(p.numel() for p in ours.network.parameters()),
                "segresnet": sum(p.numel() for p in zoo.network.parameters()),
            },
            "zoo_network": ZOO_NETWORK, "zoo_inferer": ZOO_INFERER, "rows": rows,
        })


if __name__ == "__main__":
    main()
