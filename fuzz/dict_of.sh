#!/bin/sh
# fuzz/dict_of.sh TARGET — the libFuzzer dictionary of a fuzz target: fuzz/dict/TARGET.dict when
# there is one, else the dictionary of its input format. Every target has one (make fuzz fails otherwise).
d=$(dirname "$0")/dict
[ -f "$d/$1.dict" ] && { echo "$d/$1.dict"; exit 0; }
case $1 in
gguf | gguf_model | gguf_vocab | imatrix | kld_base) echo "$d/gguf.dict" ;;
hf_config | hf_tokenizer | safetensors | st_index | manifest | root | bundle | registry | tuf) echo "$d/json.dict" ;;
*) echo "fuzz/dict_of.sh: no dictionary for fuzz target '$1' (add it to fuzz/dict/)" >&2; exit 1 ;;
esac
