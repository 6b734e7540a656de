# Shared helpers for scripts/dev and scripts/test. Source it; do not run it.

# Installs the Debian packages Tern needs when any is missing: hiredis (the C client), redis-server
# and redis-tools (redis-cli, redis-benchmark), pkg-config (to find hiredis), openssl (the TLS tests' CA), curl (the HTTPS tests); and any package named
# as an argument (the benchmarks' peers, say).
ensure_packages() {
    local missing=()
    for package in libhiredis-dev redis-server redis-tools pkg-config openssl curl "$@"; do
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

# Installs the Python tools the OpenAPI conformance test runs (pinned), when missing:
# openapi-spec-validator (the document against the OpenAPI 3.1 schema) and schemathesis (a fuzzer
# driven by the document). Needs python3 with pip; installs into the user site when not root.
ensure_python_tools() {
    python3 -c "import openapi_spec_validator, schemathesis" >/dev/null 2>&1 && return 0
    if ! python3 -m pip --version >/dev/null 2>&1; then
        local sudo=""
        [ "$(id -u)" -ne 0 ] && sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-pip >&2
    fi
    echo "Installing openapi-spec-validator and schemathesis ..." >&2
    local user=""
    [ "$(id -u)" -ne 0 ] && user="--user"
    python3 -m pip install -q $user --disable-pip-version-check \
        "openapi-spec-validator==0.9.0" "schemathesis==4.32.5" >&2 \
        || python3 -m pip install -q $user --break-system-packages --disable-pip-version-check \
            "openapi-spec-validator==0.9.0" "schemathesis==4.32.5" >&2
}

# Runs the built tests (`swift build --build-tests` first) in two stages: every test but the
# process-heavy ones, in parallel; then HeavyProcessTests (the fault suite, supervisors, real
# worker and scheduler processes) one at a time, with the machine to themselves, so that their
# time bounds measure Tern and not the rest of the suite. Prints how long each stage took.
run_test_stages() {
    local started status=0
    started=$(date +%s)
    swift test --skip-build --skip HeavyProcessTests || status=$?
    echo "scripts/test: stage 1 (parallel tests) took $(( $(date +%s) - started )) s"
    [ "$status" -eq 0 ] || return "$status"
    started=$(date +%s)
    swift test --skip-build --filter HeavyProcessTests || status=$?
    echo "scripts/test: stage 2 (process-heavy tests, one at a time) took $(( $(date +%s) - started )) s"
    return "$status"
}

# Builds the example application (Examples/Shop, its own package depending on this one by path)
# and runs its tests: its tasks through TernTesting, and its real binary as worker, API and
# scheduler processes on a redis-server of their own. Stage 3 of scripts/test. It shares this
# package's build folder (--scratch-path), so Tern and its dependencies are not built a second
# time: about 30 s instead of 5 minutes.
run_example_tests() {
    local started status=0
    started=$(date +%s)
    (cd Examples/Shop && swift build --build-tests --scratch-path ../../.build \
        && swift test --skip-build --scratch-path ../../.build) || status=$?
    echo "scripts/test: stage 3 (the example app, Examples/Shop: build and tests) took $(( $(date +%s) - started )) s"
    return "$status"
}

# Installs what the dashboard's browser test needs: Debian's chromium and chromium-driver, and
# Selenium from PyPI.
ensure_browser_tools() {
    ensure_packages chromium chromium-driver
    python3 -c "import selenium" >/dev/null 2>&1 && return 0
    echo "Installing selenium ..." >&2
    local user=""
    [ "$(id -u)" -ne 0 ] && user="--user"
    python3 -m pip install -q $user --disable-pip-version-check "selenium==4.50.0" >&2 \
        || python3 -m pip install -q $user --break-system-packages --disable-pip-version-check "selenium==4.50.0" >&2
}

# Stage 4 of scripts/test: the dashboard in headless Chromium against a live API, worker and
# redis-server (scripts/test-browser).
run_browser_tests() {
    local started status=0
    started=$(date +%s)
    scripts/test-browser || status=$?
    echo "scripts/test: stage 4 (the dashboard in a browser) took $(( $(date +%s) - started )) s"
    return "$status"
}
