"""Data and model: logistic regression in plain numpy on the breast-cancer data.

The data ships with scikit-learn (no download). 20% of it is held out for the
ServerApp's centralised evaluation; the rest is shuffled and split into
``num-partitions`` IID partitions, one per datasite (``partition-id``). Each datasite
standardises its features with its own statistics: nothing but model weights leaves it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

Array = NDArray[np.float64]
NUM_FEATURES = 30


def _split(seed: int) -> tuple[Array, Array, Array, Array]:
    features, labels = load_breast_cancer(return_X_y=True)
    x_rest, x_holdout, y_rest, y_holdout = train_test_split(
        features, labels, test_size=0.2, stratify=labels, random_state=seed
    )
    return x_rest, y_rest.astype(np.float64), x_holdout, y_holdout.astype(np.float64)


def standardise(x: Array) -> Array:
    return (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-8)


def load_partition(
    partition_id: int, num_partitions: int, seed: int = 42
) -> tuple[Array, Array, Array, Array]:
    """This datasite's (x_train, y_train, x_test, y_test), standardised locally."""
    if not 0 <= partition_id < num_partitions:
        raise ValueError(f"partition-id {partition_id} is not in [0, {num_partitions})")
    x_rest, y_rest, _, _ = _split(seed)
    order = np.random.default_rng(seed).permutation(len(x_rest))
    mine = np.array_split(order, num_partitions)[partition_id]
    x, y = standardise(x_rest[mine]), y_rest[mine]
    cut = max(1, int(0.8 * len(mine)))
    return x[:cut], y[:cut], x[cut:], y[cut:]


def load_holdout(seed: int = 42) -> tuple[Array, Array]:
    """The ServerApp's held-out split for centralised evaluation."""
    _, _, x_holdout, y_holdout = _split(seed)
    return standardise(x_holdout), y_holdout


def initial_weights() -> list[Array]:
    return [np.zeros(NUM_FEATURES), np.zeros(1)]


def _sigmoid(z: Array) -> Array:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


def train(
    weights: list[Array], x: Array, y: Array, *, epochs: int, lr: float, l2: float
) -> tuple[list[Array], float]:
    """Full-batch gradient descent; returns the new weights and the final log loss."""
    w, b = weights[0].copy(), float(weights[1][0])
    for _ in range(epochs):
        error = _sigmoid(x @ w + b) - y
        w -= lr * (x.T @ error / len(y) + l2 * w)
        b -= lr * float(error.mean())
    loss, _ = evaluate([w, np.array([b])], x, y)
    return [w, np.array([b])], loss


def evaluate(weights: list[Array], x: Array, y: Array) -> tuple[float, float]:
    """(log loss, accuracy) of ``weights`` on (x, y)."""
    p = _sigmoid(x @ weights[0] + weights[1][0])
    eps = 1e-12
    loss = float(-np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)))
    accuracy = float(np.mean((p > 0.5) == (y > 0.5)))
    return loss, accuracy
