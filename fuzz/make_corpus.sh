#!/usr/bin/env bash
# fuzz/make_corpus.sh — (re)build the seed corpora in fuzz/corpus/<target>/ from the real
# models in $SLM_MODELS (default ../shared/models). Needs python3 (standard library only).
# The seeds are committed; run this only to refresh them. Each corpus stays small (< 200 KB):
# big files are cut down to a few of their real tensors, with the headers rewritten to match.
set -euo pipefail
cd "$(dirname "$0")/.."
M=${SLM_MODELS:-../shared/models}
C=fuzz/corpus
mkdir -p $C/gguf $C/gguf_vocab $C/gguf_model $C/imatrix $C/root $C/bundle $C/manifest $C/safetensors $C/st_index $C/hf_config $C/hf_tokenizer $C/kld_base
SEP=$'\n#--8<--#\n'   # multi-file separator of fuzz_hf_tokenizer (FZ_SEP in fuzz_common.h)

# config.json: the real files as they are.
for d in stories260k stories-llama256 tiny-random-gpt2 tinystories-gpt2; do
    install -m 0644 "$M/$d/config.json" "$C/hf_config/$d.json"
done
# tokenizer.json + tokenizer_config.json + special_tokens_map.json + generation_config.json.
for d in stories260k tiny-random-gpt2; do
    out="$C/hf_tokenizer/$d"
    : > "$out"
    first=1
    for f in tokenizer.json tokenizer_config.json special_tokens_map.json generation_config.json; do
        [ $first = 1 ] || printf '%s' "$SEP" >> "$out"
        first=0
        cat "$M/$d/$f" >> "$out"
    done
done
# tokenizer.json alone (the companions absent).
install -m 0644 "$M/stories260k/tokenizer.json" "$C/hf_tokenizer/stories260k-alone"

# A GGUF written by slm itself (gpt2 metadata + merges, q8_0 blocks), cut down below, when a build exists.
SLM=${SLM:-build/slm}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
EXTRA=
if [ -x "$SLM" ]; then
    "$SLM" convert "$M/tiny-random-gpt2" -o "$T/g.gguf" --outtype q8_0 >/dev/null
    EXTRA="$T/g.gguf"
fi

python3 - "$M" "$C" $EXTRA <<'PY'
import json, struct, sys
M, C = sys.argv[1], sys.argv[2]

# ---- safetensors: a few real tensors, header rewritten for the new offsets
def st_subset(src, dst, keep, with_data=True):
    b = open(src, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    hdr = json.loads(b[8:8 + n])
    data = b[8 + n:]
    names = [k for k in hdr if k != '__metadata__']
    names.sort(key=lambda k: hdr[k]['data_offsets'][1] - hdr[k]['data_offsets'][0])
    out, blob = {}, b''
    if '__metadata__' in hdr:
        out['__metadata__'] = hdr['__metadata__']
    for k in (names[:keep] if keep else names):
        e = dict(hdr[k])
        s, t = e['data_offsets']
        piece = data[s:t] if with_data else b''
        e['data_offsets'] = [len(blob), len(blob) + (t - s)]
        out[k] = e
        blob += piece
    h = json.dumps(out, separators=(',', ':')).encode()
    h += b' ' * (-len(h) % 8)
    open(dst, 'wb').write(struct.pack('<Q', len(h)) + h + (blob if with_data else b''))

st_subset(f'{M}/stories260k/model.safetensors', f'{C}/safetensors/stories260k-small', 4)
st_subset(f'{M}/tiny-random-gpt2/model.safetensors', f'{C}/safetensors/tiny-gpt2-small', 6)
# every tensor of the real header, data area cut off (the reader must refuse it by name)
st_subset(f'{M}/stories260k/model.safetensors', f'{C}/safetensors/stories260k-header-only', 0, with_data=False)

# ---- index: the HF layout, naming the two shards fuzz_st_index writes
wm = {'model.embed_tokens.weight': 'model-00001-of-00002.safetensors',
      'model.norm.weight': 'model-00001-of-00002.safetensors',
      'lm_head.weight': 'model-00002-of-00002.safetensors',
      'model.layers.0.input_layernorm.weight': 'model-00002-of-00002.safetensors'}
json.dump({'metadata': {'total_size': 68}, 'weight_map': wm}, open(f'{C}/st_index/two-shards.json', 'w'), indent=2)
json.dump({'metadata': {'total_size': 36}, 'weight_map': {k: v for k, v in wm.items() if '00001' in v}},
          open(f'{C}/st_index/one-shard.json', 'w'), indent=2)

# ---- gguf: every kv of a real file, a few of its smallest tensors re-packed
SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
BLOCK = {0: (1, 4), 1: (1, 2), 30: (1, 2), 8: (32, 34), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24),
         10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210)}

def gguf_subset(src, dst, keep):
    b = open(src, 'rb').read()
    pos = 0
    def rd(fmt):
        nonlocal pos
        v = struct.unpack_from('<' + fmt, b, pos)
        pos += struct.calcsize('<' + fmt)
        return v[0]
    def rd_str():
        nonlocal pos
        n = rd('Q'); s = b[pos:pos + n]; pos += n
        return s
    def skip_val(t):
        nonlocal pos
        if t == 8: rd_str()
        elif t == 9:
            at, n = rd('I'), rd('Q')
            for _ in range(n): skip_val(at)
        else: pos += SCALAR[t]
    assert b[:4] == b'GGUF'
    pos = 4
    ver, nt, nkv = rd('I'), rd('Q'), rd('Q')
    kv_start = pos
    align = 32
    for _ in range(nkv):
        k = rd_str(); t = rd('I'); vs = pos
        skip_val(t)
        if k == b'general.alignment': align = struct.unpack_from('<I', b, vs)[0]
    kv_bytes = b[kv_start:pos]
    infos = []
    for _ in range(nt):
        name = rd_str(); nd = rd('I'); ne = [rd('Q') for _ in range(nd)]; ty = rd('I'); off = rd('Q')
        infos.append((name, ne, ty, off))
    data0 = pos + (-pos % align)
    def nbytes(ne, ty):
        n = 1
        for x in ne: n *= x
        bs, bb = BLOCK[ty]
        return n // bs * bb
    infos.sort(key=lambda i: nbytes(i[1], i[2]))
    infos = infos[:keep]
    out_info, blob = b'', b''
    for name, ne, ty, off in infos:
        blob += b'\0' * (-len(blob) % align)
        out_info += struct.pack('<Q', len(name)) + name + struct.pack('<I', len(ne))
        out_info += b''.join(struct.pack('<Q', x) for x in ne) + struct.pack('<IQ', ty, len(blob))
        nb = nbytes(ne, ty)
        blob += b[data0 + off:data0 + off + nb]
    head = b'GGUF' + struct.pack('<IQQ', ver, len(infos), nkv) + kv_bytes + out_info
    head += b'\0' * (-len(head) % align)
    open(dst, 'wb').write(head + blob)

def gguf_one_layer(src, dst):
    """A whole model cut to its first layer: llama.block_count = 1, blk.1+ dropped, matrices as q8_0 (f16 when a row is not a multiple of 32)."""
    b = open(src, 'rb').read()
    pos = 0
    def rd(fmt):
        nonlocal pos
        v = struct.unpack_from('<' + fmt, b, pos)
        pos += struct.calcsize('<' + fmt)
        return v[0]
    def rd_str():
        nonlocal pos
        n = rd('Q'); s = b[pos:pos + n]; pos += n
        return s
    def skip_val(t):
        nonlocal pos
        if t == 8: rd_str()
        elif t == 9:
            at, n = rd('I'), rd('Q')
            for _ in range(n): skip_val(at)
        else: pos += SCALAR[t]
    pos = 4
    ver, nt, nkv = rd('I'), rd('Q'), rd('Q')
    kv = bytearray()
    align = 32
    for _ in range(nkv):
        start = pos
        k = rd_str(); t = rd('I'); vs = pos
        skip_val(t)
        piece = bytearray(b[start:pos])
        if k.endswith(b'.block_count') and t == 4:
            struct.pack_into('<I', piece, vs - start, 1)
        if k == b'general.alignment': align = struct.unpack_from('<I', b, vs)[0]
        kv += piece
    infos = []
    for _ in range(nt):
        name = rd_str(); nd = rd('I'); ne = [rd('Q') for _ in range(nd)]; ty = rd('I'); off = rd('Q')
        infos.append((name, ne, ty, off))
    data0 = pos + (-pos % align)
    out_info, blob, n_out = b'', b'', 0
    for name, ne, ty, off in infos:
        if name.startswith(b'blk.') and not name.startswith(b'blk.0.'):
            continue
        n = 1
        for x in ne: n *= x
        bs, bb = BLOCK[ty]
        raw = b[data0 + off:data0 + off + n // bs * bb]
        if ty == 0 and len(ne) == 2 and ne[0] % 32 == 0:  # f32 matrix -> q8_0 (ggml's block layout)
            x = struct.unpack('<%df' % n, raw)
            q = bytearray()
            for i in range(0, n, 32):
                blk = x[i:i + 32]
                d = max(abs(v) for v in blk) / 127.0
                inv = 1.0 / d if d else 0.0
                q += struct.pack('<e', d) + struct.pack('<32b', *[max(-127, min(127, round(v * inv))) for v in blk])
            raw, ty = bytes(q), 8
        elif ty == 0 and len(ne) == 2:  # f32 matrix -> f16
            raw = struct.pack('<%de' % n, *struct.unpack('<%df' % n, raw))
            ty = 1
        blob += b'\0' * (-len(blob) % align)
        out_info += struct.pack('<Q', len(name)) + name + struct.pack('<I', len(ne))
        out_info += b''.join(struct.pack('<Q', x) for x in ne) + struct.pack('<IQ', ty, len(blob))
        blob += raw
        n_out += 1
    head = b'GGUF' + struct.pack('<IQQ', ver, n_out, nkv) + bytes(kv) + out_info
    head += b'\0' * (-len(head) % align)
    open(dst, 'wb').write(head + blob)

gguf_subset(f'{M}/gguf/stories260K.gguf', f'{C}/gguf/stories260k-small', 3)
gguf_one_layer(f'{M}/gguf/stories260K.gguf', f'{C}/gguf_model/stories260k-1-layer')
gguf_subset(f'{M}/gguf/stories260K.gguf', f'{C}/gguf/stories260k-meta', 0)
if len(sys.argv) > 3:
    gguf_subset(sys.argv[3], f'{C}/gguf/tiny-gpt2-q8_0-small', 4)
PY

# the runtime tokenizer target starts from the GGUFs' metadata (tokenizer.ggml.*)
for f in stories260k-meta tiny-gpt2-q8_0-small; do
    [ -f "$C/gguf/$f" ] && cp "$C/gguf/$f" "$C/gguf_vocab/$f"
done
# imatrix: what `slm imatrix` records for the one-layer model above, and the same statistics as a
# legacy .dat (int32 count; per entry: name, ncall, nval, nval floats (sum2/count)*ncall; chunks, dataset).
if [ -x "$SLM" ]; then
    "$SLM" imatrix -m "$C/gguf_model/stories260k-1-layer" -f "${SLM_CORPUS:-../shared/corpus}/tinystories-calib.txt" \
        -o "$C/imatrix/stories260k-1-layer.gguf" -c 64 --chunks 2 >/dev/null
    python3 - "$C/imatrix/stories260k-1-layer.gguf" "$C/imatrix/stories260k-1-layer.dat" <<'PY'
import struct, sys
b = open(sys.argv[1], 'rb').read()
pos = 0
def rd(f):
    global pos
    v = struct.unpack_from('<' + f, b, pos); pos += struct.calcsize('<' + f); return v[0]
def rs():
    global pos
    n = rd('Q'); s = b[pos:pos + n]; pos += n; return s
SC = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
def skip(t):
    global pos
    if t == 8: rs()
    elif t == 9:
        at, n = rd('I'), rd('Q')
        for _ in range(n): skip(at)
    else: pos += SC[t]
pos = 4
ver, nt, nkv = rd('I'), rd('Q'), rd('Q')
for _ in range(nkv):
    rs(); skip(rd('I'))
t = {}
for _ in range(nt):
    name = rs(); nd = rd('I'); ne = [rd('Q') for _ in range(nd)]; rd('I'); t[name] = (ne, rd('Q'))
data0 = pos + (-pos % 32)
ents = []
for n, (ne, off) in sorted(t.items()):
    if not n.endswith(b'.in_sum2'): continue
    w = n[:-len(b'.in_sum2')]
    cnt = struct.unpack_from('<f', b, data0 + t[w + b'.counts'][1])[0]
    vals = struct.unpack_from('<%df' % ne[0], b, data0 + off)
    ents.append(struct.pack('<i', len(w)) + w + struct.pack('<ii', int(cnt), ne[0]) + struct.pack('<%df' % ne[0], *vals))
ds = b'tinystories-calib.txt'
open(sys.argv[2], 'wb').write(struct.pack('<i', len(ents)) + b''.join(ents) + struct.pack('<ii', 2, len(ds)) + ds)
PY
fi

# signing: a root, a bundle and its manifest, signed with the harness key (fuzz/fuzz_signing.h),
# packing a cut-down real GGUF and a real config.json; needs the libraries of a build ($BUILD, default build).
B=${BUILD:-build}
if [ -f "$B/libsigning.a" ]; then
    ${CC:-cc} -std=c11 -D_GNU_SOURCE -O1 -I. -Iformats -Isigning -Ifuzz -o "$T/seeds" fuzz/make_signing_seeds.c \
        "$B/libsigning.a" "$B/libformats.a" -lcjson -lzstd -lcrypto
    "$T/seeds" "$C" "$C/gguf/stories260k-small" "$M/stories260k/config.json"
fi
# KL-divergence base files (llama.cpp's "_logits_" layout) written by slm perplexity.
if [ -x "$SLM" ]; then
    "$SLM" perplexity -m "$M/gguf/stories260K.gguf" -f "${SLM_CORPUS:-../shared/corpus}/tinystories-eval.txt" \
        -c 16 --chunks 2 --kl-divergence-base "$C/kld_base/stories260k-c16x2.kld" >/dev/null 2>&1
    "$SLM" perplexity -m "$M/gguf/stories260K.gguf" -f "${SLM_CORPUS:-../shared/corpus}/tinystories-calib.txt" \
        -c 8 --chunks 1 --kl-divergence-base "$C/kld_base/stories260k-c8x1.kld" >/dev/null 2>&1
fi
du -sh $C/*
