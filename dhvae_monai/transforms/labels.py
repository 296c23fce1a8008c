"""Raw challenge label values → binary tumour-region channels (BraTS WT / TC / ET, HECKTOR GTVp / GTVn / GTV)."""

from __future__ import annotations

from typing import Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform
from monai.utils import convert_to_tensor

from dhvae_monai.transforms.meta import source_of

__all__ = ["LABEL_CONVENTIONS", "REGIONS", "TumourRegionsd", "unexpected_label_values"]

# raw label value -> structure, per convention (the datalist items' ``label_convention``)
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
# label files are often stored as floats: values this close to an integer count as that integer
_INTEGER_TOLERANCE = 1e-3
# label values above this are found by sorting rather than counting
_MAX_COUNTED_VALUE = 65535


def unexpected_label_values(label: torch.Tensor, convention: str) -> list[float]:
    """
    Values of a raw label volume that the convention does not define.

    Args:
        label: raw label volume (any shape).
        convention: one of :data:`LABEL_CONVENTIONS`; ``binary`` accepts any non-negative integer.

    Returns:
        the offending values, sorted (empty when the label is valid): non-integers, negatives, and for a named
        convention any non-zero value it does not list.

    Raises:
        ValueError: unknown convention.

    Example::

        unexpected_label_values(torch.tensor([0, 1, 2, 3]), "brats2021")  # [3.0]
    """
    table = _table(convention)
    values = convert_to_tensor(label, track_meta=False).flatten()
    integers = values.round()
    non_integer = (values - integers).abs() > _INTEGER_TOLERANCE
    integers = integers[~non_integer]
    negative = integers < 0
    unexpected = torch.unique(values[non_integer]).tolist() + torch.unique(integers[negative]).tolist()
    if convention != "binary":
        unexpected += [value for value in _distinct(integers[~negative]) if value != 0 and value not in table]
    return sorted(float(value) for value in unexpected)


def _distinct(non_negative_integers: torch.Tensor) -> list[int]:
    """Distinct values of a tensor of small non-negative integers, by counting (much faster than a sort)."""
    if non_negative_integers.numel() == 0:
        return []
    if float(non_negative_integers.max()) > _MAX_COUNTED_VALUE:
        return [int(v) for v in torch.unique(non_negative_integers).tolist()]
    return torch.nonzero(torch.bincount(non_negative_integers.long())).flatten().tolist()


class TumourRegionsd(MapTransform):
    """
    Map a raw label volume to one binary channel per tumour region.

    Regions: BraTS ``WT`` (whole tumour, every labelled voxel), ``TC`` (tumour core: necrotic / non-enhancing +
    enhancing, no edema), ``ET`` (enhancing); HECKTOR ``GTVp`` (primary), ``GTVn`` (nodes), ``GTV`` (their union).
    The meaning of the raw values comes from ``convention`` or from the item's ``label_convention`` (written by
    :func:`dhvae_monai.data.make_datalist`). Values are mapped, not validated: check them first with
    :class:`~dhvae_monai.transforms.io.CheckVolumed`. Apply this before any spatial resampling, which cannot
    interpolate raw label values. Metadata and the applied operations are kept, so the result stays invertible.

    Args:
        keys: label key(s), each ``[1, H, W, D]``.
        regions: regions to output, in channel order.
        convention: one of :data:`LABEL_CONVENTIONS`; None reads ``data[convention_key]`` (``binary`` if absent).
        convention_key: item key holding the convention.
        allow_missing_keys: skip missing keys (inference items have no label).

    Raises:
        ValueError: unknown region or convention, a label with several channels, or a region the convention cannot
            express (e.g. ``GTVn`` from HECKTOR 2021's primary-only labels) — naming the label file.

    Example::

        regions = TumourRegionsd("label", regions=("WT", "TC", "ET"))
        mask = regions({"label": seg, "label_convention": "brats2021"})["label"]  # [3, H, W, D] in {0, 1}
    """

    def __init__(
        self,
        keys: KeysCollection,
        regions: Sequence[str] = ("WT",),
        convention: str | None = None,
        convention_key: str = "label_convention",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        unknown = [region for region in regions if region not in REGIONS]
        if unknown or not regions:
            raise ValueError(f"unknown tumour region(s) {unknown or list(regions)}; expected some of {list(REGIONS)}.")
        if convention is not None:
            _table(convention)
        self.regions = tuple(regions)
        self.convention = convention
        self.convention_key = convention_key

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        convention = self.convention or d.get(self.convention_key) or "binary"
        for key in self.key_iterator(d):
            d[key] = self._map(d[key], convention)
        return d

    def _map(self, label: torch.Tensor, convention: str) -> torch.Tensor:
        table = _table(convention)
        if label.shape[0] != 1:
            raise ValueError(
                f"{source_of(label, 'label')}: expected a single-channel label volume, got shape {tuple(label.shape)}."
            )
        values = convert_to_tensor(label, track_meta=False)[0].round().long()
        channels = []
        for region in self.regions:
            structures = REGIONS[region]
            if structures == ("any",):
                channels.append(values > 0)
                continue
            region_values = [value for value, name in table.items() if name in structures]
            if not region_values:
                raise ValueError(
                    f"{source_of(label, 'label')}: region {region!r} cannot be made from the {convention!r} labels {table}."
                )
            # a lookup table by label value (one gather, not a search per voxel); values the table lacks, clamped,
            # land on its last entry, which is False
            in_region = torch.zeros(max(table) + 2, dtype=torch.bool, device=values.device)
            in_region[region_values] = True
            channels.append(in_region[values.clamp(0, max(table) + 1)])
        regions = torch.stack(channels).to(torch.float32)
        if isinstance(label, MetaTensor):
            return MetaTensor(regions, meta=label.meta, applied_operations=label.applied_operations)
        return regions


def _table(convention: str) -> dict[int, str]:
    if convention not in LABEL_CONVENTIONS:
        raise ValueError(f"unknown label convention {convention!r}; expected one of {list(LABEL_CONVENTIONS)}.")
    return LABEL_CONVENTIONS[convention]
