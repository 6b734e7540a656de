# Shared helpers for scripts/dev and scripts/test. Source it; do not run it.

# Installs the Debian packages Tern needs when any is missing: hiredis (the C client), redis-server
# and redis-tools (redis-cli, redis-benchmark), pkg-config (to find hiredis).
ensure_packages() {
    local missing=()
    for package in libhiredis-dev redis-server redis-tools pkg-config; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "Installing ${missing[*]} ..." >&2
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# Fails with a clear message when the Swift toolchain is not on PATH.
ensure_swift() {
    command -v swift >/dev/null 2>&1 && return 0
    echo "swift is not on PATH: install Swift 6.1 or newer (https://www.swift.org/install/linux/)." >&2
    exit 1
}
