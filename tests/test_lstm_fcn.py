"""The convolutional branch beside the LSTM (LSTM-FCN): the series it rebuilds from the windows, padding,
gradients in float64, and the series classifier trained, saved and loaded with it."""

from __future__ import annotations

import pytest
import torch
from conftest import DATA

import lstmkit
from lstmkit.data.sequences import read_series, sliding_windows
from lstmkit.errors import InputError
from lstmkit.models.classifier import ConvBranch, MaskedBatchNorm, SequenceClassifier, pad_batch


def windows_of(series: torch.Tensor, window: int, stride: int) -> torch.Tensor:
    """A case (C, L) as the series classifier feeds it: (S, C * window)."""
    return sliding_windows(series, window, stride).transpose(0, 1).reshape(-1, len(series) * window)


def test_the_branch_rebuilds_each_series_from_its_windows():
    torch.manual_seed(0)
    cases = [torch.randn(2, 50), torch.randn(2, 37), torch.randn(2, 16)]
    inputs, lengths = pad_batch([windows_of(case, 16, 4) for case in cases])  # (3, 10, 32)
    series, sizes = ConvBranch(2, 4, 16, 4).series(inputs, lengths)
    assert sizes.tolist() == [52, 40, 16] and series.shape == (3, 2, 52)
    for case, row, size in zip(cases, series, sizes.tolist()):
        length = case.shape[1]
        torch.testing.assert_close(row[:, :length], case)  # each value the mean of its windows' copies
        torch.testing.assert_close(row[:, length:size], case[:, -1:].expand(-1, size - length))  # the last
        assert not row[:, size:].any()


def test_a_padded_series_gets_the_logits_it_gets_alone():
    torch.manual_seed(0)
    model = SequenceClassifier(3, input_size=2 * 8, hidden_size=5, conv_filters=4, window=8, stride=2).eval()
    short, long = windows_of(torch.randn(2, 20), 8, 2), windows_of(torch.randn(2, 61), 8, 2)
    alone = model(short[None], torch.tensor([len(short)]))
    together = model(*pad_batch([short, long]))
    torch.testing.assert_close(together[0], alone[0], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(together[1], alone[0])


def test_gradcheck_through_the_lstm_and_the_branch():
    torch.manual_seed(0)
    model = SequenceClassifier(
        2, input_size=4, hidden_size=3, conv_filters=2, window=4, stride=2, dropout=0.0
    ).double()
    inputs, lengths = pad_batch([torch.randn(s, 4, dtype=torch.float64) for s in (5, 3)])
    inputs.requires_grad_()
    weights = model.conv.convs[0].weight
    assert torch.autograd.gradcheck(
        lambda x, w: torch.func.functional_call(model, {"conv.convs.0.weight": w}, (x, lengths)),
        (inputs, weights.detach().clone().requires_grad_()),
    )


def test_the_branch_needs_values_in_windows_that_cover_the_series():
    with pytest.raises(ValueError, match="stride <= window"):
        ConvBranch(1, 4, window=4, stride=8)
    with pytest.raises(ValueError, match="reads values in windows"):
        SequenceClassifier(2, vocab_size=10, embed_size=4, conv_filters=4)
    with pytest.raises(InputError, match="--stride 8 is longer than --window 4"):
        lstmkit.SeriesClassifier(conv_filters=4, window=4, stride=8, epochs=1).fit(
            DATA / "ucr" / "BEATS_TRAIN.txt", verbose=False
        )


def test_the_series_classifier_trains_saves_and_loads_with_the_branch(tmp_path):
    train, test = DATA / "ucr" / "BEATS_TRAIN.txt", DATA / "ucr" / "BEATS_TEST.txt"
    settings = dict(conv_filters=8, hidden_size=4, members=1, epochs=60, baselines=False, seed=0)
    clf = lstmkit.SeriesClassifier(**settings).fit(train, verbose=False)
    network = clf._check_fitted()
    assert network.config["conv_filters"] == 8 and network.conv is not None
    accuracy = clf.evaluate(test)["accuracy"]
    tested = read_series(test)
    majority = max(tested.labels.count(label) for label in set(tested.labels)) / len(tested.labels)
    assert accuracy > majority  # it learns from 40 series, beyond always naming the larger class
    clf.save(tmp_path / "fcn")
    loaded = lstmkit.SeriesClassifier.load(tmp_path / "fcn")
    assert loaded._check_fitted().conv.norms[0].running_var.ne(1).any()  # MaskedBatchNorm
    torch.testing.assert_close(
        torch.from_numpy(loaded.predict_proba(test)), torch.from_numpy(clf.predict_proba(test))
    )


def test_masked_batch_norm_is_batch_norm_over_the_valid_positions():
    torch.manual_seed(0)
    ours, theirs = MaskedBatchNorm(3), torch.nn.BatchNorm1d(3)
    with torch.no_grad():
        ours.weight.uniform_(0.5, 2), ours.bias.uniform_(-1, 1)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(2, 3, 10, requires_grad=True)
    lengths = torch.tensor([10, 6])
    inside = (torch.arange(10) < lengths[:, None])[:, None]  # (2, 1, 10)
    # the valid positions side by side, as one batch of one series: what the statistics must count
    valid = torch.cat([x[0, :, :10], x[1, :, :6]], dim=1)[None]  # (1, 3, 16)
    y, expected = ours(x, inside), theirs(valid)
    torch.testing.assert_close(torch.cat([y[0, :, :10], y[1, :, :6]], dim=1)[None], expected)
    torch.testing.assert_close(ours.running_mean, theirs.running_mean)
    torch.testing.assert_close(ours.running_var, theirs.running_var)  # unbiased, as torch's
    upstream = torch.randn(1, 3, 16)
    (grad_ours,) = torch.autograd.grad(torch.cat([y[0, :, :10], y[1, :, :6]], dim=1)[None], x, upstream)
    (grad_theirs,) = torch.autograd.grad(expected, x, upstream)
    torch.testing.assert_close(grad_ours, grad_theirs)
    assert not grad_ours[1, :, 6:].any()  # padding gets no gradient
    ours.eval(), theirs.eval()
    torch.testing.assert_close(ours(x, inside), theirs(x))
