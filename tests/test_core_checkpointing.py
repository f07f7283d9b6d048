"""Gradient checkpointing (neck, head, backbone with_cp) equals plain autograd."""
import pytest
import torch

from mmrevbifpn.models import MBConvNeck, RevBiFPN, RevBiFPNClsHead


def run(with_cp):
    torch.manual_seed(0)
    neck = MBConvNeck(arch='s0', with_cp=with_cp).double().train()
    head = RevBiFPNClsHead(10, arch='s0', with_cp=with_cp, dropout=0.2).double().train()
    torch.manual_seed(1)
    feats = [torch.randn(2, c, s, s, dtype=torch.float64, requires_grad=True)
             for c, s in zip((48, 64, 80, 160), (16, 8, 4, 2))]
    head(neck(feats)).square().sum().backward()
    grads = [f.grad for f in feats] + [p.grad for p in [*neck.parameters(), *head.parameters()]]
    bufs = [b.clone() for b in [*neck.buffers(), *head.buffers()]]
    return grads, bufs


def test_neck_and_head_checkpointing_match_plain_autograd():
    g_cp, b_cp = run(True)
    g_plain, b_plain = run(False)
    for a, b in zip(g_cp, g_plain):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    for a, b in zip(b_cp, b_plain):  # running statistics updated once
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_checkpointed_neck_and_head_save_little():
    from mmrevbifpn.utils import SavedTensorMeter
    neck = MBConvNeck(arch='s0').train()
    head = RevBiFPNClsHead(10, arch='s0').train()
    feats = [torch.randn(2, c, s, s, requires_grad=True)
             for c, s in zip((48, 64, 80, 160), (32, 16, 8, 4))]
    with SavedTensorMeter(exclude=[neck, head]) as cp:
        head(neck(feats))
    neck.with_cp = head.with_cp = False
    with SavedTensorMeter(exclude=[neck, head]) as plain:
        head(neck(feats))
    assert cp.nbytes * 5 < plain.nbytes


def test_backbone_with_cp_matches_plain():
    def grads(with_cp):
        torch.manual_seed(0)
        model = RevBiFPN('s0', reversible=False, with_cp=with_cp).double().train()
        torch.manual_seed(1)
        x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
        sum(f.square().sum() for f in model(x)).backward()
        return [p.grad for p in model.parameters()], [b.clone() for b in model.buffers()]
    (g_cp, b_cp), (g_plain, b_plain) = grads(True), grads(False)
    for a, b in zip(g_cp, g_plain):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    for a, b in zip(b_cp, b_plain):
        assert torch.equal(a, b)
