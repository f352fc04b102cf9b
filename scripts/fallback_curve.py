#!/usr/bin/env python3
"""scripts/fallback_curve.py — how the default of `slm serve --fallback-confidence` was chosen
(docs/serve.md). A small local model and a larger "cloud" model answer the same prompts greedily;
for each threshold P, a local answer whose confidence (the 0.1-quantile of its per-token
probabilities, as the server computes it) is below P is deferred to the cloud. Printed per P: the
deferral rate and the agreement of the served answers with the cloud's (an answer agrees when its
first K words equal the cloud's). Standard library only; every request is bounded.

usage: fallback_curve.py SLM_BIN LOCAL.gguf CLOUD.gguf CORPUS.txt [--prompts 200] [--words 3] [--quantile 0.1]
"""
import argparse, http.client, json, re, subprocess, time


def start(slm, model):
    p = subprocess.Popen([slm, "serve", "-m", model, "--port", "0", "-t", "1"], stderr=subprocess.PIPE, text=True)
    port = None
    t0 = time.time()
    while time.time() - t0 < 30:
        line = p.stderr.readline()
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if m:
            port = int(m.group(1))
        if "ready" in line:
            return p, port
    p.kill()
    raise SystemExit("slm serve did not start")


def complete(port, prompt, n):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("POST", "/v1/completions", json.dumps({"prompt": prompt, "max_tokens": n, "temperature": 0, "logprobs": 1}),
              {"Content-Type": "application/json"})
    r = json.loads(c.getresponse().read())
    c.close()
    ch = r["choices"][0]
    return ch["text"], ch["logprobs"]["token_logprobs"]


def confidence(lps, q=0.1):
    import math
    p = sorted(math.exp(x) for x in lps)
    if not p:
        return 1.0
    return p[min(len(p) - 1, max(0, int(q * (len(p) - 1) + 0.5)))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("slm"); ap.add_argument("local"); ap.add_argument("cloud"); ap.add_argument("corpus")
    ap.add_argument("--prompts", type=int, default=200)
    ap.add_argument("--words", type=int, default=3)
    ap.add_argument("--quantile", type=float, default=0.1)
    a = ap.parse_args()
    text = open(a.corpus, encoding="utf-8").read()
    sents = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if len(s.split()) >= 8]
    prompts = [" ".join(s.split()[:6]) for s in sents[: a.prompts]]
    pl, lport = start(a.slm, a.local)
    pc, cport = start(a.slm, a.cloud)
    rows = []
    try:
        for pr in prompts:
            lt, llp = complete(lport, pr, 12)
            ct, _ = complete(cport, pr, 12)
            agree = lt.split()[: a.words] == ct.split()[: a.words]
            rows.append((confidence(llp, a.quantile), agree))
    finally:
        pl.terminate(); pc.terminate(); pl.wait(30); pc.wait(30)
    n = len(rows)
    print(f"{n} prompts; local alone agrees with the cloud on {sum(r[1] for r in rows) / n:.1%} (first {a.words} words)")
    print("| P | deferred | agreement of served answers | same deferral at random |")
    print("|---|---|---|---|")
    for P in [0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.01]:
        d = [r for r in rows if r[0] < P]
        agree = (len(d) + sum(r[1] for r in rows if r[0] >= P)) / n
        base = sum(r[1] for r in rows) / n
        rnd = len(d) / n + (1 - len(d) / n) * base
        print(f"| {P:g} | {len(d) / n:.1%} | {agree:.1%} | {rnd:.1%} |")


if __name__ == "__main__":
    main()
