"""Small parameters trained as one flat tensor: the same steps as torch's per-tensor AdamW and clipping."""

from __future__ import annotations

import copy

import torch
from torch import nn

import lstmkit
from lstmkit.train.flat import SMALL, FlatParameters


class Tagger(nn.Module):
    """An embedding table too large to flatten, an LSTM and a head small enough."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(SMALL // 16 + 1, 16)  # SMALL + 16 elements: stays its own tensor
        self.lstm = lstmkit.LSTM(16, 8, batch_first=True)
        self.head = nn.Linear(8, 3)

    def forward(self, ids):
        return self.head(self.lstm(self.embed(ids))[0])  # (B, T, 3)


def batch(seed: int):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, SMALL // 16, (4, 5), generator=gen), torch.randint(0, 3, (4, 5), generator=gen)


def loss_of(model, seed: int):
    ids, labels = batch(seed)
    return nn.functional.cross_entropy(model(ids).flatten(0, 1), labels.flatten())


def test_parameters_are_split_into_one_flat_buffer_and_the_large_rest():
    model = Tagger()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    flat = FlatParameters(list(model.parameters()))
    assert flat.large == [model.embed.weight]
    assert flat.tensors[0] is flat.flat and flat.flat.numel() == sum(
        p.numel() for name, p in model.named_parameters() if not name.startswith("embed")
    )
    for name, p in model.named_parameters():  # same values; the small ones now live in the buffer
        assert torch.equal(p, before[name])
        assert (p.untyped_storage().data_ptr() == flat.flat.untyped_storage().data_ptr()) == (
            not name.startswith("embed")
        )


def test_flat_steps_match_per_tensor_adamw_and_clipping():
    torch.manual_seed(0)
    flat_model = Tagger()
    plain_model = copy.deepcopy(flat_model)
    flat = FlatParameters(list(flat_model.parameters()))
    flat_opt = torch.optim.AdamW(flat.tensors, lr=1e-2, weight_decay=0.1, fused=True)
    plain_opt = torch.optim.AdamW(plain_model.parameters(), lr=1e-2, weight_decay=0.1, foreach=False)
    for step in range(6):
        flat.zero_grad()
        loss_of(flat_model, step).backward()
        plain_opt.zero_grad(set_to_none=True)
        loss_of(plain_model, step).backward()
        small_grads = [p.grad.reshape(-1) for p in plain_model.parameters() if p.numel() <= SMALL]
        torch.testing.assert_close(flat.flat.grad, torch.cat(small_grads), rtol=1e-5, atol=1e-7)
        flat_norm = nn.utils.clip_grad_norm_(flat.tensors, 0.05, foreach=True)  # 0.05: clips every step
        plain_norm = nn.utils.clip_grad_norm_(plain_model.parameters(), 0.05)
        torch.testing.assert_close(flat_norm, plain_norm)
        assert plain_norm > 0.05
        flat_opt.step()
        plain_opt.step()
    for (name, a), b in zip(flat_model.named_parameters(), plain_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert not torch.equal(flat_model.head.weight, Tagger().head.weight)  # it did train


def test_zero_grad_gives_a_dropped_gradient_its_view_back():
    model = Tagger()
    flat = FlatParameters(list(model.parameters()))
    model.zero_grad(set_to_none=True)  # drops every .grad, the views included
    flat.zero_grad()
    assert model.embed.weight.grad is None
    loss_of(model, 0).backward()  # accumulates into the flat gradient again
    small = [p for p in model.parameters() if p is not model.embed.weight]
    assert flat.flat.grad.abs().sum() > 0
    assert torch.equal(torch.cat([p.grad.reshape(-1) for p in small]), flat.flat.grad)
    buffer = flat.flat.grad.untyped_storage().data_ptr()
    assert all(p.grad.untyped_storage().data_ptr() == buffer for p in small)
