"""The Gaussian prior of S space ("StyleGAN of All Trades"): per-channel mean and variance of
every layer's styles, for S-space inversion with the prior term lambda * sum((s - mu)^2 / var).

Styles are affine in w (s_l = A_l w + b_l), so their mean and variance follow exactly from the
mean and covariance of w = mapping(z) over sampled z: mu_l = A_l mu_w + b_l and
var_l = diag(A_l Cov_w A_l^T). Estimated once per model from seeded samples and cached in the
weights folder (`style-priors/<model key>.pt`), the key a hash of the model's configuration and
stored tensors (a fine-tune gets its own prior).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import torch

from ..models.generator import Generator

PRIOR_SAMPLES = 10_000
PRIOR_FOLDER = "style-priors"
MIN_STD = 1e-4  # channels that never vary (constant styles) would divide by zero


@dataclass
class StylePrior:
    """Per-layer style statistics, in loop order: mean[l] and std[l] are [C_l] tensors."""

    mean: list[torch.Tensor]
    std: list[torch.Tensor]

    def flat_mean(self) -> torch.Tensor:
        return torch.cat(self.mean)

    def flat_std(self) -> torch.Tensor:
        return torch.cat(self.std)


def model_key(generator: Generator) -> str:
    """A short hash of the model: its architecture, configuration and every stored tensor."""
    digest = hashlib.sha256(json.dumps([generator.arch, generator.config], sort_keys=True, default=str).encode())
    with torch.no_grad():
        for name, tensor in sorted(generator.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:20]


def w_statistics(generator: Generator, samples: int = PRIOR_SAMPLES, seed: int = 0,
                 batch: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean [w_dim] and covariance [w_dim, w_dim] (float64) of mapping(z) over seeded Gaussian z."""
    noise = torch.Generator().manual_seed(seed)
    total = torch.zeros(generator.w_dim, dtype=torch.float64)
    outer = torch.zeros(generator.w_dim, generator.w_dim, dtype=torch.float64)
    with torch.no_grad():
        for start in range(0, samples, batch):
            z = torch.randn(min(batch, samples - start), generator.z_dim, generator=noise).to(generator.device)
            w = generator.mapping_network(z).double().cpu()
            total += w.sum(0)
            outer += w.T @ w
    mean = total / samples
    return mean, outer / samples - torch.outer(mean, mean)


def estimate_style_prior(generator: Generator, samples: int = PRIOR_SAMPLES, seed: int = 0) -> StylePrior:
    """The exact style mean and std of each layer under the sampled distribution of w."""
    mean_w, cov_w = w_statistics(generator, samples, seed)
    means, stds = [], []
    with torch.no_grad():
        for layer in generator.layers:
            matrix, bias = layer.affine_matrix().double().cpu(), layer.affine_bias().double().cpu()
            means.append((matrix @ mean_w + bias).float())
            variance = torch.einsum("cd,de,ce->c", matrix, cov_w, matrix).clamp_min(0.0)
            stds.append(variance.sqrt().clamp_min(MIN_STD).float())
    return StylePrior(means, stds)


def style_prior(generator: Generator) -> StylePrior:
    """The model's style prior, from the weights folder's cache or estimated (about a second) and
    cached there; tensors on the generator's device."""
    from ..loading.weights import weights_dir

    path = weights_dir() / PRIOR_FOLDER / f"{model_key(generator)}.pt"
    if path.exists():
        stored = torch.load(path, weights_only=True)
        prior = StylePrior(stored["mean"], stored["std"])
    else:
        prior = estimate_style_prior(generator)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        torch.save({"mean": prior.mean, "std": prior.std}, temporary)
        temporary.replace(path)  # never a half-written cache file
    device = generator.device
    return StylePrior([m.to(device) for m in prior.mean], [s.to(device) for s in prior.std])
