"""The decision rule travels as a typed `Decision`: model.json's block reads and writes back unchanged, the
bands are the same whether training passes a dict or serving a Decision, and its text names every part."""
import json

import numpy as np
import pytest

from conftest import EXPORTED
from inference.bands import Decision, verdict_bands

GUARDED = {"threshold": 0.5, "leaning_from": 0.7, "confident_from": 0.9, "ood_threshold": 2.0,
           "guard_threshold": 1.0, "guarded_confident_from": 0.99}
PLAIN = {"threshold": 0.5, "leaning_from": 0.7, "confident_from": 0.9}


def test_the_shipped_decision_block_round_trips_with_the_same_keys():
    block = json.loads((EXPORTED / "model.json").read_text())["decision"]
    assert Decision.from_dict(block).to_dict() == block


@pytest.mark.parametrize("block, named", [
    ({**PLAIN, "guard_treshold": 1.0}, "guard_treshold"),
    ({"threshold": 0.5, "leaning_from": 0.7}, "confident_from"),
    ({**PLAIN, "leaning_from": 0.95}, "must not exceed confident_from"),
    ({**PLAIN, "guard_threshold": 1.0}, "come together"),
])
def test_a_bad_decision_block_is_refused_naming_the_problem(block, named):
    with pytest.raises(ValueError, match=named):
        Decision.from_dict(block)


@pytest.mark.parametrize("block", [GUARDED, PLAIN])
def test_bands_are_the_same_for_a_decision_and_its_dict(block):
    rng = np.random.default_rng(0)
    p_fake, ood = rng.uniform(0, 1, 500), rng.uniform(-1, 3, 500)
    ood[::50] = np.nan
    from_dict, from_decision = verdict_bands(p_fake, ood, block), verdict_bands(p_fake, ood, Decision.from_dict(block))
    assert all(np.array_equal(a, b) for a, b in zip(from_dict, from_decision))
    assert set(from_dict[0]) == {"confident", "leaning", "uncertain"}


def test_describe_names_the_guard_near_the_domains_edge():
    text = Decision.from_dict(GUARDED).describe()
    assert "Near the edge of the training domain" in text and "above 1.00" in text and "rises to 0.99" in text
    assert "out of domain" in text and "above 2.00" in text


def test_describe_without_an_ood_score_states_only_the_confidence_rule():
    text = Decision.from_dict(PLAIN).describe()
    assert "below 0.70" in text and "at least 0.90" in text
    assert "domain" not in text


def test_a_guarded_bar_above_one_reads_as_never_confident():
    decision = Decision.from_dict({**GUARDED, "guarded_confident_from": 1.01})
    assert "never confident there" in decision.describe()
    assert "never near the domain's edge" in decision.band_rules()["confident"]
    bands, _ = verdict_bands([0.999], [1.5], decision)
    assert bands[0] == "leaning"
