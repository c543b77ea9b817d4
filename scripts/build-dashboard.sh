#!/usr/bin/env bash
# Builds the dashboard's WebAssembly app into dashboard/dist/: the one build step that dev.sh,
# test.sh and the image build call. No `dx` CLI:
#   cargo build --release --target wasm32-unknown-unknown -p logjet-dashboard-app
#   wasm-bindgen --target web        (wasm-bindgen-cli pinned to the wasm-bindgen in Cargo.lock)
#   wasm-opt -Oz                     (npm's binaryen; Debian's binaryen 108 breaks the output)
# then content-hashed file names, index.html, and a .gz sibling for every file.
#   ./scripts/build-dashboard.sh [--out DIR] [--no-opt]
# Tools go to $TOOLS (scripts/lib.sh; wasm-bindgen-cli under cargo/, binaryen under binaryen/).
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
set -euo pipefail
cd "$ROOT"

OUT="$ROOT/dashboard/dist"
OPT="${LOGJET_WASM_OPT:-1}"
BINARYEN_VERSION="132.0.0"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --no-opt) OPT=0; shift ;;
    *) die "unknown argument $1 (use --out DIR, --no-opt)" ;;
  esac
done

TARGET=wasm32-unknown-unknown
APP=logjet-dashboard-app
WB_VERSION="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
[[ -n "$WB_VERSION" ]] || die "wasm-bindgen is not in Cargo.lock"

# --- tools ------------------------------------------------------------------------------------
if command -v rustup >/dev/null; then
  rustup_target "$TARGET"
fi
WASM_BINDGEN="$TOOLS/cargo/bin/wasm-bindgen"
if [[ "$("$WASM_BINDGEN" --version 2>/dev/null)" != "wasm-bindgen $WB_VERSION" ]]; then
  log "installing wasm-bindgen-cli $WB_VERSION into $TOOLS/cargo (a few minutes, once per machine)"
  # Not --locked: the CLI's own lock file pins crates that no longer build with current Rust.
  cargo install -q wasm-bindgen-cli --version "$WB_VERSION" --root "$TOOLS/cargo" --force \
    || die "cargo install wasm-bindgen-cli $WB_VERSION failed"
fi

WASM_OPT=""
if [[ "$OPT" == 1 ]]; then
  WASM_OPT="$TOOLS/binaryen/node_modules/binaryen/bin/wasm-opt"
  if [[ ! -x "$WASM_OPT" ]] || ! grep -q "\"version\": \"$BINARYEN_VERSION\"" \
      "$TOOLS/binaryen/node_modules/binaryen/package.json" 2>/dev/null; then
    if command -v npm >/dev/null; then
      log "installing binaryen $BINARYEN_VERSION (npm) into $TOOLS/binaryen"
      mkdir -p "$TOOLS/binaryen"
      npm install -s --no-audit --no-fund --prefix "$TOOLS/binaryen" "binaryen@$BINARYEN_VERSION" >/dev/null \
        || { warn "npm install binaryen failed: building without wasm-opt"; WASM_OPT=""; }
    else
      warn "npm not found: building without wasm-opt (the bundle is larger)"
      WASM_OPT=""
    fi
  fi
fi

# --- build ------------------------------------------------------------------------------------
log "building $APP for $TARGET"
cargo build --release --target "$TARGET" -p "$APP"
WASM_IN="$ROOT/target/$TARGET/release/$APP.wasm"

STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
"$WASM_BINDGEN" --target web --no-typescript --out-dir "$STAGE/bindgen" --out-name logjet "$WASM_IN"
WASM="$STAGE/bindgen/logjet_bg.wasm"
if [[ -n "$WASM_OPT" ]]; then
  # The features rustc enables by default for wasm32-unknown-unknown.
  "$WASM_OPT" -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-reference-types --enable-multivalue --enable-mutable-globals \
    "$WASM" -o "$STAGE/opt.wasm"
  WASM="$STAGE/opt.wasm"
fi

hash_of() { sha256sum "$@" | sha256sum | cut -c1-16; }

NEW="$STAGE/dist"
mkdir -p "$NEW"
wasm_name="logjet-$(hash_of "$WASM").wasm"
cp "$WASM" "$NEW/$wasm_name"

# JS snippets of crates (dioxus' interpreter) are imported by relative path: they move into a
# directory named by their content hash, and the import paths with them.
snippets_ref=""
if [[ -d "$STAGE/bindgen/snippets" ]]; then
  mapfile -t snippet_files < <(cd "$STAGE/bindgen" && find snippets -type f | LC_ALL=C sort)
  snippets_dir="snippets-$(cd "$STAGE/bindgen" && hash_of "${snippet_files[@]}")"
  cp -R "$STAGE/bindgen/snippets" "$NEW/$snippets_dir"
  snippets_ref="$snippets_dir"
fi
JS="$STAGE/bindgen/logjet.js"
if [[ -n "$snippets_ref" ]]; then
  sed -i "s#\\./snippets/#./$snippets_ref/#g" "$JS"
fi
js_name="logjet-$(hash_of "$JS").js"
cp "$JS" "$NEW/$js_name"
css_name="style-$(hash_of dashboard/app/style.css).css"
cp dashboard/app/style.css "$NEW/$css_name"
sed -e "s#{{JS}}#$js_name#g" -e "s#{{WASM}}#$wasm_name#g" -e "s#{{CSS}}#$css_name#g" \
  dashboard/app/index.html >"$NEW/index.html"

# Precompressed siblings: served as-is to browsers that accept gzip.
find "$NEW" -type f \( -name '*.wasm' -o -name '*.js' -o -name '*.css' -o -name '*.html' \) \
  -exec gzip -9 -n -k {} +

# Swap in the new bundle whole, so a running server never serves half of one.
mkdir -p "$(dirname "$OUT")"
rm -rf "$OUT.old"
[[ -e "$OUT" ]] && mv "$OUT" "$OUT.old"
mv "$NEW" "$OUT"
rm -rf "$OUT.old"

size() { stat -c %s "$1"; }
wasm_raw=$(size "$OUT/$wasm_name")
wasm_gz=$(size "$OUT/$wasm_name.gz")
total_gz=$(find "$OUT" -name '*.gz' -printf '%s\n' | awk '{ s += $1 } END { print s }')
printf '\n%-28s %10s %10s\n' "dashboard bundle" "bytes" "gzip"
printf '%-28s %10s %10s\n' "$wasm_name" "$wasm_raw" "$wasm_gz"
printf '%-28s %10s %10s\n' "$js_name" "$(size "$OUT/$js_name")" "$(size "$OUT/$js_name.gz")"
printf '%-28s %10s %10s\n' "$css_name" "$(size "$OUT/$css_name")" "$(size "$OUT/$css_name.gz")"
printf '%-28s %10s %10s\n' "all files" "" "$total_gz"
printf 'wasm gzip size: %d KiB (goal <= 400 KB)%s\n' "$((wasm_gz / 1024))" \
  "$([[ -z "$WASM_OPT" ]] && echo ', without wasm-opt')"
log "dashboard bundle in ${OUT#"$ROOT"/}"
