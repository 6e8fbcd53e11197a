"Longer checks of `lstm_pfd.fleet`: every machine of the benchmark fleet, its config, its transfer path, and the severity calibration on records of the generator."
import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from lstm_pfd.config import ConfigError, DataConfig, FleetConfig
from lstm_pfd.fleet import (CALIBRATION, ISO_20816_3, Machine, apply_machine, background_lines, band_energy, calibrate,
                            fault_kind, fleet, iso_zone, machine_config, reference_machine, render_machine,
                            residual_components, site_background, transfer, velocity_rms, zone_limits)
from lstm_pfd.physics import CATALOGUE, FAULTS
from lstm_pfd.signals import generate

CFG = DataConfig.preset('jbfd11_fleet')
FS, N = CFG.signal.fs, CFG.signal.n_samples
MACHINES = fleet(CFG)
F = np.fft.rfftfreq(N, 1 / FS)


def test_fleet_is_reproducible_across_processes():
    code = ("import json; from lstm_pfd.config import DataConfig; from lstm_pfd.fleet import fleet; "
            "print(json.dumps([m.to_dict() for m in fleet(DataConfig.preset('jbfd11_fleet'))]))")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    assert [Machine.from_dict(d) for d in json.loads(out)] == MACHINES


def test_machines_differ_and_stay_in_their_ranges():
    fc = CFG.fleet
    assert len({m.seed for m in MACHINES}) == len(MACHINES)
    for m in MACHINES:
        assert fc.speed_hz_range[0] <= m.speed_hz <= fc.speed_hz_range[1]
        assert fc.clearance_ratio_range[0] <= m.clearance_ratio <= fc.clearance_ratio_range[1]
        assert fc.balance_grade_range[0] <= m.balance_grade <= fc.balance_grade_range[1]
        assert fc.n_modes_range[0] <= len(m.mode_hz) <= fc.n_modes_range[1]
        assert list(m.mode_hz) == sorted(m.mode_hz)
        assert all(fc.damping_range[0] <= z <= fc.damping_range[1] for z in m.mode_damping)
        assert all(10 ** (fc.mode_gain_db_range[0] / 20) - 1e-12 <= g <= 10 ** (fc.mode_gain_db_range[1] / 20) + 1e-12 for g in m.mode_gain)
        lo, hi = getattr(fc, f'{m.mounting}_resonance_hz_range')
        assert lo <= m.mount_hz <= hi
        assert abs(m.sensitivity - 1) <= fc.sensitivity_tolerance + 1e-12
        assert m.line_hz in fc.line_hz and m.oil_grade in fc.oil_grades
        # ISO 21940-11 residual: 1X velocity = G x share / sqrt(2); 2X a fraction of it
        assert 0.1 < m.residual_1x_mm_s < 2.0 and m.residual_2x_mm_s < m.residual_1x_mm_s


def test_neighbour_tones_avoid_every_catalogue_order_band():
    for m in MACHINES:
        for f in m.neighbour_hz:
            o = f / m.speed_hz
            for sig in CATALOGUE.values():
                for k, hw in sig.orders:
                    assert abs(o - k) > hw * k, (m.id, o, sig.name, k)


def test_support_follows_the_lowest_mode():
    low = fleet(CFG.override({'fleet.mode_hz_range': [20.0, 40.0], 'fleet.speed_hz_range': [50.0, 60.0]}), n=5)
    assert all(m.support == 'flexible' for m in low)            # first mode below 1.25 x running speed
    assert all(m.support == 'rigid' for m in MACHINES)          # 100 Hz-5 kHz modes, 25-60 Hz shafts


@pytest.mark.parametrize('bad, field', [
    ({'fleet.speed_hz_range': [60, 25]}, 'fleet.speed_hz_range'),
    ({'fleet.speed_hz_range': []}, 'fleet.speed_hz_range'),
    ({'fleet.mode_hz_range': [5000, 100]}, 'fleet.mode_hz_range'),
    ({'fleet.noise_floor_ug_range': [0, 300]}, 'fleet.noise_floor_ug_range'),
    ({'fleet.mountings': []}, 'fleet.mountings'),
    ({'fleet.mountings': ['stud', 'stud']}, 'fleet.mountings'),
    ({'fleet.iso_group': 3}, 'fleet.iso_group'),
    ({'fleet.n_neighbours_range': [2, 1]}, 'fleet.n_neighbours_range'),
    ({'fleet.n_neighbours_range': [0.5, 2]}, 'fleet.n_neighbours_range[0]'),   # not an integer
    ({'fleet.sensitivity_tolerance': 0.9}, 'fleet.sensitivity_tolerance'),
    ({'fleet.n_machines': 3}, 'dataset.records_per_class_severity'),
])
def test_bad_fleet_configs_name_the_field(bad, field):
    with pytest.raises(ConfigError) as e: DataConfig.preset('jbfd11').override({'fleet.n_machines': 40, **bad})
    assert e.value.field == field


def test_disabled_fleet_keeps_the_hashes():
    assert DataConfig.preset('jbfd11').hash() == 'ceeb703c49b23cd0'
    assert DataConfig.preset('jbfd11').hash() == DataConfig.preset('jbfd11', {'fleet.speed_hz_range': [30.0, 40.0]}).hash()
    assert CFG.hash() != CFG.override({'fleet.seed': 2}).hash()


def test_every_machine_config_is_valid_and_keeps_the_protocol():
    for m in MACHINES:
        c = machine_config(CFG, m)
        assert c.signal.nominal_speed_hz == m.speed_hz and c.noise.emi.mains_hz == m.line_hz
        assert c.operating.speed_hz_range[0] < m.speed_hz < c.operating.speed_hz_range[1]
        assert c.dataset == CFG.dataset and c.severity == CFG.severity
        assert c.bearing.oil.name == f'ISO VG {m.oil_grade}'
        # noise floor density (ug/sqrt(Hz)) x sqrt(fs/2) = white RMS in m/s^2
        assert np.isclose(c.noise.measurement.level, m.noise_floor_ug * 1e-6 * 9.80665 * np.sqrt(FS / 2))


def test_every_mode_of_the_fleet_is_where_it_should_be():
    for m in MACHINES:
        for fm, z, g in zip(m.mode_hz, m.mode_damping, m.mode_gain):
            alone = dataclasses.replace(m, mode_hz=(fm,), mode_damping=(z,), mode_gain=(g,), direct_gain=0.0,
                                        mount_hz=0.0, sensitivity=1.0)
            h = np.abs(alone.response(F))
            assert abs(F[np.argmax(h)] - fm) <= F[1]
            assert np.isclose(abs(complex(alone.response(fm))), g)
        # far below every mode and the mounted resonance, the path is the direct gain times the sensitivity
        assert np.isclose(abs(complex(m.response(0.01))), m.direct_gain * m.sensitivity, rtol=1e-3)


def test_mounted_resonance_peaks_at_its_frequency():
    m = dataclasses.replace(reference_machine(), id=0, mount_hz=3000.0, mount_damping=0.05, mounting='magnet')
    h = np.abs(m.response(F))
    assert abs(F[np.argmax(h)] - 3000.0 * np.sqrt(1 - 2 * 0.05 ** 2)) <= F[1]      # low-pass peak at f_s sqrt(1 - 2 zeta^2)
    assert np.isclose(abs(complex(m.response(3000.0))), 1 / (2 * 0.05))


def test_apply_machine_is_a_linear_float32_filter_with_the_cached_response():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, N)).astype(np.float32)
    m = MACHINES[3]
    y = apply_machine(x, FS, m)
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.allclose(apply_machine(x[0] + 0.5 * x[1], FS, m), y[0] + 0.5 * y[1], atol=1e-4)
    # a tone at a bin comes out scaled by |H| there
    k = 2000
    tone = np.cos(2 * np.pi * F[k] * np.arange(N) / FS).astype(np.float32)
    out = apply_machine(tone, FS, m)
    assert np.isclose(np.sqrt(2 * np.mean(out.astype(float) ** 2)), abs(complex(m.response(F[k]))), rtol=1e-3)
    assert transfer(m, FS, N) is transfer(m, FS, N)                # cached
    with pytest.raises(ValueError): transfer(m, FS, N)[0] = 0      # read-only


def test_residual_reaches_the_drawn_velocity_at_the_sensor():
    t = np.arange(N) / FS
    for m in MACHINES[:10]:
        bearing = sum(a * np.cos(2 * np.pi * o * m.speed_hz * t + ph) for o, a, ph in residual_components(m))
        v = velocity_rms(apply_machine(bearing, FS, m), FS)
        assert np.isclose(v, np.hypot(m.residual_1x_mm_s, m.residual_2x_mm_s), rtol=0.02)


def test_background_lines_are_where_the_machine_says():
    for m in MACHINES[:10]:
        k, v = background_lines(m, FS, N, np.random.default_rng(0))
        f = k * FS / N
        want = [m.line_hz * h for h in (1, 2, 3, 4)] + list(m.neighbour_hz)
        assert all(np.min(np.abs(np.array(want) - fi)) <= FS / N / 2 + 1e-9 for fi in f)
        assert len(k) == len(want)


def test_velocity_rms_of_known_tones_and_zone_limits():
    t = np.arange(N) / FS
    for f, a in ((12.6, 0.3), (60.0, 1.0), (999.0, 5.0)):      # whole numbers of cycles in the record
        assert np.isclose(velocity_rms(a * np.sin(2 * np.pi * f * t), FS), a / (np.sqrt(2) * 2 * np.pi * f) * 1e3, rtol=2e-3)
    for (g, s), lims in ISO_20816_3.items():
        assert [iso_zone(v, g, s) for v in lims] == ['A', 'B', 'C']
        assert [iso_zone(v * 1.001, g, s) for v in lims] == ['B', 'C', 'D']
    assert zone_limits(2, 'rigid') == (1.4, 2.8, 4.5)


def _sensor(m, fault, seed, *, law=None, unit=False, speed_hz=None, severity=0):
    "Fleet-on record emulated with the generator: mechanical part (fault x law + residual) -> render_machine -> noise layers."
    cm = machine_config(CFG, m).override({'severity.evolution_probability': 0.0})
    quiet = cm.override({'noise': cm.noise.only()})
    xm, meta, parts = generate(quiet, fault, severity=3 if unit else severity, seed=seed, speed_hz=speed_hz, components=True)
    s = meta['severity_factor']
    if unit: return apply_machine(parts['fault'] / s, FS, m), meta
    noise = generate(cm, fault, severity=severity, seed=seed, speed_hz=speed_hz)[0] - xm
    rng = np.random.default_rng(seed)
    t = np.arange(N) / FS
    f = meta['speed_hz']
    resid = sum(a * (f / m.speed_hz) ** 2 * np.cos(2 * np.pi * o * f * t + ph) for o, a, ph in residual_components(m, rng.random(4)))
    mech = (parts['fault'] * (float(law(s)) / s if law is not None and s > 0 else 1.0) + resid).astype(np.float32)
    render_machine(mech, FS, m, rng)
    return mech + noise, meta


def test_healthy_machines_are_in_zone_a_or_b_with_a_fleet_spread():
    v = np.array([np.median(velocity_rms(np.stack([_sensor(m, 'healthy', 100 * m.id + k)[0] for k in range(2)]), FS))
                  for m in MACHINES])
    assert all(m.zone(x) in ('A', 'B') for m, x in zip(MACHINES, v))
    assert np.percentile(v, 90) / np.percentile(v, 10) > 1.8         # machines differ: no single healthy level


@pytest.mark.parametrize('fault', ['imbalance', 'misalignment', 'cavitation', 'wear'])
def test_calibration_meets_the_table_on_machines_of_the_fleet(fault):
    kind = fault_kind(fault)
    for m in MACHINES[:4]:
        h = np.stack([_sensor(m, 'healthy', 7 + k, speed_hz=m.speed_hz)[0] for k in range(2)])
        unit = np.stack([_sensor(m, fault, 11 + k, unit=True, speed_hz=m.speed_hz)[0] for k in range(2)])
        law = calibrate(m, fault, unit=unit, healthy=h, fs=FS, severity=CFG.severity)
        assert np.all(np.diff(law(np.linspace(0.01, 1, 200))) > 0)
        e_h, e_u = np.median(band_energy(h, FS, fault, m.speed_hz)), np.median(band_energy(unit, FS, fault, m.speed_hz))
        # incipient band edges: -10 dB and +3 dB of the healthy in-band energy (on the calibration records)
        assert np.isclose(10 * np.log10(law(0.2) ** 2 * e_u / e_h), -10.0, atol=1e-6)
        assert np.isclose(10 * np.log10(law(0.45) ** 2 * e_u / e_h), 3.0, atol=1e-6)
        if kind == 'tonal':        # severe low edge: the record at the C/D limit of the machine's zone table
            v_h, v_u = np.median(velocity_rms(h, FS)), np.median(velocity_rms(unit, FS))
            assert np.isclose(np.hypot(v_h, law(0.9) * v_u), zone_limits(m.iso_group, m.support)[2], rtol=1e-6)
            # and a fresh severe record (at nominal speed) lands in zone C or D
            x, _ = _sensor(m, fault, 99, law=law, speed_hz=m.speed_hz, severity=3)
            assert m.zone(velocity_rms(x, FS)) in ('C', 'D')
        else:
            assert np.isclose(10 * np.log10(law(0.9) ** 2 * e_u / e_h), CALIBRATION['band'][3][3], atol=1e-6)
