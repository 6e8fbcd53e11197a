"""Service benchmark: a real uvicorn server on 127.0.0.1 under load; latency, errors and the server's peak memory.

    python benchmarks/bench_serve.py                       # untrained compact model (window 2560 at 10240 Hz)
    python benchmarks/bench_serve.py --model m.onnx --out benchmarks/bench_serve.json

Phases (each on a fresh server process, default limits unless given):
1. load: `--requests` requests (default 2,000) from `--threads` client threads (default 64), each a record of
   `--samples` samples (default 100,000) as JSON; errors, client latency p50/p99, server RSS peak.
2. big bodies: 8 concurrent bodies of the maximum size (max_body_bytes), as JSON with full-precision floats,
   JSON with short numbers (the most samples per byte) and raw float32 (application/octet-stream);
   the server's RSS peak for each, and for one such body alone (the cost of one request).
RSS peak is the kernel's high-water mark (VmHWM) of the server process; the baseline is its RSS
after start-up. The machine's load average (1 min) is recorded before and after, since latencies depend
on it. A measurement, not a test: nothing is asserted. Needs psutil and httpx.
"""
import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

MiB = 2**20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def _model(folder: Path) -> Path:
    from lstm_pfd.export import to_onnx
    from lstm_pfd.models import create_model
    p = folder / 'compact.onnx'
    to_onnx(create_model('compact', seed=0), p, window_len=2560, fs=10240.0)
    return p


def _hwm_mib(pid: int, key: str = 'VmHWM') -> float:
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith(key + ':'): return int(line.split()[1]) / 1024
    return float('nan')


class Server:
    "A uvicorn server process for the model on 127.0.0.1 (killed on exit)."
    def __init__(self, model: Path, **limits):
        import httpx
        self.port = _free_port()
        code = (f"from lstm_pfd.serve import serve; serve({str(model)!r}, port={self.port}, log_level='warning', "
                f"**{limits!r})")
        self.proc = subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env={**os.environ, 'OMP_NUM_THREADS': '1'})
        self.base = f'http://127.0.0.1:{self.port}'
        for _ in range(300):
            try:
                if httpx.get(self.base + '/health', timeout=2).status_code == 200: break
            except httpx.TransportError: time.sleep(0.2)
        else: raise RuntimeError(f"the server did not start: {self.proc.stderr.read()[-2000:]!r}")
        time.sleep(0.5)
        self.baseline = _hwm_mib(self.proc.pid, 'VmRSS')

    def peak(self) -> float: return _hwm_mib(self.proc.pid)
    def __enter__(self): return self
    def __exit__(self, *a):
        self.proc.terminate()
        try: self.proc.wait(10)
        except subprocess.TimeoutExpired: self.proc.kill(); self.proc.wait()


def _post_all(base, bodies, n_threads, ct='application/json', query=''):
    "POST `bodies` (a list) from `n_threads` threads; [(status, seconds)]."
    import httpx
    def worker(chunk):
        out = []
        with httpx.Client(base_url=base, timeout=300, headers={'content-type': ct}) as c:
            for b in chunk:
                t0 = time.perf_counter()
                try: out.append((c.post('/predict' + query, content=b).status_code, time.perf_counter() - t0))
                except httpx.TransportError as e: out.append((type(e).__name__, time.perf_counter() - t0))
        return out
    chunks = [bodies[i::n_threads] for i in range(n_threads)]
    with ThreadPoolExecutor(n_threads) as ex: return [r for part in ex.map(worker, chunks) for r in part]


def load_phase(model, n_req, n_threads, n_samples):
    rng = np.random.default_rng(0)
    bodies = [json.dumps({'samples': rng.standard_normal(n_samples).astype(np.float32).tolist(), 'fs': 10240.0}).encode()
              for _ in range(4)]
    with Server(model) as srv:
        t0 = time.perf_counter()
        res = _post_all(srv.base, [bodies[i % 4] for i in range(n_req)], n_threads)
        wall = time.perf_counter() - t0
        lat = np.array([s for _, s in res]) * 1e3
        return dict(requests=n_req, threads=n_threads, samples_per_record=n_samples, body_bytes=len(bodies[0]),
                    errors=sum(st != 200 for st, _ in res), statuses=sorted({str(st) for st, _ in res}),
                    wall_s=round(wall, 2), req_per_s=round(n_req / wall, 1),
                    p50_ms=round(float(np.percentile(lat, 50)), 1), p99_ms=round(float(np.percentile(lat, 99)), 1),
                    server_rss_baseline_mib=round(srv.baseline), server_rss_peak_mib=round(srv.peak()))


def big_phase(model, kind, n_concurrent, max_body):
    if kind == 'binary':
        n = max_body // 4
        body, ct, q = np.random.default_rng(1).standard_normal(n).astype(np.float32).tobytes(), 'application/octet-stream', '?fs=10240'
    else:
        one = '-0.123456789012345' if kind == 'json-full' else '0.5'
        n = (max_body - 64) // (len(one) + 2)
        body, ct, q = ('{"fs":10240,"samples":[' + ', '.join([one] * n) + ']}').encode(), 'application/json', ''
    out = dict(kind=kind, body_bytes=len(body), samples=n)
    for conc in (1, n_concurrent):
        with Server(model) as srv:
            res = _post_all(srv.base, [body] * conc, conc, ct, q)
            peak = srv.peak()
            out[f'x{conc}'] = dict(statuses=sorted({str(st) for st, _ in res}), server_rss_baseline_mib=round(srv.baseline),
                                   server_rss_peak_mib=round(peak), max_latency_s=round(max(s for _, s in res), 2))
    one_req = out['x1']['server_rss_peak_mib'] - out['x1']['server_rss_baseline_mib']
    out['one_request_peak_over_body'] = round(one_req * MiB / len(body), 1)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--model', help='ONNX model (default: an untrained compact model, exported to a temporary folder)')
    ap.add_argument('--requests', type=int, default=2000)
    ap.add_argument('--threads', type=int, default=64)
    ap.add_argument('--samples', type=int, default=100_000)
    ap.add_argument('--concurrent', type=int, default=8)
    ap.add_argument('--out', help='also write the figures to this JSON file')
    a = ap.parse_args(argv)
    import psutil
    from lstm_pfd.serve import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_INFLIGHT, DEFAULT_MAX_PENDING_BYTES, DEFAULT_MAX_QUEUE
    with tempfile.TemporaryDirectory() as td:
        model = Path(a.model) if a.model else _model(Path(td))
        res = dict(hardware=f"{psutil.cpu_count(logical=True)}-core {platform.machine()} CPU, onnxruntime 1 thread",
                   limits=dict(max_body_bytes=DEFAULT_MAX_BODY_BYTES, max_inflight=DEFAULT_MAX_INFLIGHT, max_queue=DEFAULT_MAX_QUEUE,
                               max_pending_bytes=DEFAULT_MAX_PENDING_BYTES),
                   load_average_before=round(os.getloadavg()[0], 2),
                   load=load_phase(model, a.requests, a.threads, a.samples))
        print(json.dumps(res['load']), flush=True)
        res['big_bodies'] = []
        for kind in ('json-full', 'json-short', 'binary'):
            res['big_bodies'].append(big_phase(model, kind, a.concurrent, DEFAULT_MAX_BODY_BYTES))
            print(json.dumps(res['big_bodies'][-1]), flush=True)
    res['load_average_after'] = round(os.getloadavg()[0], 2)
    if a.out: Path(a.out).write_text(json.dumps(res, indent=1) + '\n')
    print(json.dumps(res, indent=1))


if __name__ == '__main__':
    main()
