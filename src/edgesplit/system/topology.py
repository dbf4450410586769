"""The topology file: the machines a plan runs on and the links between them (issue 13, point 1).

Each device has a ``name``, a ``url`` — ``local`` for the one device the run starts on,
else the ``http(s)://host:port`` of an ``edgesplit serve`` — its ``device`` (``cpu`` or
``cuda``), and at most one emulated speed: ``clock`` (a frequency, ``1.5GHz``, against
this host's clock, as Luger's clock-speed experiments set it) or ``speed_factor`` (times
this host's speed; 0.3 is a Pi-class device). Each link is the system file's link
(:class:`~edgesplit.system.model.LinkEntry`: endpoints ``a`` and ``b``, ``bandwidth`` or
``shannon``, ``rtt``, the ``codecs`` allowed) plus ``shaping``: whether the runtime
enforces the link's bandwidth and RTT (an emulated link) or leaves the real one alone.

Checked on load, each failure naming the field: exactly one ``local`` device, unique
device names, a well-formed URL (http or https, a host, no credentials, query or
fragment), links between known devices, no link to itself, at most one link per pair.
:meth:`Topology.check_codec` refuses a plan's codec that its link does not allow.

>>> t = Topology.model_validate({
...     "devices": [{"name": "phone", "url": "local"},
...                 {"name": "edge", "url": "http://127.0.0.1:8101"}],
...     "links": [{"a": "phone", "b": "edge", "bandwidth": "20mbit", "codecs": ["none", "int8"]}]})
>>> t.local, t.link("edge", "phone").rate_bps
('phone', 20000000.0)
>>> t.check_codec("phone", "edge", "bf16")
Traceback (most recent call last):
edgesplit.errors.InputError: link phone–edge does not allow codec 'bf16' (allowed: none, int8); add it to that link's codecs or choose one of those
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from edgesplit.errors import InputError
from edgesplit.io import read_document
from edgesplit.system.link import CODECS
from edgesplit.system.model import LinkEntry
from edgesplit.units import Frequency

LOCAL = "local"


def _check_url(url: str) -> str:
    if url == LOCAL:
        return url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{url!r} is neither 'local' nor an http(s) URL such as http://host:8101")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{url!r} has a port outside 0-65535") from None
    if not parts.hostname:
        raise ValueError(f"{url!r} names no host; write it as http://host:port")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(
            f"{url!r} carries credentials, a query or a fragment; give scheme://host:port"
        )
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return (
        f"{parts.scheme}://{host}{f':{port}' if port is not None else ''}{parts.path.rstrip('/')}"
    )


class TopologyDevice(BaseModel):
    """One machine of a run: where it is, what it computes on, how fast it is emulated."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    url: str = Field(description="'local' (the device the run starts on) or http(s)://host:port")
    device: Literal["cpu", "cuda"] = "cpu"
    clock: Frequency | None = Field(default=None, gt=0, description="emulated clock (Hz)")
    speed_factor: float | None = Field(
        default=None, gt=0, description="emulated speed, times this host's"
    )
    token_env: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="environment variable holding this device's bearer token, read by "
        "whoever connects to it (default: the connecting tier's own --token)",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        return _check_url(url)

    @model_validator(mode="after")
    def _one_speed(self) -> TopologyDevice:
        if self.clock is not None and self.speed_factor is not None:
            raise ValueError(f"device {self.name!r}: give clock or speed_factor, not both")
        return self

    @property
    def local(self) -> bool:
        return self.url == LOCAL


class TopologyLink(LinkEntry):
    """A :class:`LinkEntry` plus whether the runtime shapes it to its bandwidth and RTT."""

    shaping: bool = Field(
        default=False, description="emulate the bandwidth and RTT (true) or use the link as is"
    )


class Topology(BaseModel):
    """Devices and links of a run (``edgesplit schema topology``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["edgesplit.topology"] = "edgesplit.topology"
    devices: list[TopologyDevice] = Field(min_length=1)
    links: list[TopologyLink] = []

    @field_validator("devices")
    @classmethod
    def _devices(cls, devices: list[TopologyDevice]) -> list[TopologyDevice]:
        names = [d.name for d in devices]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"device name {dup[0]!r} is used twice; names must be unique")
        local = [d.name for d in devices if d.local]
        if len(local) != 1:
            raise ValueError(
                f"exactly one device must have url 'local' (the one the run starts on); "
                f"found {len(local)}{': ' + ', '.join(local) if local else ''}"
            )
        return devices

    @field_validator("links")
    @classmethod
    def _links(cls, links: list[TopologyLink], info: ValidationInfo) -> list[TopologyLink]:
        devices = info.data.get("devices")
        if devices is None:  # already reported under 'devices'
            return links
        names = [d.name for d in devices]
        seen: set[frozenset[str]] = set()
        for i, link in enumerate(links):
            for end, field in ((link.a, "a"), (link.b, "b")):
                if end not in names:
                    raise ValueError(
                        f"link {i} end {field} {end!r} is not a device; devices: {', '.join(names)}"
                    )
            pair = frozenset((link.a, link.b))
            if pair in seen:
                raise ValueError(f"link {i} joins {link.a!r} and {link.b!r} again; keep one link")
            seen.add(pair)
        return links

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.devices)

    @property
    def local(self) -> str:
        """The name of the device the run starts on."""
        return next(d.name for d in self.devices if d.local)

    def device(self, name: str) -> TopologyDevice:
        for d in self.devices:
            if d.name == name:
                return d
        raise InputError(
            f"topology has no device {name!r}; devices: {', '.join(self.names)}; "
            "add it under devices or use one of those"
        )

    def link(self, a: str, b: str) -> TopologyLink | None:
        """The link joining ``a`` and ``b`` (either order), or None."""
        for entry in self.links:
            if {entry.a, entry.b} == {a, b}:
                return entry
        return None

    def check_codec(self, a: str, b: str, codec: str) -> None:
        """Refuse a codec the link between ``a`` and ``b`` does not allow, or a missing link."""
        for name in (a, b):
            self.device(name)
        if codec not in CODECS:
            raise InputError(f"unknown codec {codec!r}; choose from {', '.join(CODECS)}")
        link = self.link(a, b)
        if link is None:
            raise InputError(f"topology has no link between {a!r} and {b!r}; add one under links")
        if codec not in link.codecs:
            raise InputError(
                f"link {a}–{b} does not allow codec {codec!r} (allowed: {', '.join(link.codecs)}); "
                "add it to that link's codecs or choose one of those"
            )


def load_topology(path: str | Path) -> Topology:
    """Read and validate a topology file (``.yaml``, ``.yml`` or ``.json``)."""
    return read_document(path, Topology, what="topology file", schema="topology")
