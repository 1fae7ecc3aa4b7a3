"""What the two encoder configs (CompactConfig, Qwen3VLEncoderConfig) share: checking their Matryoshka dims
and crop boxes, and their JSON form (tuples as lists, tagged with the backbone, unknown keys refused)."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any, Iterable, TypeVar

from encoder.types import Box

C = TypeVar("C")


def checked_dims(dims: Iterable[int]) -> tuple[int, ...]:
    """Matryoshka dims as ints. Raises ValueError unless positive and strictly ascending."""
    out = tuple(int(d) for d in dims)
    if not out or any(d <= 0 for d in out) or list(out) != sorted(set(out)):
        raise ValueError(f"dims must be positive, strictly ascending, got {dims!r}")
    return out


def checked_boxes(boxes: Iterable[Iterable[float]]) -> tuple[Box, ...]:
    """Crop boxes as float 4-tuples. Raises ValueError unless each is (x0, y0, x1, y1) with 0 <= x0 < x1 <= 1."""
    out = tuple(tuple(float(v) for v in b) for b in boxes)
    for b in out:
        if len(b) != 4 or not (0.0 <= b[0] < b[2] <= 1.0 and 0.0 <= b[1] < b[3] <= 1.0):
            raise ValueError(f"crop box must be (x0, y0, x1, y1) with 0 <= x0 < x1 <= 1, got {b!r}")
    return out  # type: ignore[return-value]


def config_to_dict(config: Any, backbone: str) -> dict[str, Any]:
    """A config dataclass -> JSON-ready dict: {"backbone": backbone, field: value...}, dims and boxes as lists."""
    d = asdict(config)
    d["dims"] = list(config.dims)
    d["crop_boxes"] = [list(b) for b in config.crop_boxes]
    return {"backbone": backbone, **d}


def config_from_dict(cls: type[C], d: dict[str, Any], backbone: str, ignore: Iterable[str] = ()) -> C:
    """Inverse of config_to_dict; keys in `ignore` are dropped. Raises ValueError for another backbone or
    unknown keys (naming them), or whatever cls raises for a bad value."""
    d = {k: v for k, v in d.items() if k not in set(ignore)}
    found = d.pop("backbone", backbone)
    if found != backbone:
        raise ValueError(f"config is for backbone {found!r}, not {backbone!r}")
    unknown = sorted(set(d) - {f.name for f in fields(cls)})
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {unknown}")
    return cls(**d)
