"The physics contract (CONTRIBUTING.md, \"Physics contract\") as tests of `lstm_pfd.signals` against the catalogue of `lstm_pfd.physics`."
import itertools
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
from scipy.signal import hilbert, welch

from lstm_pfd.config import ConfigError, DataConfig
from lstm_pfd.physics import (CATALOGUE, FAULTS, SEVERITIES, band_mask, control_bands, expected_bands,
                              operating_point)
from lstm_pfd.signals import META_COLUMNS, generate, generate_batch, record_seed

CFG = DataConfig.preset('jbfd11')                              # noise ON at default levels, transients ON
STEADY = CFG.override({'transient.probability': 0.0})           # for exact-frequency checks
FS, N = CFG.signal.fs, CFG.signal.n_samples
OP = CFG.operating
CORNERS = list(itertools.product(OP.speed_hz_range, OP.load_range, OP.temperature_c_range))
FREQS = np.fft.rfftfreq(N, 1 / FS)


def power(x):
    return np.abs(np.fft.rfft(x)) ** 2


def rms(x):
    return float(np.sqrt(np.mean(np.asarray(x, float) ** 2)))


def only(*layers, cfg=STEADY):
    return cfg.replace(noise=cfg.noise.only(*layers))


# ---------------------------------------------------------------- bands
@pytest.mark.parametrize('fault', FAULTS[1:])
def test_expected_bands_beat_control_bands(fault):
    "At every corner of the operating ranges and every severity, the expected bands hold >= 10x the control-band energy."
    fi = FAULTS.index(fault)
    ratios = []
    for k, (s, l, t) in enumerate(CORNERS):
        for sev, rep in itertools.product(range(len(SEVERITIES)), range(2)):
            x, m = generate(CFG, fault, severity=sev, seed=record_seed(fi, 8 * k + 2 * sev + rep), speed_hz=s, load=l, temperature_c=t)
            P = power(x)
            e = P[band_mask(FREQS, expected_bands(fault, m['speed_hz']))].sum()
            c = P[band_mask(FREQS, control_bands(fault, m['speed_hz'], FS, CFG.noise.emi.mains_hz))].sum()
            ratios.append(e / c)
    assert min(ratios) >= 10, (fault, min(ratios))


def test_class_bands_do_not_coincide():
    whirl, loose = expected_bands('oil_whirl', 60.0), expected_bands('looseness', 60.0)
    assert np.allclose(whirl[0], [0.42 * 60, 0.48 * 60])
    assert whirl[0, 1] < loose[0, 0] and np.isclose(loose[0].mean(), 30.0)
    sigs = {f: (CATALOGUE[f].orders, CATALOGUE[f].bands_hz) for f in FAULTS}
    # misalignment and misalignment_imbalance share their bands (1X, 2X, 3X); all other signatures differ ...
    assert len(set(sigs.values())) == len(FAULTS) - 1 and sigs['misalignment'] == sigs['misalignment_imbalance']
    # ... and those two differ in their 1X/2X balance: 2X dominates misalignment; the imbalance adds 1X to the mixed class
    ratio = {}
    for fault in ('misalignment', 'misalignment_imbalance'):
        r = []
        for seed in range(8):
            _, m, parts = generate(STEADY, fault, severity='mild', seed=seed, components=True)
            P = power(parts['fault'])
            e = [P[band_mask(FREQS, [[k * m['speed_hz'] * 0.97, k * m['speed_hz'] * 1.03]])].sum() for k in (1, 2, 3)]
            assert e[2] > 0.01 * max(e)                           # 3X present
            if fault == 'misalignment': assert e[1] > e[0]         # 2X strongest, 1X weaker
            r.append(e[0] / e[1])
        ratio[fault] = np.median(r)
    assert ratio['misalignment_imbalance'] > 3 * ratio['misalignment'], ratio


@pytest.mark.parametrize('seed', [1, 2, 3])
def test_looseness_subharmonic_exactly_half_order(seed):
    x, m, parts = generate(STEADY, 'looseness', severity='incipient', seed=seed, components=True, speed_hz=60.0)
    P = power(x)
    near = (FREQS > 0.3 * m['speed_hz']) & (FREQS < 0.7 * m['speed_hz'])
    f_peak = FREQS[near][np.argmax(P[near])]
    assert abs(f_peak - 0.5 * m['speed_hz']) <= FS / N       # within one bin (0.2 Hz) of exactly 0.5X
    # the noise-free fault component repeats every two revolutions: exactly periodic at 0.5X
    f = power(parts['fault'])                                  # at 60 Hz every half order falls on a bin: no leakage
    lines = FREQS[f > 1e-6 * f.max()]
    orders = lines / m['speed_hz']
    assert np.all(np.abs(orders * 2 - np.round(orders * 2)) < 1e-9) and 0.5 in orders and orders.max() >= 6


@pytest.mark.parametrize('seed', [1, 2, 3, 4])
def test_oil_whirl_subsynchronous_tracks_speed(seed):
    for spd in OP.speed_hz_range:
        x, m = generate(STEADY, 'oil_whirl', severity='mild', seed=seed, speed_hz=spd)
        P = power(x)
        near = (FREQS > 0.2 * spd) & (FREQS < 0.8 * spd)
        ratio = FREQS[near][np.argmax(P[near])] / spd
        assert 0.42 <= ratio <= 0.48 and abs(ratio - m['whirl_ratio']) < 0.01


# ---------------------------------------------------------------- severity, speed, S
@pytest.mark.parametrize('fault', FAULTS[1:])
def test_fault_component_monotonic_and_linear_in_severity(fault):
    for seed in (11, 12, 13):
        r, fac = [], []
        for sev in SEVERITIES:
            _, m, parts = generate(CFG, fault, severity=sev, seed=seed, components=True)
            r.append(rms(parts['fault'])); fac.append(m['severity_factor'])
        assert np.all(np.diff(r) > 0), (fault, r)
        if not m['evolving']:                                 # same draws, severity a pure factor: exactly linear
            np.testing.assert_allclose(np.array(r) / np.array(fac), r[0] / fac[0], rtol=1e-4)


def test_healthy_has_no_fault_component_and_records_severity():
    for sev in range(4):
        x, m, parts = generate(CFG, 'healthy', severity=sev, seed=5, components=True)
        assert m['severity'] == sev and m['severity_factor'] == 0.0 and not m['evolving']
        assert not parts['fault'].any()
        assert rms(parts['baseline']) < 0.1


def test_imbalance_grows_with_speed_squared_not_load():
    lo, hi = OP.speed_hz_range
    for seed in (1, 2, 3):
        a, b, c = (rms(generate_fault(fault='imbalance', severity='mild', seed=seed, speed_hz=s, load=l, temperature_c=60)[2]['fault'])
                   for s, l in ((lo, 0.5), (hi, 0.5), (hi, 1.0)))
        np.testing.assert_allclose(b / a, (hi / lo) ** 2, rtol=1e-3)
        np.testing.assert_allclose(c, b, rtol=1e-6)


def generate_fault(**kw):
    return generate(STEADY, components=True, **kw)


@pytest.mark.parametrize('fault,direction', [('lubrication', -1), ('wear', -1), ('wear_lubrication', -1), ('oil_whirl', +1)])
def test_film_classes_follow_sommerfeld(fault, direction):
    "Lubrication and wear grow as S falls; oil whirl grows as S rises (S from temperature, load and speed)."
    temps = np.linspace(*OP.temperature_c_range, 5)
    for seed in (1, 2):
        for load in OP.load_range:
            S, r = [], []
            for t in temps:
                _, m, parts = generate_fault(fault=fault, severity='moderate', seed=seed, speed_hz=60.0, load=load, temperature_c=t)
                S.append(m['sommerfeld']); r.append(rms(parts['fault']))
            order = np.argsort(S)
            assert np.all(np.diff(np.array(r)[order]) * direction > 0), (fault, S, r)
        # load: heavier load -> smaller S
        a = generate_fault(fault=fault, severity='moderate', seed=seed, load=OP.load_range[0], temperature_c=60.0, speed_hz=60.0)
        b = generate_fault(fault=fault, severity='moderate', seed=seed, load=OP.load_range[1], temperature_c=60.0, speed_hz=60.0)
        assert a[1]['sommerfeld'] > b[1]['sommerfeld']
        assert (rms(b[2]['fault']) - rms(a[2]['fault'])) * -direction > 0


def test_meta_operating_point_matches_physics():
    x, m = generate(CFG, 'wear', severity='mild', seed=3, speed_hz=55.0, load=0.4, temperature_c=70.0)
    op = operating_point(CFG, 55.0, 0.4, 70.0)
    for k in ('viscosity', 'sommerfeld', 'eccentricity', 'kinematic_viscosity'):
        np.testing.assert_allclose(m[k], float(op[k]), rtol=1e-12)


# ---------------------------------------------------------------- cavitation
@pytest.mark.parametrize('severity', SEVERITIES)
def test_cavitation_burst_in_every_second(severity):
    "A 1-s window holds a burst with probability >= 0.95, detected in the noisy signal (band energy in 10-ms frames)."
    W, fr = int(FS), 256                                          # 1-s windows, 12.5-ms frames
    spec_f = np.fft.rfftfreq(W, 1 / FS)
    band = (spec_f >= 1400) & (spec_f <= 2600)
    hits = total = 0
    for fault in ('cavitation', 'cavitation_looseness'):
        for i in range(20):
            x, _ = generate(CFG, fault, severity=severity, seed=record_seed(77, i))
            for w in x.reshape(-1, W):
                X = np.fft.rfft(w); X[~band] = 0
                e = (np.fft.irfft(X, W) ** 2).reshape(-1, fr).sum(1)
                hits += e.max() > 20 * np.median(e); total += 1
    assert hits / total >= 0.95, (severity, hits, total)


# ---------------------------------------------------------------- noise layers
def noise_alone(layer, seed=3, cfg=None):
    "Healthy record with one layer on, minus the machine's residual baseline: the layer alone."
    x, m, parts = generate(cfg or only(layer), 'healthy', severity=0, seed=seed, components=True)
    return x.astype(float) - parts['baseline'], m, parts


def test_all_layers_off_is_the_mechanical_signal():
    x, m, parts = generate(only(), 'misalignment', severity=1, seed=3, components=True)
    np.testing.assert_allclose(x, parts['baseline'] + parts['fault'], atol=1e-5)
    assert not any(m[f'noise_{l}'] for l in CFG.noise.LAYERS)


def test_emi_at_exactly_mains():
    for mains in (50.0, 60.0):
        cfg = only('emi', cfg=STEADY.override({'noise.emi.mains_hz': mains}))
        y, _, _ = noise_alone('emi', cfg=cfg)
        A = np.abs(np.fft.rfft(y)) * 2 / N
        k = int(round(mains * N / FS))
        assert np.isclose(FREQS[k], mains)
        np.testing.assert_allclose(A[k], cfg.noise.emi.level, rtol=1e-3)
        for h, rel in enumerate(cfg.noise.emi.harmonics, 2):
            np.testing.assert_allclose(A[h * k], rel * cfg.noise.emi.level, rtol=1e-2)
        A[[k * h for h in range(1, len(cfg.noise.emi.harmonics) + 2)]] = 0
        assert A.max() < 1e-3 * cfg.noise.emi.level             # nothing between the lines: exact frequency


@pytest.mark.parametrize('seed', [1, 2, 3])
def test_pink_noise_slope_minus_one(seed):
    y, _, _ = noise_alone('pink', seed=seed)
    assert abs(y.mean()) < 0.1 * y.std()
    np.testing.assert_allclose(y.std(), STEADY.noise.pink.level, rtol=0.25)  # 1/f: few degrees of freedom at the bottom
    f, P = welch(y, fs=FS, nperseg=2 ** 15)
    sel = (f >= 2) & (f <= 2000)
    slope = np.polyfit(np.log10(f[sel]), np.log10(P[sel]), 1)[0]
    assert abs(slope + 1) <= 0.2, slope


def test_white_measurement_noise():
    y, _, _ = noise_alone('measurement')
    np.testing.assert_allclose(y.std(), STEADY.noise.measurement.level, rtol=0.05)
    f, P = welch(y, fs=FS, nperseg=4096)
    assert abs(np.polyfit(np.log10(f[1:]), np.log10(P[1:]), 1)[0]) < 0.05


def test_quantization_step_visible_and_last():
    q = STEADY.noise.quantization
    step = 2 * q.full_scale / 2 ** q.bits
    for layers in (('quantization',), STEADY.noise.LAYERS):
        x, m = generate(only(*layers), 'looseness', severity=2, seed=4)
        k = x.astype(float) / step
        np.testing.assert_allclose(k, np.round(k), atol=1e-3)  # every sample on the ADC grid: quantization is last
        assert np.min(np.diff(np.unique(x))) >= step * 0.999
    y, _, parts = noise_alone('quantization')
    assert np.abs(y).max() <= step / 2 * 1.001 and np.abs(y).max() > step / 4


def test_thermal_drift_is_slow():
    y, _, _ = noise_alone('thermal_drift')
    assert np.abs(y).max() <= STEADY.noise.thermal_drift.level * 1.001
    P = power(y)
    assert P[FREQS < 2.0].sum() > 0.99 * P.sum()


def test_calibration_drift_is_a_gain_ramp():
    x, m, parts = generate(only('calibration_drift'), 'imbalance', severity=2, seed=4, components=True)
    mech = parts['baseline'] + parts['fault']
    t = np.arange(N) / FS
    np.testing.assert_allclose(x, mech * (1 + m['gain_drift_per_s'] * t), atol=1e-5)
    assert 0 < abs(m['gain_drift_per_s']) <= STEADY.noise.calibration_drift.rate_per_s


def test_impulses_have_a_rate_per_second():
    cfg = only('impulses', cfg=STEADY.override({'noise.impulses.rate_per_s': 4.0}))
    counts = []
    for seed in range(30):
        y, m, _ = noise_alone('impulses', seed=seed, cfg=cfg)
        counts.append(m['n_impulses'])
        if m['n_impulses']: assert np.abs(y).max() > 0.4 * cfg.noise.impulses.level
        else: assert np.abs(y).max() < 1e-6
    assert 3.0 < np.mean(counts) / CFG.signal.duration_s < 5.0


def test_aliasing_tone_folded_into_band():
    cfg = only('aliasing', cfg=STEADY.override({'noise.aliasing.probability': 1.0}))
    y, m, _ = noise_alone('aliasing', cfg=cfg)
    assert m['aliasing'] and 0 < m['alias_hz'] < FS / 2
    assert abs(FREQS[np.argmax(power(y))] - m['alias_hz']) <= FS / N
    y2, m2, _ = noise_alone('aliasing', cfg=only('aliasing', cfg=STEADY.override({'noise.aliasing.probability': 0.0})))
    assert not m2['aliasing'] and not np.abs(y2).max() > 1e-6


def test_noise_never_changes_the_fault_component():
    a = generate(CFG, 'wear_lubrication', severity=1, seed=9, components=True)[2]['fault']
    b = generate(only(), 'wear_lubrication', severity=1, seed=9, components=True)[2]['fault']
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- transients
def test_speed_ramp_is_a_real_frequency_change():
    cfg = STEADY.override({'transient.probability': 1.0, 'transient.kinds': ['speed_ramp'], 'noise.quantization.enabled': False})
    for seed in range(4):
        x, m, parts = generate(cfg, 'imbalance', severity='severe', seed=seed, components=True)
        assert m['transient'] == 1 and m['speed_start_hz'] != m['speed_end_hz']
        ph = np.unwrap(np.angle(hilbert(parts['fault'].astype(float))))
        finst = np.diff(ph) * FS / (2 * np.pi)
        e = int(0.1 * FS)
        np.testing.assert_allclose(np.median(finst[e:2 * e]), m['speed_start_hz'], rtol=2e-3) if m['transient_start_s'] > 0.2 else None
        np.testing.assert_allclose(np.median(finst[-2 * e:-e]), m['speed_end_hz'], rtol=2e-3) if m['transient_start_s'] + m['transient_duration_s'] < 4.8 else None
        # continuous: no sample-to-sample jump beyond what the tone itself does
        assert np.abs(np.diff(parts['fault'])).max() < 2 * np.pi * 1.1 * m['speed_end_hz'] / FS * np.abs(parts['fault']).max() * 1.5


@pytest.mark.parametrize('kind,code', [('load_step', 2), ('thermal', 3)])
def test_load_steps_and_thermal_settling_move_S_continuously(kind, code):
    cfg = STEADY.override({'transient.probability': 1.0, 'transient.kinds': [kind]})
    for seed in range(4):
        x, m, parts = generate(cfg, 'lubrication', severity='moderate', seed=seed, components=True)
        assert m['transient'] == code
        assert m['sommerfeld_end'] != m['sommerfeld']
        if kind == 'load_step':
            assert OP.load_range[0] <= m['load_end'] <= OP.load_range[1] and m['load_end'] != m['load']
            assert (m['load_end'] > m['load']) == (m['sommerfeld_end'] < m['sommerfeld'])
        else:
            assert OP.temperature_c_range[0] <= m['temperature_end_c'] <= OP.temperature_c_range[1]
            assert (m['temperature_end_c'] > m['temperature_c']) == (m['sommerfeld_end'] < m['sommerfeld'])


# ---------------------------------------------------------------- reproducibility
FAULT_MIX = [FAULTS[i % 11] for i in range(23)]
SEV_MIX = [SEVERITIES[i % 4] for i in range(23)]
SEED_MIX = [record_seed(2024, i) for i in range(23)]
QUICK = DataConfig.preset('quick')


def _batch_rows(args):
    idx = args
    X, meta = generate_batch(QUICK, [FAULT_MIX[i] for i in idx], [SEV_MIX[i] for i in idx], [SEED_MIX[i] for i in idx])
    return idx, X, meta


def test_bit_identical_across_batch_sizes_and_processes():
    ref = {i: generate(QUICK, FAULT_MIX[i], severity=SEV_MIX[i], seed=SEED_MIX[i]) for i in range(23)}
    for size in (1, 5, 23):
        order = np.random.default_rng(size).permutation(23)
        for start in range(0, 23, size):
            idx, X, meta = _batch_rows(list(order[start:start + size]))
            for j, i in enumerate(idx):
                np.testing.assert_array_equal(X[j], ref[i][0])
                for k in META_COLUMNS: assert meta[k][j] == ref[i][1][k], k
    with ProcessPoolExecutor(max_workers=2) as ex:
        chunks = [list(range(0, 12)), list(range(12, 23)), [22, 0, 7]]
        for idx, X, _ in ex.map(_batch_rows, chunks):
            for j, i in enumerate(idx): np.testing.assert_array_equal(X[j], ref[i][0])


def test_different_seeds_differ_and_meta_is_typed():
    X, meta = generate_batch(QUICK, ['wear'] * 4, 'mild', [1, 2, 3, 4])
    assert all(not np.array_equal(X[i], X[j]) for i in range(4) for j in range(i + 1, 4))
    for k, t in META_COLUMNS.items(): assert meta[k].dtype == t and len(meta[k]) == 4
    assert len(set(meta['speed_hz'])) == 4


def test_no_nan_or_inf_over_thousands_of_records():
    cfg = QUICK.override({'signal.duration_s': 1.0, 'transient.probability': 0.6})
    n = 2000
    X, meta = generate_batch(cfg, [FAULTS[i % 11] for i in range(n)], [i % 4 for i in range(n)], [record_seed(5, i) for i in range(n)])
    assert np.isfinite(X).all() and X.dtype == np.float32
    assert all(np.isfinite(v).all() for v in meta.values() if v.dtype.kind == 'f')
    assert not meta['adc_saturated'].any()
    assert 0.2 < meta['evolving'][meta['label'] > 0].mean() < 0.4            # 30 % of fault records evolve
    assert set(np.unique(meta['transient'])) == {0, 1, 2, 3}


# ---------------------------------------------------------------- bad input
def test_bad_input_is_an_error():
    with pytest.raises(ValueError, match='misalignment'): generate(QUICK, 'misalign', severity=0, seed=1)
    with pytest.raises(ValueError, match='incipient, mild, moderate, severe'): generate(QUICK, 'wear', severity='huge', seed=1)
    with pytest.raises(ConfigError, match='speed_hz'): generate(QUICK, 'wear', severity=0, seed=1, speed_hz=80.0)
    with pytest.raises(ConfigError, match='load'): generate(QUICK, 'wear', severity=0, seed=1, load=1.5)
    with pytest.raises(ConfigError, match='temperature_c'): generate(QUICK, 'wear', severity=0, seed=1, temperature_c=float('nan'))
    with pytest.raises(ValueError, match='seed'): generate(QUICK, 'wear', severity=0, seed=-1)
    with pytest.raises(ValueError, match='out must be'): generate_batch(QUICK, ['wear'], [0], [1], out=np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match='3 values for 2'): generate_batch(QUICK, ['wear', 'jeu'], [0, 1], [1, 2], load=[0.5, 0.6, 0.7])
