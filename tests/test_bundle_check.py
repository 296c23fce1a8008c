"""The Model Zoo's checks on a copy of dhvae_brats: each bad input gives one line naming the file and the problem."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
import yaml
from monai.bundle import ConfigParser

from dhvae_monai import bundle_check
from dhvae_monai.bundle_check import CHECKS, MAX_COMMITTED_BYTES, check_bundle
from dhvae_monai.bundle_files import file_sha256

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "dhvae_brats"
# weights trained with the phantom settings are checked with them, as their README says; also the fast way
PHANTOM = ["configs/phantom.yaml"]
# everything but MONAI's verify_net_in_out and ckpt_export, which take seconds
STATIC = tuple(check for check in CHECKS if check not in ("network", "torchscript"))


@pytest.fixture
def bundle(tmp_path) -> Path:
    """A copy of dhvae_brats as committed: no local weights or runs (as .gitignore), outside any git work tree."""
    copy = tmp_path / "dhvae_brats"
    shutil.copytree(BUNDLE, copy, ignore=shutil.ignore_patterns("*.pt", "*.ts", "runs", "__pycache__"))
    return copy


def _lines(bundle: Path, **options) -> list[str]:
    return [str(failure) for failure in check_bundle(bundle, **options)]


def _edit_json(path: Path, edit) -> None:
    content = json.loads(path.read_text())
    edit(content)
    path.write_text(json.dumps(content, indent=4))


def _phantom_weights(bundle: Path) -> Path:
    """``models/model.pt`` holding randomly initialised weights of the phantom settings' segmenter."""
    parser = ConfigParser()
    parser.read_config([str(bundle / "configs/inference.yaml"), str(bundle / "configs/phantom.yaml")])
    path = bundle / "models" / "model.pt"
    torch.save(parser.get_parsed_content("network_def").state_dict(), path)
    return path


def _list_large_file(bundle: Path, **entry) -> None:
    (bundle / "large_files.yml").write_text(yaml.safe_dump({"large_files": [entry]}))


def _git_track_everything(bundle: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=bundle, check=True)
    subprocess.run(["git", "add", "-A"], cwd=bundle, check=True)


def test_missing_data_licence_gives_one_line_and_exit_1(bundle, capsys):
    (bundle / "docs" / "data_license.txt").unlink()
    assert bundle_check.main([str(bundle), "--config", "configs/phantom.yaml"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{bundle}/docs/data_license.txt: missing: the terms of the data the bundle was made for, required by the "
        "Model Zoo."
    ]


def test_a_bundle_that_holds_passes_with_exit_0_and_names_the_checks(bundle, capsys):
    assert bundle_check.main([str(bundle), "--only", "files", "--only", "readme"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{bundle}: passes the Model Zoo checks (files, readme)."]


def test_metadata_failing_the_schema_names_the_key(bundle):
    _edit_json(bundle / "configs/metadata.json", lambda metadata: metadata.pop("authors"))
    assert _lines(bundle, extra_configs=PHANTOM) == [
        f"{bundle}/configs/metadata.json: fails the schema meta_schema_20240725.json at $: 'authors' is a required property."
    ]


def test_metadata_with_a_value_of_the_wrong_type_names_its_path(bundle):
    _edit_json(
        bundle / "configs/metadata.json",
        lambda metadata: metadata["network_data_format"]["inputs"]["image"].update(num_channels="one"),
    )
    assert _lines(bundle, checks=STATIC) == [
        f"{bundle}/configs/metadata.json: fails the schema meta_schema_20240725.json at "
        "$.network_data_format.inputs.image.num_channels: 'one' is not of type 'integer'."
    ]


def test_metadata_naming_another_schema_version_says_which_to_use(bundle):
    _edit_json(
        bundle / "configs/metadata.json",
        lambda metadata: metadata.update(schema=metadata["schema"].replace("20240725", "20220324")),
    )
    [line] = _lines(bundle, checks=STATIC)
    assert line.startswith(
        f"{bundle}/configs/metadata.json: 'schema' names meta_schema_20220324.json, but this check holds meta_schema_20240725.json"
    )


def test_metadata_that_is_not_json_is_named(bundle):
    (bundle / "configs/metadata.json").write_text('{"version": "0.1.0",')
    [line] = _lines(bundle)
    assert line.startswith(f"{bundle}/configs/metadata.json: not valid JSON (")


@pytest.mark.parametrize(
    "version, pin, expected",
    [
        ("0.2.0", None, ["'changelog' has no entry for version 0.2.0: add one that says what changed."]),
        (
            "0.1",
            None,
            [
                "'version' '0.1' is not MAJOR.MINOR.PATCH.",
                "'changelog' has no entry for version 0.1: add one that says what changed.",
            ],
        ),
        (
            None,
            "0.0.9",
            [
                "required_packages_version pins dhvae-monai '0.0.9', but this is dhvae-monai 0.1.0 and the Model Zoo installs the pinned one: set it to '0.1.0'."
            ],
        ),
    ],
)
def test_version_changelog_and_package_pin_must_agree(bundle, version, pin, expected):
    def edit(metadata):
        if version is not None:
            metadata["version"] = version
        if pin is not None:
            metadata["required_packages_version"]["dhvae-monai"] = pin

    _edit_json(bundle / "configs/metadata.json", edit)
    assert _lines(bundle, checks=STATIC) == [f"{bundle}/configs/metadata.json: {message}" for message in expected]


def test_readme_without_the_templates_sections_names_them(bundle):
    readme = bundle / "docs" / "README.md"
    readme.write_text(readme.read_text().replace("## Performance", "## Results").replace("### Tags", "### Keywords"))
    assert _lines(bundle, checks=STATIC) == [
        f"{bundle}/docs/README.md: has no 'Tags', 'Performance' sections (the Model Zoo's README template)."
    ]


def test_inference_config_without_an_output_dir_is_named(bundle):
    config = bundle / "configs" / "inference.yaml"
    config.write_text(config.read_text().replace("output_dir:", "masks_dir:").replace("@output_dir", "@masks_dir"))
    assert _lines(bundle, checks=STATIC) == [
        f"{bundle}/configs/inference.yaml: defines no output_dir (keys the Model Zoo requires)."
    ]


def test_large_files_hash_mismatch_names_the_file_and_both_hashes(bundle):
    weights = _phantom_weights(bundle)
    _list_large_file(
        bundle, path="models/model.pt", url="https://example.org/model.pt", hash_val="0" * 64, hash_type="sha256"
    )
    assert _lines(bundle, extra_configs=PHANTOM) == [
        f"{bundle}/large_files.yml: models/model.pt has sha256 {file_sha256(weights)}, but its entry says {'0' * 64}: it "
        "is not the file the entry describes (update hash_val and url, or restore the file)."
    ]


def test_listed_weights_with_their_sha256_pass_every_check(bundle):
    weights = _phantom_weights(bundle)
    _list_large_file(bundle, path="models/model.pt", url="", hash_val=file_sha256(weights), hash_type="sha256")
    assert _lines(bundle, extra_configs=PHANTOM, require_weights=True) == []


def test_large_files_entry_needs_a_sha256_and_a_url_for_a_file_not_there(bundle):
    _list_large_file(
        bundle, path="models/model.pt", url="", hash_val="d41d8cd98f00b204e9800998ecf8427e", hash_type="md5"
    )
    assert _lines(bundle, checks=STATIC) == [
        f"{bundle}/large_files.yml: models/model.pt: give its sha256 (hash_type: sha256, hash_val: 64 hex digits), "
        "found hash_type 'md5', hash_val 'd41d8cd98f00b204e9800998ecf8427e'.",
        f"{bundle}/large_files.yml: models/model.pt is not in the bundle and its entry has no url to download it "
        "from: upload it and set url.",
    ]


def test_unreadable_large_files_is_named(bundle):
    (bundle / "large_files.yml").write_text("large_files:\n  - url: https://example.org/model.pt\n")
    assert _lines(bundle, checks=STATIC) == [
        f"{bundle}/large_files.yml: entry 0 needs a 'path' (e.g. models/model.pt), got {{'url': 'https://example.org/model.pt'}}."
    ]


def test_weights_git_does_not_track_need_an_entry_with_url_and_sha256(bundle):
    _git_track_everything(bundle)
    weights = _phantom_weights(bundle)  # after `git add`: not tracked, as .gitignore leaves trained weights
    assert _lines(bundle, extra_configs=PHANTOM, checks=STATIC) == [
        f"{bundle}/models/model.pt: not committed and large_files.yml has no entry for it: add path models/model.pt, its "
        f"url and hash_type sha256, hash_val {file_sha256(weights)}."
    ]
    _list_large_file(bundle, path="models/model.pt", url="", hash_val=file_sha256(weights), hash_type="sha256")
    assert _lines(bundle, extra_configs=PHANTOM, checks=STATIC) == [
        f"{bundle}/large_files.yml: models/model.pt is not committed and its entry has no url to download it from: "
        "upload it and set url."
    ]
    _list_large_file(
        bundle,
        path="models/model.pt",
        url="https://example.org/model.pt",
        hash_val=file_sha256(weights),
        hash_type="sha256",
    )
    assert _lines(bundle, extra_configs=PHANTOM, checks=STATIC) == []


def test_committed_file_over_25_mb_is_named(bundle):
    with open(bundle / "docs" / "figure.bin", "wb") as handle:
        handle.truncate(MAX_COMMITTED_BYTES + 1)
    _git_track_everything(bundle)
    assert _lines(bundle, checks=STATIC) == [
        f"{bundle}/docs/figure.bin: 25.0 MB is over the Model Zoo's 25 MB limit for a committed file: leave it out of "
        "git and list it in large_files.yml with its url and sha256."
    ]


def test_network_that_disagrees_with_the_metadata_fails_verify_net_in_out(bundle):
    _edit_json(
        bundle / "configs/metadata.json",
        lambda metadata: metadata["network_data_format"]["outputs"]["pred"].update(num_channels=2),
    )
    assert _lines(bundle, extra_configs=PHANTOM) == [
        f"{bundle}/configs/inference.yaml: verify_net_in_out network_def against metadata.json fails: ValueError: "
        "output channel number `1` doesn't match: `2`."
    ]


def test_trained_weights_that_do_not_fit_the_inference_config_are_named(bundle):
    _phantom_weights(bundle)  # checked without configs/phantom.yaml: the default segmenter is larger
    [line] = _lines(bundle)
    assert line.startswith(
        f"{bundle}/models/model.pt: does not load into network_def of configs/inference.yaml: was trained with a "
        "different network configuration ("
    )


def test_network_checks_use_the_trained_weights_when_present(bundle, monkeypatch):
    verified, exported = [], []

    def verify_net_in_out(**arguments):
        verified.append(arguments.get("network_def"))
        real_verify(**arguments)

    def ckpt_export(**arguments):
        exported.append(Path(arguments["ckpt_file"]))
        real_export(**arguments)

    real_verify, real_export = bundle_check.verify_net_in_out, bundle_check.ckpt_export
    monkeypatch.setattr(bundle_check, "verify_net_in_out", verify_net_in_out)
    monkeypatch.setattr(bundle_check, "ckpt_export", ckpt_export)
    assert check_bundle(bundle, extra_configs=PHANTOM) == []
    assert verified == [None] and exported[-1].name == "random_weights.pt"  # the config's network, initialised
    assert not (bundle / "models" / "model.ts").exists()

    weights = _phantom_weights(bundle)
    assert check_bundle(bundle, extra_configs=PHANTOM) == []
    assert exported[-1] == weights
    trained = torch.load(weights, weights_only=True)
    for name, value in verified[-1].state_dict().items():
        torch.testing.assert_close(value.cpu(), trained[name])


def test_require_weights_names_missing_trained_weights(bundle):
    assert _lines(bundle, checks=("weights",), require_weights=True) == [
        f"{bundle}/models/model.pt: missing, and large_files.yml has no entry for it: the Model Zoo expects trained "
        "weights (run the train_segmentation stage, or check without --require-weights)."
    ]


def test_not_a_folder_and_unknown_checks_are_named(tmp_path):
    assert _lines(tmp_path / "nowhere") == [
        f"{tmp_path / 'nowhere'}: not a folder: give the bundle folder (the one holding configs/)."
    ]
    with pytest.raises(ValueError, match=r"unknown checks \['tests'\]"):
        check_bundle(tmp_path, checks=("tests",))
