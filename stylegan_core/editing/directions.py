"""Edit directions in W (attribute sliders) that the project finds itself, for any model.

Three ways (ALGORITHMS.md, "Finding edit directions"):
- unsupervised, instant: SeFa (eigenvectors of A^T A of the row-normalised style affine weights
  over coarse / middle / fine layer ranges) and GANSpace (PCA of sampled w);
- supervised (InterFaceGAN): render sampled codes, judge them (`stylegan_core.judges`), fit a
  linear model of each judge in W; its unit normal is the direction. Conditional versions project
  out the normals of the other named attributes (n' = n - (n.c)c, renormalised). The rows each
  main direction acts on are chosen by measurement (the fewest rows that keep most of the effect);
- StyleSpace: single style channels (S space, the affine outputs), ranked by correlation with a
  judge over the judged samples and chosen by measured effect; applied through the
  `LayerEditor.styles` hook of the one synthesis loop (`render_edit`, `style_editor`).

A slider value is in standard deviations of generated (untruncated) w along the direction, so +-1
is ordinary variation and +-3 strong; values are limited to +-SLIDER_LIMIT.

Directions are stored per model as `manifest.json` (names, kinds, rows, slider unit, how they were
computed, measured effect) plus `vectors.npy` ([K, w_dim] float32): committed for the default
model under stylegan_core/data/directions/<model>/, computed ones under weights/directions/<model>/.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from ..errors import UserError
from ..models.generator import Generator, LayerEditor

log = logging.getLogger(__name__)

SLIDER_LIMIT = 5.0
SIGMA_SAMPLES = 10_000  # w samples for slider units and GANSpace (mapping only: a second here)
PACKAGED_DIR = Path(__file__).resolve().parents[1] / "data" / "directions"
LAYER_RANGES = {"coarse": (0, 8), "middle": (16, 32), "fine": (64, 1 << 20)}  # by layer resolution
# Named attributes: judge -> (slider name, display name). The judge's sign is the slider's sign.
NAMED_ATTRIBUTES = {
    "age": ("age", "Age (older)"),
    "gender": ("gender", "Gender (more male)"),
    "expr_happy": ("smile", "Smile"),
    "yaw": ("yaw", "Head turn (towards image right)"),
    "pitch": ("pitch", "Head tilt (up)"),
    "eye_openness": ("eyes_open", "Eyes open"),
    "mouth_openness": ("mouth_open", "Mouth open"),
}


class DirectionError(UserError, ValueError):
    """An unknown direction, a value out of range, a code of another model, directions not ready."""


@dataclass
class Direction:
    name: str  # what a slider is called: "age", "age_c", "sefa_coarse_0", "pca_2"
    kind: str  # "interfacegan", "interfacegan-conditional", "stylespace", "sefa", "ganspace"
    display_name: str
    rows: tuple[int, ...]  # the W+ rows it moves
    sigma: float  # std of generated w along the unit vector: one slider unit
    description: str = ""  # what the judges see it change
    effect: dict[str, float] = field(default_factory=dict)  # measured judge change per slider unit
    # StyleSpace directions move one style channel (layer index, channel) instead of a W vector;
    # sign: which way of the channel raises the attribute
    layer: int = -1
    channel: int = -1
    sign: float = 1.0

    @property
    def in_style_space(self) -> bool:
        return self.channel >= 0


@dataclass
class DirectionSet:
    model_name: str
    num_ws: int
    w_dim: int
    directions: dict[str, Direction]
    vectors: dict[str, np.ndarray]  # unit vectors [w_dim]
    info: dict = field(default_factory=dict)  # how computed: samples, seeds, psi, fit, seconds

    def names(self, kind: Optional[str] = None) -> list[str]:
        return [n for n, d in self.directions.items() if kind is None or d.kind == kind]

    def sliders(self) -> list[tuple[str, str]]:
        """(name, display name) for an edit UI: the named attributes first, then the rest."""
        order = {"interfacegan": 0, "interfacegan-conditional": 1, "stylespace": 2, "sefa": 3, "ganspace": 4}
        ranked = sorted(self.directions.values(), key=lambda d: order.get(d.kind, 5))
        return [(d.name, d.display_name) for d in ranked]

    def add(self, direction: Direction, vector: Optional[np.ndarray] = None) -> None:
        """Add a W direction with its vector, or an S-space one (no W vector: stored as zeros)."""
        self.directions[direction.name] = direction
        self.vectors[direction.name] = (np.zeros(self.w_dim, np.float32) if vector is None
                                        else (vector / np.linalg.norm(vector)).astype(np.float32))


# -- applying ---------------------------------------------------------------------------------------
def check_values(directions: DirectionSet, values: dict[str, float]) -> None:
    for name, value in values.items():
        if name not in directions.directions:
            known = ", ".join(directions.directions)
            raise DirectionError(f"unknown direction {name!r} for model {directions.model_name}; known: {known}")
        if not -SLIDER_LIMIT <= float(value) <= SLIDER_LIMIT:
            raise DirectionError(f"{name}={value}: slider values go from {-SLIDER_LIMIT:g} to {SLIDER_LIMIT:g} "
                                 "(standard deviations of generated faces)")


def apply_directions(directions: DirectionSet, ws: torch.Tensor, values: dict[str, float]) -> torch.Tensor:
    """ws [B, num_ws, w_dim] moved by value * sigma along each named direction, on its rows."""
    check_values(directions, values)
    if ws.dim() != 3 or tuple(ws.shape[1:]) != (directions.num_ws, directions.w_dim):
        raise DirectionError(f"this code has shape {list(ws.shape)}, but the directions of "
                             f"{directions.model_name} need [batch, {directions.num_ws}, {directions.w_dim}]: "
                             "a code of another model? Edit it with that model's directions.")
    out = ws.clone()
    for name, value in values.items():
        direction = directions.directions[name]
        if direction.in_style_space:
            continue  # applied by style_editor during synthesis
        step = torch.from_numpy(directions.vectors[name]).to(ws) * (float(value) * direction.sigma)
        out[:, list(direction.rows)] += step
    return out


class StyleChannelEditor(LayerEditor):
    """Adds fixed offsets to single style channels before their layers run (S-space edits)."""

    def __init__(self, shifts: dict[int, list[tuple[int, float]]]):
        self.shifts = shifts  # layer index -> [(channel, offset)]

    def styles(self, index: int, layer, s: torch.Tensor) -> torch.Tensor:
        if index not in self.shifts:
            return s
        s = s.clone()
        for channel, offset in self.shifts[index]:
            s[:, channel] += offset
        return s


def style_editor(directions: DirectionSet, values: dict[str, float]) -> Optional[StyleChannelEditor]:
    """The LayerEditor for the S-space directions among `values` (None when there are none)."""
    check_values(directions, values)
    shifts: dict[int, list[tuple[int, float]]] = {}
    for name, value in values.items():
        d = directions.directions[name]
        if d.in_style_space and value:
            shifts.setdefault(d.layer, []).append((d.channel, float(value) * d.sigma * d.sign))
    return StyleChannelEditor(shifts) if shifts else None


def render_edit(generator: Generator, directions: DirectionSet, ws: torch.Tensor,
                values: dict[str, float]) -> torch.Tensor:
    """The image [B, 3, H, W] of ws edited by `values` (W and S-space directions): one forward."""
    with torch.no_grad():
        return generator.synthesis(apply_directions(directions, ws, values), style_editor(directions, values))


# -- instant, unsupervised --------------------------------------------------------------------------
def sample_w(generator: Generator, count: int = SIGMA_SAMPLES, seed: int = 0) -> np.ndarray:
    """count untruncated w [count, w_dim] from seeded Gaussian z."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        z = torch.randn(count, generator.z_dim, generator=gen).to(generator.device)
        return generator.mapping_network(z).double().cpu().numpy()


def sigma_along(w_samples: np.ndarray, vector: np.ndarray) -> float:
    return float(np.std(w_samples @ (vector / np.linalg.norm(vector))))


def rows_in_range(generator: Generator, low: int, high: int) -> tuple[int, ...]:
    """The used W+ rows whose layers work at resolutions in [low, high]."""
    return tuple(r.row for r in generator.describe_rows() if r.used and low <= r.resolution <= high)


def affine_matrix(layer) -> torch.Tensor:
    """[C, w_dim]: the layer's style affine (constant gains do not matter after row normalisation)."""
    if hasattr(layer, "affine_matrix"):
        return layer.affine_matrix()
    return layer.affine.weight


def sefa_vectors(generator: Generator, rows: tuple[int, ...], count: int) -> np.ndarray:
    """SeFa: the top eigenvectors [count, w_dim] of A^T A over the layers reading `rows`."""
    matrices = [affine_matrix(layer).detach().double().cpu() for layer in generator.layers
                if set(layer.rows) & set(rows)]
    stacked = torch.cat([m / m.norm(dim=1, keepdim=True) for m in matrices]).numpy()
    eigenvalues, eigenvectors = np.linalg.eigh(stacked.T @ stacked)
    return eigenvectors[:, np.argsort(eigenvalues)[::-1][:count]].T


def ganspace_vectors(w_samples: np.ndarray, count: int) -> np.ndarray:
    """GANSpace: the top principal axes [count, w_dim] of sampled w."""
    centred = w_samples - w_samples.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return vt[:count]


def _sign_fixed(vector: np.ndarray) -> np.ndarray:
    """Eigenvector signs are arbitrary: fix them (largest entry positive) so names stay stable."""
    return vector if vector[np.argmax(np.abs(vector))] > 0 else -vector


def unsupervised_directions(generator: Generator, model_name: str, per_range: int = 3,
                            pca_count: int = 6, w_samples: Optional[np.ndarray] = None) -> DirectionSet:
    """SeFa per layer range and GANSpace PCA: instant, for any model (no rendering)."""
    w_samples = sample_w(generator) if w_samples is None else w_samples
    result = DirectionSet(model_name, generator.num_ws, generator.w_dim, {}, {},
                          {"unsupervised": {"sefa_per_range": per_range, "pca_components": pca_count,
                                            "w_samples": len(w_samples)}})
    all_rows = rows_in_range(generator, 0, 1 << 20)
    for range_name, (low, high) in LAYER_RANGES.items():
        rows = rows_in_range(generator, low, high)
        for k, vector in enumerate(sefa_vectors(generator, rows, per_range) if rows else []):
            vector = _sign_fixed(vector)
            result.add(Direction(f"sefa_{range_name}_{k}", "sefa", f"SeFa {range_name} #{k + 1}", rows,
                                 sigma_along(w_samples, vector)), vector)
    for k, vector in enumerate(ganspace_vectors(w_samples, pca_count)):
        vector = _sign_fixed(vector)
        result.add(Direction(f"pca_{k}", "ganspace", f"GANSpace PC {k + 1}", all_rows,
                             sigma_along(w_samples, vector)), vector)
    return result


# -- supervised: judged samples ---------------------------------------------------------------------
FIT_SEED_BASE = 1_000_000  # fitting seeds; seeds below stay held out for measuring (benchmarks)
MIN_JUDGED_FACES = 50  # fewer cannot support a linear fit
FIT_PSI = 0.7  # the judges are reliable on the truncated faces people edit; truncation is linear,
# so a boundary fitted on truncated codes has the same normal in W


def render(generator: Generator, ws: torch.Tensor):
    """One PIL image per code (what the judges read)."""
    from ..images import tensor_to_pil

    with torch.no_grad():
        images = generator.synthesis(ws.to(generator.device))
    return [tensor_to_pil(image) for image in images]


def _load_samples(path: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    if not path.exists():
        return [], []
    data = np.load(path)
    return list(data["w"]), list(data["judges"])


def judged_samples(generator: Generator, count: int, cache: Path, psi: float = FIT_PSI,
                   progress: Callable[[str], None] = log.info) -> tuple[np.ndarray, np.ndarray]:
    """w [N, w_dim] of seeds FIT_SEED_BASE + i (truncated by psi) and their judges [N, len(JUDGE_NAMES)]
    (NaN where no face was found). Resumes from and saves to `cache` every few samples."""
    from .. import judges

    ws_list, judged = _load_samples(cache)
    started, first = time.monotonic(), len(ws_list)
    for index in range(len(ws_list), count):
        with torch.no_grad():
            ws = generator.mapping(generator.seed_to_z(FIT_SEED_BASE + index).to(generator.device), psi=psi)
        verdict = judges.judge_or_none(render(generator, ws)[0])
        ws_list.append(ws[0, 0].double().cpu().numpy())
        judged.append(np.array([np.nan if verdict is None else verdict[n] for n in judges.JUDGE_NAMES]))
        done = index + 1
        if done % 20 == 0 or done == count:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache.with_suffix(".tmp.npz"), w=np.array(ws_list), judges=np.array(judged))
            cache.with_suffix(".tmp.npz").replace(cache)
            rate = (time.monotonic() - started) / (done - first)
            progress(f"judged {done}/{count} sampled faces ({rate:.1f} s each)")
    return np.array(ws_list)[:count], np.array(judged)[:count]


def ridge_normal(w: np.ndarray, y: np.ndarray, folds: int = 5) -> tuple[np.ndarray, float]:
    """The unit normal of a linear model y ~ w.b (ridge, strength chosen by cross-validation) and its
    held-out correlation. The least-squares analogue of InterFaceGAN's linear SVM: with a few
    hundred samples in 512 dimensions the regulariser is what keeps the normal meaningful."""
    x = w - w.mean(0)
    y = y - y.mean()
    scale = np.trace(x.T @ x) / x.shape[1]
    fold_of = np.arange(len(y)) % folds

    def fit(mask: np.ndarray, alpha: float) -> np.ndarray:
        xs = x[mask]
        return np.linalg.solve(xs.T @ xs + alpha * scale * np.eye(x.shape[1]), xs.T @ y[mask])

    def held_out_correlation(alpha: float) -> float:
        predicted = np.empty_like(y)
        for k in range(folds):
            predicted[fold_of == k] = x[fold_of == k] @ fit(fold_of != k, alpha)
        return float(np.corrcoef(predicted, y)[0, 1])

    scores = {alpha: held_out_correlation(alpha) for alpha in (0.1, 1.0, 10.0, 100.0)}
    best = max(scores, key=scores.get)
    normal = fit(np.ones(len(y), bool), best)
    return normal / np.linalg.norm(normal), scores[best]


def conditional(normal: np.ndarray, others: list[np.ndarray]) -> np.ndarray:
    """n' = n - sum (n.c) c over the orthonormalised other normals, renormalised: moving along n'
    leaves the other attributes' linear models unchanged."""
    basis: list[np.ndarray] = []
    for c in others:  # Gram-Schmidt, so that several conditions are removed exactly
        c = c / np.linalg.norm(c)
        c = c - sum((c @ b) * b for b in basis)
        if np.linalg.norm(c) > 1e-6:  # a condition (nearly) parallel to earlier ones adds nothing
            basis.append(c / np.linalg.norm(c))
    result = normal - sum((normal @ b) * b for b in basis)
    return result / np.linalg.norm(result)


# -- measuring what a direction does ----------------------------------------------------------------
def probe_codes(generator: Generator, count: int, psi: float = FIT_PSI, first_seed: int = FIT_SEED_BASE - 1000) -> torch.Tensor:
    """Codes of seeds used neither for fitting nor for the held-out benchmark (which uses seeds < 1000)."""
    with torch.no_grad():
        return torch.cat([generator.mapping(generator.seed_to_z(first_seed + k).to(generator.device), psi=psi)
                          for k in range(count)])


def measure_effect(generator: Generator, directions: DirectionSet, name: str, probes: torch.Tensor,
                   value: float = 2.0) -> dict[str, float]:
    """Mean judge change per slider unit between -value and +value over the probe codes (faces
    that lose the face detection are skipped)."""
    from .. import judges
    from ..images import tensor_to_pil

    changes = []
    for code in probes:
        pair = [judges.judge_or_none(tensor_to_pil(render_edit(generator, directions, code[None], {name: v})))
                for v in (-value, value)]
        if None not in pair:
            changes.append([(pair[1][n] - pair[0][n]) / (2 * value) for n in judges.JUDGE_NAMES])
    if not changes:
        return {}
    return dict(zip(judges.JUDGE_NAMES, np.mean(changes, axis=0).round(4).tolist()))


def sample_slopes(w: np.ndarray, judged: np.ndarray, vector: np.ndarray, sigma: float) -> dict[str, float]:
    """Judge change per slider unit as the judged samples show it (regression slope of each judge on
    the samples' coordinate along `vector`): no rendering, so instant for unsupervised components."""
    from ..judges import JUDGE_NAMES

    faces = np.all(np.isfinite(judged), axis=1)
    t = (w[faces] - w[faces].mean(0)) @ vector
    slopes = (t @ (judged[faces] - judged[faces].mean(0))) / (t @ t) * sigma
    return dict(zip(JUDGE_NAMES, np.round(slopes, 4).tolist()))


def describe_effect(effect: dict[str, float], spread: dict[str, float], top: int = 2) -> str:
    """The judges a direction moves most, relative to how much they vary over generated faces."""
    if not effect:
        return "no face found when measured"
    ranked = sorted(effect, key=lambda n: -abs(effect[n]) / max(spread.get(n, 1.0), 1e-6))
    return ", ".join(f"{n} {effect[n]:+.3g}/unit" for n in ranked[:top])


# -- supervised directions, with rows chosen by measurement -----------------------------------------
ROW_CANDIDATES = {"coarse": 8, "coarse+middle": 32, "all": 1 << 20}  # highest layer resolution edited
ROW_KEEP_FRACTION = 0.75  # the fewest rows that keep this share of the all-rows effect win


def choose_rows(generator: Generator, directions: DirectionSet, name: str, judge: str,
                probes: torch.Tensor, progress: Callable[[str], None]) -> dict[str, float]:
    """Try the direction on each row range; keep the fewest rows with >= ROW_KEEP_FRACTION of the
    all-rows change of its judge (fewer rows: less of everything else changes). Returns its effect."""
    direction = directions.directions[name]
    effects = {}
    for label, top in ROW_CANDIDATES.items():
        direction.rows = rows_in_range(generator, 0, top)
        effects[label] = measure_effect(generator, directions, name, probes)
        progress(f"{name} on {label} rows: {judge} {effects[label].get(judge, float('nan')):+.3g}/unit")
    full = abs(effects["all"].get(judge, 0.0))
    for label, top in ROW_CANDIDATES.items():
        if abs(effects[label].get(judge, 0.0)) >= ROW_KEEP_FRACTION * full:
            direction.rows = rows_in_range(generator, 0, top)
            direction.description = f"{judge} {effects[label][judge]:+.3g}/unit on {label} rows"
            return effects[label]
    return effects["all"]  # unreachable: 'all' always qualifies


def supervised_directions(generator: Generator, directions: DirectionSet, w: np.ndarray, judged: np.ndarray,
                          w_samples: np.ndarray, probes: torch.Tensor,
                          progress: Callable[[str], None]) -> None:
    """Add InterFaceGAN directions (and conditional '<name>_c' versions) for NAMED_ATTRIBUTES."""
    from ..judges import JUDGE_NAMES

    faces = np.all(np.isfinite(judged), axis=1)
    normals, quality = {}, {}
    for judge, (name, _) in NAMED_ATTRIBUTES.items():
        normals[name], quality[name] = ridge_normal(w[faces], judged[faces, JUDGE_NAMES.index(judge)])
        progress(f"{name}: linear fit of {judge} on {int(faces.sum())} faces, held-out correlation {quality[name]:.2f}")
    for judge, (name, display) in NAMED_ATTRIBUTES.items():
        directions.add(Direction(name, "interfacegan", display, rows_in_range(generator, 0, 1 << 20),
                                 sigma_along(w_samples, normals[name])), normals[name])
        if name in CONDITIONS:  # the main sliders: rows chosen by measurement
            directions.directions[name].effect = choose_rows(generator, directions, name, judge, probes, progress)
        else:  # the others act on all rows; measured once
            effect = measure_effect(generator, directions, name, probes)
            directions.directions[name].effect = effect
            directions.directions[name].description = f"{judge} {effect.get(judge, float('nan')):+.3g}/unit"
            progress(f"{name}: {directions.directions[name].description}")
        others = [normals[n] for n in CONDITIONS.get(name, ())]
        if others:
            vector = conditional(normals[name], others)
            directions.add(Direction(f"{name}_c", "interfacegan-conditional", f"{display}, keeping {', '.join(CONDITIONS[name])}",
                                     directions.directions[name].rows, sigma_along(w_samples, vector)), vector)
            effect = measure_effect(generator, directions, f"{name}_c", probes)
            directions.directions[f"{name}_c"].effect = effect
            directions.directions[f"{name}_c"].description = f"{judge} {effect.get(judge, float('nan')):+.3g}/unit"
    directions.info["supervised"] = {"fit": "ridge regression of each judge on w, strength by 5-fold CV",
                                     "held_out_correlation": {k: round(v, 3) for k, v in quality.items()}}


# Conditional versions keep these other attributes fixed (first order): the usual entanglements.
CONDITIONS = {"age": ("gender", "smile"), "gender": ("age", "smile"), "smile": ("mouth_open", "age", "gender"),
              "yaw": ("smile", "age", "gender")}


# -- StyleSpace: single style channels -------------------------------------------------------------
STYLE_ATTRIBUTES = ("age", "gender", "expr_happy", "yaw")
STYLE_CANDIDATES = 2  # channels per attribute tried by rendering (picked by correlation first)
STYLE_MAX_RESOLUTION = 256  # finer layers hold texture and colour, not attributes


def style_samples(generator: Generator, w: np.ndarray) -> list[np.ndarray]:
    """The per-layer styles [N, C_l] of codes w [N, w_dim] (all rows equal): affines only, no rendering."""
    ws = torch.from_numpy(w).float()[:, None].repeat(1, generator.num_ws, 1).to(generator.device)
    with torch.no_grad():
        return [s.double().cpu().numpy() for s in generator.styles(ws)]


def correlated_channels(styles: list[np.ndarray], y: np.ndarray, layers: list[int], count: int) -> list[tuple[int, int, float]]:
    """The `count` (layer, channel, correlation) with the largest |correlation| between channel and y."""
    found = []
    yc = (y - y.mean()) / (y.std() + 1e-12)
    for index in layers:
        s = styles[index]
        sc = (s - s.mean(0)) / (s.std(0) + 1e-12)
        corr = sc.T @ yc / len(y)
        found += [(index, int(c), float(corr[c])) for c in np.argsort(-np.abs(corr))[:count]]
    return sorted(found, key=lambda f: -abs(f[2]))[:count]


def stylespace_directions(generator: Generator, directions: DirectionSet, w: np.ndarray, judged: np.ndarray,
                          w_samples: np.ndarray, probes: torch.Tensor, progress: Callable[[str], None]) -> None:
    """Add '<name>_s': the single style channel that moves each attribute most, measured on the probe
    faces among the channels that correlate best with the judge over the judged samples."""
    from ..judges import JUDGE_NAMES

    faces = np.all(np.isfinite(judged), axis=1)
    styles = style_samples(generator, w[faces])
    spread = style_samples(generator, w_samples[:2000])  # slider unit: std over untruncated faces
    layers = [i.index for i in generator.describe_styles() if i.resolution <= STYLE_MAX_RESOLUTION]
    for judge in STYLE_ATTRIBUTES:
        name, display = NAMED_ATTRIBUTES[judge]
        best = None
        for index, channel, corr in correlated_channels(styles, judged[faces, JUDGE_NAMES.index(judge)], layers,
                                                        STYLE_CANDIDATES):
            info = generator.describe_styles()[index]
            candidate = Direction(f"{name}_s", "stylespace", f"{display}, one style channel", (info.row,),
                                  float(spread[index][:, channel].std()), layer=index, channel=channel,
                                  sign=1.0 if corr > 0 else -1.0)
            directions.add(candidate)
            candidate.effect = measure_effect(generator, directions, candidate.name, probes)
            progress(f"{name}_s candidate {info.layer}[{channel}] (corr {corr:+.2f}): "
                     f"{judge} {candidate.effect.get(judge, float('nan')):+.3g}/unit")
            if best is None or candidate.effect.get(judge, 0.0) > best.effect.get(judge, 0.0):
                best = candidate
        best.description = f"{judge} {best.effect.get(judge, float('nan')):+.3g}/unit; channel {best.channel} of " \
                           f"{generator.describe_styles()[best.layer].layer}"
        directions.directions[best.name] = best


def compute_directions(generator: Generator, model_name: str, samples: int = 400, probe_faces: int = 3,
                       cache: Optional[Path] = None, progress: Callable[[str], None] = log.info) -> DirectionSet:
    """All directions for a model: instant SeFa/GANSpace, then judged samples -> InterFaceGAN
    directions with measured rows; every direction's effect measured on probe faces and described."""
    from .. import judges

    started = time.monotonic()
    w_samples = sample_w(generator)
    directions = unsupervised_directions(generator, model_name, w_samples=w_samples)
    cache = cache or computed_dir(model_name) / "samples.npz"
    w, judged = judged_samples(generator, samples, cache, progress=progress)
    faces = int(np.all(np.isfinite(judged), axis=1).sum())
    if faces < MIN_JUDGED_FACES:
        raise DirectionError(f"the judges found a face in only {faces} of {samples} samples of {model_name}: "
                             "named directions need a model of human faces; its instant (SeFa, GANSpace) "
                             "directions work without them")
    probes = probe_codes(generator, probe_faces)
    supervised_directions(generator, directions, w, judged, w_samples, probes, progress)
    stylespace_directions(generator, directions, w, judged, w_samples, probes, progress)
    spread = dict(zip(judges.JUDGE_NAMES, np.nanstd(judged, axis=0).tolist()))
    for name in directions.names("sefa") + directions.names("ganspace"):
        d = directions.directions[name]
        d.effect = sample_slopes(w, judged, directions.vectors[name], d.sigma)
        d.description = "judged samples: " + describe_effect(d.effect, spread)
        progress(f"{name}: {d.description}")
    directions.info.update(samples=samples, faces_judged=int(np.all(np.isfinite(judged), axis=1).sum()),
                           fit_seeds=f"{FIT_SEED_BASE}..{FIT_SEED_BASE + samples - 1}", psi=FIT_PSI,
                           probe_faces=probe_faces, probe_value=2.0, judge_spread=spread,
                           seconds=round(time.monotonic() - started, 1))
    return directions


# -- storing ----------------------------------------------------------------------------------------
def computed_dir(model_name: str) -> Path:
    from ..loading.weights import weights_dir

    return weights_dir() / "directions" / model_name


def save_directions(directions: DirectionSet, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    names = list(directions.directions)
    np.save(folder / "vectors.npy", np.stack([directions.vectors[n] for n in names]).astype(np.float32))
    manifest = {"model": directions.model_name, "num_ws": directions.num_ws, "w_dim": directions.w_dim,
                "slider_unit": "standard deviations of untruncated generated w along the direction",
                "slider_limit": SLIDER_LIMIT, "info": directions.info,
                "directions": [dict(asdict(directions.directions[n]), rows=list(directions.directions[n].rows))
                               for n in names]}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))


def load_directions_from(folder: Path) -> DirectionSet:
    manifest = json.loads((folder / "manifest.json").read_text())
    vectors = np.load(folder / "vectors.npy")
    result = DirectionSet(manifest["model"], manifest["num_ws"], manifest["w_dim"], {}, {}, manifest["info"])
    for entry, vector in zip(manifest["directions"], vectors):
        result.directions[entry["name"]] = Direction(**dict(entry, rows=tuple(entry["rows"])))
        result.vectors[entry["name"]] = vector
    return result


# -- finding a model's directions, and computing them in the background -----------------------------
_COMPUTING: dict[str, str] = {}  # model name -> latest progress line, while a background run works
_COMPUTING_LOCK = threading.Lock()


def stored_dir(model_name: str) -> Optional[Path]:
    """The folder with the model's directions: computed here (newest) or shipped with the package."""
    for folder in (computed_dir(model_name), PACKAGED_DIR / model_name):
        if (folder / "manifest.json").exists() and (folder / "vectors.npy").exists():
            return folder
    return None


def direction_status(model_name: str) -> str:
    """'computing: <progress>', 'ready' (stored directions) or 'instant only' (SeFa/GANSpace)."""
    with _COMPUTING_LOCK:
        if model_name in _COMPUTING:
            return f"computing: {_COMPUTING[model_name]}"
    return "ready" if stored_dir(model_name) else "instant only"


def load_directions(model_name: str, generator: Optional[Generator] = None) -> DirectionSet:
    """The model's stored directions; without any, the instant unsupervised ones (needs `generator`)."""
    folder = stored_dir(model_name)
    if folder is not None:
        return load_directions_from(folder)
    if generator is None:
        raise DirectionError(f"no directions stored for model {model_name!r}; compute them with "
                             f"`python -m stylegan_core directions --model {model_name} --compute`")
    return unsupervised_directions(generator, model_name)


def check_names_ready(directions: DirectionSet, names: list[str]) -> None:
    """A clear message for names that exist only once the supervised directions are computed."""
    missing = [n for n in names if n not in directions.directions]
    if not missing:
        return
    status = direction_status(directions.model_name)
    if status.startswith("computing"):
        raise DirectionError(f"{', '.join(missing)}: the directions of {directions.model_name} are still being "
                             f"computed ({status}); the instant ones work now: {', '.join(directions.names())}")
    check_values(directions, {n: 0.0 for n in missing})


def compute_in_background(generator: Generator, model_name: str, samples: int = 400) -> threading.Thread:
    """Compute and store the model's directions in a thread; `direction_status` reports progress."""
    def progress(line: str) -> None:
        with _COMPUTING_LOCK:
            _COMPUTING[model_name] = line
        log.info("%s directions: %s", model_name, line)

    def work() -> None:
        try:
            save_directions(compute_directions(generator, model_name, samples, progress=progress),
                            computed_dir(model_name))
        finally:
            with _COMPUTING_LOCK:
                _COMPUTING.pop(model_name, None)

    with _COMPUTING_LOCK:
        if model_name in _COMPUTING:
            raise DirectionError(f"the directions of {model_name} are already being computed")
        _COMPUTING[model_name] = "starting"
    thread = threading.Thread(target=work, name=f"directions-{model_name}", daemon=True)
    thread.start()
    return thread
