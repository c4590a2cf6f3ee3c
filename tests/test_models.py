"""The three networks and the losses: shapes, gradients, gate arithmetic, ignore labels."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from stemtomo.core.labels import IGNORE, MODELS  # noqa: E402
from stemtomo.learn.losses import dice_ce, focal, make_loss, soft_dice, tversky, weighted_ce  # noqa: E402
from stemtomo.learn.models import ARCHITECTURES, AttentionGate, build_model  # noqa: E402

torch.set_num_threads(2)


def test_every_named_network_has_an_architecture():
    assert tuple(ARCHITECTURES) == MODELS


@pytest.mark.parametrize("name", MODELS)
def test_output_shape_and_gradient_flow(name):
    torch.manual_seed(0)
    model = build_model(name, in_channels=3, classes=3, base=4, depth=2)
    x = torch.randn(2, 3, 32, 32)
    out = model(x)
    assert out.shape == (2, 3, 32, 32)
    dice_ce(out, torch.randint(0, 3, (2, 32, 32))).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing
    assert model.multiple == 4


def test_variants_differ_as_configured():
    plain, att, res = (build_model(n, base=4, depth=2) for n in MODELS)
    def has(model, part):
        return any(part in n for n, _ in model.named_parameters())

    assert (has(plain, "w_x"), has(plain, "shortcut")) == (False, False)
    assert (has(att, "w_x"), has(att, "shortcut")) == (True, False)
    assert (has(res, "w_x"), has(res, "shortcut")) == (True, True)
    with pytest.raises(ValueError, match="unknown model"):
        build_model("segnet")


def test_attention_gate_arithmetic_by_hand():
    gate = AttentionGate(1, 1, 1)
    with torch.no_grad():
        gate.w_x.weight.fill_(1.0)
        gate.w_g.weight.fill_(2.0)
        gate.w_g.bias.fill_(0.0)
        gate.psi.weight.fill_(1.0)
        gate.psi.bias.fill_(0.0)
    x = torch.tensor([1.0, -1.0]).reshape(1, 1, 1, 2)
    g = torch.tensor([0.5, 0.0]).reshape(1, 1, 1, 2)
    # α = σ(ReLU(x + 2g)): σ(2) for the first pixel, σ(0) = 0.5 for the second.
    expected = torch.tensor([1.0 * torch.sigmoid(torch.tensor(2.0)), -0.5]).reshape(1, 1, 1, 2)
    torch.testing.assert_close(gate(x, g), expected)


def test_attention_gates_scale_the_encoder_skips():
    """Each gate gets the encoder's feature map at its level as x (to be scaled) and the upsampled
    decoder features as g, not the other way round."""
    torch.manual_seed(0)
    model = build_model("attention_unet", base=4, depth=2).eval()
    skips, gate_inputs = [], []
    for block in model.down:
        block.register_forward_hook(lambda m, i, out: skips.append(out))
    for gate in model.gates:
        gate.register_forward_pre_hook(lambda m, args: gate_inputs.append(args))
    model(torch.randn(1, 1, 16, 16))
    for (x, _g), skip in zip(gate_inputs, reversed(skips[:-1]), strict=True):
        assert torch.equal(x, skip)


@pytest.mark.parametrize("loss", [dice_ce, focal, tversky, make_loss("weighted_ce", weights=[0.2, 0.3, 0.5])])
def test_ignored_pixels_do_not_matter(loss):
    torch.manual_seed(1)
    logits = torch.randn(2, 3, 8, 8, requires_grad=True)
    target = torch.randint(0, 3, (2, 8, 8))
    target[:, :4] = IGNORE
    base = loss(logits, target)
    base.backward()
    assert torch.all(logits.grad[:, :, :4] == 0)
    changed = logits.detach().clone()
    changed[:, :, :4] = torch.randn(2, 3, 4, 8) * 10
    torch.testing.assert_close(loss(changed, target), base.detach())


def test_loss_values_against_known_cases():
    target = torch.randint(0, 3, (2, 8, 8))
    perfect = torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float() * 20
    assert dice_ce(perfect, target) < 1e-3
    assert torch.allclose(soft_dice(perfect, target), torch.ones(3), atol=1e-4)
    logits = torch.randn(2, 3, 8, 8)
    ce = torch.nn.functional.cross_entropy(logits, target)
    torch.testing.assert_close(focal(logits, target, gamma=0.0), ce)
    torch.testing.assert_close(weighted_ce(logits, target, [1.0, 1.0, 1.0]), ce)
    # Tversky with α = β = 0.5 is 1 − mean soft Dice.
    torch.testing.assert_close(tversky(logits, target, 0.5, 0.5), 1 - soft_dice(logits, target).mean(),
                               atol=1e-5, rtol=1e-5)
    # α weighs false positives, β false negatives: predict class 0 everywhere on a half-0,
    # half-1 target → class 0: TP n, FP n; class 1: FN n; class 2 absent (index 1).
    half = torch.zeros(1, 8, 8, dtype=torch.long)
    half[:, 4:] = 1
    all_zero = torch.tensor([50.0, 0.0, 0.0]).reshape(1, 3, 1, 1).expand(1, 3, 8, 8)
    for alpha, beta in ((0.3, 0.7), (0.7, 0.3)):
        expected = 1 - (1 / (1 + alpha) + 0.0 + 1.0) / 3
        assert tversky(all_zero, half, alpha, beta).item() == pytest.approx(expected, abs=1e-4)
    with pytest.raises(ValueError, match="unknown loss"):
        make_loss("hinge")


def test_a_small_network_learns_a_toy_segmentation():
    torch.manual_seed(0)
    x = torch.rand(4, 1, 32, 32)
    target = (x[:, 0] > 0.5).long() + (x[:, 0] > 0.9).long()  # three intensity classes
    model = build_model("attention_res_unet", base=4, depth=2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    first = None
    for _ in range(40):
        opt.zero_grad()
        loss = dice_ce(model(x), target)
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.5 * first
