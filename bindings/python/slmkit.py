"""slmkit — Python binding of libslm (ctypes over libslm.so.0; no compiled extension).

    import slmkit
    m = slmkit.Model("model.gguf")
    print(m.generate("Once upon a time", max_tokens=40, temperature=0.0))
    for piece in m.stream("Once upon a time", max_tokens=40):
        print(piece, end="", flush=True)
    ids = m.tokenize("Hello")
    print(m.perplexity("eval.txt", ctx=128))

The library is found as SLMKIT_LIB (a path), else libslm.so.0 beside this module's prefix
(PREFIX/lib when installed by `make install`), else through the dynamic loader.
Errors raise slmkit.Error with the library's one-line message and its status code.
"""

import ctypes
import os
import queue
import threading

__all__ = ["Model", "Error", "version"]

_c_int32_p = ctypes.POINTER(ctypes.c_int32)


class Error(Exception):
    """A libslm call failed: .code is the slm_status (also the `slm` tools' exit code)."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


class _LmParams(ctypes.Structure):
    _fields_ = [("n_ctx", ctypes.c_int), ("n_threads", ctypes.c_int), ("n_batch", ctypes.c_int),
                ("cache_type_k", ctypes.c_char_p), ("cache_type_v", ctypes.c_char_p)]


class _GenParams(ctypes.Structure):
    _fields_ = [
        ("max_tokens", ctypes.c_int),
        ("temperature", ctypes.c_float),
        ("top_k", ctypes.c_int),
        ("top_p", ctypes.c_float),
        ("min_p", ctypes.c_float),
        ("repeat_penalty", ctypes.c_float),
        ("repeat_last_n", ctypes.c_int),
        ("seed", ctypes.c_uint64),
        ("chat", ctypes.c_int),
        ("chat_template", ctypes.c_char_p),
    ]


class _GenResult(ctypes.Structure):
    _fields_ = [
        ("prompt_tokens", ctypes.c_int),
        ("generated_tokens", ctypes.c_int),
        ("stop", ctypes.c_int),
        ("prompt_ms", ctypes.c_double),
        ("gen_ms", ctypes.c_double),
    ]


class _PplOptions(ctypes.Structure):
    _fields_ = [
        ("n_ctx", ctypes.c_int),
        ("n_batch", ctypes.c_int),
        ("n_chunks", ctypes.c_int),
        ("kld_base_out", ctypes.c_char_p),
        ("kld_base_in", ctypes.c_char_p),
        ("progress", ctypes.c_void_p),
        ("user", ctypes.c_void_p),
    ]


class _PplStats(ctypes.Structure):
    _fields_ = [
        ("ppl", ctypes.c_double), ("ppl_stderr", ctypes.c_double),
        ("tokens", ctypes.c_int64), ("scored", ctypes.c_int64),
        ("chunks", ctypes.c_int), ("n_ctx", ctypes.c_int),
        ("ppl_base", ctypes.c_double), ("ppl_ratio", ctypes.c_double),
        ("dppl", ctypes.c_double), ("dppl_stderr", ctypes.c_double),
        ("kld_mean", ctypes.c_double), ("kld_stderr", ctypes.c_double),
        ("kld_median", ctypes.c_double), ("kld_p99", ctypes.c_double), ("kld_max", ctypes.c_double),
        ("rms_dp", ctypes.c_double), ("rms_dp_stderr", ctypes.c_double),
        ("same_top", ctypes.c_double), ("same_top_stderr", ctypes.c_double),
    ]


_PIECE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_char), ctypes.c_size_t,
                             ctypes.c_int32)


def _load():
    names = []
    if os.environ.get("SLMKIT_LIB"):
        names.append(os.environ["SLMKIT_LIB"])
    here = os.path.dirname(os.path.abspath(__file__))
    # PREFIX/lib/python3/dist-packages/slmkit.py or PREFIX/lib/python3.N/dist-packages -> PREFIX/lib
    names.append(os.path.join(here, "..", "..", "libslm.so.0"))
    names.append("libslm.so.0")
    last = None
    for n in names:
        if os.sep in n and not os.path.exists(n):
            continue
        try:
            return ctypes.CDLL(n)
        except OSError as e:
            last = e
    raise OSError("slmkit: cannot load libslm.so.0 (set SLMKIT_LIB): %s" % last)


_lib = _load()


def _fn(name, restype, *argtypes):
    f = getattr(_lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


_version_string = _fn("slm_version_string", ctypes.c_char_p)
_last_error = _fn("slm_last_error", ctypes.c_char_p)
_free = _fn("slm_free", None, ctypes.c_void_p)
_open = _fn("slm_lm_open", ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(_LmParams), ctypes.POINTER(ctypes.c_void_p))
_close = _fn("slm_lm_close", None, ctypes.c_void_p)
_tokenize = _fn("slm_lm_tokenize", ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int,
                ctypes.c_int, ctypes.POINTER(_c_int32_p), ctypes.POINTER(ctypes.c_size_t))
_detokenize = _fn("slm_lm_detokenize", ctypes.c_int, ctypes.c_void_p, _c_int32_p, ctypes.c_size_t, ctypes.c_int,
                  ctypes.POINTER(ctypes.c_void_p))
_gen_init = _fn("slm_gen_params_init", None, ctypes.POINTER(_GenParams))
_generate = _fn("slm_lm_generate", ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
                ctypes.POINTER(_GenParams), _PIECE_FN, ctypes.c_void_p, ctypes.POINTER(_GenResult))
_cancel = _fn("slm_lm_cancel", None, ctypes.c_void_p)
_ppl_init = _fn("slm_ppl_options_init", None, ctypes.POINTER(_PplOptions))
_perplexity = _fn("slm_lm_perplexity", ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(_PplOptions),
                  ctypes.POINTER(_PplStats))


def version():
    """The version of the loaded libslm ("0.1.0")."""
    return _version_string().decode()


def _check(rc):
    if rc:
        raise Error(rc, _last_error().decode("utf-8", "replace"))


def _bytes(s):
    return s if isinstance(s, bytes) else s.encode("utf-8")


class Model:
    """A GGUF model with its tokenizer and one context (use from one thread at a time)."""

    def __init__(self, path, n_ctx=0, n_threads=0):
        p = _LmParams(n_ctx, n_threads, 0, None, None)
        h = ctypes.c_void_p()
        _check(_open(_bytes(os.fspath(path)), ctypes.byref(p), ctypes.byref(h)))
        self._h = h

    def close(self):
        if getattr(self, "_h", None):
            _close(self._h)
            self._h = None

    def __del__(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def tokenize(self, text, add_bos=None, special=False):
        """Token ids of text (BOS as the model adds it unless add_bos says otherwise)."""
        b = _bytes(text)
        ids = _c_int32_p()
        n = ctypes.c_size_t()
        bos = -1 if add_bos is None else int(bool(add_bos))
        _check(_tokenize(self._h, b, len(b), bos, int(bool(special)), ctypes.byref(ids), ctypes.byref(n)))
        try:
            return [ids[i] for i in range(n.value)]
        finally:
            _free(ids)

    def detokenize(self, ids, special=False):
        arr = (ctypes.c_int32 * len(ids))(*ids)
        out = ctypes.c_void_p()
        _check(_detokenize(self._h, arr, len(ids), int(bool(special)), ctypes.byref(out)))
        try:
            return ctypes.string_at(out).decode("utf-8", "replace")
        finally:
            _free(out)

    def _params(self, max_tokens, temperature, top_k, top_p, seed):
        p = _GenParams()
        _gen_init(ctypes.byref(p))
        p.max_tokens = max_tokens
        p.temperature = temperature
        if top_k is not None:
            p.top_k = top_k
        if top_p is not None:
            p.top_p = top_p
        p.seed = seed
        return p

    def _run(self, prompt, p, on_piece):
        """Generate, calling on_piece(bytes) for each piece; returns the slm_status."""
        def cb(user, piece, n, tok):
            try:
                return 1 if on_piece(ctypes.string_at(piece, n)) else 0
            except BaseException:  # never let an exception unwind through C
                return 1
        c = _PIECE_FN(cb)
        b = _bytes(prompt)
        res = _GenResult()
        return _generate(self._h, b, len(b), ctypes.byref(p), c, None, ctypes.byref(res))

    def generate(self, prompt, max_tokens=128, temperature=0.8, top_k=None, top_p=None, seed=0):
        """The continuation of prompt as one string (temperature 0: greedy, as `slm run --temp 0`)."""
        parts = []
        rc = self._run(prompt, self._params(max_tokens, temperature, top_k, top_p, seed),
                       lambda piece: parts.append(piece))
        _check(rc)
        return b"".join(parts).decode("utf-8", "replace")

    def stream(self, prompt, max_tokens=128, temperature=0.8, top_k=None, top_p=None, seed=0):
        """An iterator of text pieces, each yielded as soon as its token is sampled.

        Generation runs on a worker thread feeding a queue; leaving the loop early cancels it."""
        p = self._params(max_tokens, temperature, top_k, top_p, seed)
        q = queue.Queue(maxsize=64)
        stop = threading.Event()
        done = object()
        result = {}

        def put(item):
            q.put(item)
            return stop.is_set()

        def work():
            try:
                result["rc"] = self._run(prompt, p, put)
                if result["rc"]:
                    result["msg"] = _last_error().decode("utf-8", "replace")
            finally:
                q.put(done)

        t = threading.Thread(target=work, daemon=True)
        t.start()
        pending = b""
        try:
            while True:
                item = q.get()
                if item is done:
                    break
                pending += item
                try:  # yield whole UTF-8 characters (a token may end inside one)
                    text, pending = pending.decode("utf-8"), b""
                except UnicodeDecodeError as e:
                    if e.reason == "unexpected end of data" and len(pending) - e.start < 4:
                        text, pending = pending[:e.start].decode("utf-8"), pending[e.start:]
                    else:
                        text, pending = pending.decode("utf-8", "replace"), b""
                if text:
                    yield text
            if pending:
                yield pending.decode("utf-8", "replace")
        finally:
            stop.set()
            _cancel(self._h)
            while t.is_alive():  # drain so the worker never blocks on a full queue
                try:
                    q.get(timeout=0.05)
                except queue.Empty:
                    pass
            t.join()
        if result.get("rc"):
            raise Error(result["rc"], result.get("msg", ""))

    def perplexity(self, path, ctx=512, chunks=0):
        """Perplexity over a text file, llama.cpp's method: a dict with ppl, ppl_stderr, tokens, chunks."""
        o = _PplOptions()
        _ppl_init(ctypes.byref(o))
        o.n_ctx = ctx
        o.n_chunks = chunks
        s = _PplStats()
        _check(_perplexity(self._h, _bytes(os.fspath(path)), ctypes.byref(o), ctypes.byref(s)))
        return {"ppl": s.ppl, "ppl_stderr": s.ppl_stderr, "tokens": s.tokens, "scored": s.scored,
                "chunks": s.chunks, "n_ctx": s.n_ctx}
