# Sourced by the infra scripts: one place that installs the pinned Python-packaged tools into .tools/venv
# (git-ignored) the first time a script needs them, and puts that venv first on PATH.
#
#   . "$(dirname "$0")/tools.sh"
#   need_tool sam            # cfn-lint, sam, cargo-lambda, zig, moto_server
tools_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools="$tools_root/.tools"
venv="$tools/venv"
export PATH="$venv/bin:$PATH"

# Every pinned version lives here, so two scripts can never install two versions of one tool.
declare -A tool_packages=(
  [cfn-lint]="cfn-lint==1.58.0"
  [sam]="aws-sam-cli==1.170.0"
  # The PyPI wheel carries the cargo-lambda binary; --no-deps keeps its zig dependency optional.
  [cargo-lambda]="--no-deps cargo-lambda==1.9.2"
  # zig is the cross linker cargo-lambda uses for arm64; cargo-lambda finds it as `python3 -m ziglang`.
  [zig]="ziglang==0.13.0"
  [moto_server]="moto[dynamodbstreams,ssm,events,sqs]==5.2.5 flask flask-cors"
)

have_tool() {
  case "$1" in
    zig) "$venv/bin/python" -c 'import ziglang' 2>/dev/null ;;
    *) [ -x "$venv/bin/$1" ] ;;
  esac
}

need_tool() {
  local tool
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  for tool in "$@"; do
    have_tool "$tool" && continue
    echo "[tools] installing $tool into .tools/venv" >&2
    # shellcheck disable=SC2086 # the package spec is a word list on purpose
    "$venv/bin/pip" install -q ${tool_packages[$tool]} >&2
  done
}

# need_debian_package COMMAND_OR_PATH PACKAGE...: installs the packages with apt-get (as root, or
# through sudo) unless the command is on PATH or the path exists.
need_debian_package() {
  local probe=$1
  shift
  command -v "$probe" >/dev/null 2>&1 || [ -e "$probe" ] && return 0
  local sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  echo "[tools] installing $* (Debian packages)" >&2
  "${sudo[@]}" apt-get install -y -q "$@" >&2 ||
    { "${sudo[@]}" apt-get update -q >&2 && "${sudo[@]}" apt-get install -y -q "$@" >&2; }
}

# etcd_binary: prints the path of an etcd binary — the one on PATH, or Debian's etcd-server
# unpacked (not installed) into .tools/etcd the first time. `make bench-compare` and the bench
# crate's test compare tagcfg with it.
etcd_binary() {
  if command -v etcd >/dev/null 2>&1; then
    command -v etcd
    return 0
  fi
  local bin="$tools/etcd/usr/bin/etcd"
  if [ ! -x "$bin" ]; then
    echo "[tools] unpacking etcd (Debian etcd-server) into .tools/etcd" >&2
    local tmp
    tmp=$(mktemp -d)
    # apt-get download writes into the current directory; its _apt sandbox cannot, hence the mode.
    chmod 777 "$tmp"
    (cd "$tmp" && apt-get download -q etcd-server >&2) ||
      { apt-get update -q >&2 && (cd "$tmp" && apt-get download -q etcd-server >&2); }
    mkdir -p "$tools/etcd"
    dpkg -x "$tmp"/etcd-server_*.deb "$tools/etcd"
    rm -rf "$tmp"
  fi
  [ -x "$bin" ] || { echo "[tools] ERROR: no etcd binary after unpacking etcd-server" >&2; return 1; }
  echo "$bin"
}
