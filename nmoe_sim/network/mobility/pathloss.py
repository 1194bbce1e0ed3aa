"""Path loss models (dB, distance in metres), by name: what a client hears of a base station.

- `macro`: 128.1 + 37.6 log10(d / 1 km) (3GPP TR 36.814's macro cell at 2 GHz);
- `uma_los`, `uma_nlos`, `umi_los`, `umi_nlos`: 3GPP TR 38.901 (Table 7.4.1-1) urban macro
  (25 m masts) and urban micro street canyon (10 m masts), in line of sight (below and beyond the
  breakpoint distance d_BP' = 4 h'_BS h'_UT f_c / c, h' = h - 1 m) or not (the larger of the
  line-of-sight loss and the NLOS formula), at carrier frequency f_c, for a 1.5 m high client.

Distances are floored at 10 m (the models' validity starts there; a client standing under a mast
hears it as from 10 m).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

MIN_DISTANCE_M = 10.0
LIGHT_MPS = 299_792_458.0
UE_HEIGHT_M = 1.5

PathLoss = Callable[[np.ndarray], np.ndarray]


def macro(d_m: np.ndarray, frequency_ghz: float = 2.0) -> np.ndarray:
    d = np.maximum(d_m, MIN_DISTANCE_M)
    return 128.1 + 37.6 * np.log10(d / 1000.0)


def _los(d_m: np.ndarray, fc_ghz: float, a: float, b: float, c: float, h_bs: float) -> np.ndarray:
    """TR 38.901 line of sight: a + b log10(d3D) + 20 log10(fc) up to the breakpoint, then
    a + 40 log10(d3D) + 20 log10(fc) - c log10(d_BP'^2 + (h_BS - h_UT)^2)."""
    d2 = np.maximum(d_m, MIN_DISTANCE_M)
    d3 = np.sqrt(d2 * d2 + (h_bs - UE_HEIGHT_M) ** 2)
    bp = 4 * (h_bs - 1.0) * (UE_HEIGHT_M - 1.0) * fc_ghz * 1e9 / LIGHT_MPS
    fc = 20 * np.log10(fc_ghz)
    near = a + b * np.log10(d3) + fc
    far = a + 40 * np.log10(d3) + fc - c * np.log10(bp**2 + (h_bs - UE_HEIGHT_M) ** 2)
    return np.where(d2 <= bp, near, far)


def _d3(d_m: np.ndarray, h_bs: float) -> np.ndarray:
    d2 = np.maximum(d_m, MIN_DISTANCE_M)
    return np.sqrt(d2 * d2 + (h_bs - UE_HEIGHT_M) ** 2)


def uma_los(d_m: np.ndarray, frequency_ghz: float = 3.5) -> np.ndarray:
    return _los(d_m, frequency_ghz, 28.0, 22.0, 9.0, 25.0)


def uma_nlos(d_m: np.ndarray, frequency_ghz: float = 3.5) -> np.ndarray:
    nlos = 13.54 + 39.08 * np.log10(_d3(d_m, 25.0)) + 20 * np.log10(frequency_ghz)
    return np.maximum(uma_los(d_m, frequency_ghz), nlos)


def umi_los(d_m: np.ndarray, frequency_ghz: float = 3.5) -> np.ndarray:
    return _los(d_m, frequency_ghz, 32.4, 21.0, 9.5, 10.0)


def umi_nlos(d_m: np.ndarray, frequency_ghz: float = 3.5) -> np.ndarray:
    nlos = 22.4 + 35.3 * np.log10(_d3(d_m, 10.0)) + 21.3 * np.log10(frequency_ghz)
    return np.maximum(umi_los(d_m, frequency_ghz), nlos)


PATH_LOSS: dict[str, Callable[..., np.ndarray]] = {
    "macro": macro,
    "uma_los": uma_los,
    "uma_nlos": uma_nlos,
    "umi_los": umi_los,
    "umi_nlos": umi_nlos,
}
