"""GRPOLoss: advantages, the gradient direction on candidate similarities, the KL term."""

import pytest
import torch

from training.grpo_loss import GRPOLoss, group_advantages


def test_group_advantages_are_normalised_per_group_and_respect_the_mask():
    r = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 9.0, 0.0]])
    mask = torch.tensor([[True] * 4, [True, True, True, False]])
    a = group_advantages(r, mask, eps=0.0)
    assert a[0].mean().abs() < 1e-6 and a[0].std(correction=0) == pytest.approx(1.0)
    assert a[1, 3] == 0.0
    assert a[1, :3].sum().abs() < 1e-6 and a[1, 2] > 0 > a[1, 0]
    assert torch.all(group_advantages(torch.ones(1, 5)) == 0)  # equal rewards: no signal


def test_gradient_raises_above_average_candidates_and_lowers_the_rest():
    torch.manual_seed(0)
    sims = (torch.rand(3, 8) * 2 - 1).requires_grad_(True)  # (B, G) cosine similarities
    rewards = torch.randn(3, 8)
    loss, _ = GRPOLoss(temperature=0.1, beta=0.0)(sims, sims.detach(), rewards)
    loss.backward()
    step = -sims.grad  # a gradient-descent step on the similarities
    above = rewards > rewards.mean(dim=1, keepdim=True)
    assert torch.all(step[above] > 0) and torch.all(step[~above] < 0)
    # exactly -A_i / (G τ B): the softmax normaliser cancels because advantages sum to zero per group
    adv = group_advantages(rewards)
    assert torch.allclose(sims.grad, -adv / (8 * 0.1 * 3), atol=1e-6)


def test_one_optimizer_step_on_an_embedder_moves_similarities_the_same_way():
    torch.manual_seed(1)
    query = torch.nn.Parameter(torch.randn(1, 16))
    cands = torch.nn.functional.normalize(torch.randn(6, 16), dim=-1)  # (G, D)
    rewards = torch.tensor([[3.0, -1.0, 0.5, 2.0, -2.0, 0.0]])
    sim = lambda: torch.nn.functional.normalize(query, dim=-1) @ cands.T  # noqa: E731  (1, G)
    before = sim().detach()
    loss, _ = GRPOLoss(temperature=0.05, beta=0.0)(sim(), before, rewards)
    loss.backward()
    torch.optim.SGD([query], lr=1e-3).step()
    delta = sim().detach() - before
    # the best-rewarded candidate gains most, the worst loses most
    assert delta[0].argmax() == 0 and delta[0].argmin() == 4


def test_kl_is_zero_at_the_reference_and_pulls_back_towards_it():
    sims = torch.tensor([[0.9, 0.5, 0.1]], requires_grad=True)
    ref = torch.tensor([[0.9, 0.5, 0.1]])
    _, stats = GRPOLoss(beta=1.0)(sims, ref, torch.zeros(1, 3))
    assert stats["kl"] == pytest.approx(0.0, abs=1e-7)
    drifted = torch.tensor([[0.1, 0.5, 0.9]], requires_grad=True)
    loss, stats = GRPOLoss(beta=1.0)(drifted, ref, torch.zeros(1, 3))
    assert stats["kl"] > 0
    loss.backward()
    assert drifted.grad[0, 0] < 0 < drifted.grad[0, 2]  # descent raises candidate 0 back, lowers 2


def test_masked_candidates_get_no_probability_and_no_gradient():
    sims = torch.tensor([[0.8, 0.2, 0.5]], requires_grad=True)
    mask = torch.tensor([[True, True, False]])
    loss, stats = GRPOLoss(beta=0.1)(sims, sims.detach() * 0.5, torch.tensor([[1.0, 0.0, 9.0]]), mask)
    loss.backward()
    assert sims.grad[0, 2] == 0 and torch.isfinite(loss)
    assert stats["reward"] == pytest.approx(0.5)


def test_bad_inputs_are_refused():
    loss = GRPOLoss()
    with pytest.raises(ValueError, match="rewards"):
        loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="no candidate"):
        loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.zeros(1, 2), torch.zeros(1, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="temperature"):
        GRPOLoss(temperature=0.0)
