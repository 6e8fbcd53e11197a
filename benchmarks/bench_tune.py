"""Hyperparameter tuning of a network on the new_machines validation machines (prints a table; asserts nothing).

    OMP_NUM_THREADS=1 python benchmarks/bench_tune.py [--model compact] [--trials 12] [--root runs/tune] \
        [--out nbs/_data/tune_new_machines.json]

The data: the fleet benchmark's protocol (`jbfd11_fleet`) on a smaller fleet (24 machines, 24 records per class x
severity, 2-s records at 10,240 Hz, 0.5-s windows), track `new_machines`: the validation machines are disjoint from
both the training and the test machines. `lstm_pfd.tune.run_tune` searches the learning rate, weight decay, schedule,
optimizer, label smoothing and noise augmentation for `--trials` trials (TPE, median pruning), each trial scored by
its best validation record accuracy. The library's default training config runs beside it under the same rule, and
the classical baseline on the same data for reference. Test record accuracies are read from the finished runs for
the report only: the search never sees them. The tutorial nbs/tutorials/06_fleet_benchmark.ipynb shows the JSON.
"""
import os
for v in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'NUMEXPR_NUM_THREADS'): os.environ.setdefault(v, '1')
import argparse
import json
import logging
import math
import platform
import sys
import time
from pathlib import Path

from lstm_pfd import __version__
from lstm_pfd.experiments import load_experiment, run_experiment
from lstm_pfd.tune import TuneConfig, run_tune, trial_value

DATA = {'signal.fs': 10240.0, 'signal.duration_s': 2.0, 'dataset.records_per_class_severity': 24, 'dataset.window_s': 0.5,
        'dataset.hop_s': 0.5, 'dataset.snr_db': [], 'fleet.n_machines': 24}
SPACE = {'train.lr': {'low': 3e-4, 'high': 1e-2, 'log': True}, 'train.weight_decay': {'low': 1e-5, 'high': 1e-1, 'log': True},
         'train.schedule': [None, 'cosine', 'onecycle'], 'train.optimizer': ['adam', 'adamw'],
         'train.label_smoothing': [0.0, 0.1], 'train.augment_snr_db': [None, [0.0, 30.0]]}


def base(model: str, epochs: int):
    "The experiment every trial starts from: the library's default training config, `epochs` at most."
    return load_experiment({'name': f'tune-{model}', 'data': {'preset': 'jbfd11_fleet', 'overrides': DATA, 'track': 'new_machines'},
                            'model': {'name': model}, 'train': {'epochs': epochs, 'patience': 4, 'monitor': 'val_record_acc'},
                            'eval': {'conditions': ['clean'], 'levels': ['window', 'record']}})


def _plain(v):
    "A table value as JSON: pandas shows a None choice as NaN."
    return None if isinstance(v, float) and math.isnan(v) else v


def _test_acc(run_dir: Path) -> float:
    return json.loads((run_dir / 'run.json').read_text())['metrics']['clean.record_acc']


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--model', default='compact')
    ap.add_argument('--trials', type=int, default=12)
    ap.add_argument('--epochs', type=int, default=12)
    ap.add_argument('--root', type=Path, default=Path('runs/tune'))
    ap.add_argument('--out', type=Path, default=None, help='JSON file to write (default: print only)')
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    t0 = time.time()
    b = base(a.model, a.epochs)
    default_run = run_experiment(b, a.root)
    forest = run_experiment(b.override({'model.name': 'classical', 'name': 'tune-classical'}), a.root)
    tc = TuneConfig(base=b, space=SPACE, trials=a.trials, metric='val_record_acc')
    tab = run_tune(tc, a.root)
    done = tab[tab.state == 'complete'].sort_values('value', ascending=False, kind='stable')
    best = done.iloc[0]
    rows = [dict(trial=int(r.trial), state=r.state, val_record_acc=float(r.value),
                 test_record_acc=_test_acc(a.root / r.run_id), **{k: _plain(r[k]) for k in SPACE}) for _, r in tab.iterrows() if r.run_id]
    out = dict(command='OMP_NUM_THREADS=1 python benchmarks/bench_tune.py ' + ' '.join(sys.argv[1:] if argv is None else argv),
               hardware=f"{platform.machine()} CPU, 1 thread", python=platform.python_version(), lstm_pfd=__version__,
               seconds=round(time.time() - t0, 1), data=dict(preset='jbfd11_fleet', overrides=DATA, track='new_machines'),
               model=a.model, epochs=a.epochs, space=SPACE, trials=rows,
               default=dict(val_record_acc=trial_value(default_run), test_record_acc=_test_acc(default_run)),
               best=dict(trial=int(best.trial), val_record_acc=float(best.value), test_record_acc=_test_acc(a.root / best.run_id),
                         params={k: _plain(best[k]) for k in SPACE}),
               classical=dict(test_record_acc=_test_acc(forest)))
    print(tab.to_string(index=False))
    print(f"default: val {out['default']['val_record_acc']:.3f} test {out['default']['test_record_acc']:.3f} | "
          f"best trial {out['best']['trial']}: val {out['best']['val_record_acc']:.3f} test {out['best']['test_record_acc']:.3f} | "
          f"classical test {out['classical']['test_record_acc']:.3f}")
    if a.out: a.out.write_text(json.dumps(out, indent=1, default=str) + '\n')


if __name__ == '__main__':
    main()
