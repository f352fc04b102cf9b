#!/usr/bin/env python3
"""scripts/serve_load.py — the load note of docs/serve.md: C concurrent clients x R requests each
against `slm serve` on loopback (standard library only). Every request is bounded (timeout), so a
hung one shows as a failure, never as a hang of this script.

usage: serve_load.py SLM_BIN MODEL.gguf [--parallel N ...] [--clients 8] [--requests 50] [--max-tokens 32]
                     [--threads 1] [--unbatched]
Prints one Markdown table row per --parallel value: answered, refused (503), lost, p50/p99 latency,
total generated tokens per second, server RSS before and after, the mean number of slots per decode
step (slm_decode_tokens_total / slm_decode_steps_total) and the load average of the machine.
--unbatched runs the server with SLM_SERVE_BATCH=0 (slots decoded one after another: the baseline
of the batched step).
"""
import argparse, http.client, json, os, re, subprocess, threading, time


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def start(slm, model, parallel, queue, threads=1, unbatched=False):
    env = dict(os.environ, SLM_SERVE_BATCH="0") if unbatched else None
    p = subprocess.Popen([slm, "serve", "-m", model, "--port", "0", "--parallel", str(parallel), "-t", str(threads),
                          "--max-queue", str(queue)], stderr=subprocess.PIPE, text=True, env=env)
    port = None
    t0 = time.time()
    while time.time() - t0 < 30:
        line = p.stderr.readline()
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if m:
            port = int(m.group(1))
        if "ready" in line:
            break
    if port is None:
        p.kill()
        raise SystemExit("slm serve did not start")
    return p, port


def one(port, body):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    t0 = time.time()
    try:
        c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        dt = time.time() - t0
        toks = json.loads(data)["usage"]["completion_tokens"] if r.status == 200 else 0
        return r.status, dt, toks
    except Exception:
        return -1, time.time() - t0, 0
    finally:
        c.close()


def metric(port, name):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", "/metrics")
        m = re.search(r"^" + name + r" ([0-9.e+]+)$", c.getresponse().read().decode(), re.M)
        return float(m.group(1)) if m else float("nan")
    finally:
        c.close()


def run(slm, model, parallel, clients, requests, max_tokens, threads=1, unbatched=False):
    p, port = start(slm, model, parallel, clients, threads, unbatched)
    load0 = os.getloadavg()[0]
    rss0 = rss_kb(p.pid)
    body = json.dumps({"prompt": "Once upon a time", "max_tokens": max_tokens, "temperature": 0.8, "seed": 1,
                       "ignore_eos": True})
    results = []
    lock = threading.Lock()

    def client():
        for _ in range(requests):
            r = one(port, body)
            with lock:
                results.append(r)

    t0 = time.time()
    th = [threading.Thread(target=client) for _ in range(clients)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    wall = time.time() - t0
    rss1 = rss_kb(p.pid)
    steps = metric(port, "slm_decode_steps_total")
    per_step = metric(port, "slm_decode_tokens_total") / steps if steps else float("nan")
    load1 = os.getloadavg()[0]
    p.terminate()
    p.wait(timeout=60)
    ok = [r for r in results if r[0] == 200]
    lat = sorted(r[1] for r in ok)
    pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else float("nan")
    toks = sum(r[2] for r in ok)
    return {"parallel": parallel, "answered": len(ok), "refused": sum(r[0] == 503 for r in results),
            "lost": clients * requests - len(ok) - sum(r[0] == 503 for r in results),
            "p50_ms": pct(0.5), "p99_ms": pct(0.99), "tok_s": toks / wall, "wall_s": wall,
            "rss_before_mib": rss0 / 1024, "rss_after_mib": rss1 / 1024, "per_step": per_step,
            "load": f"{load0:.1f} -> {load1:.1f}"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("slm")
    ap.add_argument("model")
    ap.add_argument("--parallel", type=int, action="append")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--unbatched", action="store_true")
    a = ap.parse_args()
    print("| --parallel | step | answered | refused (503) | lost | p50 ms | p99 ms | tokens/s | wall s | "
          "RSS before -> after MiB | slots per step | load average |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for par in a.parallel or [1, 4]:
        r = run(a.slm, a.model, par, a.clients, a.requests, a.max_tokens, a.threads, a.unbatched)
        print(f"| {r['parallel']} | {'one by one' if a.unbatched else 'batched'} | {r['answered']} | {r['refused']} | "
              f"{r['lost']} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['tok_s']:.0f} | {r['wall_s']:.1f} | "
              f"{r['rss_before_mib']:.1f} -> {r['rss_after_mib']:.1f} | {r['per_step']:.2f} | {r['load']} |", flush=True)


if __name__ == "__main__":
    main()
