"""Training targets (`sweep.target`): which way a metric improves. One rule, used by the
controller to label a target and by the worker to stop at it."""

from __future__ import annotations

# Metrics where smaller is better, besides anything named *loss* or *error*.
LOWER_IS_BETTER = ("mse", "mae", "mape", "msle", "rmse", "mean_squared_error", "mean_absolute_error",
                   "mean_absolute_percentage_error", "mean_squared_logarithmic_error", "root_mean_squared_error",
                   "logcosh", "hinge", "squared_hinge", "kl_divergence", "poisson")


def lower_is_better(metric: str) -> bool:
    name = metric.removeprefix("val_").removeprefix("final_")
    return "loss" in name or "error" in name or name in LOWER_IS_BETTER


def target_label(metric: str, value: float) -> str:
    """'val_mae<=0.5', 'val_accuracy>=0.9'."""
    return f"{metric}{'<=' if lower_is_better(metric) else '>='}{value:g}"
