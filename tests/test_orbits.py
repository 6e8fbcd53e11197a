"""Orbit analysis across functions: independent routes to the same quantity must agree (hull diameter vs
forward/reverse algebra, full spectrum vs order vectors), noisy keyphasors and a wandering speed, and the
module's place in the layers (numpy/scipy only)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from lstm_pfd import orbits as ob


def _notch(theta, depth=4.0, width_deg=10.0, ramp_deg=3.0, base=-10.0):
    "Keyphasor notch fixed on the shaft: its leading edge crosses mid level at theta = 0 mod 2 pi."
    w, r = np.radians(width_deg), np.radians(ramp_deg)
    phi = np.mod(theta + r / 2, 2 * np.pi)
    return base - depth * np.clip(np.minimum(phi, w - phi) / r, 0, 1)


def _wobbly(fs=20480.0, dur=4.0, f0=50.0, wobble=0.03, seed=0, noise=0.0):
    "Shaft angle of a speed wandering +-3 % around f0 (closed form), and a notch keyphasor on it."
    t = np.arange(int(dur * fs)) / fs
    theta = 2 * np.pi * (f0 * t - f0 * wobble / (2 * np.pi * 0.7) * np.cos(2 * np.pi * 0.7 * t)) + 1.0
    kp = _notch(theta) + np.random.default_rng(seed).normal(0, noise, len(t))
    return t, theta, kp.astype(np.float32)


def test_imports_only_numpy_scipy_and_lower_layers():
    code = ("import sys, lstm_pfd.orbits; bad = [m for m in ('torch', 'h5py', 'lstm_pfd.data', 'lstm_pfd.signals', "
            "'lstm_pfd.models', 'matplotlib.pyplot') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == '[]', out


def test_noisy_keyphasor_fires_once_per_turn():
    t, theta, kp = _wobbly(noise=0.3)                         # 0.3 V noise on a 4 V notch
    tk = ob.keyphasor_times(kp, 20480.0)
    want = np.ceil((theta[-1] - 0.0) / (2 * np.pi)) - np.ceil(theta[0] / (2 * np.pi))
    assert abs(len(tk) - want) <= 1
    assert np.all(np.diff(tk) > 0.8 / (50 * 1.03))            # no double triggers on noisy edges


def test_order_vectors_follow_a_wandering_speed():
    t, theta, kp = _wobbly()
    th0 = 2 * np.pi * np.ceil(theta[0] / (2 * np.pi))          # shaft angle of the first keyphasor
    v1, v2 = ob.to_vector(12.0, 75.0), ob.to_vector(3.0, 310.0)
    x = (v1 * np.exp(1j * (theta - th0)) + v2 * np.exp(2j * (theta - th0))).real.astype(np.float32)
    tk = ob.keyphasor_times(kp, 20480.0)
    got = ob.order_vectors(x, 20480.0, tk, [1, 2])
    np.testing.assert_allclose(got, [v1, v2], atol=0.02)       # angle linear within a turn: small error
    fixed = np.fft.rfft(x)                                      # a fixed-rate FFT smears 1X over many bins
    peak = np.abs(fixed).max() * 2 / len(x)
    assert peak < 0.8 * 12.0


@pytest.mark.parametrize('a_fwd,a_rev', [(3.0, 2.0), (1.0, 4.0), (2.5, 2.5), (5.0, 0.0)])
def test_ellipse_agrees_with_hull_and_radius(a_fwd, a_rev):
    "S(p-p)max of an ellipse is twice its semi-major axis and S_max the semi-major: two independent routes."
    psi = 2 * np.pi * np.arange(8192) / 8192
    rot = np.exp(1j * 0.4)
    z = a_fwd * rot * np.exp(1j * psi) + a_rev * rot * np.exp(-1j * psi)
    e = ob.ellipse(a_fwd * rot, a_rev * rot)
    assert ob.s_pp(z.real, z.imag) == pytest.approx(2 * e.semi_major, rel=1e-6)
    assert ob.s_max(z.real, z.imag) == pytest.approx(e.semi_major, rel=1e-6)
    if a_rev > 0:                                               # a circle has no major axis to compare
        assert np.degrees(np.angle(z[np.argmax(np.abs(z))])) % 180 == pytest.approx(float(e.inclination_deg), abs=0.05)


def test_full_spectrum_matches_forward_reverse_of_order_vectors():
    fs, f0 = 8192.0, 32.0                                       # whole cycles in 2 s: no leakage
    t = np.arange(int(2 * fs)) / fs
    th = 2 * np.pi * f0 * t
    vx, vy = ob.to_vector([7.0, 2.0], [20.0, 100.0]), ob.to_vector([4.0, 2.5], [250.0, 40.0])
    x = (vx[0] * np.exp(1j * th) + vx[1] * np.exp(2j * th)).real
    y = (vy[0] * np.exp(1j * th) + vy[1] * np.exp(2j * th)).real
    tk = np.arange(int(2 * f0) - 1) / f0
    ov = ob.order_vectors(np.stack([x, y]), fs, tk, [1, 2])
    ap, am = ob.forward_reverse(ov[0], ov[1])
    f, a = ob.full_spectrum(x, y, fs)
    at = lambda hz: a[np.argmin(np.abs(f - hz))]
    np.testing.assert_allclose([at(f0), at(2 * f0)], np.abs(ap), atol=1e-3)
    np.testing.assert_allclose([at(-f0), at(-2 * f0)], np.abs(am), atol=1e-3)


def test_probe_frame_rotation_keeps_precession():
    "Forward whirl seen by the +-45 degree probes is forward in x/y too: the frames differ by a rotation."
    psi = 2 * np.pi * np.arange(1024) / 1024
    z = 6 * np.exp(1j * psi) + 1.5 * np.exp(-1j * psi)
    h, v = ob.probes_to_xy(z.real, z.imag)
    np.testing.assert_allclose(h + 1j * v, np.exp(1j * np.pi / 4) * z, atol=1e-12)
    f, a = ob.full_spectrum(h, v, 1024.0)
    assert a[np.argmin(np.abs(f - 1))] == pytest.approx(6.0) and a[np.argmin(np.abs(f + 1))] == pytest.approx(1.5)


@pytest.mark.parametrize('f0,f1', [(10.0, 60.0), (60.0, 10.0)])
def test_run_up_and_coast_down_track_the_closed_form(f0, f1):
    "Per-turn 1X vectors of a single-mode rotor ramped through its critical (35 Hz) follow V(f), up or down."
    fs, dur, fn, zeta = 8192.0, 20.0, 35.0, 0.05
    t = np.arange(int(dur * fs)) / fs
    a = (f1 - f0) / dur
    theta = 2 * np.pi * (f0 * t + a * t ** 2 / 2)
    resp = lambda f: 15 * (f / fn) ** 2 / (1 - (f / fn) ** 2 + 2j * zeta * f / fn) * np.exp(-0.3j)
    x = (resp(f0 + a * t) * np.exp(1j * theta)).real.astype(np.float32)
    tk = ob.keyphasor_times(_notch(theta, width_deg=16, ramp_deg=6), fs)
    tr = ob.order_track(x, fs, tk, [1], turns=1)
    assert (np.diff(tr.speed_hz) > 0).all() == (f1 > f0)
    ref = resp(tr.speed_hz)
    assert np.abs(tr.vectors[:, 0] - ref).max() < 0.01 * np.abs(ref).max()
    assert tr.speed_hz[np.argmax(tr.amplitude[:, 0])] == pytest.approx(fn, abs=0.5)


def test_plot_helpers_draw_without_pyplot():
    code = """
import sys, numpy as np
from lstm_pfd import orbits as ob
psi = np.linspace(0, 2 * np.pi, 200)
ax = ob.plot_orbit(3 * np.cos(psi), np.sin(psi), dots=[[3, 0]])
f, a = ob.full_spectrum(3 * np.cos(8 * psi[:-1]), np.sin(8 * psi[:-1]), 199.0)
ax2 = ob.plot_full_spectrum(f, a, speed_hz=8.0)
ax3 = ob.plot_centreline([0, 10, 20], [-45, -40, -30], 100.0, speed=[1, 2, 3])
axs = ob.plot_bode([10, 20, 30], ob.to_vector([1, 3, 2], [40, 90, 170]))
ax4 = ob.plot_polar([10, 20, 30], ob.to_vector([1, 3, 2], [40, 90, 170]))
for a in (ax, ax2, ax3, axs[0], ax4): assert a.figure._repr_png_()[:4] == bytes([0x89]) + b'PNG'
assert ax.get_aspect() == 1.0 and len(axs) == 2
print('matplotlib.pyplot' in sys.modules)
"""
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'False'


def test_rotor_unbalance_orbit_read_back_through_probes_and_keyphasor():
    "The rotor's 1X response (worked example: e = 0.65, 60 Hz), written as probe and keyphasor signals, read back by orbits."
    from lstm_pfd.rotor import Rotor, forward_reverse
    rot = Rotor(mass_kg=132.0, mass_eccentricity_m=20e-6, viscosity_pa_s=0.0126)
    X = rot.unbalance_response(60.0) * 1e6                        # complex (x, y) amplitudes, um; heavy spot on +x at t = 0
    fs = 20480.0
    t = np.arange(int(2 * fs)) / fs
    theta = 2 * np.pi * 60.0 * t
    x, y = (X[0] * np.exp(1j * theta)).real, (X[1] * np.exp(1j * theta)).real
    s = np.sqrt(0.5)
    px, py = (x + y) * s, (-x + y) * s                             # towards the probes at +45 and -45 degrees
    tk = ob.keyphasor_times(_notch(theta, width_deg=14, ramp_deg=5), fs)
    v = ob.order_vectors(np.stack([px, py]).astype(np.float32), fs, tk, [1])[:, 0]
    np.testing.assert_allclose(np.stack(ob.probes_to_xy(v[0], v[1])), X, atol=1e-3 * np.abs(X).max())
    ap, am = ob.forward_reverse(v[0], v[1])                        # in the probe frame: the same |A+|, |A-|
    np.testing.assert_allclose([abs(ap), abs(am)], np.abs(forward_reverse(X)), rtol=1e-3)
    e = ob.ellipse(ap, am)
    assert e.precession == 'forward' and 17.5 < float(e.semi_major) < 19.5 and 5.5 < float(e.semi_minor) < 7.5
