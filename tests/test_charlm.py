"""CharNetwork learns a repeating text, samples it back, and carries state across calls exactly."""

import math

import pytest
import torch
import torch.nn.functional as F

from lstmkit.data.text import BPTTBatcher, CharVocab
from lstmkit.models.charlm import CharNetwork

PATTERN = "the cat sat on a mat. "


@pytest.fixture(scope="module")
def trained():
    """A small CharNetwork trained for 300 steps on PATTERN repeated; returns (model, vocab, final loss)."""
    torch.manual_seed(0)
    vocab = CharVocab.from_text(PATTERN)
    batches = BPTTBatcher(vocab.encode(PATTERN * 200), batch_size=8, seq_len=16)
    model = CharNetwork(len(vocab), embed_size=16, hidden_size=48, num_layers=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    step, state = 0, None
    while step < 300:
        for inputs, targets in batches:  # (B, T) each
            logits, state = model(inputs, state)  # (B, T, V)
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            state = tuple(s.detach() for s in state)
            step += 1
        state = None
    return model, vocab, loss.item()


def test_training_drives_the_loss_far_below_uniform_guessing(trained):
    model, vocab, final_loss = trained
    assert final_loss < 0.1 * math.log(len(vocab))


def test_sampling_near_zero_temperature_continues_the_pattern(trained):
    model, vocab, _ = trained
    prompt = "the cat "
    generator = torch.Generator().manual_seed(0)
    ids = model.sample(vocab.encode(prompt), 2 * len(PATTERN), temperature=1e-3, generator=generator)
    expected = (PATTERN * 4)[len(prompt) : len(prompt) + 2 * len(PATTERN)]
    assert vocab.decode(ids) == expected
    assert model.training  # sample() restores the mode it found


def test_state_carried_across_two_halves_equals_the_whole_sequence():
    torch.manual_seed(1)
    model = CharNetwork(vocab_size=11, embed_size=8, hidden_size=16, num_layers=2)
    tokens = torch.randint(0, 11, (3, 20))  # (B, T)
    whole, (h_whole, c_whole) = model(tokens)  # (B, T, V)
    first, state = model(tokens[:, :9])
    second, (h_second, c_second) = model(tokens[:, 9:], state)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole)
    torch.testing.assert_close(h_second, h_whole)
    torch.testing.assert_close(c_second, c_whole)

    restarted, _ = model(tokens[:, 9:])  # without the carried state the logits must differ
    assert not torch.allclose(restarted, whole[:, 9:], atol=1e-3)


def test_trace_is_the_last_layer_that_feeds_the_head():
    torch.manual_seed(2)
    model = CharNetwork(vocab_size=7, embed_size=8, hidden_size=12, num_layers=2)
    tokens = torch.randint(0, 7, (2, 5))  # (B, T)
    logits, _ = model(tokens)
    traced_logits, _, trace = model(tokens, return_trace=True)
    torch.testing.assert_close(traced_logits, logits)
    torch.testing.assert_close(model.head(trace.hidden[-1]), logits)  # (B, T, H) -> (B, T, V)
    assert ((trace.forget_gate > 0) & (trace.forget_gate < 1)).all()
