"""A seeded generator of SUSY-like rows whose Bayes-optimal accuracy is known.

Real SUSY (UCI, 5M rows) is not available offline, so the demo and tests use
rows with the same schema and a similar look: positive heavy-tailed momenta,
angles, derived "razor" style features, columns of very different scales.

How the rows are made, per row:

1. The class `y` is 1 (signal) with probability `SIGNAL_FRACTION`.
2. Eight latent variables are drawn independently given `y`, each from a
   distribution with a closed-form density (log-normal, beta, normal, von
   Mises, uniform).
3. The 8 low-level features (lepton momenta and angles, missing energy) are
   an invertible function of the latents whose Jacobian does not depend on
   `y` (lepton 2's pT is a fraction of lepton 1's; azimuths are offsets from
   lepton 1's azimuth).
4. The 10 derived features are deterministic functions of the low-level
   ones.

So the posterior P(y | row) equals P(y | latents), which has a closed form;
`bayes_optimal_accuracy` averages max(posterior, 1 - posterior) over a large
Monte Carlo sample. Part of the signal lives in variances and in relative
angles (interactions between columns), which a linear model cannot use.

The derived columns borrow SUSY's names; their definitions are simplified
stand-ins with the same flavour (documented in `_derived`), not the exact
formulas of the SUSY paper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from workload.datagen.table import SUSY_COLUMNS, SusyData, split

__all__ = [
    "SIGNAL_FRACTION",
    "SusyData",
    "bayes_optimal_accuracy",
    "bayes_predictions",
    "generate",
    "split",
]

Floats = npt.NDArray[np.float64]

SIGNAL_FRACTION = 0.458
"""Share of signal rows, as in SUSY (2,287,827 of 5,000,000)."""

LEPTON_PT_THRESHOLD = 20.0
"""GeV; lepton 1's pT is this plus a log-normal amount (a trigger threshold)."""


@dataclass(frozen=True)
class ClassParameters:
    """The latent distributions of one class."""

    log_pt1_mean: float
    """Mean of log(lepton 1 pT - threshold), log GeV."""
    log_pt1_std: float
    pt_ratio_a: float
    """Beta(a, b) parameters of lepton 2 pT / lepton 1 pT."""
    pt_ratio_b: float
    eta_std: float
    """Standard deviation of both leptons' pseudorapidity."""
    dphi_leptons_kappa: float
    """Von Mises concentration of the lepton-lepton azimuth gap around pi (back to back)."""
    log_met_mean: float
    """Mean of log(missing energy), log GeV."""
    log_met_std: float
    dphi_met_kappa: float
    """Von Mises concentration of the MET-lepton 1 azimuth gap around pi."""


BACKGROUND = ClassParameters(
    log_pt1_mean=math.log(30.0), log_pt1_std=0.7,
    pt_ratio_a=2.2, pt_ratio_b=1.6,
    eta_std=1.3,
    dphi_leptons_kappa=0.7,
    log_met_mean=math.log(35.0), log_met_std=0.6,
    dphi_met_kappa=0.2,
)
"""W/Z-like background: softer, back-to-back leptons, little missing energy."""

SIGNAL = ClassParameters(
    log_pt1_mean=math.log(40.0), log_pt1_std=0.7,
    pt_ratio_a=1.6, pt_ratio_b=2.0,
    eta_std=0.8,
    dphi_leptons_kappa=0.1,
    log_met_mean=math.log(60.0), log_met_std=0.6,
    dphi_met_kappa=1.1,
)
"""Chargino-like signal: harder, central, less correlated leptons, more missing energy."""


@dataclass(frozen=True)
class Latents:
    """Per-row latent variables (each float64 [rows]) and the labels they were drawn with."""

    labels: npt.NDArray[np.int64]
    log_pt1: Floats
    pt_ratio: Floats
    eta1: Floats
    eta2: Floats
    phi1: Floats
    dphi_leptons: Floats
    log_met: Floats
    dphi_met: Floats


def _pick(labels: npt.NDArray[np.int64], name: str) -> Floats:
    """A per-row array of one parameter, by class."""
    picked: Floats = np.where(labels == 1, getattr(SIGNAL, name), getattr(BACKGROUND, name))
    return picked


def _draw_latents(rows: int, rng: np.random.Generator) -> Latents:
    labels = (rng.random(rows) < SIGNAL_FRACTION).astype(np.int64)
    eta_std = _pick(labels, "eta_std")
    return Latents(
        labels=labels,
        log_pt1=rng.normal(_pick(labels, "log_pt1_mean"), _pick(labels, "log_pt1_std")),
        pt_ratio=rng.beta(_pick(labels, "pt_ratio_a"), _pick(labels, "pt_ratio_b")),
        eta1=rng.normal(0.0, eta_std),
        eta2=rng.normal(0.0, eta_std),
        phi1=rng.uniform(-math.pi, math.pi, rows),
        dphi_leptons=rng.vonmises(math.pi, _pick(labels, "dphi_leptons_kappa")),
        log_met=rng.normal(_pick(labels, "log_met_mean"), _pick(labels, "log_met_std")),
        dphi_met=rng.vonmises(math.pi, _pick(labels, "dphi_met_kappa")),
    )


def _normal_logpdf(x: Floats, mean: float, std: float) -> Floats:
    return -0.5 * ((x - mean) / std) ** 2 - math.log(std * math.sqrt(2.0 * math.pi))


def _beta_logpdf(x: Floats, a: float, b: float) -> Floats:
    log_beta = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    return (a - 1.0) * np.log(x) + (b - 1.0) * np.log1p(-x) - log_beta


def _vonmises_logpdf(x: Floats, kappa: float) -> Floats:
    log_normaliser = math.log(2.0 * math.pi * float(np.i0(kappa)))
    result: Floats = kappa * np.cos(x - math.pi) - log_normaliser
    return result


def _log_density(latents: Latents, params: ClassParameters) -> Floats:
    """log p(latents | class) up to terms that do not depend on the class (phi1 is uniform)."""
    p = params
    return (
        _normal_logpdf(latents.log_pt1, p.log_pt1_mean, p.log_pt1_std)
        + _beta_logpdf(latents.pt_ratio, p.pt_ratio_a, p.pt_ratio_b)
        + _normal_logpdf(latents.eta1, 0.0, p.eta_std)
        + _normal_logpdf(latents.eta2, 0.0, p.eta_std)
        + _vonmises_logpdf(latents.dphi_leptons, p.dphi_leptons_kappa)
        + _normal_logpdf(latents.log_met, p.log_met_mean, p.log_met_std)
        + _vonmises_logpdf(latents.dphi_met, p.dphi_met_kappa)
    )


def signal_posterior(latents: Latents) -> Floats:
    """P(signal | row), exact: the rows are an invertible, class-free map of the latents."""
    log_odds = (
        _log_density(latents, SIGNAL)
        - _log_density(latents, BACKGROUND)
        + math.log(SIGNAL_FRACTION / (1.0 - SIGNAL_FRACTION))
    )
    posterior: Floats = 1.0 / (1.0 + np.exp(-log_odds))
    return posterior


def _wrap(angle: Floats) -> Floats:
    """An angle mapped into [-pi, pi)."""
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


def _low_level(latents: Latents) -> list[Floats]:
    pt1 = LEPTON_PT_THRESHOLD + np.exp(latents.log_pt1)
    phi1 = latents.phi1
    return [
        pt1,
        latents.eta1,
        phi1,
        pt1 * latents.pt_ratio,
        latents.eta2,
        _wrap(phi1 + latents.dphi_leptons),
        np.exp(latents.log_met),
        _wrap(phi1 + latents.dphi_met),
    ]


def _derived(low: list[Floats]) -> list[Floats]:
    """Razor-style features from the low-level ones (massless leptons, GeV).

    met_rel: MET, or MET * sin(gap) when a lepton is within pi/2 of it;
    axial_met: MET projected against the dilepton direction; m_r: the
    dilepton's longitudinally boosted mass sqrt((E1+E2)^2 - (pz1+pz2)^2);
    m_tr_2: the razor transverse mass; r: (m_tr_2 / m_r)^2; mt2: the
    transverse mass of lepton 1 and MET (a stand-in for MT2); s_r: the scalar
    sum of lepton pTs and MET; m_delta_r: the dilepton invariant mass;
    dphi_r_b: the azimuth gap between the dilepton system and MET;
    cos_theta_r1: tanh of half the leptons' rapidity gap.
    """
    pt1, eta1, phi1, pt2, eta2, phi2, met, met_phi = low
    px = pt1 * np.cos(phi1) + pt2 * np.cos(phi2)
    py = pt1 * np.sin(phi1) + pt2 * np.sin(phi2)
    met_x, met_y = met * np.cos(met_phi), met * np.sin(met_phi)
    gap = np.minimum(np.abs(_wrap(met_phi - phi1)), np.abs(_wrap(met_phi - phi2)))
    met_rel = np.where(gap >= math.pi / 2.0, met, met * np.sin(gap))
    ll_pt = np.hypot(px, py)
    axial_met = -(met_x * px + met_y * py) / np.maximum(ll_pt, 1e-9)
    energy = pt1 * np.cosh(eta1) + pt2 * np.cosh(eta2)
    pz = pt1 * np.sinh(eta1) + pt2 * np.sinh(eta2)
    m_r = np.sqrt(np.maximum(energy**2 - pz**2, 0.0))
    m_tr_2 = np.sqrt(np.maximum((met * (pt1 + pt2) - (met_x * px + met_y * py)) / 2.0, 0.0))
    r = (m_tr_2 / np.maximum(m_r, 1e-9)) ** 2
    mt2 = np.sqrt(2.0 * pt1 * met * (1.0 - np.cos(phi1 - met_phi)))
    s_r = pt1 + pt2 + met
    opening = np.cosh(eta1 - eta2) - np.cos(phi1 - phi2)
    m_delta_r = np.sqrt(np.maximum(2.0 * pt1 * pt2 * opening, 0.0))
    dphi_r_b = np.abs(_wrap(np.arctan2(py, px) - met_phi))
    cos_theta_r1 = np.tanh((eta1 - eta2) / 2.0)
    return [met_rel, axial_met, m_r, m_tr_2, r, mt2, s_r, m_delta_r, dphi_r_b, cos_theta_r1]


def latents_of_rows(data: SusyData) -> Latents:
    """The latent variables of generated rows: the low-level map inverted (float32 precision)."""
    pt1, eta1, phi1, pt2, eta2, phi2, met, met_phi = data.features[:, :8].astype(np.float64).T
    tiny = 1e-12
    return Latents(
        labels=data.labels,
        log_pt1=np.log(np.maximum(pt1 - LEPTON_PT_THRESHOLD, tiny)),
        pt_ratio=np.clip(pt2 / pt1, tiny, 1.0 - tiny),
        eta1=eta1,
        eta2=eta2,
        phi1=phi1,
        dphi_leptons=_wrap(phi2 - phi1),
        log_met=np.log(np.maximum(met, tiny)),
        dphi_met=_wrap(met_phi - phi1),
    )


def bayes_predictions(data: SusyData) -> Floats:
    """P(signal | row) for generated rows: what the Bayes-optimal classifier predicts."""
    return signal_posterior(latents_of_rows(data))


def _rows_from_latents(latents: Latents) -> SusyData:
    low = _low_level(latents)
    columns = low + _derived(low)
    features = np.stack(columns, axis=1).astype(np.float32)
    return SusyData(features, latents.labels, SUSY_COLUMNS)


def generate(rows: int, seed: int = 0) -> SusyData:
    """`rows` SUSY-like rows; the same `seed` always gives the same rows."""
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    return _rows_from_latents(_draw_latents(rows, np.random.default_rng(seed)))


def bayes_optimal_accuracy(samples: int = 2_000_000, seed: int = 20_240_917) -> tuple[float, float]:
    """The best accuracy any classifier can reach on this data, and its Monte Carlo standard error.

    Averages max(P(signal | row), P(background | row)) over `samples` fresh
    rows (in chunks, so memory stays small); the posterior is exact.
    """
    rng = np.random.default_rng(seed)
    total, total_sq, done = 0.0, 0.0, 0
    while done < samples:
        count = min(500_000, samples - done)
        posterior = signal_posterior(_draw_latents(count, rng))
        best = np.maximum(posterior, 1.0 - posterior)
        total += float(best.sum())
        total_sq += float((best**2).sum())
        done += count
    mean = total / samples
    variance = max(total_sq / samples - mean**2, 0.0)
    return mean, math.sqrt(variance / samples)
