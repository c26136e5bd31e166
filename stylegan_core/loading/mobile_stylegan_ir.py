"""MobileStyleGAN from the OpenVINO IR of the random-face package (WEIGHTS.md section 1).

Every float constant of the IR is either a parameter (named `m.*`, or unnamed and identified by
what it feeds) or a structural constant whose value is checked (Haar filters, leaky ReLU slopes,
modulation scales, pixel-norm exponents). Integer constants only describe shapes. w_avg is
estimated from 10,000 seeded samples (the IR does not store it).
"""
from __future__ import annotations

import math
import os
import re

import numpy as np
import torch

from ..models.generator import estimate_w_avg
from ..models.mobile_stylegan import LEAKY_SLOPE, MobileStyleGAN
from .openvino_ir import OpenVINOIRError, read_ir


def mobile_stylegan_from_ir(mapping_xml: str | os.PathLike, mapping_bin: str | os.PathLike,
                            synthesis_xml: str | os.PathLike, synthesis_bin: str | os.PathLike) -> MobileStyleGAN:
    """Build the generator from the OpenVINO IR of random-face (mapping and synthesis networks)."""
    return _from_ir_graphs(read_ir(mapping_xml, mapping_bin), read_ir(synthesis_xml, synthesis_bin))


_IR_PARAMS = {
    "conv.modulation.weight": "affine.weight", "modulation.weight": "affine.weight",
    "conv.modulation.bias": "affine.bias", "modulation.bias": "affine.bias",
    "conv.weight_dw": "weight_dw", "conv.weight_pw": "weight_pw", "conv.weight": "weight",
    "bias": "bias", "noise": "noise",
}


def _from_ir_graphs(mapping_graph, synthesis_graph) -> MobileStyleGAN:
    named = _synthesis_tensors(synthesis_graph)
    mapping_weights, mapping_biases = _mapping_tensors(mapping_graph)
    block_numbers = {int(m.group(1)) for m in map(re.compile(r"m\.layers\.(\d+)\.").match, named) if m}
    if "m.input.input" not in named or not block_numbers:
        raise OpenVINOIRError(f"{synthesis_graph.name}: not a MobileStyleGAN synthesis network "
                              "(no m.input.input constant or no m.layers.* blocks)")
    blocks = 1 + max(block_numbers)
    const = named.pop("m.input.input")
    model = MobileStyleGAN(
        channels=[const.shape[1]] + [named[f"m.layers.{i}.conv2.bias"].size for i in range(blocks)],
        style_dim=mapping_weights[0].shape[0], n_mapping=len(mapping_weights), const_size=const.shape[-1],
    )
    layer_index = {layer.name: index for index, layer in enumerate(model.layers)}
    values = {"const": const}
    for i, (weight, bias) in enumerate(zip(mapping_weights, mapping_biases)):
        values[f"mapping_net.linears.{i}.weight"], values[f"mapping_net.linears.{i}.bias"] = weight, bias
    for ir_name, value in named.items():
        values[_state_key(ir_name, layer_index, blocks)] = value
    _check_modulation_scales(synthesis_graph, model, layer_index, blocks)

    state = model.state_dict()
    missing = sorted(set(state) - set(values) - {"w_avg"})
    unknown = sorted(set(values) - set(state))
    if missing or unknown:
        raise OpenVINOIRError(f"IR constants do not fill the model: missing {missing}, unexpected {unknown}")
    for key, value in values.items():
        target = state[key]
        if [d for d in value.shape if d != 1] != [d for d in target.shape if d != 1]:
            raise OpenVINOIRError(
                f"IR constant for {key} has shape {list(value.shape)}, model wants {list(target.shape)}")
        target.copy_(torch.from_numpy(np.ascontiguousarray(value)).reshape(target.shape))
    model.load_state_dict(state)
    with torch.no_grad():
        model.w_avg.copy_(estimate_w_avg(model.mapping_network, model.z_dim, samples=10_000))
    return model.eval().requires_grad_(False)


def _state_key(ir_name: str, layer_index: dict[str, int], blocks: int) -> str:
    match = re.fullmatch(r"m\.(?:layers\.(\d+)\.)?(up|conv1|conv2|to_img)\.(.+)", ir_name)
    if not match or match.group(3) not in _IR_PARAMS:
        raise OpenVINOIRError(f"unexpected MobileStyleGAN IR constant {ir_name!r}")
    block, module, param = match.groups()
    if module == "to_img" and block is not None and int(block) != blocks - 1:
        raise OpenVINOIRError(f"{ir_name}: only the last block has an image head in this export")
    layer = module if block is None or module == "to_img" else f"block{block}.{module}"
    if layer not in layer_index:
        raise OpenVINOIRError(f"IR constant {ir_name!r} has no layer {layer!r} in the model")
    return f"layers.{layer_index[layer]}.{_IR_PARAMS[param]}"


def _synthesis_tensors(graph) -> dict[str, np.ndarray]:
    """IR-style name -> value for every parameter of the synthesis network.

    Unnamed constants get the name of what they feed: a pointwise weight is named after the
    depthwise weight before it, a noise map after the convolution it is added to.
    """
    named: dict[str, np.ndarray] = {}
    conv_names: dict[int, str] = {}  # Convolution layer id -> IR name of its weight
    unnamed = []
    for const in graph.constants():
        if not const.is_float_const:
            continue
        if const.name.startswith("m."):
            named[const.name] = const.value
            continue
        unnamed.append(const)
    for const in unnamed:
        consumer = _only_consumer(graph, const)
        if consumer.type == "Convolution":
            data_input = graph.producers(consumer)[0]
            if const.value.shape[-2:] == (3, 3):
                name = "m.conv1.conv.weight"
            elif data_input.type == "GroupConvolution":
                name = graph.producers(data_input)[1].name.replace("weight_dw", "weight_pw")
            else:
                raise OpenVINOIRError(f"{graph.name}: unexpected convolution weight {const.name!r}")
            named[name], conv_names[consumer.id] = const.value, name
    for const in unnamed:
        consumer = _only_consumer(graph, const)
        if consumer.type == "Add" and const.value.ndim == 4:
            conv = next((p for p in graph.producers(consumer) if p.id in conv_names), None)
            if conv is None:
                raise OpenVINOIRError(f"{graph.name}: constant {const.name!r} is added to something unknown")
            named[conv_names[conv.id].rsplit(".conv.", 1)[0] + ".noise"] = const.value
        elif consumer.type == "Convolution" or (consumer.type == "Multiply" and const.value.size == 1):
            continue  # a weight (above) or a modulation scale (_check_modulation_scales)
        elif consumer.type == "PReLU":
            _expect(np.allclose(const.value, LEAKY_SLOPE), graph, const, "a leaky ReLU slope of 0.2")
        elif consumer.type == "GroupConvolutionBackpropData":
            _expect(_is_haar_filter(const.value), graph, const, "a Haar synthesis filter")
        else:
            raise OpenVINOIRError(f"{graph.name}: unexpected constant {const.name!r} feeding {consumer.type}")
    return named


def _is_haar_filter(value: np.ndarray) -> bool:
    taps = value.reshape(value.shape[0], 2) * math.sqrt(2)
    low, high = np.array([1.0, 1.0]), np.array([1.0, -1.0])
    return np.allclose(taps, low, atol=1e-6) or np.allclose(taps, high, atol=1e-6)


def _check_modulation_scales(graph, model: MobileStyleGAN, layer_index: dict[str, int], blocks: int) -> None:
    """The scalars multiplied onto the styles must be the scales our layers use (1/sqrt(fan-in))."""
    seen = 0
    for const in graph.constants():
        if not (const.is_float_const and const.value.size == 1):
            continue
        multiply = _only_consumer(graph, const)
        if multiply.type != "Multiply":
            continue
        style = next(p for p in graph.producers(multiply) if p.id != const.id)
        while style.type != "MatMul":  # Reshape <- Add(bias) <- MatMul(style, modulation weight)
            style = graph.producers(style)[0]
        modulation = graph.producers(style)[1].name
        key = _state_key(modulation, layer_index, blocks)
        layer = model.layers[int(key.split(".")[1])]
        _expect(math.isclose(float(const.value.item()), layer.affine.scale, rel_tol=1e-5), graph, const,
                f"the modulation scale {layer.affine.scale:.6g} of {layer.name}")
        seen += 1
    expected = sum(1 for layer in model.layers if layer.affine.scale != 1.0)
    if seen != expected:
        raise OpenVINOIRError(f"{graph.name}: found {seen} modulation scales, expected {expected}")


def _mapping_tensors(graph) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Weights and biases of the mapping's linear layers, in graph order; checks the other constants."""
    allowed_scalars = {"Power": (2.0, 0.5, -1.0), "Add": (1e-8,), "PReLU": (LEAKY_SLOPE,),
                       "Multiply": (1.0, math.sqrt(2))}
    weights, biases = [], []
    for const in graph.constants():
        if not const.is_float_const:
            continue
        consumer = _only_consumer(graph, const)
        if consumer.type == "MatMul" and const.value.ndim == 2:
            _expect(consumer.data.get("transpose_b") == "true", graph, const, "a [out, in] weight (transpose_b)")
            weights.append(const.value)
        elif consumer.type == "Reshape" and const.value.ndim == 1 and const.value.size > 1:
            biases.append(const.value)
        elif const.value.size == 1 and consumer.type in allowed_scalars:
            value = float(const.value.item())
            _expect(any(math.isclose(value, a, rel_tol=1e-6) for a in allowed_scalars[consumer.type]),
                    graph, const, f"one of {allowed_scalars[consumer.type]} for {consumer.type}")
        else:
            raise OpenVINOIRError(f"{graph.name}: unexpected constant {const.name!r} feeding {consumer.type}")
    if not weights or len(weights) != len(biases):
        raise OpenVINOIRError(f"{graph.name}: found {len(weights)} linear weights and {len(biases)} biases")
    return weights, biases


def _only_consumer(graph, const):
    consumers = graph.consumers(const)
    if len(consumers) != 1:
        raise OpenVINOIRError(f"{graph.name}: constant {const.name!r} feeds {len(consumers)} layers, expected 1")
    return consumers[0]


def _expect(ok: bool, graph, const, what: str) -> None:
    if not ok:
        raise OpenVINOIRError(f"{graph.name}: constant {const.name!r} = {const.value.ravel()[:4]} is not {what}")
