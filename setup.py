"""Packaging for dhvae-monai, a MONAI plugin for joint image + tumour-mask generation."""

from __future__ import annotations

import re
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent
# the version lives in dhvae_monai/__init__.py only; read, not imported: the build environment has none of the
# package's dependencies
VERSION = re.search(r'^__version__ = "([^"]+)"$', (ROOT / "dhvae_monai" / "__init__.py").read_text(), re.M).group(1)

setup(
    name="dhvae-monai",
    version=VERSION,
    description=(
        "Discriminative Hamiltonian VAE for MONAI: synthetic image + tumour-mask pairs "
        "for data-scarce 2D/3D tumour segmentation"
    ),
    long_description=(ROOT / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.9",
    packages=find_packages(include=["dhvae_monai", "dhvae_monai.*"]),
    # the Model Zoo metadata schema, so bundle_check validates offline
    package_data={"dhvae_monai": ["schemas/*.json", "schemas/README.md"]},
    install_requires=[
        # torch is deliberately a range: install the wanted build (CPU or CUDA) first, pip then keeps it.
        "torch>=2.3",
        # the bundle CLI needs monai[fire], verify_metadata jsonschema, AutoencoderKL attention einops
        "monai[einops,fire,jsonschema]>=1.4,<1.7",
        "pytorch-ignite>=0.4.11",
        "numpy>=1.24",
        "nibabel>=5.0",
        # itk-core + itk-io are what MONAI's ITKReader/ITKWriter need; the `itk` metapackage is 1.5 GB.
        "itk-core>=5.3",
        "itk-io>=5.3",
        "pyyaml>=6.0",
        "tensorboard>=2.12",
        "tqdm>=4.64",
        "pillow>=9.0",
        # the experiment report's Dice-against-synthetic-pairs figure
        "matplotlib>=3.7",
        "scipy>=1.10",
    ],
    extras_require={
        "test": ["pytest>=7.0", "build>=1.0"],
        # MONAI Label serving the bundles (`make label-env`: a separate environment, see the Makefile)
        "label": [
            # the release whose bundle app and tasks the bundles' configs follow (keys it reads and overrides)
            "monailabel==0.8.5",
            # pydicom-seg, a monailabel dependency, imports pydicom._storage_sopclass_uids, removed in pydicom 3
            "pydicom<3",
            # dicomweb-client 0.61 and pynetdicom 3 require pydicom 3
            "dicomweb-client<0.61",
            "pynetdicom<3",
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Medical Science Apps.",
    ],
)
