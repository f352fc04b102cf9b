#!/usr/bin/env bash
# scripts/deb-check.sh SLMKIT.deb: install the package into this system with dpkg -i, check that
# slm --version runs from PATH and man finds slm(1), remove it with dpkg -r, and check that nothing of
# it is left: every path of its dpkg -L list that is not a directory must be gone. Needs root; refuses
# to touch a system where slmkit is already installed (it would be removed). dpkg runs with
# --no-triggers: man-db's trigger (mandb re-indexing every page, ~25 s per dpkg call here) is left
# pending for the next dpkg or apt run; SLM_DEB_TRIGGERS=1 processes it at the end instead.
set -euo pipefail
deb=$1
die() { echo "deb-check: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (dpkg -i)"
[ -f "$deb" ] || die "$deb: no such file"
installed() { [[ $(dpkg-query -W -f='${Status}' slmkit 2>/dev/null) == *"install ok"* ]]; }
if installed; then
    die "slmkit is already installed here; not replacing it"
fi
dpkg-deb --info "$deb" | sed -n 's/^ \(Package\|Version\|Depends\):/deb-check: \1:/p'
dpkg -i --no-triggers "$deb" >/dev/null || die "dpkg -i $deb failed"
list=$(mktemp)
trap 'rm -f "$list"' EXIT
dpkg -L slmkit > "$list"
rc=0
out=$(cd / && env -u LD_LIBRARY_PATH slm --version) || { echo "deb-check: slm --version failed" >&2; rc=1; }
echo "deb-check: installed: ${out%%$'\n'*}"
[ "$(command -v slm)" = /usr/bin/slm ] || { echo "deb-check: slm is not /usr/bin/slm" >&2; rc=1; }
man -w slm-quantize >/dev/null 2>&1 || { echo "deb-check: man -w slm-quantize finds no page" >&2; rc=1; }
# Debian's python3 (a pyenv one earlier in PATH does not read /usr/lib/python3/dist-packages)
if [ -x /usr/bin/python3 ]; then
    /usr/bin/python3 -c 'import slmkit' || { echo "deb-check: /usr/bin/python3 cannot import slmkit" >&2; rc=1; }
fi
n=$(wc -l < "$list")
dpkg -r --no-triggers slmkit >/dev/null || die "dpkg -r slmkit failed"
left=0
while IFS= read -r p; do
    [ -z "$p" ] || [ "$p" = /. ] && continue
    if [ -e "$p" ] || [ -L "$p" ]; then
        [ -d "$p" ] && [ ! -L "$p" ] && continue   # shared directories (/usr/bin, ...) stay
        echo "deb-check: left after dpkg -r: $p" >&2
        left=1
    fi
done < "$list"
installed && { echo "deb-check: still installed" >&2; rc=1; }
[ $left = 0 ] || rc=1
[ "${SLM_DEB_TRIGGERS:-0}" = 1 ] && dpkg --triggers-only --pending
[ $rc = 0 ] && echo "deb-check: ok: $n paths installed, slm ran, all removed"
exit $rc
