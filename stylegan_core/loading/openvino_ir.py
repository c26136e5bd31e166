"""Read OpenVINO IR v10 models (an .xml graph + a .bin of raw constants) with the stdlib and numpy.

The OpenVINO runtime is not needed: every `<layer type="Const">` has a `<data element_type=..
shape=.. offset=.. size=..>` pointing at little-endian bytes in the .bin. The graph (layers and
their edges) is kept so a converter can find out what each constant feeds.
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError

_DTYPES = {"f32": "<f4", "f16": "<f2", "i64": "<i8", "i32": "<i4", "u8": "u1", "i8": "i1"}


class OpenVINOIRError(UserError, ValueError):
    """An IR file that cannot be read, or that does not have the expected structure."""


@dataclass
class IRLayer:
    id: int
    name: str
    type: str
    data: dict[str, str]
    inputs: list[int] = field(default_factory=list)  # producer layer ids, by input port
    value: np.ndarray | None = None  # Const layers only

    @property
    def is_float_const(self) -> bool:
        return self.value is not None and self.value.dtype.kind == "f"


class IRGraph:
    """Layers in the order of the .xml (graph order) with producers and consumers."""

    def __init__(self, name: str, layers: list[IRLayer]):
        self.name = name
        self.layers = {layer.id: layer for layer in layers}
        self._consumers: dict[int, list[IRLayer]] = {layer.id: [] for layer in layers}
        for layer in layers:
            for producer in layer.inputs:
                self._consumers[producer].append(layer)

    def constants(self) -> list[IRLayer]:
        return [layer for layer in self.layers.values() if layer.type == "Const"]

    def consumers(self, layer: IRLayer) -> list[IRLayer]:
        return self._consumers[layer.id]

    def producers(self, layer: IRLayer) -> list[IRLayer]:
        return [self.layers[i] for i in layer.inputs]

    def by_type(self, type_name: str) -> list[IRLayer]:
        return [layer for layer in self.layers.values() if layer.type == type_name]


def read_ir(xml_path: str | os.PathLike, bin_path: str | os.PathLike) -> IRGraph:
    """Parse an IR v10 model; constants are read from the .bin as numpy arrays."""
    xml_path, bin_path = Path(xml_path), Path(bin_path)
    try:
        root = ET.parse(xml_path).getroot()
        weights = bin_path.read_bytes()
    except (OSError, ET.ParseError) as error:
        raise OpenVINOIRError(f"cannot read OpenVINO IR {xml_path} / {bin_path}: {error}") from error
    if root.tag != "net" or root.get("version") != "10":
        raise OpenVINOIRError(
            f"{xml_path}: expected an OpenVINO IR v10 <net>, got <{root.tag} version={root.get('version')}>")
    layers = [_read_layer(element, weights, xml_path) for element in root.iter("layer")]
    by_id = {layer.id: layer for layer in layers}
    ports: dict[int, list[tuple[int, int]]] = {}
    for edge in root.iter("edge"):
        to_layer, to_port = int(edge.get("to-layer")), int(edge.get("to-port"))
        ports.setdefault(to_layer, []).append((to_port, int(edge.get("from-layer"))))
    for layer_id, inputs in ports.items():
        by_id[layer_id].inputs = [producer for _, producer in sorted(inputs)]
    return IRGraph(root.get("name", xml_path.stem), layers)


def _read_layer(element: ET.Element, weights: bytes, xml_path: Path) -> IRLayer:
    data_element = element.find("data")
    data = dict(data_element.attrib) if data_element is not None else {}
    layer = IRLayer(int(element.get("id")), element.get("name", ""), element.get("type", ""), data)
    if layer.type == "Const":
        layer.value = _read_const(data, weights, f"{xml_path}: Const {layer.name!r}")
    return layer


def _read_const(data: dict[str, str], weights: bytes, where: str) -> np.ndarray:
    element_type = data.get("element_type")
    if element_type not in _DTYPES:
        raise OpenVINOIRError(f"{where}: unsupported element_type {element_type!r}")
    shape = tuple(int(d) for d in data["shape"].split(",")) if data.get("shape", "").strip() else ()
    offset, size = int(data["offset"]), int(data["size"])
    dtype = np.dtype(_DTYPES[element_type])
    count = int(np.prod(shape, dtype=np.int64))
    if offset + size > len(weights) or size != count * dtype.itemsize:
        raise OpenVINOIRError(
            f"{where}: {size} bytes at offset {offset} do not hold shape {shape} of {element_type} "
            f"(the .bin has {len(weights)} bytes: wrong or truncated .bin?)"
        )
    return np.frombuffer(weights, dtype, count, offset).reshape(shape).copy()
