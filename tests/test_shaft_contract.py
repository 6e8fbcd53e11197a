"""Physics contract of the shaft channels on `jbfd11_shaft` (default noise layers): each class's signature on the probes,
and agreement between the probes and the accelerometer.

The orbit analysis here is a small full-spectrum helper of its own (the FFT of z = x + i y in the bearing frame: positive
frequencies are forward precession, negative ones reverse), independent of the library's orbit tools."""
import numpy as np

import pytest

import lstm_pfd.shaft  # noqa: F401  (installs the multi-channel generator)
from lstm_pfd.config import DataConfig
from lstm_pfd.fleet import fleet, machine_config
from lstm_pfd.physics import FAULTS
from lstm_pfd.shaft import film_state, shaft_machine
from lstm_pfd.signals import generate, generate_batch, record_seed

CFG = DataConfig.preset('jbfd11_shaft')
STEADY = CFG.override({'transient.probability': 0.0, 'severity.evolution_probability': 0.0})   # noise layers unchanged
FS = CFG.signal.fs
MACHINES = fleet(CFG)


def bearing_frame(x):
    "Probe channels (x at 45 degrees right of top dead centre, y at 45 degrees left) -> horizontal and vertical motion, um."
    px, py = x[0].astype(float), x[1].astype(float)
    return (px - py) / np.sqrt(2), (px + py) / np.sqrt(2)


def centreline(x):
    "Mean journal position (horizontal, vertical), um: the DC gap of the probes (runout has zero mean over whole turns)."
    h, v = bearing_frame(x)
    return np.array([h.mean(), v.mean()])


def full_spectrum(x):
    "`(f, Z)`: complex amplitudes of z = h + i v (mean removed) on a two-sided frequency axis (Hz); +f forward, -f reverse."
    h, v = bearing_frame(x)
    z = (h - h.mean()) + 1j * (v - v.mean())
    return np.fft.fftfreq(len(z), 1 / FS), np.fft.fft(z) / len(z)


def line(f, Z, f0, rel=0.03):
    "Amplitude of the line near `f0` (Hz, signed): root of the summed power within +-`rel` f0 (a speed ramp spreads a line)."
    return float(np.sqrt(np.sum(np.abs(Z[np.abs(f - f0) <= rel * abs(f0) + 0.3]) ** 2)))


def dft(z, fr):
    "Complex amplitude of the exact frequency `fr` (Hz) in a complex record `z` (a steady record: the tone sits at exactly fr)."
    t = np.arange(len(z)) / FS
    return np.mean(z * np.exp(-2j * np.pi * fr * t))


def one_x(x, fr):
    "Forward and reverse 1X amplitudes (um) of a steady record at shaft speed `fr`."
    h, v = bearing_frame(x)
    z = (h - h.mean()) + 1j * (v - v.mean())
    return abs(dft(z, fr)), abs(dft(z, -fr))


def test_channels_units_and_the_accelerometer_is_the_fleet_record():
    fl = DataConfig.preset('jbfd11_fleet')
    for i, fault in enumerate(('healthy', 'imbalance', 'cavitation_looseness')):
        m, s = MACHINES[7 * i], record_seed(5, i)
        x, meta = generate(CFG, fault, severity=i, seed=s, machine=m)
        assert x.dtype == np.float32 and x.shape == (4, CFG.signal.n_samples)
        assert meta['channels'] == ['x', 'y', 'keyphasor', 'accel'] and meta['units'] == ['um', 'um', 'V', 'm/s^2']
        assert np.array_equal(x[3], generate(fl, fault, severity=i, seed=s, machine=m)[0])     # bit-identical
    X, M = generate_batch(CFG, ['healthy', 'wear'], [0, 3], [11, 12], machines=[MACHINES[3], MACHINES[4]])
    assert np.array_equal(X[1], generate(CFG, 'wear', severity=3, seed=12, machine=MACHINES[4])[0])
    assert M['channels'] == ['x', 'y', 'keyphasor', 'accel'] and M['machine_id'].tolist() == [3, 4]


def test_single_channel_protocols_keep_their_hashes():
    "The sensors section plays no part in a single-channel config's hash; it does in a multi-channel one."
    for name in ('jbfd11', 'jbfd11_fleet', 'quick_fleet'):
        cfg = DataConfig.preset(name)
        assert 'sensors' not in cfg._hash_dict(), name
    shaft = DataConfig.preset('jbfd11_shaft')
    assert 'sensors' in shaft._hash_dict() and shaft.hash() != DataConfig.preset('jbfd11').hash()


@pytest.fixture(scope='module')
def whirl_records():
    return [generate(CFG, 'oil_whirl', severity=i % 4, seed=record_seed(7, i), machine=m) for i, m in enumerate(MACHINES[::2])]


def test_oil_whirl_is_forward_at_042_048x_large_and_above_the_threshold(whirl_records):
    for x, meta in whirl_records:
        f, Z = full_spectrum(x)
        sp, c = meta['speed_hz'], meta['clearance_um']
        sub = (f > 0.3 * sp) & (f < 0.6 * sp)
        fw = f[sub][np.argmax(np.abs(Z[sub]))]
        assert 0.42 <= fw / sp <= 0.48, fw / sp                          # the forward sub-synchronous peak
        fwd, rev = line(f, Z, fw), line(f, Z, -fw)
        assert fwd > 3 * rev, (fwd, rev)                                  # forward precession
        assert fwd > 0.1 * c, (fwd, c)                                    # a good fraction of the clearance
        assert meta['threshold_ratio'] > 1 and meta['whirl_um'] > 0       # the machine runs above its own threshold


@pytest.fixture(scope='module')
def other_records():
    out = []
    for i, m in enumerate(MACHINES[1::3]):
        for j, fault in enumerate(FAULTS):
            if fault != 'oil_whirl': out.append((fault, *generate(CFG, fault, severity=(i + j) % 4, seed=record_seed(9, 20 * i + j), machine=m)))
    return out


def test_no_whirl_below_the_threshold(other_records):
    for fault, x, meta in other_records:
        assert (meta['whirl_um'] > 0) == (meta['threshold_ratio'] > 1), fault
        if meta['threshold_ratio'] > 1 or 'looseness' in fault: continue   # over the threshold; or a 0.5X line whose skirt reaches 0.48X
        f, Z = full_spectrum(x)
        sp, c = meta['speed_hz'], meta['clearance_um']
        band = (f >= 0.42 * sp) & (f <= 0.48 * sp)
        assert np.sqrt(np.sum(np.abs(Z[band]) ** 2)) < 0.02 * c, (fault, meta['machine_id'])
    share = np.mean([meta['threshold_ratio'] > 1 for _, _, meta in other_records])
    assert share < 0.05, share                                            # whirl outside its class stays rare


def lowest_natural_hz(meta, m):
    "Lowest undamped natural frequency (Hz) of the rotor on its film at the record's operating point: sqrt(eig(K_sym) / m) / 2 pi."
    mc = machine_config(STEADY, m); sm = shaft_machine(mc, m)
    K = film_state(mc, meta['speed_hz'], meta['load'] * mc.bearing.rated_load_n, meta['viscosity'], sm.rotor_mass_kg)['K']
    return float(np.sqrt(np.linalg.eigvalsh((K + K.T) / 2).min() / sm.rotor_mass_kg) / (2 * np.pi))


def test_imbalance_is_a_forward_1x_that_grows_with_speed_squared_below_the_critical():
    tested = 0
    for i, m in enumerate(MACHINES):
        amp = []
        for k in (0.92, 1.08):
            sp = k * m.speed_hz
            xi, mi = generate(STEADY, 'imbalance', severity='mild', seed=100 + i, machine=m, speed_hz=sp)
            xh = generate(STEADY, 'healthy', severity=0, seed=100 + i, machine=m, speed_hz=sp)[0]   # same draws: residual, runout, point
            hi, vi = bearing_frame(xi); hh, vh = bearing_frame(xh)
            z = (hi - hh) + 1j * (vi - vh)                                    # the fault's own response (noise aside)
            fwd, rev = abs(dft(z, sp)), abs(dft(z, -sp))
            assert fwd > 1.2 * rev, (m.id, fwd, rev)                          # forward ellipse
            amp.append(fwd)
        if 1.08 * m.speed_hz > 0.75 * lowest_natural_hz(mi, m): continue       # near or above the first critical: no speed^2 law
        tested += 1
        assert 1.3 < amp[1] / amp[0] < 1.75, (m.id, amp[1] / amp[0])          # (1.08 / 0.92)^2 = 1.38, plus the film softening
    assert tested >= 15, tested


def test_misalignment_moves_the_centreline_and_adds_2x_with_reverse_components():
    for i, m in enumerate(MACHINES[1:40:4]):
        kw = dict(seed=200 + i, machine=m, load=0.6, temperature_c=60.0)
        xm, mm = generate(STEADY, 'misalignment', severity='severe', **kw)
        xh, mh = generate(STEADY, 'healthy', severity=0, **kw)
        c, sp = mm['clearance_um'], mm['speed_hz']
        shift = centreline(xm) - centreline(xh)
        turn = np.degrees(abs(np.angle(complex(*centreline(xm)) / complex(*centreline(xh)))))
        assert np.hypot(*shift) > 0.15 * c and turn > 20, (m.id, shift, c, turn)   # the preload pulls the journal off its usual place
        fm, Zm = full_spectrum(xm); fh, Zh = full_spectrum(xh)
        two_m, two_h = line(fm, Zm, 2 * sp) + line(fm, Zm, -2 * sp), line(fh, Zh, 2 * sp) + line(fh, Zh, -2 * sp)
        assert two_m > 3 * two_h, (m.id, two_m, two_h)
        assert line(fm, Zm, -2 * sp) > 2 * line(fh, Zh, -2 * sp), m.id        # a line force: reverse components appear


def test_wear_gives_larger_orbits_and_a_sinking_centreline():
    ratio = []
    for i, m in enumerate(MACHINES[::2]):
        kw = dict(seed=300 + i, machine=m, load=0.6, temperature_c=60.0)
        xw, mw = generate(STEADY, 'wear', severity='severe', **kw)
        xh, mh = generate(STEADY, 'healthy', severity=0, **kw)
        assert mw['clearance_um'] > 1.5 * mh['clearance_um']
        hw, vw = bearing_frame(xw); hh, vh = bearing_frame(xh)
        size = lambda h, v: np.percentile(np.hypot(h - h.mean(), v - v.mean()), 99)
        ratio.append(size(hw, vw) / size(hh, vh))
        assert centreline(xw)[1] < centreline(xh)[1] - 0.2 * mh['clearance_um']
    # a softer film on most machines; a heavily loaded worn bearing sits deep in its clearance, where the film stiffens again
    assert np.median(ratio) > 2 and np.mean(np.array(ratio) > 1) >= 0.9, np.round(ratio, 2)


def test_lubrication_moves_the_journal_towards_the_wall():
    for i, m in enumerate(MACHINES[3:40:4]):
        kw = dict(seed=400 + i, machine=m, load=0.6, temperature_c=60.0)
        ml, mh = generate(STEADY, 'lubrication', severity='severe', **kw)[1], generate(STEADY, 'healthy', severity=0, **kw)[1]
        assert ml['shaft_eccentricity'] > mh['shaft_eccentricity'] + 0.02 and ml['sommerfeld'] == mh['sommerfeld']


def test_looseness_shows_half_and_third_orders_on_the_probes():
    for i, m in enumerate(MACHINES[::5]):
        x, meta = generate(STEADY, 'looseness', severity='severe', seed=500 + i, machine=m)
        f, Z = full_spectrum(x)
        sp, floor = meta['speed_hz'], np.median(np.abs(Z))
        assert line(f, Z, sp / 2, 0.005) > 30 * floor and line(f, Z, sp / 3, 0.005) > 10 * floor
        assert line(f, Z, sp / 2, 0.005) > 1.2 * line(f, Z, -sp / 2, 0.005)  # the subharmonic bounce precesses forward


def test_imbalance_1x_rises_on_the_probes_and_on_the_accelerometer():
    for i, m in enumerate(MACHINES[::5]):
        sp = m.speed_hz
        a, p = [], []
        for sev in ('incipient', 'severe'):
            x = generate(STEADY, 'imbalance', severity=sev, seed=600 + i, machine=m, speed_hz=sp)[0]
            p.append(one_x(x, sp)[0]); a.append(abs(dft(x[3].astype(float), sp)))
        assert p[1] > 1.5 * p[0] and a[1] > 1.5 * a[0], (m.id, p, a)


def test_keyphasor_gives_one_pulse_per_turn():
    for i, m in enumerate(MACHINES[::8]):
        x, meta = generate(CFG, 'healthy', severity=0, seed=700 + i, machine=m)
        kp, sc = x[2], CFG.sensors
        low = kp < sc.probe_gap_v - sc.keyphasor_pulse_v / 2
        starts = np.count_nonzero(low[1:] & ~low[:-1]) + int(low[0])
        turns = meta['speed_hz'] * CFG.signal.duration_s
        assert abs(starts - turns) <= 1.5, (starts, turns)
        assert kp.max() == np.float32(sc.probe_gap_v) and kp.min() <= sc.probe_gap_v - 0.9 * sc.keyphasor_pulse_v
