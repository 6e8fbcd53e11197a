"Fine-tuning: every model names its head, each strategy trains what it says, new label sets, the linear probe, errors, and `lstm-pfd finetune`."
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lstm_pfd.data import WindowDataset
from lstm_pfd.finetune import STRATEGIES, embeddings, finetune
from lstm_pfd.models import MODELS, create_model, model_config, model_from_config
from lstm_pfd.train import Callback, evaluate, fit, load_checkpoint, save_checkpoint

FS, L = 1024.0, 512


def tones(n_per_class, freqs=(40.0, 90.0, 150.0), seed=0, n=2048, fs=FS):
    "Records of one noisy tone each (same RMS), one frequency per class: separable by frequency alone."
    rng, t = np.random.default_rng(seed), np.arange(n) / fs
    lab = np.repeat(np.arange(len(freqs)), n_per_class)
    x = np.sin(2 * np.pi * np.asarray(freqs)[lab, None] * t + rng.uniform(0, 2 * np.pi, (len(lab), 1)))
    return (x + 0.3 * rng.standard_normal(x.shape)).astype(np.float32), lab


def windows(n_per_class, freqs=(40.0, 90.0, 150.0), seed=0):
    x, lab = tones(n_per_class, freqs, seed)
    return WindowDataset(x, lab, np.arange(len(lab)), window_len=L, fs=FS, class_names=[f'f{f:g}' for f in freqs])


@pytest.fixture(scope='module')
def pretrained(one_torch_thread):
    "A compact model trained briefly on two of the classes (a stand-in for a model of another machine)."
    return fit(create_model('compact', 2, seed=0), windows(6, (40.0, 150.0), seed=1), epochs=2, lr=3e-3, progress=False).model


def _same(a: dict, b: dict, keys) -> bool:
    return all(torch.equal(a[k], b[k]) for k in keys)


@pytest.mark.parametrize('name', sorted(MODELS))
def test_every_model_names_its_head(name):
    m = create_model(name, 5, seed=0).eval()
    x = torch.randn(2, 1, 1024)
    assert isinstance(m.classifier, nn.Linear) and m.classifier.out_features == 5
    head = {f'{m.classifier_name}.weight', f'{m.classifier_name}.bias'}
    assert head <= set(m.state_dict()), (name, m.classifier_name)
    with torch.no_grad():
        z = m.embedding(x)
        assert z.shape == (2, m.classifier.in_features)
        torch.testing.assert_close(m.classifier(z), m(x))           # the embedding is what the head reads
        body = {k: v.clone() for k, v in m.state_dict().items() if k not in head}
        m.replace_classifier(3, seed=0)
        assert m(x).shape == (2, 3) and model_config(m)['kwargs']['n_classes'] == 3
        assert _same(body, m.state_dict(), body)                   # only the head changed
    model_from_config(model_config(m)).load_state_dict(m.state_dict())


class _GradLook(Callback):
    def on_fit_start(self, state): self.grad = {n for n, p in state.model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize('strategy', STRATEGIES)
def test_strategies_train_what_they_say(pretrained, strategy):
    before = {k: v.clone() for k, v in pretrained.state_dict().items()}
    look = _GradLook()
    kw = {} if strategy == 'linear_probe' else {'callbacks': [look]}
    r = finetune(pretrained, windows(3, seed=2), strategy=strategy, lr=3e-3, epochs=3, progress=False, **kw)
    after = r.model.state_dict()
    body = [k for k in before if not k.startswith('head.fc.')]      # parameters and BatchNorm statistics
    assert r.new_head and r.model.n_classes == 3 and r.model.classifier.out_features == 3
    if strategy == 'full':
        assert not _same(before, after, [k for k in body if k.endswith('weight')])
        assert look.grad == {n for n, _ in r.model.named_parameters()}
    else:
        assert _same(before, after, body), 'the feature extractor changed'
        assert sorted(r.trained) == ['head.fc.bias', 'head.fc.weight']
        if strategy == 'head': assert look.grad == {'head.fc.weight', 'head.fc.bias'}
    assert all(p.requires_grad for p in r.model.parameters())        # nothing stays frozen in the returned model
    assert _same(before, pretrained.state_dict(), before) and pretrained.n_classes == 2   # the input model is untouched


def test_same_class_count_keeps_the_head_unless_asked(pretrained):
    data = windows(3, (40.0, 150.0), seed=4)
    r = finetune(pretrained, data, strategy='head', epochs=1, progress=False)
    assert not r.new_head and r.model.n_classes == 2
    r = finetune(pretrained, data, strategy='head', epochs=1, new_head=True, progress=False)
    assert r.new_head
    with pytest.raises(ValueError, match='new_head=False, but the data has 3 classes'):
        finetune(pretrained, windows(2), new_head=False, progress=False)


def test_linear_probe_beats_chance_on_a_separable_set(one_torch_thread):
    m = create_model('compact', 3, seed=0)                          # random features separate tones already
    r = finetune(m, windows(4, seed=5), strategy='linear_probe', progress=False)
    acc = evaluate(r.model, windows(10, seed=6)).record_acc
    assert acc > 0.8, acc                                            # chance: 1/3
    Z, y, _ = embeddings(r.model, windows(10, seed=6))
    assert Z.shape == (30 * 4, r.model.classifier.in_features) and len(y) == len(Z)


def test_finetune_is_deterministic(pretrained):
    a, b = (finetune(pretrained, windows(3, seed=2), strategy='full', epochs=2, seed=3, progress=False).model for _ in range(2))
    assert _same(a.state_dict(), b.state_dict(), a.state_dict())


def test_finetune_errors(pretrained):
    with pytest.raises(ValueError, match="strategy: got 'frozen'; allowed: 'full', 'head', 'linear_probe'"):
        finetune(pretrained, windows(2), strategy='frozen')
    empty = WindowDataset(np.zeros((0, 2048), np.float32), [], [], window_len=L, fs=FS)
    with pytest.raises(ValueError, match='data: the dataset is empty'): finetune(pretrained, empty)
    with pytest.raises(ValueError, match='at least 2 classes'): finetune(pretrained, windows(2, (40.0,)))
    with pytest.raises(TypeError, match='expected a registry model'): finetune(nn.Linear(2, 2), windows(2))
    with pytest.raises(ValueError, match='body_lr_factor: got -0.5'): finetune(pretrained, windows(2), body_lr_factor=-0.5)


# ---- the command line -------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def rig(tmp_path_factory, one_torch_thread):
    "An imported file of tone recordings at 10,240 Hz (3 classes of its own, 4 train + 2 test recordings each) and a 2-class checkpoint."
    from lstm_pfd.config import DataConfig
    from lstm_pfd.data import import_recordings
    d, fs = tmp_path_factory.mktemp('rig'), 10_240.0
    cfg = DataConfig.preset('quick', {'signal.duration_s': 1.0})
    x, lab = tones(6, seed=7, n=10_240, fs=fs)
    split = ['train', 'train', 'train', 'train', 'test', 'test'] * 3
    path = import_recordings(list(x), [('low', 'mid', 'high')[i] for i in lab], fs, d / 'rig.h5', cfg=cfg, split=split, progress=False)
    ck = save_checkpoint(d / 'source.pt', create_model('compact', 2, seed=0), class_names=['a', 'b'], window_len=cfg.window_len, fs=fs)
    return path, ck, cfg.window_len, fs


def _main(*argv):
    from lstm_pfd.cli import main
    return main([str(a) for a in argv])


@pytest.mark.parametrize('strategy', STRATEGIES)
def test_cli_finetune_writes_a_checkpoint_for_the_new_classes(rig, tmp_path, capsys, strategy):
    path, ck, L_, fs = rig
    out = tmp_path / 'tuned.pt'
    assert _main('finetune', ck, path, '--strategy', strategy, '--per-class', 2, '--epochs', 2, '--out', out, '--no-progress') == 0
    text = capsys.readouterr().out
    assert 'new head: 3 classes (low, mid, high)' in text and 'fine-tuned on 6 records' in text and 'test: Evaluation' in text
    m, info = load_checkpoint(out, class_names=['low', 'mid', 'high'], window_len=L_, fs=fs)
    assert m.n_classes == 3 and info['extra']['finetune']['strategy'] == strategy
    assert [p.name for p in tmp_path.iterdir()] == ['tuned.pt']       # written atomically: no temporary file left


def test_cli_finetune_errors_name_the_flags(rig, tmp_path, capsys):
    path, ck = rig[:2]
    assert _main('finetune', ck, path, '--per-class', 9, '--out', tmp_path / 'x.pt') == 2
    assert "--per-class 9: class 'low' has only 4 record(s) in train of rig.h5" in capsys.readouterr().err
    assert _main('finetune', ck, path, '--split', 'val', '--out', tmp_path / 'x.pt') == 2
    assert "--split 'val': rig.h5 has no records there" in capsys.readouterr().err
    assert _main('finetune', ck, path, '--body-lr-factor', -1, '--out', tmp_path / 'x.pt') == 2
    assert '--body-lr-factor: got -1' in capsys.readouterr().err
    assert not (tmp_path / 'x.pt').exists()
    with pytest.raises(SystemExit): _main('finetune', ck, path, '--strategy', 'frozen')
    assert "invalid choice: 'frozen'" in capsys.readouterr().err


def test_cli_finetune_refusal_is_one_line(rig, tmp_path):
    path, ck = rig[:2]
    script = Path(sys.executable).parent / 'lstm-pfd'
    r = subprocess.run([str(script), 'finetune', str(ck), str(path), '--per-class', '0', '--out', str(tmp_path / 'x.pt')],
                       capture_output=True, text=True, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and 'Traceback' not in r.stderr, r.stderr
    assert '--per-class: got 0' in r.stderr
