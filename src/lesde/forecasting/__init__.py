"""Out-of-sample forecasts by the fitted LE-ODE/SDE (pure: record arrays in, arrays out).

`backtest` fits the estimators on the start of a record and predicts the rest
(`lesde.forecasting.backtest`); `fit_tail_rates` extrapolates an integrated rate by its
power-law tail (`lesde.forecasting.extrapolate`).
"""

from lesde.forecasting.backtest import Forecast, backtest, class_grid, min_gap_ratio
from lesde.forecasting.extrapolate import TailRate, fit_tail_rates

__all__ = ["Forecast", "backtest", "class_grid", "min_gap_ratio", "TailRate", "fit_tail_rates"]
