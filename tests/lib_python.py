"""tests/lib_python.py — the Python binding against what `slm` prints (run by tests/test_lib.c).

usage: python3 lib_python.py MODEL EXPECT_DIR CORPUS
EXPECT_DIR holds run.txt (slm run --temp 0 -n 40 stdout, without the final newline),
ids.txt (slm tokenize --ids) and ppl.txt (slm perplexity -c 128 --chunks 4: "Final estimate" line).
Imports slmkit from PYTHONPATH (the installed tree). Exit 0, or 1 with one line per failed check."""
import os
import sys
import threading

import slmkit

model, exp, corpus = sys.argv[1:4]
fails = []


def expect(cond, what):
    if not cond:
        fails.append(what)


def read(name):
    with open(os.path.join(exp, name), "rb") as f:
        return f.read().decode("utf-8")


prompt = "Once upon a time"
m = slmkit.Model(model)
text = m.generate(prompt, max_tokens=40, temperature=0.0)
expect(text == read("run.txt"), "generate: %r != slm run's %r" % (text, read("run.txt")))

ids = m.tokenize(prompt)
want = [int(x) for x in read("ids.txt").split()]
expect(ids == want, "tokenize: %r != slm tokenize's %r" % (ids, want))
expect(m.detokenize(ids) == " " + prompt or m.detokenize(ids) == prompt, "detokenize: %r" % m.detokenize(ids))

# streaming: the same text, in pieces, and the first piece arrives while generation still runs
pieces = list(m.stream(prompt, max_tokens=40, temperature=0.0))
expect(len(pieces) > 1, "stream: %d pieces" % len(pieces))
expect("".join(pieces) == text, "stream: %r != %r" % ("".join(pieces), text))

produced = []
orig = m._run


def counting_run(p_, params, on_piece):
    def wrap(piece):
        produced.append(piece)
        return on_piece(piece)
    r = orig(p_, params, wrap)
    produced.append(None)  # generation returned
    return r


m._run = counting_run
it = m.stream(prompt, max_tokens=400, temperature=0.0)
first = next(it)
# the queue holds at most 64 pieces: a generation of more than 65 tokens cannot have ended yet
running = None not in produced
n_before = len(produced)
rest = list(it)
total = len([p for p in produced if p is not None])
expect(first != "", "stream: empty first piece")
expect(total <= 65 or running, "stream: generation (%d tokens) had ended before the first piece (%d produced)"
       % (total, n_before))
expect(total > 65, "stream: only %d tokens generated; the check needs more than 65" % total)
m._run = orig

# leaving the loop early cancels the generation
it = m.stream(prompt, max_tokens=400, temperature=0.0)
next(it)
it.close()
after = m.generate(prompt, max_tokens=40, temperature=0.0)
expect(after == text, "generate after a cancelled stream: %r" % after)

ppl = m.perplexity(corpus, ctx=128, chunks=4)
line = "Final estimate: PPL = %.4f +/- %.5f" % (ppl["ppl"], ppl["ppl_stderr"])
expect(line == read("ppl.txt").strip(), "perplexity: %r != slm perplexity's %r" % (line, read("ppl.txt").strip()))

try:
    slmkit.Model(os.path.join(exp, "missing.gguf"))
    fails.append("opening a missing file did not raise")
except slmkit.Error as e:
    expect(e.code == 4 and "missing.gguf" in str(e), "missing file: code %d, %s" % (e.code, e))

m.close()
for f in fails:
    print(f)
sys.exit(1 if fails else 0)
