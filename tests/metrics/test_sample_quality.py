from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from monai.networks.nets import BasicUNet
from PIL import Image

from dhvae_monai.metrics import evaluate_sample_quality
from dhvae_monai.networks import DHVAE

SIZE = 32
SEGMENTER_FEATURES = (4, 8, 8, 8, 6, 4)  # 6 bottleneck features


def _generator(mask_bias: float = 0.0) -> DHVAE:
    torch.manual_seed(0)
    net = DHVAE(image_size=SIZE, channels=(8, 8), num_res_blocks=1, attention_levels=(False, False), norm_num_groups=8,
                leapfrog_steps=1)
    with torch.no_grad():
        net.output_layer.bias[1] += mask_bias
    return net


def _segmenter() -> BasicUNet:
    torch.manual_seed(0)
    return BasicUNet(spatial_dims=2, in_channels=1, out_channels=1, features=SEGMENTER_FEATURES, norm="batch")


def _real_slices(count: int = 10, patients: int = 3) -> list[dict]:
    random = torch.Generator().manual_seed(0)
    rows, columns = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    slices = []
    for index in range(count):
        row, column = torch.randint(10, SIZE - 10, (2,), generator=random).tolist()
        label = (((rows - row) ** 2 + (columns - column) ** 2) < 16 + index).float()[None]
        image = (0.3 + 0.5 * label + 0.05 * torch.randn(1, SIZE, SIZE, generator=random)).clamp(0, 1)
        slices.append({"image": image, "label": label, "case_id": f"patient_{index % patients}"})
    return slices


@pytest.fixture(scope="module")
def report():
    return evaluate_sample_quality(_generator(), _real_slices(), _segmenter(), num_samples=12, min_tumour_area=1,
                                   num_diversity_pairs=20, batch_size=8, num_preview=5, seed=1)


def test_scores_have_every_part_in_range(report):
    scores = report.scores
    reconstruction = scores["reconstruction"]
    assert reconstruction["num_slices"] == 10 and reconstruction["psnr"] > 0
    assert -1 <= reconstruction["ssim"] <= 1 and 0 <= reconstruction["mask_dice"] <= 1
    assert scores["acceptance"] == {"num_draws": 12, "num_kept": 12, "acceptance_rate": 1.0,
                                    "border_fraction": scores["acceptance"]["border_fraction"], "min_tumour_area": 1.0}
    assert 0 <= scores["acceptance"]["border_fraction"] <= 1
    diversity = scores["diversity"]
    assert 0 <= diversity["ms_ssim_synthetic"] <= 1 and 0 <= diversity["ms_ssim_real"] <= 1
    assert diversity["num_pairs_synthetic"] == diversity["num_pairs_real"] == 20
    distance = scores["feature_distance"]
    assert (distance["layer"], distance["num_features"]) == ("down_4", 6)
    assert (distance["num_real"], distance["num_synthetic"]) == (10, 12)
    # 10 real and 12 synthetic vectors: enough for FID in 6 dimensions; the real halves (about 5 each) are not
    assert distance["synthetic_vs_real"]["num_samples"] == 10 and distance["synthetic_vs_real"]["fid"] > 0
    assert math.isfinite(distance["synthetic_vs_real"]["mmd"])
    real = distance["real_vs_real"]
    assert real["split"] == "patients" and real["num_samples"] < 6 and math.isnan(real["fid"])
    assert math.isfinite(real["mmd"])
    assert scores["notes"] == [
        f"real_vs_real: FID needs more vectors per set than the 6 feature dimensions (for a full-rank covariance), "
        f"got {real['num_samples']}: use more slices or a layer with fewer channels."
    ]
    assert scores["seed"] == 1


def test_same_seed_same_report(report):
    again = evaluate_sample_quality(_generator(), _real_slices(), _segmenter(), num_samples=12, min_tumour_area=1,
                                    num_diversity_pairs=20, batch_size=8, num_preview=5, seed=1)
    assert json.dumps(again.scores) == json.dumps(report.scores)  # NaN-safe equality
    torch.testing.assert_close(again.synthetic_pairs, report.synthetic_pairs)


def test_save_writes_strict_json_and_a_real_above_synthetic_preview(report, tmp_path):
    json_path, png_path = report.save(tmp_path / "quality")
    assert (json_path.name, png_path.name) == ("quality.json", "real_vs_synthetic.png")

    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")

    written = json.loads(json_path.read_text(), parse_constant=refuse)
    assert written["feature_distance"]["real_vs_real"]["fid"] is None
    assert written["acceptance"] == report.scores["acceptance"]
    assert report.real_pairs.shape == report.synthetic_pairs.shape == (5, 2, SIZE, SIZE)
    with Image.open(png_path) as image:
        grid = np.asarray(image.convert("RGB"))
    tile = SIZE + 2  # make_pair_grid's padding
    assert grid.shape == (tile + 6 + tile, 5 * tile, 3)  # one row of real pairs, the band, one of synthetic pairs
    np.testing.assert_array_equal(grid[tile : tile + 6], 128)
    np.testing.assert_array_equal(grid, report.preview_grid())
    # the top block shows the real images (grey values of the first real pair, away from its outline)
    first_real = report.real_pairs[0, 0]
    assert abs(float(grid[:SIZE, :SIZE, 1].mean()) / 255 - float(first_real.mean())) < 0.05


def test_a_generator_without_tumours_gets_acceptance_zero_and_named_gaps(tmp_path):
    report = evaluate_sample_quality(_generator(mask_bias=-20.0), _real_slices(count=4, patients=1), _segmenter(),
                                     num_samples=8, min_tumour_area=1, batch_size=8)
    scores = report.scores
    assert scores["acceptance"]["acceptance_rate"] == 0.0 and math.isnan(scores["acceptance"]["border_fraction"])
    assert math.isnan(scores["diversity"]["ms_ssim_synthetic"]) and scores["diversity"]["num_pairs_synthetic"] == 0
    assert math.isnan(scores["feature_distance"]["synthetic_vs_real"]["mmd"])
    assert scores["feature_distance"]["real_vs_real"]["split"] == "slices"  # one patient: alternate slices
    assert any(note.startswith("real_vs_real: the real slices come from one patient") for note in scores["notes"])
    assert scores["notes"][0] == "no prior draw passed the tumour-area filter (min_tumour_area 1)."
    assert "synthetic_vs_real: MMD and FID need at least 2 vectors per set, got 0." in scores["notes"]
    assert "0/8 draws kept (0.0 %), n/a % of them on the border" in report.summary()
    _, png_path = report.save(tmp_path)
    with Image.open(png_path) as image:
        assert image.size == (4 * (SIZE + 2), SIZE + 2)  # the real block alone


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="BasicUNet has no layer 'down_9'"):
        evaluate_sample_quality(_generator(), _real_slices(2), _segmenter(), feature_layer="down_9")
    with pytest.raises(ValueError, match="dataset is empty"):
        evaluate_sample_quality(_generator(), [], _segmenter())


def test_feature_distances_do_not_depend_on_the_feature_layers_scale(report):
    segmenter = _segmenter()
    # a network whose bottleneck activations are 1000 times larger: the same features in other units
    segmenter.down_4.register_forward_hook(lambda module, inputs, output: 1000.0 * output)
    scaled = evaluate_sample_quality(_generator(), _real_slices(), segmenter, num_samples=12, min_tumour_area=1,
                                     num_diversity_pairs=20, batch_size=8, num_preview=5, seed=1)
    for name in ("synthetic_vs_real", "real_vs_real"):
        original, rescaled = report.scores["feature_distance"][name]["mmd"], scaled.scores["feature_distance"][name]["mmd"]
        # the untrained segmenter's features barely differ between slices: float32 rounding shows at 1e-3
        assert rescaled == pytest.approx(original, rel=1e-2)
    assert abs(report.scores["feature_distance"]["synthetic_vs_real"]["mmd"]) < 10, "in units of the real spread"
