#!/usr/bin/env bash
# Copies the shared HL7 v2 corpus into a fuzzer seed directory (at run time: corpus files are never
# committed to this repository). Files are named by content hash, like libFuzzer's own corpus.
#
# Usage: fuzz/seed.sh DEST_DIR [CORPUS_DIR]
#   CORPUS_DIR defaults to ../shared/corpus/hl7v2-samples relative to the repository root.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
dest="${1:?usage: fuzz/seed.sh DEST_DIR [CORPUS_DIR]}"
corpus="${2:-$root/../shared/corpus/hl7v2-samples}"
mkdir -p "$dest"
# The committed hand-written seeds first.
for f in "$here"/seeds/*; do
  [ -f "$f" ] && cp -f "$f" "$dest/seed-$(basename "$f")"
done
if [ ! -d "$corpus" ]; then
  echo "seed.sh: no corpus at $corpus; using only fuzz/seeds" >&2
  exit 0
fi
n=0
while IFS= read -r -d '' f; do
  case "$(basename "$f")" in
    INDEX.tsv|DUPLICATES_SKIPPED.tsv|LICENSE*|*.md|*.json) continue ;;
  esac
  sum="$(sha1sum < "$f" | cut -c1-40)"
  cp -f "$f" "$dest/$sum"
  n=$((n + 1))
done < <(find "$corpus" -type f -print0)
echo "seed.sh: $n corpus files copied to $dest" >&2
