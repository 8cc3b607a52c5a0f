"""The checker's logistic calibration: weights held to the direction each evidence feature may push."""

from __future__ import annotations

import numpy as np
import pytest

from authvision.calibration import _sigmoid, fit_calibration, fit_logistic


def _loss(x: np.ndarray, y: np.ndarray, w: np.ndarray, b: float, l2: float = 1.0) -> float:
    p = np.clip(_sigmoid(x @ w + b), 1e-12, 1 - 1e-12)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).sum() + 0.5 * l2 * (w**2).sum())


def _data(seed: int, n: int = 120) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    y = (rng.random(n) < _sigmoid(1.5 * x[:, 0] - 1.0 * x[:, 1] + 0.3 * x[:, 2])).astype(float)
    return x, y


def test_a_feature_fitted_the_wrong_way_round_is_held_at_zero():
    x, y = _data(0)
    free, _ = fit_logistic(x, y)
    assert free[1] < -0.5, "feature 1 speaks against the outcome in this data"
    held, bias = fit_logistic(x, y, signs=[1, 1, 0, 0])
    assert held[1] == 0.0 and held[0] > 0.5
    alone, alone_bias = fit_logistic(x[:, [0, 2, 3]], y)
    assert np.allclose(held[[0, 2, 3]], alone, atol=1e-6) and bias == pytest.approx(alone_bias, abs=1e-6), \
        "holding a weight at 0 is fitting without that feature"


def test_signs_that_agree_with_the_data_change_nothing():
    x, y = _data(1)
    free, free_bias = fit_logistic(x, y)
    held, held_bias = fit_logistic(x, y, signs=[1, -1, 0, 0])
    assert np.allclose(free, held) and free_bias == pytest.approx(held_bias)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("with_prior", [False, True])
def test_the_constrained_fit_is_the_constrained_optimum(seed, with_prior):
    rng = np.random.default_rng(100 + seed)
    x, y = _data(seed, n=60)
    signs = rng.choice([-1, 0, 1], size=4)
    prior = 1.0 * signs if with_prior else np.zeros(4)
    l2 = 10.0 if with_prior else 1.0
    w, b = fit_logistic(x, y, signs=signs, prior=prior, l2=l2)
    assert np.all(signs * w >= 0), (signs, w)
    # KKT: a free or non-zero weight sits where the loss is flat; a weight held at 0 has a slope that
    # points the forbidden way, so no allowed move lowers the loss
    slope = x.T @ (_sigmoid(x @ w + b) - y) + l2 * (w - prior)
    for j in range(4):
        if signs[j] == 0 or w[j] != 0:
            assert abs(slope[j]) < 1e-5, (j, slope)
        else:
            assert signs[j] * slope[j] >= -1e-9, (j, slope)
    loss = lambda w_, b_: _loss(x, y, w_, b_, l2) + l2 * float(((w_ - prior) ** 2).sum() - (w_**2).sum()) / 2  # noqa: E731
    best = loss(w, b)
    for _ in range(50):  # no feasible point nearby is better
        w2 = w + rng.normal(scale=0.05, size=4)
        w2[(signs * w2) < 0] = 0.0
        assert loss(w2, b + rng.normal(scale=0.05)) >= best - 1e-9


def test_a_directed_feature_the_calibration_photos_never_exercise_keeps_its_prior_weight():
    """A kind of defect no calibration fake shows: its channel is flat in the data, yet must still count."""
    x, y = _data(3)
    x[:, 3] = 0.0
    x[np.random.default_rng(5).choice(len(y), 6, replace=False), 3] = 1.0  # a channel lit on a few genuine photos by chance
    free, _ = fit_logistic(x, y, signs=[1, -1, 0, -1])
    pulled, _ = fit_logistic(x, y, signs=[1, -1, 0, -1], prior=[1.0, -1.0, 0.0, -1.0], l2=10.0)
    assert free[3] == 0.0 or abs(free[3]) < 0.2, free
    assert pulled[3] < -0.3, "an unexercised anomaly channel still speaks for a fake"
    assert pulled[0] > 0.5 and pulled[1] < -0.3, "the evidence the data supports keeps its direction"
    with pytest.raises(ValueError):
        fit_logistic(x, y, prior=[1.0])


def test_calibration_takes_the_signs():
    x, y = _data(2)
    labels = ["genuine" if v else "fake" for v in y]
    names = ("a", "b", "c", "d")
    free = fit_calibration(x, names, labels, np.ones(len(y)))
    held = fit_calibration(x, names, labels, np.ones(len(y)), signs=[1, 1, 0, 0])
    assert free.calibration.weights[1] < 0 and held.calibration.weights[1] == 0.0
    with pytest.raises(ValueError):
        fit_logistic(x, y, signs=[1, 1])


def test_the_checkers_features_carry_their_providers_directions(embedder):
    import authvision as av
    from authvision.evidence import inspection_providers

    checker = av.AuthenticityChecker(embedder, providers=inspection_providers())
    signs = dict(zip(checker.feature_names, checker.feature_signs))
    assert signs["neighbour_margin"] == 1 and signs["duplicate_genuine"] == 1 and signs["duplicate_fake"] == -1
    assert signs["model_fake_logit"] == -1 and signs["inspection_registered"] == 0
    assert all(signs[n] == -1 for n in checker.feature_names if n.startswith("inspection_log_") or n == "inspection_text_mismatch")
