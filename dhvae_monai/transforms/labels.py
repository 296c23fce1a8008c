"""Raw challenge label values → binary tumour-region channels (BraTS WT / TC / ET, HECKTOR GTVp / GTVn / GTV)."""

from __future__ import annotations

from typing import Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

__all__ = ["LABEL_CONVENTIONS", "REGIONS", "TumourRegionsd"]

# raw label value -> structure, per convention
LABEL_CONVENTIONS: dict[str, dict[int, str]] = {
    "brats2021": {1: "necrotic", 2: "edema", 4: "enhancing"},
    "brats2023": {1: "necrotic", 2: "edema", 3: "enhancing"},
    "brats2015": {1: "necrotic", 2: "edema", 3: "non_enhancing", 4: "enhancing"},
    "msd": {1: "edema", 2: "non_enhancing", 3: "enhancing"},
    "hecktor2021": {1: "primary"},
    "hecktor2022": {1: "primary", 2: "node"},
    "binary": {},  # any value > 0 is tumour
}
# region -> structures it unites; "any" means every non-zero value
REGIONS: dict[str, tuple[str, ...]] = {
    "WT": ("any",),
    "TC": ("necrotic", "non_enhancing", "enhancing"),
    "ET": ("enhancing",),
    "GTV": ("any",),
    "GTVp": ("primary",),
    "GTVn": ("node",),
}


class TumourRegionsd(MapTransform):
    """
    Map a raw label volume to one binary channel per tumour region, checking its values first.

    Regions: BraTS ``WT`` (whole tumour, every labelled voxel), ``TC`` (tumour core: necrotic / non-enhancing +
    enhancing), ``ET`` (enhancing); HECKTOR ``GTVp`` (primary), ``GTVn`` (nodes), ``GTV`` (their union). The meaning of
    the raw values comes from the item's ``label_convention`` (written by
    :func:`dhvae_monai.data.make_datalist`) or from ``convention``.

    Args:
        keys: label key(s).
        regions: regions to output, in channel order.
        convention: one of :data:`LABEL_CONVENTIONS`; None reads ``data[convention_key]`` (``binary`` if absent).
        convention_key: item key holding the convention.
        require_tumour: raise when every region is empty (training data must show a tumour).
        allow_missing_keys: skip missing keys (inference has no label).

    Raises:
        ValueError: unknown region or convention, a region the convention cannot express, label values outside the
            convention, or an empty mask with ``require_tumour`` — each naming the label file.

    Example::

        TumourRegionsd("label", regions=("WT", "TC", "ET"))({"label": seg, "label_convention": "brats2021"})
    """

    def __init__(
        self,
        keys: KeysCollection,
        regions: Sequence[str] = ("WT",),
        convention: str | None = None,
        convention_key: str = "label_convention",
        require_tumour: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        unknown = [r for r in regions if r not in REGIONS]
        if unknown or not regions:
            raise ValueError(f"unknown tumour region(s) {unknown or list(regions)}; expected some of {sorted(REGIONS)}.")
        if convention is not None and convention not in LABEL_CONVENTIONS:
            raise ValueError(f"unknown label convention {convention!r}; expected one of {sorted(LABEL_CONVENTIONS)}.")
        self.regions = tuple(regions)
        self.convention = convention
        self.convention_key = convention_key
        self.require_tumour = require_tumour

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        convention = self.convention or d.get(self.convention_key, "binary")
        if convention not in LABEL_CONVENTIONS:
            raise ValueError(f"unknown label convention {convention!r}; expected one of {sorted(LABEL_CONVENTIONS)}.")
        for key in self.key_iterator(d):
            d[key] = self._map(d[key], convention)
        return d

    def _map(self, label: torch.Tensor, convention: str) -> torch.Tensor:
        source = _source(label)
        if label.shape[0] != 1:
            raise ValueError(f"{source}: expected a single-channel label volume, got shape {tuple(label.shape)}.")
        values = torch.unique(label)
        table = LABEL_CONVENTIONS[convention]
        if convention == "binary":
            unexpected = [v for v in values.tolist() if v < 0 or v != int(v)]
        else:
            unexpected = [v for v in values.tolist() if v != 0 and v not in table]
        if unexpected:
            expected = "non-negative integers" if convention == "binary" else f"0 and {sorted(table)}"
            raise ValueError(
                f"{source}: unexpected label value(s) {unexpected} for the {convention!r} convention (expected "
                f"{expected}); check the dataset layout or the label_convention."
            )
        channels = []
        for region in self.regions:
            structures = REGIONS[region]
            if structures == ("any",):
                channels.append(label[0] > 0)
                continue
            values_in_region = [v for v, name in table.items() if name in structures]
            if not values_in_region:
                raise ValueError(f"{source}: region {region!r} cannot be made from the {convention!r} labels {table}.")
            channels.append(torch.isin(label[0], torch.tensor(values_in_region, device=label.device)))
        regions = torch.stack(channels).to(torch.float32)
        if self.require_tumour and not regions.any():
            raise ValueError(f"{source}: the mask is empty (no {', '.join(self.regions)} voxel) but a tumour is required.")
        if isinstance(label, MetaTensor):
            return MetaTensor(regions, meta=label.meta, applied_operations=label.applied_operations)
        return regions


def _source(tensor: torch.Tensor) -> str:
    if isinstance(tensor, MetaTensor):
        return str(tensor.meta.get("filename_or_obj", "label"))
    return "label"
