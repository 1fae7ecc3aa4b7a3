"""Each ranking reward on hand-made rankings (grades listed in predicted order, position 0 = top)."""

import pytest

from training.rewards import (
    RewardWeights,
    combined_reward,
    ideal_blocks,
    irrelevant_penalty,
    order_reward,
    position_reward,
    relevance_reward,
)

PERFECT = [3, 2, 1, 0, 0]  # the ideal ranking of a pool with 3 graded targets and 2 irrelevant candidates
REVERSED = [0, 0, 1, 2, 3]
SWAPPED = [2, 3, 1, 0, 0]  # the two best targets swapped


def test_ideal_blocks_share_positions_within_a_grade():
    assert ideal_blocks([0, 2, 1, 2]) == [(3, 4), (0, 2), (2, 3), (0, 2)]


def test_irrelevant_penalty_grows_with_rank():
    assert irrelevant_penalty(PERFECT) == [0.0, 0.0, 0.0, -2 / 5, -1 / 5]
    assert irrelevant_penalty(REVERSED) == [-1.0, -4 / 5, 0.0, 0.0, 0.0]
    # an irrelevant candidate at the top is punished more than the same one at the bottom
    top = irrelevant_penalty([0, 1, 1])[0]
    bottom = irrelevant_penalty([1, 1, 0])[2]
    assert top < bottom < 0


def test_relevance_reward_is_a_base_reward_for_relevant_ones_scaled_by_grade():
    assert relevance_reward(REVERSED) == pytest.approx([0.0, 0.0, 1 / 3, 2 / 3, 1.0])
    assert relevance_reward([0, 1, 0]) == [0.0, 1.0, 0.0]


def test_position_reward_is_one_in_place_and_falls_with_distance():
    assert position_reward(PERFECT) == [1.0, 1.0, 1.0, 0.0, 0.0]  # irrelevant ones: penalty only
    # REVERSED: grade 1 at 2 (block 2): d = 0; grade 2 at 3 (block 1): d = 2; grade 3 at 4 (block 0): d = 4
    assert position_reward(REVERSED) == pytest.approx([0.0, 0.0, 1.0, 1 - 2 / 4, 0.0])
    assert position_reward(SWAPPED) == pytest.approx([1 - 1 / 4, 1 - 1 / 4, 1.0, 0.0, 0.0])
    # ties: two targets of one grade anywhere in their block are both in place
    assert position_reward([2, 2, 0]) == [1.0, 1.0, 0.0]
    assert position_reward([0, 2, 2]) == [0.0, 1.0, 1 - 1 / 2]  # block is positions 0-1
    assert position_reward([5]) == [1.0]


def test_order_reward_counts_pair_agreement():
    assert order_reward(PERFECT) == [1.0, 1.0, 1.0, 0.0, 0.0]
    assert order_reward(REVERSED) == [0.0, 0.0, 0.0, 0.0, 0.0]
    # SWAPPED: grade 2 at top agrees with 1,0,0 and disagrees with 3 -> 3 / 4
    assert order_reward(SWAPPED) == pytest.approx([0.75, 0.75, 1.0, 0.0, 0.0])
    # a target below one irrelevant candidate and above another: half its pairs agree
    assert order_reward([0, 1, 0]) == [0.0, 0.5, 0.0]
    assert order_reward([2, 2]) == [1.0, 1.0]  # nothing out of order


def test_combined_reward_weights_and_ranks_better_rankings_higher():
    w = RewardWeights(irrelevant_penalty=2.0, relevance=0.5, position=0.0, order=1.0)
    expected = [2 * a + 0.5 * b + c for a, b, c in zip(
        irrelevant_penalty(SWAPPED), relevance_reward(SWAPPED), order_reward(SWAPPED))]
    assert combined_reward(SWAPPED, w) == pytest.approx(expected)
    total = lambda grades: sum(combined_reward(grades))  # noqa: E731
    assert total(PERFECT) > total(SWAPPED) > total(REVERSED)


def test_every_relevant_candidate_outscores_every_irrelevant_one():
    """The property GRPO needs: a relevant candidate never gets a lower reward than an irrelevant one,
    so its similarity is never pushed below theirs, however badly it is placed."""
    import itertools

    for order in set(itertools.permutations([4, 3, 2, 1, 0, 0, 0, 0])):
        r = combined_reward(order)
        assert min(x for x, g in zip(r, order) if g) > max(x for x, g in zip(r, order) if not g)


def test_the_better_grade_of_a_swapped_pair_gets_the_higher_reward():
    r = combined_reward(SWAPPED)
    assert r[1] > r[0]  # grade 3 (ranked 2nd) outscores grade 2 (ranked 1st): the swap gets undone


@pytest.mark.parametrize("bad", [[], [1, -1]])
def test_bad_groups_are_refused(bad):
    with pytest.raises(ValueError, match="grades"):
        order_reward(bad)
