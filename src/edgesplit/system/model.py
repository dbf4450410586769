"""The system description: devices, links and prices, loaded from one YAML/JSON file.

Quantities may be written with units (``bandwidth: 7.2mbit``, ``rtt: 40ms``,
``clock: 1.5GHz``, ``memory: 4GiB``; see :mod:`edgesplit.units`) or as SI numbers.
``edgesplit schema system`` prints the JSON schema; ``examples/system.yaml`` is a worked
example. Paths inside the file (profiles, predictors) are relative to the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edgesplit.errors import InputError
from edgesplit.io import read_mapping, validate
from edgesplit.system.link import Link
from edgesplit.system.power import PowerModel
from edgesplit.system.prices import Prices
from edgesplit.units import Bytes, Frequency

Tier = Literal["device", "edge", "cloud"]


class ComputeSpec(BaseModel):
    """Where a device's per-node seconds come from.

    At most one source: a measured ``profile`` (edgesplit profile JSON), a fitted
    ``predictor`` (``edgesplit fit-predictor`` output), or ``relative_to`` another device.
    The seconds are then divided by ``speed_factor`` and, when both ``reference_clock``
    (the clock the source was measured at) and the device's ``clock`` are given,
    multiplied by ``reference_clock / clock``. With no source, seconds must be handed to
    :meth:`edgesplit.plan.problem.Problem.from_system` directly.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    profile: str | None = None
    predictor: str | None = None
    relative_to: str | None = None
    speed_factor: float = Field(default=1.0, gt=0, description="times faster than the source")
    reference_clock: Frequency | None = Field(default=None, gt=0)
    calibrate: bool = Field(
        default=False, description="rescale profile medians to sum to its end-to-end median"
    )

    @model_validator(mode="after")
    def _one_source(self) -> ComputeSpec:
        given = [k for k in ("profile", "predictor", "relative_to") if getattr(self, k)]
        if len(given) > 1:
            raise ValueError(f"give at most one of profile, predictor, relative_to (got {given})")
        return self


class Device(BaseModel):
    """One machine: the user's device, an edge server or a cloud server."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    tier: Tier
    compute: ComputeSpec = ComputeSpec()
    clock: Frequency | None = Field(default=None, gt=0, description="current clock (Hz)")
    memory: Bytes | None = Field(default=None, gt=0, description="memory limit (bytes)")
    price_per_hour: float | None = Field(
        default=None, ge=0, description="overrides the tier price from 'prices'"
    )
    owned: bool | None = Field(
        default=None, description="owned machines bill nothing (Luger eq. 4.4); None: by strategy"
    )
    power: PowerModel | None = None
    busy_utilisation: float = Field(default=1.0, ge=0, le=1)
    idle_utilisation: float = Field(default=0.0, ge=0, le=1)


class LinkEntry(Link):
    """One entry of the system file's ``links``: a :class:`Link` joining devices ``a`` and ``b``.

    The endpoints belong to the file, not to the link; :meth:`System.link` hands out the
    plain :class:`Link`.
    """

    a: str = Field(min_length=1)
    b: str = Field(min_length=1)

    @model_validator(mode="after")
    def _two_ends(self) -> LinkEntry:
        if self.a == self.b:
            raise ValueError(f"link joins {self.a!r} to itself; name two devices")
        return self

    @property
    def link(self) -> Link:
        return Link.model_validate(self.model_dump(exclude={"a", "b"}))


class System(BaseModel):
    """Devices, the links between them, and the price table."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["edgesplit.system"] = "edgesplit.system"
    devices: list[Device] = Field(min_length=1)
    links: list[LinkEntry] = []
    prices: Prices = Prices()

    @model_validator(mode="after")
    def _consistent(self) -> System:
        names = [d.name for d in self.devices]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"device names must be unique; repeated: {sorted(dup)}")
        seen: set[frozenset[str]] = set()
        for link in self.links:
            for end in (link.a, link.b):
                if end not in names:
                    raise ValueError(f"link endpoint {end!r} is not a device; devices: {names}")
            pair = frozenset((link.a, link.b))
            if pair in seen:
                raise ValueError(f"two links join {link.a!r} and {link.b!r}; keep one")
            seen.add(pair)
        for d in self.devices:
            ref = d.compute.relative_to
            if ref is not None and ref not in names:
                raise ValueError(f"device {d.name!r}: compute.relative_to {ref!r} is not a device")
        return self

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.devices)

    def device(self, name: str) -> Device:
        for d in self.devices:
            if d.name == name:
                return d
        raise InputError(f"system has no device {name!r}; devices: {', '.join(self.names)}")

    def link(self, a: str, b: str) -> Link | None:
        """The link joining devices ``a`` and ``b`` (either order), or None."""
        for entry in self.links:
            if {entry.a, entry.b} == {a, b}:
                return entry.link
        return None

    def price_per_hour(self, name: str, strategy: str | None = None) -> float:
        """Billing rate of a device (Luger eq. 4.4).

        ``strategy`` "own" makes edge servers free and "rent" bills them; a device's own
        ``owned`` flag wins over the strategy, and its ``price_per_hour`` over the table.
        """
        d = self.device(name)
        owned = d.owned if d.owned is not None else self.prices.owned(d.tier, strategy)
        if owned:
            return 0.0
        return d.price_per_hour if d.price_per_hour is not None else self.prices.per_hour(d.tier)

    def with_link(self, a: str, b: str, **changes: Any) -> System:
        """A copy with one link's fields replaced (e.g. a new measured bandwidth), validated."""
        links = [
            LinkEntry.model_validate({**link.model_dump(), **changes})
            if {link.a, link.b} == {a, b}
            else link
            for link in self.links
        ]
        return self.model_copy(update={"links": links})


def _resolve_paths(doc: dict[str, Any], base: Path) -> None:
    for dev in doc.get("devices") or []:
        compute = dev.get("compute") if isinstance(dev, dict) else None
        if not isinstance(compute, dict):
            continue
        for key in ("profile", "predictor"):
            value = compute.get(key)
            if isinstance(value, str) and not Path(value).is_absolute():
                compute[key] = str(base / value)


def load_system(path: str | Path) -> System:
    """Read and validate a system file (``.yaml``, ``.yml`` or ``.json``)."""
    path = Path(path)
    doc = read_mapping(path, what="system file", schema="system")
    _resolve_paths(doc, path.parent)
    return validate(doc, System, path, what="system file", schema="system")
