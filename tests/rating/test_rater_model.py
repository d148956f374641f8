"""The one rater model: what it plants comes back out, it rounds to the scale, and every
simulator in tidekit scores through it."""

from __future__ import annotations

import numpy as np
import pytest

from tidekit.rating._rater_model import Planted, RaterBehaviour


def test_planted_effects_and_style_taste_come_back_out_on_the_latent_scale() -> None:
    model = RaterBehaviour(rater_sd=0.0, item_sd=0.0, noise_sd=0.5)
    rng = np.random.default_rng(0)
    n = 40_000
    group = (np.arange(n) % 2).astype(float)  # half the raters in the group
    feature = (np.arange(n) // 2 % 2).astype(float)  # half the items have the feature
    latent = model.latent(rng, 4.0, rater=0.0, item=0.0, style=feature, slope=0.3,
                          planted=[Planted(0.6, group, feature), Planted(-0.2, group)])
    cell = {(g, f): latent[(group == g) & (feature == f)].mean() for g in (0, 1) for f in (0, 1)}
    assert cell[0, 0] == pytest.approx(4.0, abs=0.02)
    assert cell[0, 1] - cell[0, 0] == pytest.approx(0.3, abs=0.02)  # everyone's taste for the style
    assert cell[1, 0] - cell[0, 0] == pytest.approx(-0.2, abs=0.02)  # a main effect
    assert (cell[1, 1] - cell[1, 0]) - (cell[0, 1] - cell[0, 0]) == pytest.approx(0.6, abs=0.03)  # interaction
    assert latent[(group == 0) & (feature == 0)].std() == pytest.approx(0.5, abs=0.02)


def test_ratings_are_rounded_and_clipped_to_the_scale() -> None:
    model = RaterBehaviour(rater_sd=0.5, item_sd=0.5, noise_sd=1.0, points=5)
    assert model.to_scale(np.array([-3.0, 0.6, 2.5, 3.5, 4.49, 9.0])).tolist() == [1, 1, 2, 4, 4, 5]
    rng = np.random.default_rng(1)
    latent = model.latent(rng, 3.0, rater=model.leniency(rng, 200), item=0.0)
    factors = model.factor_ratings(rng, latent, ["a", "b"])
    assert set(factors) == {"a", "b"} and all(v.min() >= 1 and v.max() <= 5 for v in factors.values())
    assert np.corrcoef(model.to_scale(latent), factors["a"])[0, 1] > 0.5  # factors follow the overall latent


def test_conversation_effects_are_drawn_after_the_noise_and_only_when_used() -> None:
    rows = np.array([0, 1, 1, 2])
    without = RaterBehaviour(rater_sd=1, item_sd=1, noise_sd=1)
    with_conv = RaterBehaviour(rater_sd=1, item_sd=1, noise_sd=1, conversation_sd=2.0)
    a = without.latent(np.random.default_rng(3), 0.0, rater=0.0, item=0.0, conversation=(rows, 3), size=4)
    b = with_conv.latent(np.random.default_rng(3), 0.0, rater=0.0, item=0.0, conversation=(rows, 3), size=4)
    plain = np.random.default_rng(3).normal(0, 1, 4)
    assert np.array_equal(a, plain)  # no conversation effects: the noise draws are all there is
    shift = b - a
    assert shift[1] == pytest.approx(shift[2]) and shift[0] != pytest.approx(shift[1])  # one effect per conversation, shared by its rows


def test_negative_sd_is_refused_with_its_name() -> None:
    with pytest.raises(ValueError, match="item_sd"):
        RaterBehaviour(rater_sd=1, item_sd=-0.1, noise_sd=1)


def test_every_simulator_scores_through_the_one_model(monkeypatch: pytest.MonkeyPatch) -> None:
    from tidekit.analysis import PowerConfig, synthetic_ratings
    from tidekit.analysis._calibration import StudyDesign, simulate_design
    from tidekit.analysis._power import simulate_study_p
    from tidekit.rating import RaterModel

    calls: list[str] = []
    original = RaterBehaviour.latent

    def counting(self: RaterBehaviour, *args: object, **kwargs: object) -> np.ndarray:
        calls.append("latent")
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(RaterBehaviour, "latent", counting)
    synthetic_ratings(raters=4, conversations=3, ratings_per_rater=4, seed=1)
    simulate_design(StudyDesign(conversations=3, raters=4, ratings_per_rater=4), seed=1)
    simulate_study_p(PowerConfig(raters=6, items=10, ratings_per_rater=4, simulations=10), np.random.default_rng(0))
    assert calls == ["latent"] * 3
    assert RaterModel().behaviour(5) == RaterBehaviour(rater_sd=0.7, item_sd=0.5, noise_sd=0.8, factor_sd=0.6,
                                                       points=5)
