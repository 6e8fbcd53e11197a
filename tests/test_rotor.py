"""Cross-checks of `lstm_pfd.rotor` against implementations written here from the physics alone: the film
force integrated numerically (equilibrium found by root-finding, not from the attitude formula), the rotor's
equations of motion integrated in time, and Lund's threshold solved for speed."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.optimize import brentq, fsolve

from lstm_pfd.config import BearingConfig
from lstm_pfd.rotor import Rotor, bearing_state, film_coefficients, forward_reverse, lund_threshold

TH = np.linspace(0, 2 * np.pi, 100001)[:-1]


def quad_force(x, y, vx=0.0, vy=0.0):
    "Short-bearing film force on the journal (units mu R L^3 omega / c^2, c = 1, omega = 1), Gumbel condition, numerical."
    cs, sn = np.cos(TH), np.sin(TH)
    h = 1 - x * cs - y * sn
    p = np.maximum(-((x * sn - y * cs) + 2 * (-vx * cs - vy * sn)) / (2 * h ** 3), 0)
    return -np.array([(p * cs).sum(), (p * sn).sum()]) * (TH[1] - TH[0])


@pytest.mark.parametrize('S', [0.03, 0.1, 0.3, 1.0, 3.0])
def test_equilibrium_from_the_numerical_film_force(S):
    "The journal position where the integrated film force balances the load, found by root-finding."
    mu, n, R, L, c = 0.0126, 60.0, 0.025, 0.025, 50e-6
    W = mu * n * (2 * R * L) * (R / c) ** 2 / S                       # the load giving this S
    w_bar = W / (mu * R * L ** 3 * 2 * np.pi * n / c ** 2)            # dimensionless load
    pos = lambda p: np.array([np.cos(p[1]), np.sin(p[1])]) / (1 + np.exp(-p[0]))   # inside the clearance
    p, info, ok, msg = fsolve(lambda p: (quad_force(*pos(p)) - np.array([0.0, w_bar])) / w_bar, x0=[0.0, -np.pi / 4],
                              xtol=1e-12, full_output=True)
    assert ok == 1, msg
    xy = pos(p)
    st = bearing_state(mu, n, W, R, L, c)
    np.testing.assert_allclose(st.centre / c, xy, atol=2e-5)
    np.testing.assert_allclose(st.sommerfeld, S, rtol=1e-12)


def test_coefficients_broadcast_like_a_loop():
    mu, n, W = np.array([0.01, 0.02]), np.array([[30.0], [60.0], [90.0]]), 1500.0
    st = bearing_state(mu, n, W, 0.025, 0.025, 50e-6)
    assert st.K.shape == (3, 2, 2, 2) and st.centre.shape == (3, 2, 2)
    for i in range(3):
        for j in range(2):
            one = bearing_state(mu[j], n[i, 0], W, 0.025, 0.025, 50e-6)
            np.testing.assert_allclose(st.K[i, j], one.K, rtol=1e-12)
            np.testing.assert_allclose(st.C[i, j], one.C, rtol=1e-12)


def test_frame_free_invariants_over_the_range():
    "Trace, determinant and k_xy - k_yx of K and C against central differences of the numerical force."
    for e in np.linspace(0.05, 0.95, 10):
        phi = np.arctan2(np.pi * np.sqrt(1 - e * e), 4 * e)
        x, y = e * np.sin(phi), -e * np.cos(phi)
        W, d = np.hypot(*quad_force(x, y)), 1e-6
        Kq = np.stack([-(quad_force(x + a, y + b) - quad_force(x - a, y - b)) / (2 * d * W) for a, b in np.eye(2) * d], 1)
        Cq = np.stack([-(quad_force(x, y, a, b) - quad_force(x, y, -a, -b)) / (2 * d * W) for a, b in np.eye(2) * d], 1)
        K, C = film_coefficients(e)
        for A, B in ((K, Kq), (C, Cq)):
            inv = lambda M: np.array([np.trace(M), np.linalg.det(M), M[0, 1] - M[1, 0]])
            np.testing.assert_allclose(inv(A), inv(B), rtol=1e-3, atol=1e-3 * np.abs(inv(B)).max())


@pytest.mark.parametrize('rotor', [Rotor(132.0, 20e-6, load_n=1300.0, viscosity_pa_s=0.0126),
                                   Rotor(132.0, 20e-6, shaft_stiffness_n_m=132.0 * (2 * np.pi * 40) ** 2)])
@pytest.mark.parametrize('speed', [25.0, 60.0])
def test_unbalance_response_solves_the_equations_of_motion(rotor, speed):
    "Started on the 1X solution, a time integration of the equations of motion stays on it."
    st, m, k, u = rotor.state(speed), rotor.mass_kg, rotor.shaft_stiffness_n_m, rotor.unbalance_kg_m
    K, C, om = st.K, st.C, 2 * np.pi * speed
    force = lambda t: u * om ** 2 * np.array([np.cos(om * t), np.sin(om * t)])
    Zj = rotor.unbalance_response(speed)
    if k is None:
        rhs = lambda t, s: np.r_[s[2:], (force(t) - K @ s[:2] - C @ s[2:]) / m]
        s0 = np.r_[Zj.real, (1j * om * Zj).real]
    else:
        Zd = rotor.unbalance_response(speed, at='disk')
        Ci = np.linalg.inv(C)
        rhs = lambda t, s: np.r_[s[2:4], (force(t) - k * (s[:2] - s[4:])) / m, Ci @ (k * (s[:2] - s[4:]) - K @ s[4:])]
        s0 = np.r_[Zd.real, (1j * om * Zd).real, Zj.real]
    t = np.linspace(0, 5 / speed, 201)
    sol = solve_ivp(rhs, (0, t[-1]), s0, t_eval=t, rtol=1e-10, atol=1e-16, method='Radau' if k else 'RK45')
    xy = sol.y[-2:] if k else sol.y[:2]
    expect = np.real(Zj[:, None] * np.exp(1j * om * t))
    np.testing.assert_allclose(xy, expect, atol=1e-4 * np.abs(Zj).max())


def test_forward_circle_turns_with_the_rotation():
    "A forward circle runs counter-clockwise (+z): y lags x by 90 degrees."
    t = np.linspace(0, 1, 5)
    x, y = np.real(np.array([1, -1j])[:, None] * np.exp(2j * np.pi * t))
    np.testing.assert_allclose([x[1], y[1]], [0, 1], atol=1e-12)           # a quarter turn later: at +y
    np.testing.assert_allclose(forward_reverse([1, -1j]), [1, 0], atol=1e-15)


@pytest.mark.parametrize('temperature', [40.0, 60.0, 80.0])
def test_threshold_speed_agrees_with_lund_solved_for_speed(temperature):
    r = Rotor(132.0, temperature_c=temperature)
    n_eig = r.threshold_speed(max_speed_hz=2000.0)
    b = BearingConfig()
    def excess(n):
        st = bearing_state(r.viscosity, n, r.load, b.radius_m, b.length_m, b.clearance_m)
        return lund_threshold(st.K, st.C, n)[0] - r.mass_kg
    n_lund = brentq(lambda n: excess(n) if np.isfinite(excess(n)) else 1e9, 20.0, 2000.0, rtol=1e-12)
    np.testing.assert_allclose(n_eig, n_lund, rtol=1e-6)
    assert 100.0 < n_eig < 400.0


@pytest.mark.parametrize('beta', [0.4, -1.2, 2.5])
def test_turned_load_is_balanced_by_the_numerical_film_force(beta):
    "With the load turned by beta from -y, the integrated film force at the stated centre points against the load."
    mu, n, W, R, L, c = 0.0126, 60.0, 1300.0, 0.025, 0.025, 50e-6
    st = bearing_state(mu, n, W, R, L, c, load_angle_rad=beta)
    F = quad_force(*(st.centre / c)) * mu * R * L ** 3 * 2 * np.pi * n / c ** 2
    np.testing.assert_allclose(F, -W * np.array([np.sin(beta), -np.cos(beta)]), rtol=0, atol=2e-4 * W)
    st0 = bearing_state(mu, n, W, R, L, c)
    for A, B in ((st.K, st0.K), (st.C, st0.C)):
        np.testing.assert_allclose([np.trace(A), A[0, 1] - A[1, 0]], [np.trace(B), B[0, 1] - B[1, 0]], rtol=0, atol=1e-9 * np.abs(B).max())
        np.testing.assert_allclose(np.linalg.det(A), np.linalg.det(B), rtol=1e-9)
