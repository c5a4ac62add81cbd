"""A linear probe: how much of the labels a latent layer exposes linearly.

A multinomial logistic regression (scikit-learn, L-BFGS, L2 penalty C = 1) is fitted on the codes
of the training split, standardised with the training statistics, and scored on the codes of the
test split. High accuracy says the labels are linearly readable from z_i; it does not say the
layer is a good generative latent, and low accuracy does not say the information is absent (a
non-linear read-out may find it). Feature maps are flattened.

The fit runs with one BLAS/OpenMP thread: these problems are small (thousands of points, at most
a few hundred features), and on a busy machine extra threads spin rather than help.
"""

from __future__ import annotations

import warnings

import numpy as np
from torch import Tensor

MAX_ITER = 300


def _numpy(values: Tensor | np.ndarray) -> np.ndarray:
    if isinstance(values, Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def linear_probe(
    train_z: Tensor | np.ndarray, train_y: Tensor | np.ndarray,
    test_z: Tensor | np.ndarray, test_y: Tensor | np.ndarray,
) -> float:
    """Test accuracy in [0, 1] of a logistic regression from ``z`` to ``y``.

    Parameters
    ----------
    train_z, test_z:
        Codes ``(n, *shape)`` (flattened here).
    train_y, test_y:
        Integer labels ``(n,)``.

    Returns
    -------
    float
        The fraction of test points whose label is predicted. With a single class in the
        training labels the constant prediction is scored.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    x_train = _numpy(train_z).reshape(len(train_z), -1).astype(np.float64)
    x_test = _numpy(test_z).reshape(len(test_z), -1).astype(np.float64)
    y_train, y_test = _numpy(train_y).astype(np.int64), _numpy(test_y).astype(np.int64)
    if len(np.unique(y_train)) < 2:
        return float((y_test == y_train[0]).mean())
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=MAX_ITER))
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        probe.fit(x_train, y_train)
        predicted = probe.predict(x_test)
    return float((predicted == y_test).mean())


def chance_accuracy(train_y: Tensor | np.ndarray, test_y: Tensor | np.ndarray) -> float:
    """Accuracy of always predicting the most frequent training label: the probe's floor."""
    y_train, y_test = _numpy(train_y).astype(np.int64), _numpy(test_y).astype(np.int64)
    return float((y_test == np.bincount(y_train).argmax()).mean())
