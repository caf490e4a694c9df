"""Turn one sampled step's pending device values into a step record (docs/watch.md)."""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from gradlint.watcher.collect import Sample, rms_of


def build_record(
    sample: Sample,
    step: int,
    params: list[tuple[str, str, nn.Parameter]],
    types: dict[str, str],
    loss_scale: float | None,
    lr: float | None,
) -> dict[str, Any]:
    values = sample.pending.values()  # the one device-to-host transfer of the step
    unscale = 1.0 / loss_scale if loss_scale else 1.0

    def at(s: slice | None) -> list[float] | None:
        return None if s is None else values[s]

    norms = at(sample.grad_slice)
    weights, updates = at(sample.weight_slice), at(sample.update_slice)
    present = sample.grad_present or [False] * len(params)
    by_layer: dict[str, list[dict[str, Any]]] = {}
    g = 0  # index among the parameters that have a gradient
    total_sq = 0.0
    for i, (layer, pname, p) in enumerate(params):
        entry: dict[str, Any] = {
            "name": pname,
            "shape": list(p.shape),
            "requires_grad": p.requires_grad,
            "grad_none": not present[i],
            "weight_norm": weights[i] if weights else None,
            "update_norm": updates[i] if updates else None,
        }
        if present[i] and norms is not None:
            norm = norms[g] * unscale
            counted = sample.grad_nonzero.get(i)
            entry.update(
                grad_norm=norm,
                grad_nonzero=int(values[counted][0]) if counted else p.numel(),
                nonfinite=not math.isfinite(norm),
            )
            if p.requires_grad:
                total_sq += norm * norm
            g += 1
        else:
            entry.update(grad_norm=None, grad_nonzero=0, nonfinite=False)
        by_layer.setdefault(layer, []).append(entry)
    layers: list[dict[str, Any]] = []
    tail = len(sample.layers) + len(sample.acts) + len(sample.others)
    for name, plist in by_layer.items():
        acc = sample.layers.get(name)
        stds = [values[s][0] for s in acc.stds] if acc else []
        finite_stds = [s for s in stds if math.isfinite(s)]
        act_rms, act_bad = rms_of(values, acc.grads) if acc else (None, False)
        layers.append(
            _layer_entry(
                name,
                acc.type if acc else types.get(name, ""),
                acc.order if acc else tail + len(layers),
                acc.calls if acc else 0,
                math.sqrt(sum(s * s for s in finite_stds) / len(finite_stds))
                if finite_stds
                else None,
                None if act_rms is None else act_rms * unscale,
                len(finite_stds) < len(stds),
                act_bad,
                acc.backward_order if acc else None,
                plist,
            )
        )
    layers.sort(key=lambda entry: entry["order"])
    activations = []
    for act in sample.acts.values():
        fractions = [values[s][0] for s in act.values]
        mean = sum(fractions) / len(fractions) if fractions else None
        activations.append(
            {
                "name": act.name,
                "type": act.type,
                "order": act.order,
                "calls": act.calls,
                "dead_fraction": mean if act.tail == "dead" else None,
                "saturated_fraction": mean if act.tail != "dead" else None,
            }
        )
    others = [
        {"name": o.name, "type": o.type, "order": o.order}
        for o in sample.others.values()
        if any(not math.isfinite(values[s][0]) for s in o.finite)
    ]
    grad_norm = math.sqrt(total_sq) if norms is not None else None
    return {
        "record": "step",
        "step": step,
        "batch_size": sample.batch_size,
        "loss": values[sample.loss][0] if sample.loss is not None else None,
        "lr": lr,
        "loss_scale": loss_scale,
        "grad_norm": grad_norm,
        "layers": layers,
        "activations": activations,
        "nonfinite_modules": others,
    }


def _layer_entry(
    name: str,
    type_name: str,
    order: int,
    calls: int,
    out_std: float | None,
    act_grad_rms: float | None,
    nonfinite_forward: bool,
    nonfinite_backward: bool,
    backward_order: int | None,
    params: list[dict[str, Any]],
) -> dict[str, Any]:
    trained = [p for p in params if p["requires_grad"] and not p["grad_none"]]
    grad_sq = sum(p["grad_norm"] ** 2 for p in trained)
    weight_sq = sum((p["weight_norm"] or 0.0) ** 2 for p in params if p["requires_grad"])
    update_sq = sum((p["update_norm"] or 0.0) ** 2 for p in params if p["requires_grad"])
    nonzero = sum(p["grad_nonzero"] for p in trained)
    weight = math.sqrt(weight_sq)
    has_update = any(p["update_norm"] is not None for p in params)
    return {
        "name": name,
        "type": type_name,
        "order": order,
        "calls": calls,
        "grad_norm": math.sqrt(grad_sq) if trained else None,
        "grad_rms": math.sqrt(grad_sq / nonzero) if trained and nonzero else None,
        "weight_norm": weight,
        "update_ratio": math.sqrt(update_sq) / weight if has_update and weight > 0 else None,
        "out_std": out_std,
        "act_grad_rms": act_grad_rms,
        "nonfinite_forward": nonfinite_forward,
        "nonfinite_backward": nonfinite_backward,
        "backward_order": backward_order,
        "params": params,
    }
